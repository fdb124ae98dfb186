// InstanceNorm and AdaIN on 16-bit tensors (issue 20), every path (InstanceNorm:
// tiny units, tiny channels, the channel-groups engine; inference and its
// backward through BatchNorm's), forward and backward: x, y, dy, dx (AdaIN: the
// content, the style and their gradients) in `Float16` or `BFloat16`; γ, β, dγ,
// dβ, saved and running statistics and every accumulation as in Float32. Same
// validation as the Float32 overloads; the kernels specialized for the element
// type, so y16 == E.narrow(y32) and dx16 == E.narrow(dx32) bit for bit (y32,
// dx32 from the Float32 kernel on the widened tensors), for any thread count.
// 16-bit outputs are written through the cache.

extension InstanceNormalization {
    /// Normalizes each instance of a `BFloat16` tensor with its own statistics;
    /// updates `running` if given. Values are widened exactly, statistics and
    /// outputs computed as in the `Float` overload, each output rounded once to
    /// `BFloat16`. γ, β and `running` stay `Float`. `output` may be `input`.
    @discardableResult
    public func forwardTraining(
        input: UnsafeBufferPointer<BFloat16>, output: UnsafeMutableBufferPointer<BFloat16>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try forwardTrainingElements(input: input, output: output, scale: scale, bias: bias, running: running)
    }

    /// Normalizes a `BFloat16` tensor with `running`'s statistics; each output rounded
    /// once from the `Float` overload's Float32 value.
    public func forwardInference(
        input: UnsafeBufferPointer<BFloat16>, output: UnsafeMutableBufferPointer<BFloat16>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try forwardInferenceElements(input: input, output: output, scale: scale, bias: bias, running: running)
    }

    /// Gradients of the `BFloat16` training forward: dx in `BFloat16` (rounded once from
    /// the Float32 result), dγ and dβ in `Float`, bit for bit those of the `Float`
    /// backward on the widened tensors. Same checks and aliasing rules.
    public func backwardTraining(
        input: UnsafeBufferPointer<BFloat16>, gradOutput: UnsafeBufferPointer<BFloat16>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<BFloat16>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardTrainingElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale,
                                     gradInput: gradInput, gradScale: gradScale, gradBias: gradBias)
    }

    /// Gradients of the `BFloat16` inference forward (BatchNorm's inference backward).
    public func backwardInference(
        input: UnsafeBufferPointer<BFloat16>, gradOutput: UnsafeBufferPointer<BFloat16>,
        running: RunningStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<BFloat16>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try BatchNormalization(shape: shape, epsilon: epsilon, threading: threading)
            .backwardInferenceElements(input: input, gradOutput: gradOutput, running: running, scale: scale,
                                       output: nil, gradInput: gradInput, gradIdentity: nil,
                                       gradScale: gradScale, gradBias: gradBias)
    }
}

extension AdaptiveInstanceNormalization {
    /// AdaIN on `BFloat16` content and style tensors: statistics of the exactly
    /// widened values as in the `Float` overload (the same saved statistics bit
    /// for bit), each output rounded once to `BFloat16`. `output` may be `content`.
    @discardableResult
    public func forward(
        content input: UnsafeBufferPointer<BFloat16>, style styleInput: UnsafeBufferPointer<BFloat16>,
        output: UnsafeMutableBufferPointer<BFloat16>
    ) throws -> Saved {
        try forwardElements(content: input, style: styleInput, output: output)
    }

    /// Gradients of the `BFloat16` forward: d content and d style in `BFloat16`, each
    /// rounded once from the `Float` overload's Float32 result on the widened
    /// tensors. Same checks and aliasing rules.
    public func backward(
        content input: UnsafeBufferPointer<BFloat16>, style styleInput: UnsafeBufferPointer<BFloat16>,
        gradOutput: UnsafeBufferPointer<BFloat16>, saved: Saved,
        gradContent: UnsafeMutableBufferPointer<BFloat16>? = nil,
        gradStyle: UnsafeMutableBufferPointer<BFloat16>? = nil
    ) throws {
        try backwardElements(content: input, style: styleInput, gradOutput: gradOutput, saved: saved,
                             gradContent: gradContent, gradStyle: gradStyle)
    }
}

// Swift has no Float16 on x86-64 macOS (see Float16+NormElement.swift).
#if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))

extension InstanceNormalization {
    /// Normalizes each instance of a `Float16` tensor with its own statistics;
    /// updates `running` if given. Values are widened exactly, statistics and
    /// outputs computed as in the `Float` overload, each output rounded once to
    /// `Float16`. γ, β and `running` stay `Float`. `output` may be `input`.
    @discardableResult
    public func forwardTraining(
        input: UnsafeBufferPointer<Float16>, output: UnsafeMutableBufferPointer<Float16>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try forwardTrainingElements(input: input, output: output, scale: scale, bias: bias, running: running)
    }

    /// Normalizes a `Float16` tensor with `running`'s statistics; each output rounded
    /// once from the `Float` overload's Float32 value.
    public func forwardInference(
        input: UnsafeBufferPointer<Float16>, output: UnsafeMutableBufferPointer<Float16>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try forwardInferenceElements(input: input, output: output, scale: scale, bias: bias, running: running)
    }

    /// Gradients of the `Float16` training forward: dx in `Float16` (rounded once from
    /// the Float32 result), dγ and dβ in `Float`, bit for bit those of the `Float`
    /// backward on the widened tensors. Same checks and aliasing rules.
    public func backwardTraining(
        input: UnsafeBufferPointer<Float16>, gradOutput: UnsafeBufferPointer<Float16>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float16>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardTrainingElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale,
                                     gradInput: gradInput, gradScale: gradScale, gradBias: gradBias)
    }

    /// Gradients of the `Float16` inference forward (BatchNorm's inference backward).
    public func backwardInference(
        input: UnsafeBufferPointer<Float16>, gradOutput: UnsafeBufferPointer<Float16>,
        running: RunningStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float16>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try BatchNormalization(shape: shape, epsilon: epsilon, threading: threading)
            .backwardInferenceElements(input: input, gradOutput: gradOutput, running: running, scale: scale,
                                       output: nil, gradInput: gradInput, gradIdentity: nil,
                                       gradScale: gradScale, gradBias: gradBias)
    }
}

extension AdaptiveInstanceNormalization {
    /// AdaIN on `Float16` content and style tensors: statistics of the exactly
    /// widened values as in the `Float` overload (the same saved statistics bit
    /// for bit), each output rounded once to `Float16`. `output` may be `content`.
    @discardableResult
    public func forward(
        content input: UnsafeBufferPointer<Float16>, style styleInput: UnsafeBufferPointer<Float16>,
        output: UnsafeMutableBufferPointer<Float16>
    ) throws -> Saved {
        try forwardElements(content: input, style: styleInput, output: output)
    }

    /// Gradients of the `Float16` forward: d content and d style in `Float16`, each
    /// rounded once from the `Float` overload's Float32 result on the widened
    /// tensors. Same checks and aliasing rules.
    public func backward(
        content input: UnsafeBufferPointer<Float16>, style styleInput: UnsafeBufferPointer<Float16>,
        gradOutput: UnsafeBufferPointer<Float16>, saved: Saved,
        gradContent: UnsafeMutableBufferPointer<Float16>? = nil,
        gradStyle: UnsafeMutableBufferPointer<Float16>? = nil
    ) throws {
        try backwardElements(content: input, style: styleInput, gradOutput: gradOutput, saved: saved,
                             gradContent: gradContent, gradStyle: gradStyle)
    }
}

#endif

// MARK: - Any element type (for the array conveniences; see `LayerNormalization.forwardAnyElement`)

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
            return try forwardTraining(input: x, output: y, scale: scale, bias: bias, running: running)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            let x: UnsafeBufferPointer<Float16> = retyped(input), y: UnsafeMutableBufferPointer<Float16> = retyped(output)
            return try forwardTraining(input: x, output: y, scale: scale, bias: bias, running: running)
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
            return try forwardInference(input: x, output: y, scale: scale, bias: bias, running: running)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            let x: UnsafeBufferPointer<Float16> = retyped(input), y: UnsafeMutableBufferPointer<Float16> = retyped(output)
            return try forwardInference(input: x, output: y, scale: scale, bias: bias, running: running)
        }
        #endif
        try forwardInferenceElements(input: input, output: output, scale: scale, bias: bias, running: running)
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
            return try forward(content: x, style: s, output: retyped(output) as UnsafeMutableBufferPointer<BFloat16>)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            let x: UnsafeBufferPointer<Float16> = retyped(content), s: UnsafeBufferPointer<Float16> = retyped(style)
            return try forward(content: x, style: s, output: retyped(output) as UnsafeMutableBufferPointer<Float16>)
        }
        #endif
        return try forwardElements(content: content, style: style, output: output)
    }
}
