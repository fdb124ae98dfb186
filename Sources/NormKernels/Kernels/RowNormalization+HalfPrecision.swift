// LayerNorm and RMSNorm on 16-bit tensors (issue 20), forward and backward:
// x, y, dy and dx in `Float16` or `BFloat16`; γ, β, dγ, dβ, the saved
// statistics and every accumulation as in Float32. Each overload validates
// exactly as the Float32 one (lengths in elements, overlaps in bytes, nothing
// written before the checks pass) and runs the same row engine specialized for
// its element type (`normalizeRows`, `rowNormalizationBackward`), so
//
//     y16 == E.narrow(y32),   dx16 == E.narrow(dx32),   dγ, dβ identical
//
// bit for bit, where y32, dx32, … come from the Float32 kernel on the widened
// tensors: the outputs are rounded once, to nearest even, from the Float32
// result, and they are the same for any thread count. The plans (blocks,
// batches, paths, store policy) are the Float32 ones; where they stream, 16-bit
// outputs go out in 16-byte non-temporal stores. One generic public entry point
// per direction serves both 16-bit types (and any `NormElement`): it resolves
// the type once and runs the engine specialized for it (`forwardAnyElement`).

extension LayerNormalization {
    /// Normalizes each row of a `Float16` or `BFloat16` tensor; returns per-row mean and 1/σ.
    ///
    /// Values are widened exactly to `Float`, the statistics and the output are
    /// computed as in the `Float` overload, and each output is rounded once to
    /// `Element` (to nearest, ties to even; a `Float16` beyond 65504 becomes ±∞).
    /// γ and β stay `Float`. `output` may be `input` (in place).
    ///
    /// One generic entry point for every ``NormElement``: it checks the type once
    /// and runs the row engine specialized for it (for `Float`, the `Float`
    /// overload), so the call is as fast from another module as from this one.
    @discardableResult
    public func forward<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, output: UnsafeMutableBufferPointer<Element>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try forwardAnyElement(input: input, output: output, scale: scale, bias: bias)
    }

    /// Gradients of the 16-bit forward: dx in `Element` (rounded once from the
    /// Float32 result), dγ and dβ in `Float`.
    ///
    /// x and dy are widened exactly and everything else is the `Float`
    /// overload's arithmetic, so dγ and dβ are bit for bit those of the `Float`
    /// backward on the widened tensors, and dx their rounding. Same validation
    /// and aliasing rules: `gradInput` may be `gradOutput` or `input`.
    public func backward<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, gradOutput: UnsafeBufferPointer<Element>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Element>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardAnyElement(input: input, gradOutput: gradOutput, saved: saved, scale: scale,
                               gradInput: gradInput, gradScale: gradScale, gradBias: gradBias)
    }
}

extension RMSNormalization {
    /// Scales each row of a `Float16` or `BFloat16` tensor; returns per-row 1/rms in `invStd`.
    ///
    /// Values are widened exactly to `Float`, Σx² and the output are computed as
    /// in the `Float` overload, and each output is rounded once to `Element` (to
    /// nearest, ties to even; a `Float16` beyond 65504 becomes ±∞). γ stays
    /// `Float`. `output` may be `input`. Specialized per type as
    /// `LayerNormalization.forward(input:output:scale:bias:)`.
    @discardableResult
    public func forward<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, output: UnsafeMutableBufferPointer<Element>,
        scale: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try forwardAnyElement(input: input, output: output, scale: scale)
    }

    /// Gradients of the 16-bit forward: dx in `Element` (rounded once from the
    /// Float32 result), dγ in `Float`; as the `Float` overload otherwise.
    public func backward<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, gradOutput: UnsafeBufferPointer<Element>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Element>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardAnyElement(input: input, gradOutput: gradOutput, saved: saved, scale: scale,
                               gradInput: gradInput, gradScale: gradScale)
    }
}

// MARK: - Any element type

// The public generic entry points and the array conveniences may run
// unspecialized in the caller's module; these functions check the element type
// once per call and hand over to the engine specialized for it inside this
// module (`Float`: the Float32 overload; `BFloat16`, `Float16`: the generic
// engine's own specializations). Any other conforming type runs the generic
// engine unspecialized: correct, but one witness call per eight values.

// Each branch names its type in full (no generic helper in between): a generic
// local function taking the type was left unspecialized by the optimizer (the
// whole 16-bit forward then ran the generic engine, objdump).

extension LayerNormalization {
    func forwardAnyElement<E: NormElement>(
        input: UnsafeBufferPointer<E>, output: UnsafeMutableBufferPointer<E>,
        scale: UnsafeBufferPointer<Float>?, bias: UnsafeBufferPointer<Float>?
    ) throws -> SavedStatistics {
        if E.self == Float.self {
            return try forward(input: retyped(input) as UnsafeBufferPointer<Float>,
                               output: retyped(output) as UnsafeMutableBufferPointer<Float>, scale: scale, bias: bias)
        }
        if E.self == BFloat16.self {
            return try forwardElements(input: retyped(input) as UnsafeBufferPointer<BFloat16>,
                                       output: retyped(output) as UnsafeMutableBufferPointer<BFloat16>,
                                       scale: scale, bias: bias)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            return try forwardElements(input: retyped(input) as UnsafeBufferPointer<Float16>,
                                       output: retyped(output) as UnsafeMutableBufferPointer<Float16>,
                                       scale: scale, bias: bias)
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
            return try backward(input: retyped(input) as UnsafeBufferPointer<Float>,
                                gradOutput: retyped(gradOutput) as UnsafeBufferPointer<Float>, saved: saved,
                                scale: scale, gradInput: gradInput.map { retyped($0) as UnsafeMutableBufferPointer<Float> },
                                gradScale: gradScale, gradBias: gradBias)
        }
        if E.self == BFloat16.self {
            return try backwardElements(
                input: retyped(input) as UnsafeBufferPointer<BFloat16>,
                gradOutput: retyped(gradOutput) as UnsafeBufferPointer<BFloat16>, saved: saved, scale: scale,
                gradInput: gradInput.map { retyped($0) as UnsafeMutableBufferPointer<BFloat16> },
                gradScale: gradScale, gradBias: gradBias)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            return try backwardElements(
                input: retyped(input) as UnsafeBufferPointer<Float16>,
                gradOutput: retyped(gradOutput) as UnsafeBufferPointer<Float16>, saved: saved, scale: scale,
                gradInput: gradInput.map { retyped($0) as UnsafeMutableBufferPointer<Float16> },
                gradScale: gradScale, gradBias: gradBias)
        }
        #endif
        try backwardElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale,
                             gradInput: gradInput, gradScale: gradScale, gradBias: gradBias)
    }
}

extension RMSNormalization {
    func forwardAnyElement<E: NormElement>(
        input: UnsafeBufferPointer<E>, output: UnsafeMutableBufferPointer<E>, scale: UnsafeBufferPointer<Float>?
    ) throws -> SavedStatistics {
        if E.self == Float.self {
            return try forward(input: retyped(input) as UnsafeBufferPointer<Float>,
                               output: retyped(output) as UnsafeMutableBufferPointer<Float>, scale: scale)
        }
        if E.self == BFloat16.self {
            return try forwardElements(input: retyped(input) as UnsafeBufferPointer<BFloat16>,
                                       output: retyped(output) as UnsafeMutableBufferPointer<BFloat16>, scale: scale)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            return try forwardElements(input: retyped(input) as UnsafeBufferPointer<Float16>,
                                       output: retyped(output) as UnsafeMutableBufferPointer<Float16>, scale: scale)
        }
        #endif
        return try forwardElements(input: input, output: output, scale: scale)
    }

    func backwardAnyElement<E: NormElement>(
        input: UnsafeBufferPointer<E>, gradOutput: UnsafeBufferPointer<E>, saved: SavedStatistics,
        scale: UnsafeBufferPointer<Float>?, gradInput: UnsafeMutableBufferPointer<E>?,
        gradScale: UnsafeMutableBufferPointer<Float>?
    ) throws {
        if E.self == Float.self {
            return try backward(input: retyped(input) as UnsafeBufferPointer<Float>,
                                gradOutput: retyped(gradOutput) as UnsafeBufferPointer<Float>, saved: saved,
                                scale: scale, gradInput: gradInput.map { retyped($0) as UnsafeMutableBufferPointer<Float> },
                                gradScale: gradScale)
        }
        if E.self == BFloat16.self {
            return try backwardElements(
                input: retyped(input) as UnsafeBufferPointer<BFloat16>,
                gradOutput: retyped(gradOutput) as UnsafeBufferPointer<BFloat16>, saved: saved, scale: scale,
                gradInput: gradInput.map { retyped($0) as UnsafeMutableBufferPointer<BFloat16> }, gradScale: gradScale)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            return try backwardElements(
                input: retyped(input) as UnsafeBufferPointer<Float16>,
                gradOutput: retyped(gradOutput) as UnsafeBufferPointer<Float16>, saved: saved, scale: scale,
                gradInput: gradInput.map { retyped($0) as UnsafeMutableBufferPointer<Float16> }, gradScale: gradScale)
        }
        #endif
        try backwardElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale,
                             gradInput: gradInput, gradScale: gradScale)
    }
}

/// The same buffer seen as elements of `U`, for a generic caller that has just
/// checked that its element type is `U` (the memory is bound to `U` already).
@inline(__always)
func retyped<T, U>(_ buffer: UnsafeBufferPointer<T>) -> UnsafeBufferPointer<U> {
    UnsafeBufferPointer(start: UnsafeRawPointer(buffer.baseAddress)?.assumingMemoryBound(to: U.self), count: buffer.count)
}

@inline(__always)
func retyped<T, U>(_ buffer: UnsafeMutableBufferPointer<T>) -> UnsafeMutableBufferPointer<U> {
    UnsafeMutableBufferPointer(start: UnsafeMutableRawPointer(buffer.baseAddress)?.assumingMemoryBound(to: U.self),
                               count: buffer.count)
}
