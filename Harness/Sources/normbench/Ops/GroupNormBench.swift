import NormKernels

/// GroupNorm with `--groups` G: one statistic per (n, group) of C/G channels ×
/// H·W values, γ and β per channel.
struct GroupNormBench: BenchOp {
    let name = "groupnorm"
    let hasLayout = true
    let hasGroups = true
    let dtypes = DType.allCases

    func operands(_ s: Shape) -> Operands { Operands(gamma: s.c, beta: s.c) }

    func cannotRun(_ key: CaseKey) -> String? {
        key.shape.c % groups(key) != 0 ? "groupnorm groups not dividing C" : nil
    }

    func pass(_ direction: Direction) -> Pass? {
        switch direction {
        case .forwardTraining:
            // + γ, β (2C)
            return Pass(traffic: { .forward($0, parameters: 2 * $0.c) }, reference: Reference.standardized,
                        make: Self.forward)
        case .forwardInference:
            return nil  // no running statistics
        case .backward:
            // + γ read, dγ and dβ written (3C)
            return Pass(traffic: { .backward($0, parameters: 3 * $0.c) }, reference: Reference.standardizedBackward,
                        make: Self.backward)
        }
    }

    func unitCount(_ key: CaseKey) -> Int { key.shape.n * groups(key) }

    func unit(_ key: CaseKey, _ u: Int) -> Unit {
        let g = groups(key), size = key.shape.c / g, first = (u % g) * size
        return .planes(key, n: u / g, channels: first..<(first + size))
    }

    func plan(_ key: CaseKey, threading: Threading) throws -> PlanDescription {
        try GroupNormalization(shape: key.shape.tensor(key.memoryLayout), groups: groups(key), threading: threading).plan()
    }

    func groups(_ key: CaseKey) -> Int { key.groups ?? 1 }

    /// One maker for every dtype (as `LayerNormBench`).
    static func forward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try GroupNormalization(shape: w.tensorShape, groups: w.key.groups ?? 1,
                                       epsilon: Workload.epsilon, threading: t)
        func make<E: NormElement>(_: E.Type) -> Repetition {
            let x = w.x.elements(E.self), y = w.out.mutableElements(E.self)
            return { _ = try k.forward(input: x, output: y, scale: w.gamma.readOnly, bias: w.beta.readOnly) }
        }
        return w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }

    /// dx, dγ and dβ from the saved statistics of one untimed forward.
    static func backward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try GroupNormalization(shape: w.tensorShape, groups: w.key.groups ?? 1,
                                       epsilon: Workload.epsilon, threading: t)
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
