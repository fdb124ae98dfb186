import NormKernels

/// LayerNorm: N rows of C·H·W (PyTorch `normalized_shape = [C, H, W]`), γ and β
/// per feature. It normalizes whole rows in memory order, so it has no layout.
struct LayerNormBench: BenchOp {
    let name = "layernorm"
    let hasLayout = false
    let dtypes = DType.allCases

    func operands(_ s: Shape) -> Operands { Operands(gamma: s.features, beta: s.features) }

    func pass(_ direction: Direction) -> Pass? {
        switch direction {
        case .forwardTraining:
            // + γ, β (2·C·H·W)
            return Pass(traffic: { .forward($0, parameters: 2 * $0.features) }, reference: Reference.standardized,
                        make: Self.forward)
        case .forwardInference:
            return nil  // no running statistics
        case .backward:
            // + γ read, dγ and dβ written (3·C·H·W)
            return Pass(traffic: { .backward($0, parameters: 3 * $0.features) },
                        reference: Reference.standardizedBackward, make: Self.backward)
        }
    }

    func unitCount(_ key: CaseKey) -> Int { key.shape.n }

    func unit(_ key: CaseKey, _ u: Int) -> Unit { .row(key, u) }

    func plan(_ key: CaseKey, threading: Threading) throws -> PlanDescription {
        try LayerNormalization(shape: key.shape.tensor(key.memoryLayout), threading: threading).plan()
    }

    /// One maker for every dtype: the tensors as elements of the case's type
    /// (`Buffer.elements`), the library's overload of that type.
    static func forward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try LayerNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, threading: t)
        func make<E: NormElement>(_: E.Type) -> Repetition {
            let x = w.x.elements(E.self), y = w.out.mutableElements(E.self)
            return { _ = try k.forward(input: x, output: y, scale: w.gamma.readOnly, bias: w.beta.readOnly) }
        }
        return w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }

    /// dx, dγ and dβ from the saved statistics of one untimed forward.
    static func backward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try LayerNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, threading: t)
        let dGamma = w.gradGamma!, dBeta = w.gradBeta!
        func make<E: NormElement>(_: E.Type) throws -> Repetition {
            let x = w.x.elements(E.self), dy = w.dy!.elements(E.self), dx = w.out.mutableElements(E.self)
            let saved = try k.forward(input: x, output: dx, scale: w.gamma.readOnly, bias: w.beta.readOnly)
            return {
                try k.backward(input: x, gradOutput: dy, saved: saved, scale: w.gamma.readOnly,
                               gradInput: dx, gradScale: dGamma.mutable, gradBias: dBeta.mutable)
            }
        }
        return try w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }
}
