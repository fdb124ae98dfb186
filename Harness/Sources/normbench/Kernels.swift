import NormKernels

/// One timed repetition of a case: calls the library kernel once on the
/// workload's buffers. Everything that is not the kernel (construction,
/// allocation of inputs, running statistics) happens before, in the maker.
typealias Repetition = () throws -> Void

/// Builds the repetition for a workload and threading. Runs once per case,
/// outside the timed region.
typealias RepetitionMaker = (_ workload: Workload, _ threading: Threading) throws -> Repetition

/// The wiring between normbench's (op, direction) grid and the library.
///
/// **Backward.** Each backward maker runs the forward once, untimed, for the
/// saved statistics (the harness re-poisons `out` afterwards), and times the
/// backward call alone with every gradient PyTorch's autograd would produce for
/// the same inputs: dx, dγ and dβ (dv and dg for weight normalization; for
/// AdaIN the gradient of the content only, the style held constant). `out`
/// receives dx and is checked against `Reference.backward`; dγ/dβ are written
/// (and counted in `Traffic.bytes`) but not checked.
enum Kernels {
    static func maker(_ op: Op, _ direction: Direction) -> RepetitionMaker? {
        switch (op, direction) {
        case (.batchnorm, .forwardTraining): return batchNormTraining
        case (.batchnorm, .forwardInference): return batchNormInference
        case (.instancenorm, .forwardTraining): return instanceNormTraining
        case (.instancenorm, .forwardInference): return instanceNormInference
        case (.layernorm, .forwardTraining): return layerNorm
        case (.rmsnorm, .forwardTraining): return rmsNorm
        case (.groupnorm, .forwardTraining): return groupNorm
        case (.adain, .forwardTraining): return adaptiveInstanceNorm
        case (.weightnorm, .forwardTraining): return weightNorm
        case (_, .forwardInference): return nil  // no inference mode (see Op.supports)
        case (.batchnorm, .backward): return batchNormBackward
        case (.instancenorm, .backward): return instanceNormBackward
        case (.layernorm, .backward): return layerNormBackward
        case (.rmsnorm, .backward): return rmsNormBackward
        case (.groupnorm, .backward): return groupNormBackward
        case (.adain, .backward): return adaptiveInstanceNormBackward
        case (.weightnorm, .backward): return weightNormBackward
        }
    }

    // MARK: Forward makers

    static func batchNormTraining(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try BatchNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, threading: t)
        // With running statistics, as PyTorch's training-mode F.batch_norm is usually called.
        let running = try RunningStatistics(channels: w.key.shape.c)
        return {
            _ = try k.forwardTraining(input: w.x.readOnly, output: w.out.mutable,
                                      scale: w.gamma.readOnly, bias: w.beta.readOnly, running: running)
        }
    }

    static func batchNormInference(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try BatchNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, threading: t)
        let running = try RunningStatistics(channels: w.key.shape.c, mean: w.runningMean, variance: w.runningVariance)
        return {
            try k.forwardInference(input: w.x.readOnly, output: w.out.mutable,
                                   scale: w.gamma.readOnly, bias: w.beta.readOnly, running: running)
        }
    }

    static func instanceNormTraining(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try InstanceNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, threading: t)
        // No running statistics: PyTorch's F.instance_norm default.
        return {
            _ = try k.forwardTraining(input: w.x.readOnly, output: w.out.mutable,
                                      scale: w.gamma.readOnly, bias: w.beta.readOnly)
        }
    }

    static func instanceNormInference(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try InstanceNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, threading: t)
        let running = try RunningStatistics(channels: w.key.shape.c, mean: w.runningMean, variance: w.runningVariance)
        return {
            try k.forwardInference(input: w.x.readOnly, output: w.out.mutable,
                                   scale: w.gamma.readOnly, bias: w.beta.readOnly, running: running)
        }
    }

    static func layerNorm(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try LayerNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, threading: t)
        return {
            _ = try k.forward(input: w.x.readOnly, output: w.out.mutable, scale: w.gamma.readOnly, bias: w.beta.readOnly)
        }
    }

    static func rmsNorm(_ w: Workload, _ t: Threading) throws -> Repetition {
        let s = w.key.shape
        // ε = Float32 machine epsilon, PyTorch's eps=None (see Reference.rmsEpsilon).
        let k = try RMSNormalization(rows: s.n, features: s.c * s.spatial, threading: t)
        return { _ = try k.forward(input: w.x.readOnly, output: w.out.mutable, scale: w.gamma.readOnly) }
    }

    static func groupNorm(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try GroupNormalization(shape: w.tensorShape, groups: w.key.groups ?? 1,
                                       epsilon: Workload.epsilon, threading: t)
        return {
            _ = try k.forward(input: w.x.readOnly, output: w.out.mutable, scale: w.gamma.readOnly, bias: w.beta.readOnly)
        }
    }

    static func adaptiveInstanceNorm(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try AdaptiveInstanceNormalization(content: w.tensorShape, style: w.tensorShape,
                                                  epsilon: Workload.epsilon, threading: t)
        let style = w.style!
        return { _ = try k.forward(content: w.x.readOnly, style: style.readOnly, output: w.out.mutable) }
    }

    static func weightNorm(_ w: Workload, _ t: Threading) throws -> Repetition {
        let s = w.key.shape
        // v is a convolution weight [out = N, in = C, kH = H, kW = W], one norm per output row.
        let k = try WeightNormalization(shape: [s.n, s.c, s.h, s.w], dim: 0, threading: t)
        return { _ = try k.forward(v: w.x.readOnly, g: w.gamma.readOnly, output: w.out.mutable) }
    }

    // MARK: Backward makers

    static func batchNormBackward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try BatchNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, threading: t)
        let saved = try k.forwardTraining(input: w.x.readOnly, output: w.out.mutable,
                                          scale: w.gamma.readOnly, bias: w.beta.readOnly)
        let dy = w.dy!, dGamma = w.gradGamma!, dBeta = w.gradBeta!
        return {
            try k.backwardTraining(input: w.x.readOnly, gradOutput: dy.readOnly, saved: saved, scale: w.gamma.readOnly,
                                   gradInput: w.out.mutable, gradScale: dGamma.mutable, gradBias: dBeta.mutable)
        }
    }

    static func instanceNormBackward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try InstanceNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, threading: t)
        let saved = try k.forwardTraining(input: w.x.readOnly, output: w.out.mutable,
                                          scale: w.gamma.readOnly, bias: w.beta.readOnly)
        let dy = w.dy!, dGamma = w.gradGamma!, dBeta = w.gradBeta!
        return {
            try k.backwardTraining(input: w.x.readOnly, gradOutput: dy.readOnly, saved: saved, scale: w.gamma.readOnly,
                                   gradInput: w.out.mutable, gradScale: dGamma.mutable, gradBias: dBeta.mutable)
        }
    }

    static func layerNormBackward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try LayerNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, threading: t)
        let saved = try k.forward(input: w.x.readOnly, output: w.out.mutable, scale: w.gamma.readOnly, bias: w.beta.readOnly)
        let dy = w.dy!, dGamma = w.gradGamma!, dBeta = w.gradBeta!
        return {
            try k.backward(input: w.x.readOnly, gradOutput: dy.readOnly, saved: saved, scale: w.gamma.readOnly,
                           gradInput: w.out.mutable, gradScale: dGamma.mutable, gradBias: dBeta.mutable)
        }
    }

    static func rmsNormBackward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let s = w.key.shape
        let k = try RMSNormalization(rows: s.n, features: s.c * s.spatial, threading: t)
        let saved = try k.forward(input: w.x.readOnly, output: w.out.mutable, scale: w.gamma.readOnly)
        let dy = w.dy!, dGamma = w.gradGamma!
        return {
            try k.backward(input: w.x.readOnly, gradOutput: dy.readOnly, saved: saved, scale: w.gamma.readOnly,
                           gradInput: w.out.mutable, gradScale: dGamma.mutable)
        }
    }

    static func groupNormBackward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try GroupNormalization(shape: w.tensorShape, groups: w.key.groups ?? 1,
                                       epsilon: Workload.epsilon, threading: t)
        let saved = try k.forward(input: w.x.readOnly, output: w.out.mutable, scale: w.gamma.readOnly, bias: w.beta.readOnly)
        let dy = w.dy!, dGamma = w.gradGamma!, dBeta = w.gradBeta!
        return {
            try k.backward(input: w.x.readOnly, gradOutput: dy.readOnly, saved: saved, scale: w.gamma.readOnly,
                           gradInput: w.out.mutable, gradScale: dGamma.mutable, gradBias: dBeta.mutable)
        }
    }

    static func adaptiveInstanceNormBackward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try AdaptiveInstanceNormalization(content: w.tensorShape, style: w.tensorShape,
                                                  epsilon: Workload.epsilon, threading: t)
        let style = w.style!, dy = w.dy!
        let saved = try k.forward(content: w.x.readOnly, style: style.readOnly, output: w.out.mutable)
        return {
            try k.backward(content: w.x.readOnly, style: style.readOnly, gradOutput: dy.readOnly, saved: saved,
                           gradContent: w.out.mutable)
        }
    }

    static func weightNormBackward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let s = w.key.shape
        let k = try WeightNormalization(shape: [s.n, s.c, s.h, s.w], dim: 0, threading: t)
        let norms = try k.forward(v: w.x.readOnly, g: w.gamma.readOnly, output: w.out.mutable)
        let dy = w.dy!, dG = w.gradGamma!
        return {
            try k.backward(v: w.x.readOnly, g: w.gamma.readOnly, gradWeight: dy.readOnly, norms: norms,
                           gradV: w.out.mutable, gradG: dG.mutable)
        }
    }

    /// The kernel's partition plan for `normbench topology`, nil for backward.
    static func plan(_ key: CaseKey, threading t: Threading) throws -> PlanDescription? {
        let s = key.shape, shape = s.tensor(key.memoryLayout)
        switch key.op {
        case .batchnorm: return try BatchNormalization(shape: shape, threading: t).plan()
        case .instancenorm: return try InstanceNormalization(shape: shape, threading: t).plan()
        case .layernorm: return try LayerNormalization(shape: shape, threading: t).plan()
        case .rmsnorm: return try RMSNormalization(rows: s.n, features: s.c * s.spatial, threading: t).plan()
        case .groupnorm: return try GroupNormalization(shape: shape, groups: key.groups ?? 1, threading: t).plan()
        case .adain: return try AdaptiveInstanceNormalization(content: shape, style: shape, threading: t).plan()
        case .weightnorm: return try WeightNormalization(shape: [s.n, s.c, s.h, s.w], dim: 0, threading: t).plan()
        }
    }
}
