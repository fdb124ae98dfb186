import NormKernels

/// BatchNorm: one statistic per channel over N·H·W, γ and β per channel.
/// Training updates running statistics (exponential, momentum 0.1), as PyTorch's
/// training-mode `F.batch_norm` is usually called; inference uses them.
struct BatchNormBench: BenchOp {
    let name = "batchnorm"
    let hasLayout = true
    let dtypes = DType.allCases

    func operands(_ s: Shape) -> Operands { Operands(gamma: s.c, beta: s.c) }

    func cannotRun(_ key: CaseKey) -> String? {
        // Training statistics need more than one value per statistic.
        let s = key.shape
        return key.direction != .forwardInference && s.n * s.spatial < 2 ? "batchnorm training with N·H·W = 1" : nil
    }

    func pass(_ direction: Direction) -> Pass? {
        switch direction {
        case .forwardTraining:
            // + γ, β read; running mean and variance read and written (6C)
            return Pass(traffic: { .forward($0, parameters: 6 * $0.c) }, reference: Reference.standardized,
                        make: Self.training)
        case .forwardInference:
            return Pass(traffic: Traffic.inference, reference: Reference.inference, make: Self.inference)
        case .backward:
            // + γ read, dγ and dβ written (3C)
            return Pass(traffic: { .backward($0, parameters: 3 * $0.c) }, reference: Reference.standardizedBackward,
                        make: Self.backward)
        }
    }

    func unitCount(_ key: CaseKey) -> Int { key.shape.c }

    func unit(_ key: CaseKey, _ u: Int) -> Unit {
        var unit = Unit()
        for n in 0..<key.shape.n { unit.addPlane(key, n: n, c: u) }
        return unit
    }

    func plan(_ key: CaseKey, threading: Threading) throws -> PlanDescription {
        try BatchNormalization(shape: key.shape.tensor(key.memoryLayout), threading: threading).plan()
    }

    /// One maker per direction for every dtype: the tensors as elements of the
    /// case's type (`Buffer.elements`), the library's overload of that type.
    static func training(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try BatchNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, threading: t)
        let running = try RunningStatistics(channels: w.key.shape.c)
        func make<E: NormElement>(_: E.Type) -> Repetition {
            let x = w.x.elements(E.self), y = w.out.mutableElements(E.self)
            return {
                _ = try k.forwardTraining(input: x, output: y, scale: w.gamma.readOnly, bias: w.beta.readOnly,
                                          running: running)
            }
        }
        return w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }

    static func inference(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try BatchNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, threading: t)
        let running = try RunningStatistics(channels: w.key.shape.c, mean: w.runningMean, variance: w.runningVariance)
        func make<E: NormElement>(_: E.Type) -> Repetition {
            let x = w.x.elements(E.self), y = w.out.mutableElements(E.self)
            return {
                try k.forwardInference(input: x, output: y, scale: w.gamma.readOnly, bias: w.beta.readOnly,
                                       running: running)
            }
        }
        return w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }

    /// dx, dγ and dβ (`backwardTraining`) from the saved statistics of one untimed forward.
    static func backward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try BatchNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, threading: t)
        let dGamma = w.gradGamma!, dBeta = w.gradBeta!
        func make<E: NormElement>(_: E.Type) throws -> Repetition {
            let x = w.x.elements(E.self), dy = w.dy!.elements(E.self), dx = w.out.mutableElements(E.self)
            let saved = try k.forwardTraining(input: x, output: dx, scale: w.gamma.readOnly, bias: w.beta.readOnly)
            return {
                try k.backwardTraining(input: x, gradOutput: dy, saved: saved, scale: w.gamma.readOnly,
                                       gradInput: dx, gradScale: dGamma.mutable, gradBias: dBeta.mutable)
            }
        }
        return try w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }
}
