import NormKernels

/// Residual LayerNorm (issue 21): `s = x + residual`, `y = LayerNorm(s)·γ + β`,
/// s written too (the next block's residual stream), as
/// `LayerNormalization.forward(input:residual:output:sum:…)`. The residual is
/// the workload's second activation-shaped input (`style`). Traffic is what the
/// fused op must move: x and the residual read, y and s written (4T); backward
/// s, dy and ds read, dx written (4T; d residual is dx, not written again).
struct ResidualLayerNormBench: BenchOp {
    let name = "layernorm-residual"
    let hasLayout = false
    let dtypes = DType.allCases

    func operands(_ s: Shape) -> Operands { Operands(gamma: s.features, beta: s.features, style: true) }

    func pass(_ direction: Direction) -> Pass? {
        switch direction {
        case .forwardTraining:
            // x, residual read, y, s written; γ, β read (2·C·H·W)
            return Pass(traffic: { Traffic(tensors: 4 * $0.count, parameters: 2 * $0.features) },
                        reference: { ResidualRows.forwardReference($0, $1, centered: true) }, make: Self.forward)
        case .forwardInference:
            return nil
        case .backward:
            // s, dy, ds read, dx written; γ read, dγ, dβ written (3·C·H·W)
            return Pass(traffic: { Traffic(tensors: 4 * $0.count, parameters: 3 * $0.features) },
                        reference: { ResidualRows.backwardReference($0, $1, centered: true) }, make: Self.backward)
        }
    }

    func unitCount(_ key: CaseKey) -> Int { key.shape.n }
    func unit(_ key: CaseKey, _ u: Int) -> Unit { .row(key, u) }

    func plan(_ key: CaseKey, threading: Threading) throws -> PlanDescription {
        try LayerNormalization(rows: key.shape.n, features: key.shape.features, threading: threading).plan()
    }

    static func forward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try LayerNormalization(rows: w.key.shape.n, features: w.key.shape.features,
                                       epsilon: Workload.epsilon, threading: t)
        let sum = Buffer(count: w.x.count, dtype: w.key.dtype)
        func make<E: NormElement>(_: E.Type) -> Repetition {
            let x = w.x.elements(E.self), r = w.style!.elements(E.self), y = w.out.mutableElements(E.self)
            let s = sum.mutableElements(E.self)
            return { [sum] in
                _ = try withExtendedLifetime(sum) {
                    try k.forward(input: x, residual: r, output: y, sum: s, scale: w.gamma.readOnly,
                                  bias: w.beta.readOnly)
                }
            }
        }
        return w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }

    /// dx (checked), dγ, dβ from one untimed fused forward's s, with ds = a copy of dy.
    static func backward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try LayerNormalization(rows: w.key.shape.n, features: w.key.shape.features,
                                       epsilon: Workload.epsilon, threading: t)
        let sum = Buffer(count: w.x.count, dtype: w.key.dtype), ds = ResidualRows.copy(w.dy!)
        let dGamma = w.gradGamma!, dBeta = w.gradBeta!
        func make<E: NormElement>(_: E.Type) throws -> Repetition {
            let s = sum.mutableElements(E.self), dy = w.dy!.elements(E.self), dx = w.out.mutableElements(E.self)
            let saved = try k.forward(input: w.x.elements(E.self), residual: w.style!.elements(E.self), output: dx,
                                      sum: s, scale: w.gamma.readOnly, bias: w.beta.readOnly)
            let dsp = ds.elements(E.self)
            return { [sum, ds] in
                try withExtendedLifetime((sum, ds)) {
                    try k.backward(sum: UnsafeBufferPointer(s), gradOutput: dy, gradSum: dsp, saved: saved,
                                   scale: w.gamma.readOnly, gradInput: dx, gradScale: dGamma.mutable,
                                   gradBias: dBeta.mutable)
                }
            }
        }
        return try w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }
}

/// References shared by the residual row ops: s = x + residual in Float32,
/// rounded once to the case's dtype (the kernel's own s), then the
/// normalization in Float64.
enum ResidualRows {
    static func sums(_ w: Workload, _ unit: Unit) -> [Double] {
        let r = w.style!, dtype = w.key.dtype
        return unit.offsets.map { Double(dtype.rounded(w.x[$0] + r[$0])) }
    }

    static func statistics(_ s: [Double], centered: Bool, epsilon: Double) -> (mean: Double, r: Double) {
        let n = Double(s.count)
        let mean = centered ? s.reduce(0, +) / n : 0
        let second = s.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / n
        return (mean, 1 / (second + epsilon).squareRoot())
    }

    static func epsilon(centered: Bool) -> Double { centered ? Double(Workload.epsilon) : Double(Float.ulpOfOne) }

    static func forwardReference(_ w: Workload, _ unit: Unit, centered: Bool) -> Expected {
        let s = sums(w, unit)
        let (mean, r) = statistics(s, centered: centered, epsilon: epsilon(centered: centered))
        return Expected(values: s.indices.map { i in
            (s[i] - mean) * r * w.scale(unit, i) + (centered ? w.shift(unit, i) : 0)
        })
    }

    /// dx = the normalization's backward on s, plus ds (= dy in the bench).
    static func backwardReference(_ w: Workload, _ unit: Unit, centered: Bool) -> Expected {
        let s = sums(w, unit), dy = w.dy!
        let (mean, r) = statistics(s, centered: centered, epsilon: epsilon(centered: centered))
        let xhat = s.map { ($0 - mean) * r }
        let g = unit.offsets.indices.map { Double(dy[unit.offsets[$0]]) * w.scale(unit, $0) }
        let plain = Reference.centred(xhat, g, r: r, subtractMean: centered)
        return Expected(values: plain.values.indices.map { plain.values[$0] + Double(dy[unit.offsets[$0]]) },
                        terms: plain.terms.indices.map { plain.terms[$0] + abs(Double(dy[unit.offsets[$0]])) })
    }

    /// A copy of `b`, in its dtype (16-bit: the same elements, whose widened values `b` holds).
    static func copy(_ b: Buffer) -> Buffer {
        let c = Buffer(count: b.count, dtype: b.dtype)
        c.mutable.baseAddress!.update(from: b.readOnly.baseAddress!, count: b.count)
        c.roundToElements()
        return c
    }
}

extension DType {
    /// `v` rounded once to the element type and widened back (f32: `v`).
    func rounded(_ v: Float) -> Float {
        switch self {
        case .f32: return v
        case .f16: return Float16.widen(Float16.narrow(v))
        case .bf16: return BFloat16.widen(BFloat16.narrow(v))
        }
    }
}
