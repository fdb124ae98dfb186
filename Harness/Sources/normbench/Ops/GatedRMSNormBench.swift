import NormKernels

/// RMSNorm × gate (issue 21): `y = (RMSNorm(x)·γ) ⊙ gate`, as
/// `RMSNormalization.forward(input:gate:output:scale:)`; the gate is the
/// workload's second activation-shaped input (`style`). Traffic is what the
/// fused op must move: x and gate read, y written (3T); backward x, gate, dy
/// read, dx and d gate written (5T).
struct GatedRMSNormBench: BenchOp {
    let name = "rmsnorm-gate"
    let hasLayout = false

    func operands(_ s: Shape) -> Operands { Operands(gamma: s.features, beta: 0, style: true) }

    func pass(_ direction: Direction) -> Pass? {
        switch direction {
        case .forwardTraining:
            return Pass(traffic: { Traffic(tensors: 3 * $0.count, parameters: $0.features) },
                        reference: Self.forwardReference, make: Self.forward)
        case .forwardInference:
            return nil
        case .backward:
            return Pass(traffic: { Traffic(tensors: 5 * $0.count, parameters: 2 * $0.features) },
                        reference: Self.backwardReference, make: Self.backward)
        }
    }

    func unitCount(_ key: CaseKey) -> Int { key.shape.n }
    func unit(_ key: CaseKey, _ u: Int) -> Unit { .row(key, u) }

    func plan(_ key: CaseKey, threading: Threading) throws -> PlanDescription {
        try RMSNormalization(rows: key.shape.n, features: key.shape.features, threading: threading).plan()
    }

    static func forwardReference(_ w: Workload, _ unit: Unit) -> Expected {
        let plain = RMSNormBench.forwardReference(w, unit), gate = w.style!
        return Expected(values: unit.offsets.indices.map { plain.values[$0] * Double(gate[unit.offsets[$0]]) })
    }

    /// dx: RMSNorm's backward with dy ⊙ gate.
    static func backwardReference(_ w: Workload, _ unit: Unit) -> Expected {
        let r = RMSNormBench.reciprocal(w, unit), dy = w.dy!, gate = w.style!
        let xhat = unit.offsets.map { Double(w.x[$0]) * r }
        let g = unit.offsets.indices.map {
            Double(dy[unit.offsets[$0]]) * Double(gate[unit.offsets[$0]]) * w.scale(unit, $0)
        }
        return Reference.centred(xhat, g, r: r, subtractMean: false)
    }

    static func forward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try RMSNormalization(rows: w.key.shape.n, features: w.key.shape.features, threading: t)
        return { _ = try k.forward(input: w.x.readOnly, gate: w.style!.readOnly, output: w.out.mutable,
                                   scale: w.gamma.readOnly) }
    }

    static func backward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try RMSNormalization(rows: w.key.shape.n, features: w.key.shape.features, threading: t)
        let saved = try k.forward(input: w.x.readOnly, gate: w.style!.readOnly, output: w.out.mutable,
                                  scale: w.gamma.readOnly)
        let dGate = Buffer(count: w.x.count), dy = w.dy!, dGamma = w.gradGamma!
        return {
            try k.backward(input: w.x.readOnly, gate: w.style!.readOnly, gradOutput: dy.readOnly, saved: saved,
                           scale: w.gamma.readOnly, gradInput: w.out.mutable, gradGate: dGate.mutable,
                           gradScale: dGamma.mutable)
        }
    }
}
