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
/// 16-bit cases compare the widened output with the reference of the widened
/// inputs; their tolerance adds the output's rounding (`DType.tolerance`).
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

    /// The sampled units' expected outputs, from the op's units and its pass's reference.
    static func expectation(for w: Workload) -> Expectation {
        let key = w.key, op = key.op, reference = key.pass.reference
        let units = op.unitCount(key)
        let tolerance = key.dtype.tolerance(key.direction)
        var e = Expectation(tolerance: tolerance, units: units)
        let picked = sampledUnits(count: units, elementsPerUnit: key.shape.count / units)
        e.checkedUnits = picked.count
        for u in picked {
            let unit = op.unit(key, u)
            let expected = reference(w, unit)
            let rms = max(rootMeanSquare(expected.values), rootMeanSquare(expected.terms))
            e.offsets += unit.offsets
            e.values += expected.values
            e.scales += Array(repeating: rms, count: expected.values.count)
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

    // MARK: Formulas shared by several ops

    /// Training forward of the moments ops (BatchNorm, InstanceNorm, GroupNorm, LayerNorm):
    /// ```
    /// y = (x − μ) / √(σ² + ε) · γ + β,   σ² biased, over the unit
    /// ```
    static func standardized(_ w: Workload, _ unit: Unit) -> Expected {
        let eps = Double(Workload.epsilon)
        let xs = unit.offsets.map { Double(w.x[$0]) }
        let (mean, variance) = moments(w.x, unit.offsets)
        let r = 1 / (variance + eps).squareRoot()
        return Expected(values: xs.indices.map { i in (xs[i] - mean) * r * w.scale(unit, i) + w.shift(unit, i) })
    }

    /// Inference y for the unit's elements, with running statistics per channel:
    /// ```
    /// y = (x − running_mean[c]) / √(running_var[c] + ε) · γ[c] + β[c]
    /// ```
    /// and the size of the two terms each is the sum of, |(x − running_mean)·r·γ| +
    /// |β|: Float32 rounds those terms, not their sum. With units of one value
    /// (InstanceNorm with H·W = 1, where the running statistics are per channel)
    /// y can cancel to ~1e-6 from terms of size ~1, and the unit's own rms would
    /// turn 1 ulp of the terms into a relative error of 2e-3 (`[4096, 1024]`
    /// inference failed its check so).
    static func inference(_ w: Workload, _ unit: Unit) -> Expected {
        let eps = Double(Workload.epsilon)
        var y: [Double] = [], terms: [Double] = []
        for i in unit.offsets.indices {
            let c = unit.parameters[i]
            let r = 1 / (Double(w.runningVariance[c]) + eps).squareRoot()
            let centred = Double(w.x[unit.offsets[i]]) - Double(w.runningMean[c])
            y.append(centred * r * w.scale(unit, i) + w.shift(unit, i))
            terms.append(abs(centred * r * w.scale(unit, i)) + abs(w.shift(unit, i)))
        }
        return Expected(values: y, terms: terms)
    }

    /// Training dx of the moments ops, with g = dy·γ, r = 1/σ and x̂ = (x − μ)·r
    /// (see `centred`).
    static func standardizedBackward(_ w: Workload, _ unit: Unit) -> Expected {
        let eps = Double(Workload.epsilon), dy = w.dy!
        let (mean, variance) = moments(w.x, unit.offsets)
        let r = 1 / (variance + eps).squareRoot()
        let xhat = unit.offsets.map { (Double(w.x[$0]) - mean) * r }
        let g = unit.offsets.indices.map { Double(dy[unit.offsets[$0]]) * w.scale(unit, $0) }
        return centred(xhat, g, r: r, subtractMean: true)
    }

    /// dx = r · (g − a·mean(g) − x̂ · mean(g·x̂)), a = 1 when centred (the moments
    /// ops, AdaIN) and 0 for RMSNorm; `terms` holds r·g, the size of what dx is a
    /// difference of.
    static func centred(_ xhat: [Double], _ g: [Double], r: Double, subtractMean: Bool) -> Expected {
        let count = Double(g.count)
        let meanG = subtractMean ? g.reduce(0, +) / count : 0
        let meanGX = zip(g, xhat).reduce(0) { $0 + $1.0 * $1.1 } / count
        return Expected(values: xhat.indices.map { r * (g[$0] - meanG - xhat[$0] * meanGX) }, terms: g.map { r * $0 })
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
