import NormKernels

/// BatchNorm: one statistic per channel over N·H·W, γ and β per channel.
/// Training updates running statistics (exponential, momentum 0.1), as PyTorch's
/// training-mode `F.batch_norm` is usually called; inference uses them.
struct BatchNormBench: BenchOp {
    let name = "batchnorm"
    let hasLayout = true

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

    static func training(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try BatchNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, threading: t)
        let running = try RunningStatistics(channels: w.key.shape.c)
        return {
            _ = try k.forwardTraining(input: w.x.readOnly, output: w.out.mutable,
                                      scale: w.gamma.readOnly, bias: w.beta.readOnly, running: running)
        }
    }

    static func inference(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try BatchNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, threading: t)
        let running = try RunningStatistics(channels: w.key.shape.c, mean: w.runningMean, variance: w.runningVariance)
        return {
            try k.forwardInference(input: w.x.readOnly, output: w.out.mutable,
                                   scale: w.gamma.readOnly, bias: w.beta.readOnly, running: running)
        }
    }

    /// dx, dγ and dβ (`backwardTraining`) from the saved statistics of one untimed forward.
    static func backward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try BatchNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, threading: t)
        let saved = try k.forwardTraining(input: w.x.readOnly, output: w.out.mutable,
                                          scale: w.gamma.readOnly, bias: w.beta.readOnly)
        let dy = w.dy!, dGamma = w.gradGamma!, dBeta = w.gradBeta!
        return {
            try k.backwardTraining(input: w.x.readOnly, gradOutput: dy.readOnly, saved: saved, scale: w.gamma.readOnly,
                                   gradInput: w.out.mutable, gradScale: dGamma.mutable, gradBias: dBeta.mutable)
        }
    }
}
