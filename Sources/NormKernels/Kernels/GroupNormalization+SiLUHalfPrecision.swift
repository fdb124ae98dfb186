// GroupNorm + SiLU on 16-bit tensors (issues 20 and 21), every path of
// `GroupNormPlan`, forward and backward: x, y, dy, dx in `Float16` or
// `BFloat16`; γ, β, the modulation, dγ, dβ, the modulation's gradients and
// the saved statistics in Float32, as every accumulation. Same validation as
// the Float32 overloads (lengths in elements, overlaps in bytes, nothing written
// before the checks pass); one generic entry point per direction, resolved once
// per call (`…AnyElement`, as `GroupNormalization+HalfPrecision.swift`). So
//
//     y16 == E.narrow(y32),   dx16 == E.narrow(dx32),   the rest identical
//
// bit for bit, where y32, dx32, … come from the Float32 kernel on the widened
// tensors, for any thread count:
// - channel-groups path: the Float32 engine's loops specialized for `E` (x
//   widened on load, y = silu(z) rounded once on store);
// - feature vectors (H·W = 1): the fused row engine reads x in 16 bits and
//   runs the Float32 kernel's SiLU sweep as its output epilogue
//   (`SiLUEpilogues.swift`), y rounded once on store;
// - small maps (the other row-engine paths): GroupNorm runs on a Float32 copy
//   of x, then the SiLU sweep rounds once into y (one more read of x in 16 bits
//   and a Float32 round trip than in Float32);
// - backward: g = dy·silu′(z)·m into a Float32 scratch tensor (x and dy read in
//   16 bits), then GroupNorm's backward: on the channel-groups path its passes
//   read x in 16 bits and g in Float32 and round dx once on store (x, g twice
//   and dx once, no Float32 copy of x or dx); on the row-engine paths its
//   Float32 backward runs on x widened into a second scratch tensor, dx rounded
//   once at the end. On NCHW with short channels (the plan's loop over units)
//   g stays per unit in the worker's cache instead
//   (`GroupNormalization+SiLUBackwardUnits.swift`): x and dy read once, dx
//   written once.

extension GroupNormalization {
    /// ``forwardSiLU(input:output:scale:bias:modulationScale:modulationShift:)-(UnsafeBufferPointer<Float>,_,_,_,_,_)`` on
    /// a `Float16` or `BFloat16` tensor: statistics of the exactly widened values
    /// (the same saved statistics bit for bit), z and silu(z) in Float32, each
    /// output rounded once to `Element`. γ, β and the modulation stay `Float`.
    /// `output` may be `input`.
    ///
    /// One generic entry point for every ``NormElement``: it checks the type once
    /// and runs the kernels specialized for it (for `Float`, the `Float`
    /// overload's), so the call is as fast from another module as from this one.
    @discardableResult
    public func forwardSiLU<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, output: UnsafeMutableBufferPointer<Element>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        modulationScale: UnsafeBufferPointer<Float>? = nil, modulationShift: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try forwardSiLUAnyElement(input: input, output: output, scale: scale, bias: bias,
                                  modulationScale: modulationScale, modulationShift: modulationShift)
    }

    /// Gradients of the 16-bit GroupNorm + SiLU forward: dx in `Element` (rounded
    /// once from the Float32 result), dγ, dβ and the modulation's gradients in
    /// `Float`, bit for bit those of the `Float` backward on the widened tensors.
    /// Same checks and aliasing rules (`gradInput` may be exactly `gradOutput`
    /// or `input`).
    public func backwardSiLU<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, gradOutput: UnsafeBufferPointer<Element>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        modulationScale: UnsafeBufferPointer<Float>? = nil, modulationShift: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Element>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil, gradBias: UnsafeMutableBufferPointer<Float>? = nil,
        gradModulationScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradModulationShift: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardSiLUAnyElement(input: input, gradOutput: gradOutput, saved: saved, scale: scale, bias: bias,
                                   modulationScale: modulationScale, modulationShift: modulationShift,
                                   gradInput: gradInput, gradScale: gradScale, gradBias: gradBias,
                                   gradModulationScale: gradModulationScale, gradModulationShift: gradModulationShift)
    }
}

// MARK: - Any element type (see `LayerNormalization.forwardAnyElement`)

extension GroupNormalization {
    func forwardSiLUAnyElement<E: NormElement>(
        input: UnsafeBufferPointer<E>, output: UnsafeMutableBufferPointer<E>,
        scale: UnsafeBufferPointer<Float>?, bias: UnsafeBufferPointer<Float>?,
        modulationScale: UnsafeBufferPointer<Float>?, modulationShift: UnsafeBufferPointer<Float>?
    ) throws -> SavedStatistics {
        if E.self == Float.self {
            let x: UnsafeBufferPointer<Float> = retyped(input), y: UnsafeMutableBufferPointer<Float> = retyped(output)
            return try forwardSiLU(input: x, output: y, scale: scale, bias: bias, modulationScale: modulationScale,
                                   modulationShift: modulationShift)
        }
        if E.self == BFloat16.self {
            let x: UnsafeBufferPointer<BFloat16> = retyped(input), y: UnsafeMutableBufferPointer<BFloat16> = retyped(output)
            return try forwardSiLUElements(input: x, output: y, scale: scale, bias: bias,
                                           modulationScale: modulationScale, modulationShift: modulationShift)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            let x: UnsafeBufferPointer<Float16> = retyped(input), y: UnsafeMutableBufferPointer<Float16> = retyped(output)
            return try forwardSiLUElements(input: x, output: y, scale: scale, bias: bias,
                                           modulationScale: modulationScale, modulationShift: modulationShift)
        }
        #endif
        return try forwardSiLUElements(input: input, output: output, scale: scale, bias: bias,
                                       modulationScale: modulationScale, modulationShift: modulationShift)
    }

    func backwardSiLUAnyElement<E: NormElement>(
        input: UnsafeBufferPointer<E>, gradOutput: UnsafeBufferPointer<E>, saved: SavedStatistics,
        scale: UnsafeBufferPointer<Float>?, bias: UnsafeBufferPointer<Float>?,
        modulationScale: UnsafeBufferPointer<Float>?, modulationShift: UnsafeBufferPointer<Float>?,
        gradInput: UnsafeMutableBufferPointer<E>?,
        gradScale: UnsafeMutableBufferPointer<Float>?, gradBias: UnsafeMutableBufferPointer<Float>?,
        gradModulationScale: UnsafeMutableBufferPointer<Float>?, gradModulationShift: UnsafeMutableBufferPointer<Float>?
    ) throws {
        if E.self == Float.self {
            let x: UnsafeBufferPointer<Float> = retyped(input), dy: UnsafeBufferPointer<Float> = retyped(gradOutput)
            return try backwardSiLU(input: x, gradOutput: dy, saved: saved, scale: scale, bias: bias,
                                    modulationScale: modulationScale, modulationShift: modulationShift,
                                    gradInput: gradInput.map { retyped($0) as UnsafeMutableBufferPointer<Float> },
                                    gradScale: gradScale, gradBias: gradBias,
                                    gradModulationScale: gradModulationScale, gradModulationShift: gradModulationShift)
        }
        if E.self == BFloat16.self {
            let x: UnsafeBufferPointer<BFloat16> = retyped(input), dy: UnsafeBufferPointer<BFloat16> = retyped(gradOutput)
            return try backwardSiLUElements(
                input: x, gradOutput: dy, saved: saved, scale: scale, bias: bias, modulationScale: modulationScale,
                modulationShift: modulationShift, gradInput: gradInput.map { retyped($0) }, gradScale: gradScale,
                gradBias: gradBias, gradModulationScale: gradModulationScale, gradModulationShift: gradModulationShift)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            let x: UnsafeBufferPointer<Float16> = retyped(input), dy: UnsafeBufferPointer<Float16> = retyped(gradOutput)
            return try backwardSiLUElements(
                input: x, gradOutput: dy, saved: saved, scale: scale, bias: bias, modulationScale: modulationScale,
                modulationShift: modulationShift, gradInput: gradInput.map { retyped($0) }, gradScale: gradScale,
                gradBias: gradBias, gradModulationScale: gradModulationScale, gradModulationShift: gradModulationShift)
        }
        #endif
        try backwardSiLUElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale, bias: bias,
                                 modulationScale: modulationScale, modulationShift: modulationShift,
                                 gradInput: gradInput, gradScale: gradScale, gradBias: gradBias,
                                 gradModulationScale: gradModulationScale, gradModulationShift: gradModulationShift)
    }
}
