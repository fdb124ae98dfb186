// GroupNorm on 16-bit tensors (issue 20), every path of `GroupNormPlan` (feature
// vectors, expanded affine and group segments on the row engine, the
// channel-groups engine), forward and backward: x, y, dy, dx in `Float16` or
// `BFloat16`; γ, β, dγ, dβ, saved statistics and every accumulation as in
// Float32. Same validation as the Float32 overloads, one generic entry point per
// direction for both 16-bit types (resolved once per call, `…AnyElement`); the
// engines specialized for the element type, so y16 == E.narrow(y32) and
// dx16 == E.narrow(dx32) bit for bit (y32, dx32 from the Float32 kernel on the
// widened tensors), for any thread count. Where the plan streams (large
// tensors), 16-bit outputs go out in 16-byte non-temporal stores (`E.stream8`).

extension GroupNormalization {
    /// Normalizes each (sample, group) of a `Float16` or `BFloat16` tensor;
    /// returns per-(n, g) mean and 1/σ. Values are widened exactly, statistics
    /// and outputs computed as in the `Float` overload, each output rounded once
    /// to `Element`. γ and β stay `Float`. `output` may be `input`.
    ///
    /// One generic entry point for every ``NormElement``: it checks the type once
    /// and runs the engine specialized for it (for `Float`, the `Float`
    /// overload), so the call is as fast from another module as from this one.
    @discardableResult
    public func forward<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, output: UnsafeMutableBufferPointer<Element>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try forwardAnyElement(input: input, output: output, scale: scale, bias: bias)
    }

    /// Gradients of the 16-bit forward: dx in `Element` (rounded once from the
    /// Float32 result), dγ and dβ in `Float`, bit for bit those of the `Float`
    /// backward on the widened tensors. Same checks and aliasing rules.
    public func backward<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, gradOutput: UnsafeBufferPointer<Element>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Element>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardAnyElement(input: input, gradOutput: gradOutput, saved: saved, scale: scale, gradInput: gradInput,
                               gradScale: gradScale, gradBias: gradBias)
    }
}

// MARK: - Any element type (the generic entry points and the array convenience;
// see `LayerNormalization.forwardAnyElement`)

extension GroupNormalization {
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
            return try forwardElements(input: x, output: y, scale: scale, bias: bias)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            let x: UnsafeBufferPointer<Float16> = retyped(input), y: UnsafeMutableBufferPointer<Float16> = retyped(output)
            return try forwardElements(input: x, output: y, scale: scale, bias: bias)
        }
        #endif
        return try forwardElements(input: input, output: output, scale: scale, bias: bias)
    }

    func backwardAnyElement<E: NormElement>(
        input: UnsafeBufferPointer<E>, gradOutput: UnsafeBufferPointer<E>, saved: SavedStatistics,
        scale: UnsafeBufferPointer<Float>?, gradInput: UnsafeMutableBufferPointer<E>?,
        gradScale: UnsafeMutableBufferPointer<Float>?, gradBias: UnsafeMutableBufferPointer<Float>?
    ) throws {
        if E.self == Float.self {
            let x: UnsafeBufferPointer<Float> = retyped(input), dy: UnsafeBufferPointer<Float> = retyped(gradOutput)
            return try backward(input: x, gradOutput: dy, saved: saved, scale: scale,
                                gradInput: gradInput.map { retyped($0) as UnsafeMutableBufferPointer<Float> },
                                gradScale: gradScale, gradBias: gradBias)
        }
        if E.self == BFloat16.self {
            let x: UnsafeBufferPointer<BFloat16> = retyped(input), dy: UnsafeBufferPointer<BFloat16> = retyped(gradOutput)
            return try backwardElements(input: x, gradOutput: dy, saved: saved, scale: scale,
                                        gradInput: gradInput.map { retyped($0) }, gradScale: gradScale, gradBias: gradBias)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            let x: UnsafeBufferPointer<Float16> = retyped(input), dy: UnsafeBufferPointer<Float16> = retyped(gradOutput)
            return try backwardElements(input: x, gradOutput: dy, saved: saved, scale: scale,
                                        gradInput: gradInput.map { retyped($0) }, gradScale: gradScale, gradBias: gradBias)
        }
        #endif
        try backwardElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale, gradInput: gradInput,
                             gradScale: gradScale, gradBias: gradBias)
    }
}
