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
// result, and they are the same for any thread count. The 16-bit outputs are
// written through the cache (no streaming stores yet); the plans (blocks,
// batches, paths) are the Float32 ones.

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


extension LayerNormalization {
    /// Gradients of the `BFloat16` forward: dx in `BFloat16` (rounded once from the
    /// Float32 result), dγ and dβ in `Float`.
    ///
    /// x and dy are widened exactly and everything else is the `Float`
    /// overload's arithmetic, so dγ and dβ are bit for bit those of the `Float`
    /// backward on the widened tensors, and dx their rounding. Same validation
    /// and aliasing rules: `gradInput` may be `gradOutput` or `input`.
    public func backward(
        input: UnsafeBufferPointer<BFloat16>, gradOutput: UnsafeBufferPointer<BFloat16>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<BFloat16>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale,
                             gradInput: gradInput, gradScale: gradScale, gradBias: gradBias)
    }
}

extension RMSNormalization {
    /// Gradients of the `BFloat16` forward: dx in `BFloat16` (rounded once from the
    /// Float32 result), dγ in `Float`; as the `Float` overload otherwise.
    public func backward(
        input: UnsafeBufferPointer<BFloat16>, gradOutput: UnsafeBufferPointer<BFloat16>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<BFloat16>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale,
                             gradInput: gradInput, gradScale: gradScale)
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

extension LayerNormalization {
    /// Gradients of the `Float16` forward: dx in `Float16` (rounded once from the
    /// Float32 result), dγ and dβ in `Float`.
    ///
    /// x and dy are widened exactly and everything else is the `Float`
    /// overload's arithmetic, so dγ and dβ are bit for bit those of the `Float`
    /// backward on the widened tensors, and dx their rounding. Same validation
    /// and aliasing rules: `gradInput` may be `gradOutput` or `input`.
    public func backward(
        input: UnsafeBufferPointer<Float16>, gradOutput: UnsafeBufferPointer<Float16>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float16>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale,
                             gradInput: gradInput, gradScale: gradScale, gradBias: gradBias)
    }
}

extension RMSNormalization {
    /// Gradients of the `Float16` forward: dx in `Float16` (rounded once from the
    /// Float32 result), dγ in `Float`; as the `Float` overload otherwise.
    public func backward(
        input: UnsafeBufferPointer<Float16>, gradOutput: UnsafeBufferPointer<Float16>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float16>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale,
                             gradInput: gradInput, gradScale: gradScale)
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

extension LayerNormalization {
    /// The backward for tensors of any `NormElement`, dispatched as `forwardAnyElement`.
    func backwardAnyElement<E: NormElement>(
        input: UnsafeBufferPointer<E>, gradOutput: UnsafeBufferPointer<E>, saved: SavedStatistics,
        scale: UnsafeBufferPointer<Float>?, gradInput: UnsafeMutableBufferPointer<E>?,
        gradScale: UnsafeMutableBufferPointer<Float>?, gradBias: UnsafeMutableBufferPointer<Float>?
    ) throws {
        func run<T: NormElement>(_: T.Type, _ body: (UnsafeBufferPointer<T>, UnsafeBufferPointer<T>,
                                                     UnsafeMutableBufferPointer<T>?) throws -> Void) rethrows {
            try body(retyped(input), retyped(gradOutput), gradInput.map { retyped($0) })
        }
        if E.self == Float.self {
            return try run(Float.self) {
                try backward(input: $0, gradOutput: $1, saved: saved, scale: scale, gradInput: $2,
                             gradScale: gradScale, gradBias: gradBias)
            }
        }
        if E.self == BFloat16.self {
            return try run(BFloat16.self) {
                try backward(input: $0, gradOutput: $1, saved: saved, scale: scale, gradInput: $2,
                             gradScale: gradScale, gradBias: gradBias)
            }
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            return try run(Float16.self) {
                try backward(input: $0, gradOutput: $1, saved: saved, scale: scale, gradInput: $2,
                             gradScale: gradScale, gradBias: gradBias)
            }
        }
        #endif
        try backwardElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale,
                             gradInput: gradInput, gradScale: gradScale, gradBias: gradBias)
    }
}

extension RMSNormalization {
    /// The backward for tensors of any `NormElement`, dispatched as `forwardAnyElement`.
    func backwardAnyElement<E: NormElement>(
        input: UnsafeBufferPointer<E>, gradOutput: UnsafeBufferPointer<E>, saved: SavedStatistics,
        scale: UnsafeBufferPointer<Float>?, gradInput: UnsafeMutableBufferPointer<E>?,
        gradScale: UnsafeMutableBufferPointer<Float>?
    ) throws {
        func run<T: NormElement>(_: T.Type, _ body: (UnsafeBufferPointer<T>, UnsafeBufferPointer<T>,
                                                     UnsafeMutableBufferPointer<T>?) throws -> Void) rethrows {
            try body(retyped(input), retyped(gradOutput), gradInput.map { retyped($0) })
        }
        if E.self == Float.self {
            return try run(Float.self) {
                try backward(input: $0, gradOutput: $1, saved: saved, scale: scale, gradInput: $2, gradScale: gradScale)
            }
        }
        if E.self == BFloat16.self {
            return try run(BFloat16.self) {
                try backward(input: $0, gradOutput: $1, saved: saved, scale: scale, gradInput: $2, gradScale: gradScale)
            }
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            return try run(Float16.self) {
                try backward(input: $0, gradOutput: $1, saved: saved, scale: scale, gradInput: $2, gradScale: gradScale)
            }
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
