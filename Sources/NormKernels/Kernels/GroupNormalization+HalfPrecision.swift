// GroupNorm on 16-bit tensors (issue 20), every path of `GroupNormPlan` (feature
// vectors, expanded affine and group segments on the row engine, the
// channel-groups engine), forward and backward: x, y, dy, dx in `Float16` or
// `BFloat16`; γ, β, dγ, dβ, saved statistics and every accumulation as in
// Float32. Same validation as the Float32 overloads; the engines specialized for
// the element type, so y16 == E.narrow(y32) and dx16 == E.narrow(dx32) bit for
// bit (y32, dx32 from the Float32 kernel on the widened tensors), for any
// thread count. 16-bit outputs are written through the cache.

extension GroupNormalization {
    /// Normalizes each (sample, group) of a `BFloat16` tensor; returns per-(n, g)
    /// mean and 1/σ. Values are widened exactly, statistics and outputs computed
    /// as in the `Float` overload, each output rounded once to `BFloat16`. γ and β
    /// stay `Float`. `output` may be `input`.
    @discardableResult
    public func forward(
        input: UnsafeBufferPointer<BFloat16>, output: UnsafeMutableBufferPointer<BFloat16>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try forwardElements(input: input, output: output, scale: scale, bias: bias)
    }

    /// Gradients of the `BFloat16` forward: dx in `BFloat16` (rounded once from the
    /// Float32 result), dγ and dβ in `Float`, bit for bit those of the `Float`
    /// backward on the widened tensors. Same checks and aliasing rules.
    public func backward(
        input: UnsafeBufferPointer<BFloat16>, gradOutput: UnsafeBufferPointer<BFloat16>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<BFloat16>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale, gradInput: gradInput,
                             gradScale: gradScale, gradBias: gradBias)
    }
}

// Swift has no Float16 on x86-64 macOS (see Float16+NormElement.swift).
#if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))

extension GroupNormalization {
    /// Normalizes each (sample, group) of a `Float16` tensor; returns per-(n, g)
    /// mean and 1/σ. Values are widened exactly, statistics and outputs computed
    /// as in the `Float` overload, each output rounded once to `Float16`. γ and β
    /// stay `Float`. `output` may be `input`.
    @discardableResult
    public func forward(
        input: UnsafeBufferPointer<Float16>, output: UnsafeMutableBufferPointer<Float16>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try forwardElements(input: input, output: output, scale: scale, bias: bias)
    }

    /// Gradients of the `Float16` forward: dx in `Float16` (rounded once from the
    /// Float32 result), dγ and dβ in `Float`, bit for bit those of the `Float`
    /// backward on the widened tensors. Same checks and aliasing rules.
    public func backward(
        input: UnsafeBufferPointer<Float16>, gradOutput: UnsafeBufferPointer<Float16>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float16>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale, gradInput: gradInput,
                             gradScale: gradScale, gradBias: gradBias)
    }
}

#endif

extension GroupNormalization {
    /// The forward for a tensor of any `NormElement`, from a generic caller (the
    /// array convenience): `Float`, `Float16` and `BFloat16` go to their
    /// specialized overloads, any other type runs the generic code unspecialized.
    func forwardAnyElement<E: NormElement>(
        input: UnsafeBufferPointer<E>, output: UnsafeMutableBufferPointer<E>,
        scale: UnsafeBufferPointer<Float>?, bias: UnsafeBufferPointer<Float>?
    ) throws -> SavedStatistics {
        if E.self == Float.self {
            let x: UnsafeBufferPointer<Float> = retyped(input), y: UnsafeMutableBufferPointer<Float> = retyped(output)
            return try forward(input: x, output: y, scale: scale, bias: bias)
        }
        if E.self == BFloat16.self {
            let x: UnsafeBufferPointer<BFloat16> = retyped(input), y: UnsafeMutableBufferPointer<BFloat16> = retyped(output)
            return try forward(input: x, output: y, scale: scale, bias: bias)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            let x: UnsafeBufferPointer<Float16> = retyped(input), y: UnsafeMutableBufferPointer<Float16> = retyped(output)
            return try forward(input: x, output: y, scale: scale, bias: bias)
        }
        #endif
        return try forwardElements(input: input, output: output, scale: scale, bias: bias)
    }
}
