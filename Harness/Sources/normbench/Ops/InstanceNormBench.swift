import NormKernels

/// InstanceNorm: one statistic per (n, c) plane of H·W values, γ and β per
/// channel. No running statistics in training (PyTorch's `F.instance_norm`
/// default); inference uses per-channel running statistics.
struct InstanceNormBench: BenchOp {
    let name = "instancenorm"
    let hasLayout = true

    func operands(_ s: Shape) -> Operands { Operands(gamma: s.c, beta: s.c) }

    func cannotRun(_ key: CaseKey) -> String? {
        // Training statistics need more than one value per statistic.
        key.direction != .forwardInference && key.shape.spatial < 2 ? "instancenorm training with H·W = 1" : nil
    }

    func pass(_ direction: Direction) -> Pass? {
        switch direction {
        case .forwardTraining:
            // + γ, β (2C)
            return Pass(traffic: { .forward($0, parameters: 2 * $0.c) }, reference: Reference.standardized,
                        make: Self.training)
        case .forwardInference:
            return Pass(traffic: Traffic.inference, reference: Reference.inference, make: Self.inference)
        case .backward:
            // + γ read, dγ and dβ written (3C)
            return Pass(traffic: { .backward($0, parameters: 3 * $0.c) }, reference: Reference.standardizedBackward,
                        make: Self.backward)
        }
    }

    func unitCount(_ key: CaseKey) -> Int { key.shape.n * key.shape.c }

    func unit(_ key: CaseKey, _ u: Int) -> Unit {
        let c = key.shape.c
        return .planes(key, n: u / c, channels: (u % c)..<(u % c + 1))
    }

    func plan(_ key: CaseKey, threading: Threading) throws -> PlanDescription {
        try InstanceNormalization(shape: key.shape.tensor(key.memoryLayout), threading: threading).plan()
    }

    static func training(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try InstanceNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, threading: t)
        return {
            _ = try k.forwardTraining(input: w.x.readOnly, output: w.out.mutable,
                                      scale: w.gamma.readOnly, bias: w.beta.readOnly)
        }
    }

    static func inference(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try InstanceNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, threading: t)
        let running = try RunningStatistics(channels: w.key.shape.c, mean: w.runningMean, variance: w.runningVariance)
        return {
            try k.forwardInference(input: w.x.readOnly, output: w.out.mutable,
                                   scale: w.gamma.readOnly, bias: w.beta.readOnly, running: running)
        }
    }

    /// dx, dγ and dβ (`backwardTraining`) from the saved statistics of one untimed forward.
    static func backward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try InstanceNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, threading: t)
        let saved = try k.forwardTraining(input: w.x.readOnly, output: w.out.mutable,
                                          scale: w.gamma.readOnly, bias: w.beta.readOnly)
        let dy = w.dy!, dGamma = w.gradGamma!, dBeta = w.gradBeta!
        return {
            try k.backwardTraining(input: w.x.readOnly, gradOutput: dy.readOnly, saved: saved, scale: w.gamma.readOnly,
                                   gradInput: w.out.mutable, gradScale: dGamma.mutable, gradBias: dBeta.mutable)
        }
    }
}
