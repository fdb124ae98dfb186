import NormKernels

/// Float64 reference values for the first repetition of every case.
///
/// Each op is written the plain way — two passes (mean, then squared
/// deviations) in Float64 over one *unit*, the set of values that share a
/// statistic — so it shares no code and no blocking with the library. For large
/// tensors only a deterministic sample of units is computed (all units when the
/// tensor has at most `fullCheckElements` values, otherwise evenly spaced units
/// including the first and the last); every op, direction and layout is checked.
///
/// The error of one element is measured against its unit's scale:
/// ```
/// e = |got − expected| / (|expected| + rms(expected over the unit))
/// ```
/// and a case passes when max e ≤ `tolerance`: forward 2e-5, about 170 Float32
/// ulps, 20× the worst error of the library's forward kernels in the default
/// sweep (≤ 9e-7), yet small enough to catch an ε off by 10× (e ≈ 4e-5) or any
/// indexing mistake (e ≈ 0.1 and more); backward 5e-5, 100× its worst (≤ 4.4e-7),
/// a little looser because dx is a difference of nearly equal terms. NaN or ±Inf fails.
///
/// Inference takes the larger of rms(y) and the rms of |(x − running_mean)·r·γ| +
/// |β| (see `inference`). For dx the unit's scale is the larger of rms(dx) and rms(r·g), the size of the
/// terms dx is the difference of (g = dy·γ, r = 1/σ): Float32 rounds those terms,
/// not their difference. With large units the two are about equal; with units of a
/// few values dx can be far smaller than its terms (InstanceNorm [64, 1024, 2, 2]:
/// dx ≈ 3e-4 from terms of size ~1, an error of 1.5e-7 = 2 ulps of the terms was
/// 8e-5 of rms(dx)).
enum Reference {
    static let fullCheckElements = 1 << 20
    /// ε of RMSNorm: Float32 machine epsilon (PyTorch `eps=None`), the library's default.
    static let rmsEpsilon = Double(Float.ulpOfOne)

    /// The elements to compare and their expected values.
    struct Expectation {
        var offsets: [Int] = []
        var values: [Double] = []
        /// Per element: the rms of its unit's expected values.
        var scales: [Double] = []
        var tolerance: Double
        var units: Int = 0
        var checkedUnits: Int = 0
    }

    struct Outcome {
        var passed: Bool
        var maxError: Double
        /// Empty when passed; otherwise where and by how much the first worst element is off.
        var detail: String
    }

    // MARK: Units

    /// Element offsets of one unit and, per element, the index of its γ/β.
    struct Unit {
        var offsets: [Int] = []
        var parameters: [Int] = []
    }

    static func unitCount(_ key: CaseKey) -> Int {
        let s = key.shape
        switch key.op {
        case .batchnorm: return s.c
        case .instancenorm, .adain: return s.n * s.c
        case .groupnorm: return s.n * (key.groups ?? 1)
        case .layernorm, .rmsnorm, .weightnorm: return s.n
        }
    }

    static func unit(_ key: CaseKey, _ u: Int) -> Unit {
        let s = key.shape, layout = key.memoryLayout
        func offset(_ n: Int, _ c: Int, _ h: Int, _ w: Int) -> Int {
            layout == .nchw ? ((n * s.c + c) * s.h + h) * s.w + w : ((n * s.h + h) * s.w + w) * s.c + c
        }
        var unit = Unit()
        func addPlane(_ n: Int, _ c: Int) {
            for h in 0..<s.h {
                for w in 0..<s.w {
                    unit.offsets.append(offset(n, c, h, w))
                    unit.parameters.append(c)
                }
            }
        }
        switch key.op {
        case .batchnorm:
            for n in 0..<s.n { addPlane(n, u) }
        case .instancenorm, .adain:
            addPlane(u / s.c, u % s.c)
        case .groupnorm:
            let g = key.groups ?? 1, size = s.c / g, n = u / g, first = (u % g) * size
            for c in first..<(first + size) { addPlane(n, c) }
        case .layernorm, .rmsnorm, .weightnorm:
            // Row n of [N, C·H·W]; γ is per feature (LN/RMS) or per row (g of weight norm).
            let features = s.c * s.spatial
            unit.offsets = Array((u * features)..<((u + 1) * features))
            unit.parameters = key.op == .weightnorm ? Array(repeating: u, count: features) : Array(0..<features)
        }
        return unit
    }

    /// All units, or evenly spaced ones (first and last included) within the budget.
    static func sampledUnits(count: Int, elementsPerUnit: Int) -> [Int] {
        if count * elementsPerUnit <= fullCheckElements { return Array(0..<count) }
        let k = min(count, max(2, fullCheckElements / max(1, elementsPerUnit)))
        if k < 2 { return Array(0..<k) }   // one unit larger than the budget: check it whole
        var picked: [Int] = []
        for i in 0..<k {
            let u = Int((Double(i) * Double(count - 1) / Double(k - 1)).rounded())
            if picked.last != u { picked.append(u) }
        }
        return picked
    }

    // MARK: Expected values

    static func expectation(for w: Workload) -> Expectation {
        let key = w.key
        let units = unitCount(key)
        let tolerance = key.direction == .backward ? 5e-5 : 2e-5
        var e = Expectation(tolerance: tolerance, units: units)
        let picked = sampledUnits(count: units, elementsPerUnit: key.shape.count / units)
        e.checkedUnits = picked.count
        for u in picked {
            let unit = unit(key, u)
            let (values, terms) = key.direction == .backward ? backward(w, unit)
                : key.direction == .forwardInference ? inference(w, unit) : (forward(w, unit), [])
            let rms = max(rootMeanSquare(values), rootMeanSquare(terms))
            e.offsets += unit.offsets
            e.values += values
            e.scales += Array(repeating: rms, count: values.count)
        }
        return e
    }

    static func rootMeanSquare(_ values: [Double]) -> Double {
        (values.reduce(0) { $0 + $1 * $1 } / Double(max(1, values.count))).squareRoot()
    }

    /// Mean and biased variance, two passes.
    static func moments(_ b: Buffer, _ offsets: [Int]) -> (mean: Double, variance: Double) {
        let n = Double(offsets.count)
        var sum = 0.0
        for o in offsets { sum += Double(b[o]) }
        let mean = sum / n
        var squares = 0.0
        for o in offsets {
            let d = Double(b[o]) - mean
            squares += d * d
        }
        return (mean, squares / n)
    }

    static func sumOfSquares(_ b: Buffer, _ offsets: [Int]) -> Double {
        offsets.reduce(0) { $0 + Double(b[$1]) * Double(b[$1]) }
    }

    /// Inference y for the unit's elements, and the size of the two terms each
    /// is the sum of, |(x − running_mean)·r·γ| + |β|: Float32 rounds those terms,
    /// not their sum. With units of one value (InstanceNorm with H·W = 1, where
    /// the running statistics are per channel) y can cancel to ~1e-6 from terms
    /// of size ~1, and the unit's own rms would turn 1 ulp of the terms into a
    /// relative error of 2e-3 (`[4096, 1024]` inference failed its check so).
    static func inference(_ w: Workload, _ unit: Unit) -> (y: [Double], terms: [Double]) {
        let y = forward(w, unit)
        let eps = Double(Workload.epsilon)
        let terms = unit.offsets.indices.map { i -> Double in
            let c = unit.parameters[i]
            let r = 1 / (Double(w.runningVariance[c]) + eps).squareRoot()
            let beta = w.beta.count > 0 ? Double(w.beta[c]) : 0
            return abs((Double(w.x[unit.offsets[i]]) - Double(w.runningMean[c])) * r * Double(w.gamma[c])) + abs(beta)
        }
        return (y, terms)
    }

    /// y for the unit's elements.
    static func forward(_ w: Workload, _ unit: Unit) -> [Double] {
        let eps = Double(Workload.epsilon), x = w.x
        let gamma = { (i: Int) in Double(w.gamma[unit.parameters[i]]) }
        let beta = { (i: Int) in w.beta.count > 0 ? Double(w.beta[unit.parameters[i]]) : 0 }
        let xs = unit.offsets.map { Double(x[$0]) }
        switch (w.key.op, w.key.direction) {
        case (_, .forwardInference):
            // y = (x − running_mean[c]) / √(running_var[c] + ε) · γ[c] + β[c]
            return xs.indices.map { i in
                let c = unit.parameters[i]
                let r = 1 / (Double(w.runningVariance[c]) + eps).squareRoot()
                return (xs[i] - Double(w.runningMean[c])) * r * gamma(i) + beta(i)
            }
        case (.batchnorm, _), (.instancenorm, _), (.groupnorm, _), (.layernorm, _):
            // y = (x − μ) / √(σ² + ε) · γ + β, σ² biased
            let (mean, variance) = moments(x, unit.offsets)
            let r = 1 / (variance + eps).squareRoot()
            return xs.indices.map { i in (xs[i] - mean) * r * gamma(i) + beta(i) }
        case (.rmsnorm, _):
            // y = x / √(mean(x²) + ε) · γ
            let r = 1 / (sumOfSquares(x, unit.offsets) / Double(xs.count) + rmsEpsilon).squareRoot()
            return xs.indices.map { i in xs[i] * r * gamma(i) }
        case (.adain, _):
            // y = σ_style · (x − μ_x) / σ_x + μ_style, σ = √(var + ε), var biased
            let (mx, vx) = moments(x, unit.offsets), (ms, vs) = moments(w.style!, unit.offsets)
            let rx = 1 / (vx + eps).squareRoot(), sy = (vs + eps).squareRoot()
            return xs.map { sy * ($0 - mx) * rx + ms }
        case (.weightnorm, _):
            // w = g · v / ‖v‖
            let norm = sumOfSquares(x, unit.offsets).squareRoot()
            return xs.indices.map { i in gamma(i) * xs[i] / norm }
        }
    }

    /// dx (dv for weight normalization) for the unit's elements, training mode,
    /// and the leading term r·g of each (the size of what dx is a difference of).
    ///
    /// With g = dy·γ and x̂ the normalized input (r = 1/σ):
    /// ```
    /// moments ops:  dx = r · (g − mean(g) − x̂ · mean(g·x̂))
    /// RMSNorm:      dx = r · (g − x̂ · mean(g·x̂))          x̂ = x·r
    /// weight norm:  dv = (g_n / ‖v‖) · (dw − x̂ · Σ dw·x̂)   x̂ = v/‖v‖
    /// AdaIN:        as the moments ops with γ = σ_style (gradient w.r.t. the content)
    /// ```
    static func backward(_ w: Workload, _ unit: Unit) -> (dx: [Double], terms: [Double]) {
        let eps = Double(Workload.epsilon), x = w.x, dy = w.dy!
        let count = Double(unit.offsets.count)
        let xs = unit.offsets.map { Double(x[$0]) }
        let dys = unit.offsets.map { Double(dy[$0]) }
        func gamma(_ i: Int) -> Double { Double(w.gamma[unit.parameters[i]]) }
        /// dx = r · (g − a·mean(g) − x̂ · mean(g·x̂)), a = 1 when centred.
        func centred(_ xhat: [Double], _ g: [Double], r: Double, subtractMean: Bool) -> ([Double], [Double]) {
            let meanG = subtractMean ? g.reduce(0, +) / count : 0
            let meanGX = zip(g, xhat).reduce(0) { $0 + $1.0 * $1.1 } / count
            return (xhat.indices.map { r * (g[$0] - meanG - xhat[$0] * meanGX) }, g.map { r * $0 })
        }
        switch w.key.op {
        case .batchnorm, .instancenorm, .groupnorm, .layernorm:
            let (mean, variance) = moments(x, unit.offsets)
            let r = 1 / (variance + eps).squareRoot()
            return centred(xs.map { ($0 - mean) * r }, dys.indices.map { dys[$0] * gamma($0) }, r: r, subtractMean: true)
        case .adain:
            let (mean, variance) = moments(x, unit.offsets), (_, vs) = moments(w.style!, unit.offsets)
            let r = 1 / (variance + eps).squareRoot(), sy = (vs + eps).squareRoot()
            return centred(xs.map { ($0 - mean) * r }, dys.map { $0 * sy }, r: r, subtractMean: true)
        case .rmsnorm:
            let r = 1 / (sumOfSquares(x, unit.offsets) / count + rmsEpsilon).squareRoot()
            return centred(xs.map { $0 * r }, dys.indices.map { dys[$0] * gamma($0) }, r: r, subtractMean: false)
        case .weightnorm:
            let norm = sumOfSquares(x, unit.offsets).squareRoot(), g = gamma(0)
            let xhat = xs.map { $0 / norm }
            let dot = zip(dys, xhat).reduce(0) { $0 + $1.0 * $1.1 }
            return (xhat.indices.map { g / norm * (dys[$0] - xhat[$0] * dot) }, dys.map { g / norm * $0 })
        }
    }

    // MARK: Comparison

    static func compare(_ e: Expectation, _ out: Buffer) -> Outcome {
        var worst = 0.0, worstIndex = -1
        for i in e.offsets.indices {
            let got = Double(out[e.offsets[i]])
            let error = got.isFinite ? abs(got - e.values[i]) / (abs(e.values[i]) + e.scales[i]) : .infinity
            // `!(error <= worst)` also catches a NaN error.
            if !(error <= worst) { worst = error; worstIndex = i }
        }
        let passed = worst <= e.tolerance
        var detail = ""
        if !passed, worstIndex >= 0 {
            let o = e.offsets[worstIndex]
            detail = "element \(o): got \(out[o]), expected \(e.values[worstIndex]) (error \(worst), tolerance \(e.tolerance))"
        }
        return Outcome(passed: passed, maxError: worst, detail: detail)
    }
}
