// BatchNorm on 16-bit tensors (issue 20), every layout (NCHW, NHWC, [N, D]),
// training (with the running-statistics update) and inference, fused ReLU and
// the fused residual add, forward and backward: x, y, dy, dx and the identity in
// `Float16` or `BFloat16`; γ, β, dγ, dβ, saved and running statistics and every
// accumulation as in Float32. Each overload validates exactly as the Float32
// one (lengths in elements, overlaps in bytes, nothing written before the
// checks pass) and runs the same plan with the microkernels specialized for its
// element type (x, dy widened exactly on load; y, dx rounded once on store), so
//
//     y16 == E.narrow(y32),   dx16 == E.narrow(dx32),   dγ, dβ, statistics identical
//
// bit for bit, where y32, dx32, … come from the Float32 kernel on the widened
// tensors, for any thread count. 16-bit outputs are written through the cache.

extension BatchNormalization {
    /// Training forward on a `BFloat16` tensor: statistics of the exactly widened
    /// values, as in the `Float` overload (the same saved statistics and running
    /// update bit for bit), and each output rounded once to `BFloat16` from the Float32
    /// result. γ, β and `running` stay `Float`. `output` may be `input`.
    @discardableResult
    public func forwardTraining(
        input: UnsafeBufferPointer<BFloat16>, output: UnsafeMutableBufferPointer<BFloat16>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try training(input: input, identity: nil, output: output, scale: scale, bias: bias, running: running)
    }

    /// `forwardTraining` on `BFloat16` tensors fused with a residual add,
    /// `y = relu(BN(x) + identity)`: the identity is widened exactly and added in
    /// Float32, and y rounded once. Same aliasing rules as the `Float` overload.
    @discardableResult
    public func forwardTraining(
        input: UnsafeBufferPointer<BFloat16>, identity: UnsafeBufferPointer<BFloat16>,
        output: UnsafeMutableBufferPointer<BFloat16>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try training(input: input, identity: identity, output: output, scale: scale, bias: bias, running: running)
    }

    /// Inference forward on a `BFloat16` tensor with `running`'s statistics; each
    /// output rounded once from the `Float` overload's Float32 value.
    public func forwardInference(
        input: UnsafeBufferPointer<BFloat16>, output: UnsafeMutableBufferPointer<BFloat16>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try inference(input: input, identity: nil, output: output, scale: scale, bias: bias, running: running)
    }

    /// `forwardInference` on `BFloat16` tensors fused with a residual add.
    public func forwardInference(
        input: UnsafeBufferPointer<BFloat16>, identity: UnsafeBufferPointer<BFloat16>,
        output: UnsafeMutableBufferPointer<BFloat16>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try inference(input: input, identity: identity, output: output, scale: scale, bias: bias, running: running)
    }

    /// Gradients of the `BFloat16` training forward: dx in `BFloat16` (rounded once from
    /// the Float32 result), dγ and dβ in `Float`, bit for bit those of the `Float`
    /// backward on the widened tensors. With `fusedReLU`, `output` (the `BFloat16`
    /// forward output) is the mask. Same checks and aliasing rules.
    public func backwardTraining(
        input: UnsafeBufferPointer<BFloat16>, gradOutput: UnsafeBufferPointer<BFloat16>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        output: UnsafeBufferPointer<BFloat16>? = nil,
        gradInput: UnsafeMutableBufferPointer<BFloat16>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardTrainingElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale, output: output,
                                     gradInput: gradInput, gradIdentity: nil, gradScale: gradScale, gradBias: gradBias)
    }

    /// Gradients of the fused `BFloat16` training forward, `gradIdentity` included
    /// (dy where y > 0: exact in `BFloat16`).
    public func backwardTraining(
        input: UnsafeBufferPointer<BFloat16>, gradOutput: UnsafeBufferPointer<BFloat16>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        output: UnsafeBufferPointer<BFloat16>? = nil,
        gradInput: UnsafeMutableBufferPointer<BFloat16>? = nil,
        gradIdentity: UnsafeMutableBufferPointer<BFloat16>?,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardTrainingElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale, output: output,
                                     gradInput: gradInput, gradIdentity: gradIdentity, gradScale: gradScale,
                                     gradBias: gradBias)
    }

    /// Gradients of the `BFloat16` inference forward (running statistics constant).
    public func backwardInference(
        input: UnsafeBufferPointer<BFloat16>, gradOutput: UnsafeBufferPointer<BFloat16>,
        running: RunningStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        output: UnsafeBufferPointer<BFloat16>? = nil,
        gradInput: UnsafeMutableBufferPointer<BFloat16>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardInferenceElements(input: input, gradOutput: gradOutput, running: running, scale: scale,
                                      output: output, gradInput: gradInput, gradIdentity: nil,
                                      gradScale: gradScale, gradBias: gradBias)
    }

    /// Gradients of the fused `BFloat16` inference forward, `gradIdentity` included.
    public func backwardInference(
        input: UnsafeBufferPointer<BFloat16>, gradOutput: UnsafeBufferPointer<BFloat16>,
        running: RunningStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        output: UnsafeBufferPointer<BFloat16>? = nil,
        gradInput: UnsafeMutableBufferPointer<BFloat16>? = nil,
        gradIdentity: UnsafeMutableBufferPointer<BFloat16>?,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardInferenceElements(input: input, gradOutput: gradOutput, running: running, scale: scale,
                                      output: output, gradInput: gradInput, gradIdentity: gradIdentity,
                                      gradScale: gradScale, gradBias: gradBias)
    }
}

// Swift has no Float16 on x86-64 macOS (see Float16+NormElement.swift).
#if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))

extension BatchNormalization {
    /// Training forward on a `Float16` tensor: statistics of the exactly widened
    /// values, as in the `Float` overload (the same saved statistics and running
    /// update bit for bit), and each output rounded once to `Float16` from the Float32
    /// result. γ, β and `running` stay `Float`. `output` may be `input`.
    @discardableResult
    public func forwardTraining(
        input: UnsafeBufferPointer<Float16>, output: UnsafeMutableBufferPointer<Float16>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try training(input: input, identity: nil, output: output, scale: scale, bias: bias, running: running)
    }

    /// `forwardTraining` on `Float16` tensors fused with a residual add,
    /// `y = relu(BN(x) + identity)`: the identity is widened exactly and added in
    /// Float32, and y rounded once. Same aliasing rules as the `Float` overload.
    @discardableResult
    public func forwardTraining(
        input: UnsafeBufferPointer<Float16>, identity: UnsafeBufferPointer<Float16>,
        output: UnsafeMutableBufferPointer<Float16>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try training(input: input, identity: identity, output: output, scale: scale, bias: bias, running: running)
    }

    /// Inference forward on a `Float16` tensor with `running`'s statistics; each
    /// output rounded once from the `Float` overload's Float32 value.
    public func forwardInference(
        input: UnsafeBufferPointer<Float16>, output: UnsafeMutableBufferPointer<Float16>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try inference(input: input, identity: nil, output: output, scale: scale, bias: bias, running: running)
    }

    /// `forwardInference` on `Float16` tensors fused with a residual add.
    public func forwardInference(
        input: UnsafeBufferPointer<Float16>, identity: UnsafeBufferPointer<Float16>,
        output: UnsafeMutableBufferPointer<Float16>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try inference(input: input, identity: identity, output: output, scale: scale, bias: bias, running: running)
    }

    /// Gradients of the `Float16` training forward: dx in `Float16` (rounded once from
    /// the Float32 result), dγ and dβ in `Float`, bit for bit those of the `Float`
    /// backward on the widened tensors. With `fusedReLU`, `output` (the `Float16`
    /// forward output) is the mask. Same checks and aliasing rules.
    public func backwardTraining(
        input: UnsafeBufferPointer<Float16>, gradOutput: UnsafeBufferPointer<Float16>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        output: UnsafeBufferPointer<Float16>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float16>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardTrainingElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale, output: output,
                                     gradInput: gradInput, gradIdentity: nil, gradScale: gradScale, gradBias: gradBias)
    }

    /// Gradients of the fused `Float16` training forward, `gradIdentity` included
    /// (dy where y > 0: exact in `Float16`).
    public func backwardTraining(
        input: UnsafeBufferPointer<Float16>, gradOutput: UnsafeBufferPointer<Float16>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        output: UnsafeBufferPointer<Float16>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float16>? = nil,
        gradIdentity: UnsafeMutableBufferPointer<Float16>?,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardTrainingElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale, output: output,
                                     gradInput: gradInput, gradIdentity: gradIdentity, gradScale: gradScale,
                                     gradBias: gradBias)
    }

    /// Gradients of the `Float16` inference forward (running statistics constant).
    public func backwardInference(
        input: UnsafeBufferPointer<Float16>, gradOutput: UnsafeBufferPointer<Float16>,
        running: RunningStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        output: UnsafeBufferPointer<Float16>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float16>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardInferenceElements(input: input, gradOutput: gradOutput, running: running, scale: scale,
                                      output: output, gradInput: gradInput, gradIdentity: nil,
                                      gradScale: gradScale, gradBias: gradBias)
    }

    /// Gradients of the fused `Float16` inference forward, `gradIdentity` included.
    public func backwardInference(
        input: UnsafeBufferPointer<Float16>, gradOutput: UnsafeBufferPointer<Float16>,
        running: RunningStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        output: UnsafeBufferPointer<Float16>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float16>? = nil,
        gradIdentity: UnsafeMutableBufferPointer<Float16>?,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardInferenceElements(input: input, gradOutput: gradOutput, running: running, scale: scale,
                                      output: output, gradInput: gradInput, gradIdentity: gradIdentity,
                                      gradScale: gradScale, gradBias: gradBias)
    }
}

#endif

// MARK: - Any element type

extension BatchNormalization {
    /// The backward of every element type: the checks of `backwardTraining`
    /// (with `gradIdentity` when given), then d identity, then the BatchNorm passes.
    func backwardTrainingElements<E: NormElement>(
        input: UnsafeBufferPointer<E>, gradOutput: UnsafeBufferPointer<E>, saved: SavedStatistics,
        scale: UnsafeBufferPointer<Float>?, output: UnsafeBufferPointer<E>?,
        gradInput: UnsafeMutableBufferPointer<E>?, gradIdentity: UnsafeMutableBufferPointer<E>?,
        gradScale: UnsafeMutableBufferPointer<Float>?, gradBias: UnsafeMutableBufferPointer<Float>?
    ) throws {
        try Check.saved(saved.mean, shape.c, "saved.mean")
        try Check.saved(saved.invStd, shape.c, "saved.invStd")
        let mask = try validateBackward(input, gradOutput, scale, output, gradInput, gradScale, gradBias,
                                        gradIdentity: gradIdentity)
        let x = try Check.base(input, "input")
        let (dy, rest) = try writeGradIdentity(gradOutput, mask: mask, gradIdentity)
        trainingGradients(x: x, dy: dy, mask: rest, saved: saved, scale: scale, dx: gradInput?.baseAddress,
                          gradScale: gradScale, gradBias: gradBias)
    }

    /// The inference backward of every element type, as `backwardTrainingElements`.
    func backwardInferenceElements<E: NormElement>(
        input: UnsafeBufferPointer<E>, gradOutput: UnsafeBufferPointer<E>, running: RunningStatistics,
        scale: UnsafeBufferPointer<Float>?, output: UnsafeBufferPointer<E>?,
        gradInput: UnsafeMutableBufferPointer<E>?, gradIdentity: UnsafeMutableBufferPointer<E>?,
        gradScale: UnsafeMutableBufferPointer<Float>?, gradBias: UnsafeMutableBufferPointer<Float>?
    ) throws {
        let (runningMean, runningVariance) = try running.snapshot(expectedChannels: shape.c)
        let mask = try validateBackward(input, gradOutput, scale, output, gradInput, gradScale, gradBias,
                                        gradIdentity: gradIdentity)
        let x = try Check.base(input, "input")
        let (dy, rest) = try writeGradIdentity(gradOutput, mask: mask, gradIdentity)
        inferenceGradients(x: x, dy: dy, mask: rest, runningMean: runningMean, runningVariance: runningVariance,
                           scale: scale, dx: gradInput?.baseAddress, gradScale: gradScale, gradBias: gradBias)
    }

    /// The training forward for a tensor of any `NormElement`, from a generic
    /// caller (the array convenience): `Float`, `Float16` and `BFloat16` go to
    /// their specialized overloads, any other type runs the generic code unspecialized.
    func forwardTrainingAnyElement<E: NormElement>(
        input: UnsafeBufferPointer<E>, output: UnsafeMutableBufferPointer<E>,
        scale: UnsafeBufferPointer<Float>?, bias: UnsafeBufferPointer<Float>?, running: RunningStatistics?
    ) throws -> SavedStatistics {
        if E.self == Float.self {
            let x: UnsafeBufferPointer<Float> = retyped(input), y: UnsafeMutableBufferPointer<Float> = retyped(output)
            return try forwardTraining(input: x, output: y, scale: scale, bias: bias, running: running)
        }
        if E.self == BFloat16.self {
            let x: UnsafeBufferPointer<BFloat16> = retyped(input), y: UnsafeMutableBufferPointer<BFloat16> = retyped(output)
            return try forwardTraining(input: x, output: y, scale: scale, bias: bias, running: running)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            let x: UnsafeBufferPointer<Float16> = retyped(input), y: UnsafeMutableBufferPointer<Float16> = retyped(output)
            return try forwardTraining(input: x, output: y, scale: scale, bias: bias, running: running)
        }
        #endif
        return try training(input: input, identity: nil, output: output, scale: scale, bias: bias, running: running)
    }

    /// The inference forward for a tensor of any `NormElement`, as `forwardTrainingAnyElement`.
    func forwardInferenceAnyElement<E: NormElement>(
        input: UnsafeBufferPointer<E>, output: UnsafeMutableBufferPointer<E>,
        scale: UnsafeBufferPointer<Float>?, bias: UnsafeBufferPointer<Float>?, running: RunningStatistics
    ) throws {
        if E.self == Float.self {
            let x: UnsafeBufferPointer<Float> = retyped(input), y: UnsafeMutableBufferPointer<Float> = retyped(output)
            return try forwardInference(input: x, output: y, scale: scale, bias: bias, running: running)
        }
        if E.self == BFloat16.self {
            let x: UnsafeBufferPointer<BFloat16> = retyped(input), y: UnsafeMutableBufferPointer<BFloat16> = retyped(output)
            return try forwardInference(input: x, output: y, scale: scale, bias: bias, running: running)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            let x: UnsafeBufferPointer<Float16> = retyped(input), y: UnsafeMutableBufferPointer<Float16> = retyped(output)
            return try forwardInference(input: x, output: y, scale: scale, bias: bias, running: running)
        }
        #endif
        try inference(input: input, identity: nil, output: output, scale: scale, bias: bias, running: running)
    }
}
