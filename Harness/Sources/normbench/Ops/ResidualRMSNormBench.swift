import NormKernels

/// Residual RMSNorm (issue 21): `s = x + residual`, `y = RMSNorm(s)·γ`, s written
/// too, as `RMSNormalization.forward(input:residual:output:sum:…)`; traffic as
/// `ResidualLayerNormBench` without β.
struct ResidualRMSNormBench: BenchOp {
    let name = "rmsnorm-residual"
    let hasLayout = false

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
        let sum = Buffer(count: w.x.count)
        return {
            _ = try k.forward(input: w.x.readOnly, residual: w.style!.readOnly, output: w.out.mutable, sum: sum.mutable,
                              scale: w.gamma.readOnly)
        }
    }

    static func backward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try RMSNormalization(rows: w.key.shape.n, features: w.key.shape.features, threading: t)
        let sum = Buffer(count: w.x.count), ds = ResidualRows.copy(w.dy!)
        let saved = try k.forward(input: w.x.readOnly, residual: w.style!.readOnly, output: w.out.mutable,
                                  sum: sum.mutable, scale: w.gamma.readOnly)
        let dy = w.dy!, dGamma = w.gradGamma!
        return {
            try k.backward(sum: sum.readOnly, gradOutput: dy.readOnly, gradSum: ds.readOnly, saved: saved,
                           scale: w.gamma.readOnly, gradInput: w.out.mutable, gradScale: dGamma.mutable)
        }
    }
}
