// BatchNorm on 16-bit tensors (issue 20), every layout (NCHW, NHWC, [N, D]),
// training (with the running-statistics update) and inference, fused ReLU and
// the fused residual add, forward and backward: x, y, dy, dx and the identity in
// `Float16` or `BFloat16`; γ, β, dγ, dβ, saved and running statistics and every
// accumulation as in Float32. Each entry point validates exactly as the Float32
// one (lengths in elements, overlaps in bytes, nothing written before the
// checks pass) and runs the same plan with the microkernels specialized for its
// element type (x, dy widened exactly on load; y, dx rounded once on store), so
//
//     y16 == E.narrow(y32),   dx16 == E.narrow(dx32),   dγ, dβ, statistics identical
//
// bit for bit, where y32, dx32, … come from the Float32 kernel on the widened
// tensors, for any thread count. Where the plan streams (large tensors), 16-bit
// outputs go out in 16-byte non-temporal stores (`E.stream8`).
// One generic public entry point per method serves both 16-bit types (and any
// `NormElement`): it resolves the type once and runs the kernels specialized
// for it (`trainingAnyElement`, …).

extension BatchNormalization {
    /// Training forward on a `Float16` or `BFloat16` tensor: statistics of the
    /// exactly widened values, as in the `Float` overload (the same saved
    /// statistics and running update bit for bit), and each output rounded once
    /// to `Element` from the Float32 result. γ, β and `running` stay `Float`.
    /// `output` may be `input`.
    ///
    /// One generic entry point for every ``NormElement``: it checks the type once
    /// and runs the kernels specialized for it (for `Float`, the `Float`
    /// overload's), so the call is as fast from another module as from this one.
    @discardableResult
    public func forwardTraining<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, output: UnsafeMutableBufferPointer<Element>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try trainingAnyElement(input: input, identity: nil, output: output, scale: scale, bias: bias, running: running)
    }

    /// `forwardTraining` on `Float16` or `BFloat16` tensors fused with a residual
    /// add, `y = relu(BN(x) + identity)`: the identity is widened exactly and
    /// added in Float32, and y rounded once. Same aliasing rules as the `Float` overload.
    @discardableResult
    public func forwardTraining<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, identity: UnsafeBufferPointer<Element>,
        output: UnsafeMutableBufferPointer<Element>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try trainingAnyElement(input: input, identity: identity, output: output, scale: scale, bias: bias,
                               running: running)
    }

    /// Inference forward on a `Float16` or `BFloat16` tensor with `running`'s
    /// statistics; each output rounded once from the `Float` overload's Float32 value.
    public func forwardInference<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, output: UnsafeMutableBufferPointer<Element>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try inferenceAnyElement(input: input, identity: nil, output: output, scale: scale, bias: bias, running: running)
    }

    /// `forwardInference` on `Float16` or `BFloat16` tensors fused with a residual add.
    public func forwardInference<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, identity: UnsafeBufferPointer<Element>,
        output: UnsafeMutableBufferPointer<Element>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try inferenceAnyElement(input: input, identity: identity, output: output, scale: scale, bias: bias,
                                running: running)
    }

    /// Gradients of the 16-bit training forward: dx in `Element` (rounded once
    /// from the Float32 result), dγ and dβ in `Float`, bit for bit those of the
    /// `Float` backward on the widened tensors. With `fusedReLU`, `output` (the
    /// 16-bit forward output) is the mask. Same checks and aliasing rules.
    public func backwardTraining<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, gradOutput: UnsafeBufferPointer<Element>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        output: UnsafeBufferPointer<Element>? = nil,
        gradInput: UnsafeMutableBufferPointer<Element>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardTrainingAnyElement(input: input, gradOutput: gradOutput, saved: saved, scale: scale, output: output,
                                       gradInput: gradInput, gradIdentity: nil, gradScale: gradScale, gradBias: gradBias)
    }

    /// Gradients of the fused 16-bit training forward, `gradIdentity` included
    /// (dy where y > 0: exact in `Element`).
    public func backwardTraining<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, gradOutput: UnsafeBufferPointer<Element>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        output: UnsafeBufferPointer<Element>? = nil,
        gradInput: UnsafeMutableBufferPointer<Element>? = nil,
        gradIdentity: UnsafeMutableBufferPointer<Element>?,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardTrainingAnyElement(input: input, gradOutput: gradOutput, saved: saved, scale: scale, output: output,
                                       gradInput: gradInput, gradIdentity: gradIdentity, gradScale: gradScale,
                                       gradBias: gradBias)
    }

    /// Gradients of the 16-bit inference forward (running statistics constant).
    public func backwardInference<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, gradOutput: UnsafeBufferPointer<Element>,
        running: RunningStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        output: UnsafeBufferPointer<Element>? = nil,
        gradInput: UnsafeMutableBufferPointer<Element>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardInferenceAnyElement(input: input, gradOutput: gradOutput, running: running, scale: scale,
                                        output: output, gradInput: gradInput, gradIdentity: nil,
                                        gradScale: gradScale, gradBias: gradBias)
    }

    /// Gradients of the fused 16-bit inference forward, `gradIdentity` included.
    public func backwardInference<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, gradOutput: UnsafeBufferPointer<Element>,
        running: RunningStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        output: UnsafeBufferPointer<Element>? = nil,
        gradInput: UnsafeMutableBufferPointer<Element>? = nil,
        gradIdentity: UnsafeMutableBufferPointer<Element>?,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardInferenceAnyElement(input: input, gradOutput: gradOutput, running: running, scale: scale,
                                        output: output, gradInput: gradInput, gradIdentity: gradIdentity,
                                        gradScale: gradScale, gradBias: gradBias)
    }
}

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
        let x = try Check.base(input, "input"), dy = try Check.base(gradOutput, "gradOutput")
        if let g = sumsPassIdentity(gradIdentity, dy: dy, mask: mask),
           gradInput != nil || gradScale != nil || gradBias != nil {
            // d identity written by the sums pass (`channelPasses`).
            trainingGradients(x: x, dy: dy, mask: mask, saved: saved, scale: scale, dx: gradInput?.baseAddress,
                              gradScale: gradScale, gradBias: gradBias, gradIdentity: g)
            return
        }
        let (source, rest) = try writeGradIdentity(gradOutput, mask: mask, gradIdentity)
        trainingGradients(x: x, dy: source, mask: rest, saved: saved, scale: scale, dx: gradInput?.baseAddress,
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
        let x = try Check.base(input, "input"), dy = try Check.base(gradOutput, "gradOutput")
        if let g = sumsPassIdentity(gradIdentity, dy: dy, mask: mask), gradScale != nil || gradBias != nil {
            // d identity written by the sums pass (`channelPasses`).
            inferenceGradients(x: x, dy: dy, mask: mask, runningMean: runningMean, runningVariance: runningVariance,
                               scale: scale, dx: gradInput?.baseAddress, gradScale: gradScale, gradBias: gradBias,
                               gradIdentity: g)
            return
        }
        let (source, rest) = try writeGradIdentity(gradOutput, mask: mask, gradIdentity)
        inferenceGradients(x: x, dy: source, mask: rest, runningMean: runningMean, runningVariance: runningVariance,
                           scale: scale, dx: gradInput?.baseAddress, gradScale: gradScale, gradBias: gradBias)
    }

    // The dispatch of the generic entry points (see `LayerNormalization.forwardAnyElement`):
    // `Float`, `BFloat16` and `Float16` each run the engine specialized for them
    // (the `Float` forwards are `training`/`inference` on `Float`; the `Float`
    // backwards are its overloads), any other type the generic engine unspecialized.

    func trainingAnyElement<E: NormElement>(
        input: UnsafeBufferPointer<E>, identity: UnsafeBufferPointer<E>?, output: UnsafeMutableBufferPointer<E>,
        scale: UnsafeBufferPointer<Float>?, bias: UnsafeBufferPointer<Float>?, running: RunningStatistics?
    ) throws -> SavedStatistics {
        if E.self == Float.self {
            let x: UnsafeBufferPointer<Float> = retyped(input), y: UnsafeMutableBufferPointer<Float> = retyped(output)
            return try training(input: x, identity: identity.map { retyped($0) }, output: y, scale: scale, bias: bias,
                                running: running)
        }
        if E.self == BFloat16.self {
            let x: UnsafeBufferPointer<BFloat16> = retyped(input), y: UnsafeMutableBufferPointer<BFloat16> = retyped(output)
            return try training(input: x, identity: identity.map { retyped($0) }, output: y, scale: scale, bias: bias,
                                running: running)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            let x: UnsafeBufferPointer<Float16> = retyped(input), y: UnsafeMutableBufferPointer<Float16> = retyped(output)
            return try training(input: x, identity: identity.map { retyped($0) }, output: y, scale: scale, bias: bias,
                                running: running)
        }
        #endif
        return try training(input: input, identity: identity, output: output, scale: scale, bias: bias, running: running)
    }

    func inferenceAnyElement<E: NormElement>(
        input: UnsafeBufferPointer<E>, identity: UnsafeBufferPointer<E>?, output: UnsafeMutableBufferPointer<E>,
        scale: UnsafeBufferPointer<Float>?, bias: UnsafeBufferPointer<Float>?, running: RunningStatistics
    ) throws {
        if E.self == Float.self {
            let x: UnsafeBufferPointer<Float> = retyped(input), y: UnsafeMutableBufferPointer<Float> = retyped(output)
            return try inference(input: x, identity: identity.map { retyped($0) }, output: y, scale: scale, bias: bias,
                                 running: running)
        }
        if E.self == BFloat16.self {
            let x: UnsafeBufferPointer<BFloat16> = retyped(input), y: UnsafeMutableBufferPointer<BFloat16> = retyped(output)
            return try inference(input: x, identity: identity.map { retyped($0) }, output: y, scale: scale, bias: bias,
                                 running: running)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            let x: UnsafeBufferPointer<Float16> = retyped(input), y: UnsafeMutableBufferPointer<Float16> = retyped(output)
            return try inference(input: x, identity: identity.map { retyped($0) }, output: y, scale: scale, bias: bias,
                                 running: running)
        }
        #endif
        try inference(input: input, identity: identity, output: output, scale: scale, bias: bias, running: running)
    }

    func backwardTrainingAnyElement<E: NormElement>(
        input: UnsafeBufferPointer<E>, gradOutput: UnsafeBufferPointer<E>, saved: SavedStatistics,
        scale: UnsafeBufferPointer<Float>?, output: UnsafeBufferPointer<E>?,
        gradInput: UnsafeMutableBufferPointer<E>?, gradIdentity: UnsafeMutableBufferPointer<E>?,
        gradScale: UnsafeMutableBufferPointer<Float>?, gradBias: UnsafeMutableBufferPointer<Float>?
    ) throws {
        if E.self == Float.self {
            let x: UnsafeBufferPointer<Float> = retyped(input), dy: UnsafeBufferPointer<Float> = retyped(gradOutput)
            let y = output.map { retyped($0) as UnsafeBufferPointer<Float> }
            let dx = gradInput.map { retyped($0) as UnsafeMutableBufferPointer<Float> }
            guard let gradIdentity else {
                return try backwardTraining(input: x, gradOutput: dy, saved: saved, scale: scale, output: y,
                                            gradInput: dx, gradScale: gradScale, gradBias: gradBias)
            }
            return try backwardTraining(input: x, gradOutput: dy, saved: saved, scale: scale, output: y, gradInput: dx,
                                        gradIdentity: retyped(gradIdentity) as UnsafeMutableBufferPointer<Float>,
                                        gradScale: gradScale, gradBias: gradBias)
        }
        if E.self == BFloat16.self {
            let x: UnsafeBufferPointer<BFloat16> = retyped(input), dy: UnsafeBufferPointer<BFloat16> = retyped(gradOutput)
            return try backwardTrainingElements(
                input: x, gradOutput: dy, saved: saved, scale: scale, output: output.map { retyped($0) },
                gradInput: gradInput.map { retyped($0) }, gradIdentity: gradIdentity.map { retyped($0) },
                gradScale: gradScale, gradBias: gradBias)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            let x: UnsafeBufferPointer<Float16> = retyped(input), dy: UnsafeBufferPointer<Float16> = retyped(gradOutput)
            return try backwardTrainingElements(
                input: x, gradOutput: dy, saved: saved, scale: scale, output: output.map { retyped($0) },
                gradInput: gradInput.map { retyped($0) }, gradIdentity: gradIdentity.map { retyped($0) },
                gradScale: gradScale, gradBias: gradBias)
        }
        #endif
        try backwardTrainingElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale, output: output,
                                     gradInput: gradInput, gradIdentity: gradIdentity, gradScale: gradScale,
                                     gradBias: gradBias)
    }

    func backwardInferenceAnyElement<E: NormElement>(
        input: UnsafeBufferPointer<E>, gradOutput: UnsafeBufferPointer<E>, running: RunningStatistics,
        scale: UnsafeBufferPointer<Float>?, output: UnsafeBufferPointer<E>?,
        gradInput: UnsafeMutableBufferPointer<E>?, gradIdentity: UnsafeMutableBufferPointer<E>?,
        gradScale: UnsafeMutableBufferPointer<Float>?, gradBias: UnsafeMutableBufferPointer<Float>?
    ) throws {
        if E.self == Float.self {
            let x: UnsafeBufferPointer<Float> = retyped(input), dy: UnsafeBufferPointer<Float> = retyped(gradOutput)
            let y = output.map { retyped($0) as UnsafeBufferPointer<Float> }
            let dx = gradInput.map { retyped($0) as UnsafeMutableBufferPointer<Float> }
            guard let gradIdentity else {
                return try backwardInference(input: x, gradOutput: dy, running: running, scale: scale, output: y,
                                             gradInput: dx, gradScale: gradScale, gradBias: gradBias)
            }
            return try backwardInference(input: x, gradOutput: dy, running: running, scale: scale, output: y,
                                         gradInput: dx,
                                         gradIdentity: retyped(gradIdentity) as UnsafeMutableBufferPointer<Float>,
                                         gradScale: gradScale, gradBias: gradBias)
        }
        if E.self == BFloat16.self {
            let x: UnsafeBufferPointer<BFloat16> = retyped(input), dy: UnsafeBufferPointer<BFloat16> = retyped(gradOutput)
            return try backwardInferenceElements(
                input: x, gradOutput: dy, running: running, scale: scale, output: output.map { retyped($0) },
                gradInput: gradInput.map { retyped($0) }, gradIdentity: gradIdentity.map { retyped($0) },
                gradScale: gradScale, gradBias: gradBias)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            let x: UnsafeBufferPointer<Float16> = retyped(input), dy: UnsafeBufferPointer<Float16> = retyped(gradOutput)
            return try backwardInferenceElements(
                input: x, gradOutput: dy, running: running, scale: scale, output: output.map { retyped($0) },
                gradInput: gradInput.map { retyped($0) }, gradIdentity: gradIdentity.map { retyped($0) },
                gradScale: gradScale, gradBias: gradBias)
        }
        #endif
        try backwardInferenceElements(input: input, gradOutput: gradOutput, running: running, scale: scale,
                                      output: output, gradInput: gradInput, gradIdentity: gradIdentity,
                                      gradScale: gradScale, gradBias: gradBias)
    }
}
