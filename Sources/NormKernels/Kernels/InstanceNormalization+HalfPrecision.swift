// InstanceNorm and AdaIN on 16-bit tensors (issue 20), every path (InstanceNorm:
// tiny units, tiny channels, the channel-groups engine; inference and its
// backward through BatchNorm's), forward and backward: x, y, dy, dx (AdaIN: the
// content, the style and their gradients) in `Float16` or `BFloat16`; γ, β, dγ,
// dβ, saved and running statistics and every accumulation as in Float32. Same
// validation as the Float32 overloads, one generic entry point per method for
// both 16-bit types (resolved once per call, `…AnyElement`); the kernels
// specialized for the element type, so y16 == E.narrow(y32) and
// dx16 == E.narrow(dx32) bit for bit (y32, dx32 from the Float32 kernel on the
// widened tensors), for any thread count. Where the plan streams (large
// tensors), 16-bit outputs go out in 16-byte non-temporal stores (`E.stream8`).

extension InstanceNormalization {
    /// Normalizes each instance of a `Float16` or `BFloat16` tensor with its own
    /// statistics; updates `running` if given. Values are widened exactly,
    /// statistics and outputs computed as in the `Float` overload, each output
    /// rounded once to `Element`. γ, β and `running` stay `Float`. `output` may be `input`.
    ///
    /// One generic entry point for every ``NormElement``: it checks the type once
    /// and runs the kernels specialized for it (for `Float`, the `Float`
    /// overload), so the call is as fast from another module as from this one.
    @discardableResult
    public func forwardTraining<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, output: UnsafeMutableBufferPointer<Element>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try forwardTrainingAnyElement(input: input, output: output, scale: scale, bias: bias, running: running)
    }

    /// Normalizes a `Float16` or `BFloat16` tensor with `running`'s statistics;
    /// each output rounded once from the `Float` overload's Float32 value.
    public func forwardInference<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, output: UnsafeMutableBufferPointer<Element>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try forwardInferenceAnyElement(input: input, output: output, scale: scale, bias: bias, running: running)
    }

    /// Gradients of the 16-bit training forward: dx in `Element` (rounded once
    /// from the Float32 result), dγ and dβ in `Float`, bit for bit those of the
    /// `Float` backward on the widened tensors. Same checks and aliasing rules.
    public func backwardTraining<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, gradOutput: UnsafeBufferPointer<Element>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Element>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardTrainingAnyElement(input: input, gradOutput: gradOutput, saved: saved, scale: scale,
                                       gradInput: gradInput, gradScale: gradScale, gradBias: gradBias)
    }

    /// Gradients of the 16-bit inference forward (BatchNorm's inference backward).
    public func backwardInference<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, gradOutput: UnsafeBufferPointer<Element>,
        running: RunningStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Element>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try BatchNormalization(shape: shape, epsilon: epsilon, threading: threading)
            .backwardInferenceAnyElement(input: input, gradOutput: gradOutput, running: running, scale: scale,
                                         output: nil, gradInput: gradInput, gradIdentity: nil,
                                         gradScale: gradScale, gradBias: gradBias)
    }
}

extension AdaptiveInstanceNormalization {
    /// AdaIN on `Float16` or `BFloat16` content and style tensors: statistics of
    /// the exactly widened values as in the `Float` overload (the same saved
    /// statistics bit for bit), each output rounded once to `Element`. `output`
    /// may be `content`. Specialized per type as
    /// `InstanceNormalization.forwardTraining(input:output:scale:bias:running:)`.
    @discardableResult
    public func forward<Element: NormElement>(
        content input: UnsafeBufferPointer<Element>, style styleInput: UnsafeBufferPointer<Element>,
        output: UnsafeMutableBufferPointer<Element>
    ) throws -> Saved {
        try forwardAnyElement(content: input, style: styleInput, output: output)
    }

    /// Gradients of the 16-bit forward: d content and d style in `Element`, each
    /// rounded once from the `Float` overload's Float32 result on the widened
    /// tensors. Same checks and aliasing rules.
    public func backward<Element: NormElement>(
        content input: UnsafeBufferPointer<Element>, style styleInput: UnsafeBufferPointer<Element>,
        gradOutput: UnsafeBufferPointer<Element>, saved: Saved,
        gradContent: UnsafeMutableBufferPointer<Element>? = nil,
        gradStyle: UnsafeMutableBufferPointer<Element>? = nil
    ) throws {
        try backwardAnyElement(content: input, style: styleInput, gradOutput: gradOutput, saved: saved,
                               gradContent: gradContent, gradStyle: gradStyle)
    }
}

// MARK: - Any element type (the generic entry points and the array conveniences;
// see `LayerNormalization.forwardAnyElement`)

extension InstanceNormalization {
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
            return try forwardTrainingElements(input: x, output: y, scale: scale, bias: bias, running: running)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            let x: UnsafeBufferPointer<Float16> = retyped(input), y: UnsafeMutableBufferPointer<Float16> = retyped(output)
            return try forwardTrainingElements(input: x, output: y, scale: scale, bias: bias, running: running)
        }
        #endif
        return try forwardTrainingElements(input: input, output: output, scale: scale, bias: bias, running: running)
    }

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
            return try forwardInferenceElements(input: x, output: y, scale: scale, bias: bias, running: running)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            let x: UnsafeBufferPointer<Float16> = retyped(input), y: UnsafeMutableBufferPointer<Float16> = retyped(output)
            return try forwardInferenceElements(input: x, output: y, scale: scale, bias: bias, running: running)
        }
        #endif
        try forwardInferenceElements(input: input, output: output, scale: scale, bias: bias, running: running)
    }

    func backwardTrainingAnyElement<E: NormElement>(
        input: UnsafeBufferPointer<E>, gradOutput: UnsafeBufferPointer<E>, saved: SavedStatistics,
        scale: UnsafeBufferPointer<Float>?, gradInput: UnsafeMutableBufferPointer<E>?,
        gradScale: UnsafeMutableBufferPointer<Float>?, gradBias: UnsafeMutableBufferPointer<Float>?
    ) throws {
        if E.self == Float.self {
            let x: UnsafeBufferPointer<Float> = retyped(input), dy: UnsafeBufferPointer<Float> = retyped(gradOutput)
            return try backwardTraining(input: x, gradOutput: dy, saved: saved, scale: scale,
                                        gradInput: gradInput.map { retyped($0) as UnsafeMutableBufferPointer<Float> },
                                        gradScale: gradScale, gradBias: gradBias)
        }
        if E.self == BFloat16.self {
            let x: UnsafeBufferPointer<BFloat16> = retyped(input), dy: UnsafeBufferPointer<BFloat16> = retyped(gradOutput)
            return try backwardTrainingElements(input: x, gradOutput: dy, saved: saved, scale: scale,
                                                gradInput: gradInput.map { retyped($0) }, gradScale: gradScale,
                                                gradBias: gradBias)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            let x: UnsafeBufferPointer<Float16> = retyped(input), dy: UnsafeBufferPointer<Float16> = retyped(gradOutput)
            return try backwardTrainingElements(input: x, gradOutput: dy, saved: saved, scale: scale,
                                                gradInput: gradInput.map { retyped($0) }, gradScale: gradScale,
                                                gradBias: gradBias)
        }
        #endif
        try backwardTrainingElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale,
                                     gradInput: gradInput, gradScale: gradScale, gradBias: gradBias)
    }
}

extension AdaptiveInstanceNormalization {
    func forwardAnyElement<E: NormElement>(
        content: UnsafeBufferPointer<E>, style: UnsafeBufferPointer<E>, output: UnsafeMutableBufferPointer<E>
    ) throws -> Saved {
        if E.self == Float.self {
            let x: UnsafeBufferPointer<Float> = retyped(content), s: UnsafeBufferPointer<Float> = retyped(style)
            return try forward(content: x, style: s, output: retyped(output) as UnsafeMutableBufferPointer<Float>)
        }
        if E.self == BFloat16.self {
            let x: UnsafeBufferPointer<BFloat16> = retyped(content), s: UnsafeBufferPointer<BFloat16> = retyped(style)
            return try forwardElements(content: x, style: s, output: retyped(output) as UnsafeMutableBufferPointer<BFloat16>)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            let x: UnsafeBufferPointer<Float16> = retyped(content), s: UnsafeBufferPointer<Float16> = retyped(style)
            return try forwardElements(content: x, style: s, output: retyped(output) as UnsafeMutableBufferPointer<Float16>)
        }
        #endif
        return try forwardElements(content: content, style: style, output: output)
    }

    func backwardAnyElement<E: NormElement>(
        content: UnsafeBufferPointer<E>, style: UnsafeBufferPointer<E>, gradOutput: UnsafeBufferPointer<E>,
        saved: Saved, gradContent: UnsafeMutableBufferPointer<E>?, gradStyle: UnsafeMutableBufferPointer<E>?
    ) throws {
        if E.self == Float.self {
            let x: UnsafeBufferPointer<Float> = retyped(content), s: UnsafeBufferPointer<Float> = retyped(style)
            return try backward(content: x, style: s, gradOutput: retyped(gradOutput) as UnsafeBufferPointer<Float>,
                                saved: saved, gradContent: gradContent.map { retyped($0) as UnsafeMutableBufferPointer<Float> },
                                gradStyle: gradStyle.map { retyped($0) as UnsafeMutableBufferPointer<Float> })
        }
        if E.self == BFloat16.self {
            let x: UnsafeBufferPointer<BFloat16> = retyped(content), s: UnsafeBufferPointer<BFloat16> = retyped(style)
            return try backwardElements(content: x, style: s, gradOutput: retyped(gradOutput), saved: saved,
                                        gradContent: gradContent.map { retyped($0) }, gradStyle: gradStyle.map { retyped($0) })
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            let x: UnsafeBufferPointer<Float16> = retyped(content), s: UnsafeBufferPointer<Float16> = retyped(style)
            return try backwardElements(content: x, style: s, gradOutput: retyped(gradOutput), saved: saved,
                                        gradContent: gradContent.map { retyped($0) }, gradStyle: gradStyle.map { retyped($0) })
        }
        #endif
        try backwardElements(content: content, style: style, gradOutput: gradOutput, saved: saved,
                             gradContent: gradContent, gradStyle: gradStyle)
    }
}
