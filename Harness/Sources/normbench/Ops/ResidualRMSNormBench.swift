import NormKernels

/// Residual RMSNorm (issue 21): `s = x + residual`, `y = RMSNorm(s)·γ`, s written
/// too, as `RMSNormalization.forward(input:residual:output:sum:…)`; traffic as
/// `ResidualLayerNormBench` without β.
struct ResidualRMSNormBench: BenchOp {
    let name = "rmsnorm-residual"
    let hasLayout = false
    let dtypes = DType.allCases

    func operands(_ s: Shape) -> Operands { Operands(gamma: s.features, beta: 0, style: true) }

    func pass(_ direction: Direction) -> Pass? {
        switch direction {
        case .forwardTraining:
            // x, residual read, y, s written; γ read
            return Pass(traffic: { Traffic(tensors: 4 * $0.count, parameters: $0.features) },
                        reference: { ResidualRows.forwardReference($0, $1, centered: false) }, make: Self.forward)
        case .forwardInference:
            return nil
        case .backward:
            // s, dy, ds read, dx written; γ read, dγ written
            return Pass(traffic: { Traffic(tensors: 4 * $0.count, parameters: 2 * $0.features) },
                        reference: { ResidualRows.backwardReference($0, $1, centered: false) }, make: Self.backward)
        }
    }

    func unitCount(_ key: CaseKey) -> Int { key.shape.n }
    func unit(_ key: CaseKey, _ u: Int) -> Unit { .row(key, u) }

    func plan(_ key: CaseKey, threading: Threading) throws -> PlanDescription {
        try RMSNormalization(rows: key.shape.n, features: key.shape.features, threading: threading).plan()
    }

    static func forward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try RMSNormalization(rows: w.key.shape.n, features: w.key.shape.features, threading: t)
        let sum = Buffer(count: w.x.count, dtype: w.key.dtype)
        func make<E: NormElement>(_: E.Type) -> Repetition {
            let x = w.x.elements(E.self), r = w.style!.elements(E.self), y = w.out.mutableElements(E.self)
            let s = sum.mutableElements(E.self)
            return { [sum] in
                _ = try withExtendedLifetime(sum) {
                    try k.forward(input: x, residual: r, output: y, sum: s, scale: w.gamma.readOnly)
                }
            }
        }
        return w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }

    static func backward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try RMSNormalization(rows: w.key.shape.n, features: w.key.shape.features, threading: t)
        let sum = Buffer(count: w.x.count, dtype: w.key.dtype), ds = ResidualRows.copy(w.dy!)
        let dGamma = w.gradGamma!
        func make<E: NormElement>(_: E.Type) throws -> Repetition {
            let s = sum.mutableElements(E.self), dy = w.dy!.elements(E.self), dx = w.out.mutableElements(E.self)
            let saved = try k.forward(input: w.x.elements(E.self), residual: w.style!.elements(E.self), output: dx,
                                      sum: s, scale: w.gamma.readOnly)
            let dsp = ds.elements(E.self)
            return { [sum, ds] in
                try withExtendedLifetime((sum, ds)) {
                    try k.backward(sum: UnsafeBufferPointer(s), gradOutput: dy, gradSum: dsp, saved: saved,
                                   scale: w.gamma.readOnly, gradInput: dx, gradScale: dGamma.mutable)
                }
            }
        }
        return try w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }
}
