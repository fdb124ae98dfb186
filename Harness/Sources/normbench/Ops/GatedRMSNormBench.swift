import NormKernels

/// RMSNorm × gate (issue 21): `y = (RMSNorm(x)·γ) ⊙ gate`, as
/// `RMSNormalization.forward(input:gate:output:scale:)`; the gate is the
/// workload's second activation-shaped input (`style`). Traffic is what the
/// fused op must move: x and gate read, y written (3T); backward x, gate, dy
/// read, dx and d gate written (5T).
struct GatedRMSNormBench: BenchOp {
    let name = "rmsnorm-gate"
    let hasLayout = false
    let dtypes = DType.allCases

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
        // 16-bit: z rounded to the dtype before the multiply (the kernel's
        // semantics), and the check's scale the row's largest |y| (`terms`): the
        // output's ulp follows |y|, and a product's peaks are many times its RMS.
        let plain = RMSNormBench.forwardReference(w, unit), gate = w.style!, dtype = w.key.dtype
        let values = unit.offsets.indices.map {
            Double(dtype.rounded(Float(plain.values[$0]))) * Double(gate[unit.offsets[$0]])
        }
        let peak = values.reduce(0) { max($0, abs($1)) }
        return Expected(values: values, terms: dtype == .f32 ? [] : [Double](repeating: peak, count: values.count))
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
        func make<E: NormElement>(_: E.Type) -> Repetition {
            let x = w.x.elements(E.self), g = w.style!.elements(E.self), y = w.out.mutableElements(E.self)
            return { _ = try k.forward(input: x, gate: g, output: y, scale: w.gamma.readOnly) }
        }
        return w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }

    static func backward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try RMSNormalization(rows: w.key.shape.n, features: w.key.shape.features, threading: t)
        let dGate = Buffer(count: w.x.count, dtype: w.key.dtype), dGamma = w.gradGamma!
        func make<E: NormElement>(_: E.Type) throws -> Repetition {
            let x = w.x.elements(E.self), g = w.style!.elements(E.self), dy = w.dy!.elements(E.self)
            let dx = w.out.mutableElements(E.self), dg = dGate.mutableElements(E.self)
            let saved = try k.forward(input: x, gate: g, output: dx, scale: w.gamma.readOnly)
            return { [dGate] in
                try withExtendedLifetime(dGate) {
                    try k.backward(input: x, gate: g, gradOutput: dy, saved: saved, scale: w.gamma.readOnly,
                                   gradInput: dx, gradGate: dg, gradScale: dGamma.mutable)
                }
            }
        }
        return try w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }
}
