// LayerNorm and RMSNorm forward on 16-bit tensors (issue 20): x and y in
// `Float16` or `BFloat16`; γ, β, the saved statistics and every accumulation as
// in Float32. Each overload validates exactly as the Float32 one (lengths in
// elements, overlaps in bytes, nothing written before the checks pass) and runs
// the same row engine specialized for its element type (`normalizeRows`), so
//
//     y16 == E.narrow(y32)     bit for bit,
//
// where y32 is the Float32 forward on the widened input: the outputs are
// rounded once, to nearest even, from the Float32 result, and they are the same
// for any thread count. The 16-bit outputs are written through the cache (no
// streaming stores yet); the plan (blocks, batches, paths) is the Float32 one.

extension LayerNormalization {
    /// Normalizes each row of a `BFloat16` tensor; returns per-row mean and 1/σ.
    ///
    /// Values are widened exactly to `Float`, the statistics and the output are
    /// computed as in the `Float` overload, and each output is rounded once to
    /// `BFloat16` (to nearest, ties to even). γ and β stay `Float`. `output` may
    /// be `input` (in place).
    @discardableResult
    public func forward(
        input: UnsafeBufferPointer<BFloat16>, output: UnsafeMutableBufferPointer<BFloat16>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try forwardElements(input: input, output: output, scale: scale, bias: bias)
    }
}

extension RMSNormalization {
    /// Scales each row of a `BFloat16` tensor; returns per-row 1/rms in `invStd`.
    ///
    /// Values are widened exactly to `Float`, Σx² and the output are computed as
    /// in the `Float` overload, and each output is rounded once to `BFloat16`
    /// (to nearest, ties to even). γ stays `Float`. `output` may be `input`.
    @discardableResult
    public func forward(
        input: UnsafeBufferPointer<BFloat16>, output: UnsafeMutableBufferPointer<BFloat16>,
        scale: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try forwardElements(input: input, output: output, scale: scale)
    }
}

// Swift has no Float16 on x86-64 macOS (see Float16+NormElement.swift).
#if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))

extension LayerNormalization {
    /// Normalizes each row of a `Float16` tensor; returns per-row mean and 1/σ.
    ///
    /// Values are widened exactly to `Float`, the statistics and the output are
    /// computed as in the `Float` overload, and each output is rounded once to
    /// `Float16` (to nearest, ties to even; beyond 65504 it becomes ±∞). γ and β
    /// stay `Float`. `output` may be `input` (in place).
    @discardableResult
    public func forward(
        input: UnsafeBufferPointer<Float16>, output: UnsafeMutableBufferPointer<Float16>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try forwardElements(input: input, output: output, scale: scale, bias: bias)
    }
}

extension RMSNormalization {
    /// Scales each row of a `Float16` tensor; returns per-row 1/rms in `invStd`.
    ///
    /// Values are widened exactly to `Float`, Σx² and the output are computed as
    /// in the `Float` overload, and each output is rounded once to `Float16`
    /// (to nearest, ties to even; beyond 65504 it becomes ±∞). γ stays `Float`.
    /// `output` may be `input`.
    @discardableResult
    public func forward(
        input: UnsafeBufferPointer<Float16>, output: UnsafeMutableBufferPointer<Float16>,
        scale: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try forwardElements(input: input, output: output, scale: scale)
    }
}

#endif

// MARK: - Any element type

extension LayerNormalization {
    /// The forward for a tensor of any `NormElement`, from a generic caller (the
    /// array convenience, which may run unspecialized in the caller's module):
    /// `Float`, `Float16` and `BFloat16` go to their specialized overloads; any
    /// other conforming type runs the generic engine unspecialized (correct, but
    /// one witness call per eight values).
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

extension RMSNormalization {
    /// As `LayerNormalization.forwardAnyElement`.
    func forwardAnyElement<E: NormElement>(
        input: UnsafeBufferPointer<E>, output: UnsafeMutableBufferPointer<E>, scale: UnsafeBufferPointer<Float>?
    ) throws -> SavedStatistics {
        if E.self == Float.self {
            let x: UnsafeBufferPointer<Float> = retyped(input), y: UnsafeMutableBufferPointer<Float> = retyped(output)
            return try forward(input: x, output: y, scale: scale)
        }
        if E.self == BFloat16.self {
            let x: UnsafeBufferPointer<BFloat16> = retyped(input), y: UnsafeMutableBufferPointer<BFloat16> = retyped(output)
            return try forward(input: x, output: y, scale: scale)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            let x: UnsafeBufferPointer<Float16> = retyped(input), y: UnsafeMutableBufferPointer<Float16> = retyped(output)
            return try forward(input: x, output: y, scale: scale)
        }
        #endif
        return try forwardElements(input: input, output: output, scale: scale)
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
