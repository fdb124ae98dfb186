// Residual LayerNorm/RMSNorm and RMSNorm × gate (issue 21) on 16-bit tensors
// (issue 20): x, the residual, s, y, dy, dx, ds, the gate and d gate in
// `Float16` or `BFloat16`; γ, β, the input bias, their gradients and the saved
// statistics in Float32, every accumulation as in Float32.
//
// The semantics are those of our unfused 16-bit sequence, bit for bit:
//
//     s16 = E((x + r) + b)                  (the add in Float32, rounded once)
//     y16 = the plain 16-bit forward on s16 (statistics of s16 as stored)
//     dx16 = E(E(norm'(s16)ᵀ·dy) + ds)       (the plain 16-bit backward, then + ds)
//     gate: y16 = E(E(z)·gate), d gate = E(dy·E(z)), dx = backward(x, E(dy·gate))
//
// Normalizing the stored s16 rather than the Float32 sum costs nothing in
// accuracy the caller can keep (the next block reads s16 as its residual) and
// makes the saved statistics those of the tensor the backward is given; it is
// PyTorch's `layer_norm(x + r)` in bf16/fp16 too, whose add rounds s. dx is
// rounded twice where ds is given, as PyTorch's autograd adds the two 16-bit
// gradients of s. A Float16 sum beyond 65504 becomes ±∞ (as in PyTorch).
//
// One generic public entry point per call resolves the element type once and
// runs the fused engine specialized for it (`…AnyElement`, as in
// `RowNormalization+HalfPrecision.swift`); for `Float` it is the Float overload.

extension LayerNormalization {
    /// Residual LayerNorm on `Float16`/`BFloat16` tensors: `s = E((input + residual) + inputBias)`,
    /// `output = LayerNorm(s)·γ + β` (rounded once); writes s to `sum` when given.
    ///
    /// Equals, bit for bit and for any thread count, the 16-bit add rounded once
    /// followed by the 16-bit ``forward(input:output:scale:bias:)-(UnsafeBufferPointer<Element>,_,_,_)``
    /// on s. Memory passes, aliasing and errors as the `Float` overload.
    @discardableResult
    public func forward<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, residual: UnsafeBufferPointer<Element>,
        output: UnsafeMutableBufferPointer<Element>, sum: UnsafeMutableBufferPointer<Element>? = nil,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        inputBias: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try residualForwardAnyElement(forwardPlan, rows: rows, features: features, epsilon: epsilon, input: input,
                                      residual: residual, output: output, sum: sum, scale: scale, bias: bias,
                                      inputBias: inputBias)
    }

    /// Gradients of the 16-bit residual forward: `gradInput` = E(E(LayerNorm's
    /// backward on s) + gradSum), `gradInputBias` its column sums, dγ and dβ
    /// those of the plain 16-bit backward on s. As the `Float` overload otherwise.
    public func backward<Element: NormElement>(
        sum: UnsafeBufferPointer<Element>, gradOutput: UnsafeBufferPointer<Element>,
        gradSum: UnsafeBufferPointer<Element>? = nil, saved: SavedStatistics,
        scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Element>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil,
        gradInputBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try residualBackwardAnyElement(backwardPlan, rows: rows, features: features, centered: true, sum: sum,
                                       gradOutput: gradOutput, gradSum: gradSum, saved: saved, scale: scale,
                                       gradInput: gradInput, gradScale: gradScale, gradBias: gradBias,
                                       gradInputBias: gradInputBias)
    }
}

extension RMSNormalization {
    /// Residual RMSNorm on `Float16`/`BFloat16` tensors: as the LayerNorm overload, without β.
    @discardableResult
    public func forward<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, residual: UnsafeBufferPointer<Element>,
        output: UnsafeMutableBufferPointer<Element>, sum: UnsafeMutableBufferPointer<Element>? = nil,
        scale: UnsafeBufferPointer<Float>? = nil, inputBias: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try residualForwardAnyElement(forwardPlan, rows: rows, features: features, epsilon: epsilon, input: input,
                                      residual: residual, output: output, sum: sum, scale: scale, bias: nil,
                                      inputBias: inputBias)
    }

    /// Gradients of the 16-bit residual RMSNorm: as the LayerNorm overload, without β.
    public func backward<Element: NormElement>(
        sum: UnsafeBufferPointer<Element>, gradOutput: UnsafeBufferPointer<Element>,
        gradSum: UnsafeBufferPointer<Element>? = nil, saved: SavedStatistics,
        scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Element>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradInputBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try residualBackwardAnyElement(backwardPlan, rows: rows, features: features, centered: false, sum: sum,
                                       gradOutput: gradOutput, gradSum: gradSum, saved: saved, scale: scale,
                                       gradInput: gradInput, gradScale: gradScale, gradBias: nil,
                                       gradInputBias: gradInputBias)
    }

    /// RMSNorm × gate on `Float16`/`BFloat16` tensors: `output = E(E(RMSNorm(input)·γ)·gate)`,
    /// the 16-bit RMSNorm followed by a 16-bit multiply, bit for bit. As the `Float` overload otherwise.
    @discardableResult
    public func forward<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, gate: UnsafeBufferPointer<Element>,
        output: UnsafeMutableBufferPointer<Element>, scale: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        if Element.self == BFloat16.self {
            return try gatedForward(input: retyped(input) as UnsafeBufferPointer<BFloat16>,
                                    gate: retyped(gate) as UnsafeBufferPointer<BFloat16>,
                                    output: retyped(output) as UnsafeMutableBufferPointer<BFloat16>, scale: scale)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if Element.self == Float16.self {
            return try gatedForward(input: retyped(input) as UnsafeBufferPointer<Float16>,
                                    gate: retyped(gate) as UnsafeBufferPointer<Float16>,
                                    output: retyped(output) as UnsafeMutableBufferPointer<Float16>, scale: scale)
        }
        #endif
        if Element.self == Float.self {
            return try gatedForward(input: retyped(input) as UnsafeBufferPointer<Float>,
                                    gate: retyped(gate) as UnsafeBufferPointer<Float>,
                                    output: retyped(output) as UnsafeMutableBufferPointer<Float>, scale: scale)
        }
        return try gatedForward(input: input, gate: gate, output: output, scale: scale)
    }

    /// Gradients of the 16-bit gated forward: `gradGate` = E(dy·E(z)), and
    /// `gradInput`, `gradScale` as the plain 16-bit backward given E(dy·gate).
    public func backward<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, gate: UnsafeBufferPointer<Element>,
        gradOutput: UnsafeBufferPointer<Element>, saved: SavedStatistics,
        scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Element>? = nil,
        gradGate: UnsafeMutableBufferPointer<Element>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        if Element.self == BFloat16.self {
            return try gatedBackward(
                input: retyped(input) as UnsafeBufferPointer<BFloat16>, gate: retyped(gate) as UnsafeBufferPointer<BFloat16>,
                gradOutput: retyped(gradOutput) as UnsafeBufferPointer<BFloat16>, saved: saved, scale: scale,
                gradInput: gradInput.map { retyped($0) as UnsafeMutableBufferPointer<BFloat16> },
                gradGate: gradGate.map { retyped($0) as UnsafeMutableBufferPointer<BFloat16> }, gradScale: gradScale)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if Element.self == Float16.self {
            return try gatedBackward(
                input: retyped(input) as UnsafeBufferPointer<Float16>, gate: retyped(gate) as UnsafeBufferPointer<Float16>,
                gradOutput: retyped(gradOutput) as UnsafeBufferPointer<Float16>, saved: saved, scale: scale,
                gradInput: gradInput.map { retyped($0) as UnsafeMutableBufferPointer<Float16> },
                gradGate: gradGate.map { retyped($0) as UnsafeMutableBufferPointer<Float16> }, gradScale: gradScale)
        }
        #endif
        if Element.self == Float.self {
            return try gatedBackward(
                input: retyped(input) as UnsafeBufferPointer<Float>, gate: retyped(gate) as UnsafeBufferPointer<Float>,
                gradOutput: retyped(gradOutput) as UnsafeBufferPointer<Float>, saved: saved, scale: scale,
                gradInput: gradInput.map { retyped($0) as UnsafeMutableBufferPointer<Float> },
                gradGate: gradGate.map { retyped($0) as UnsafeMutableBufferPointer<Float> }, gradScale: gradScale)
        }
        try gatedBackward(input: input, gate: gate, gradOutput: gradOutput, saved: saved, scale: scale,
                          gradInput: gradInput, gradGate: gradGate, gradScale: gradScale)
    }
}

// MARK: - Any element type

// Each branch names its type in full (see `RowNormalization+HalfPrecision.swift`:
// a generic helper in between was left unspecialized).

private func residualForwardAnyElement<E: NormElement>(
    _ plan: RowPlan, rows: Int, features: Int, epsilon: Float,
    input: UnsafeBufferPointer<E>, residual: UnsafeBufferPointer<E>,
    output: UnsafeMutableBufferPointer<E>, sum: UnsafeMutableBufferPointer<E>?,
    scale: UnsafeBufferPointer<Float>?, bias: UnsafeBufferPointer<Float>?, inputBias: UnsafeBufferPointer<Float>?
) throws -> SavedStatistics {
    if E.self == BFloat16.self {
        return try residualForward(
            plan, rows: rows, features: features, epsilon: epsilon, input: retyped(input) as UnsafeBufferPointer<BFloat16>,
            residual: retyped(residual) as UnsafeBufferPointer<BFloat16>,
            output: retyped(output) as UnsafeMutableBufferPointer<BFloat16>,
            sum: sum.map { retyped($0) as UnsafeMutableBufferPointer<BFloat16> }, scale: scale, bias: bias,
            inputBias: inputBias)
    }
    #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
    if E.self == Float16.self {
        return try residualForward(
            plan, rows: rows, features: features, epsilon: epsilon, input: retyped(input) as UnsafeBufferPointer<Float16>,
            residual: retyped(residual) as UnsafeBufferPointer<Float16>,
            output: retyped(output) as UnsafeMutableBufferPointer<Float16>,
            sum: sum.map { retyped($0) as UnsafeMutableBufferPointer<Float16> }, scale: scale, bias: bias,
            inputBias: inputBias)
    }
    #endif
    if E.self == Float.self {
        return try residualForward(
            plan, rows: rows, features: features, epsilon: epsilon, input: retyped(input) as UnsafeBufferPointer<Float>,
            residual: retyped(residual) as UnsafeBufferPointer<Float>,
            output: retyped(output) as UnsafeMutableBufferPointer<Float>,
            sum: sum.map { retyped($0) as UnsafeMutableBufferPointer<Float> }, scale: scale, bias: bias,
            inputBias: inputBias)
    }
    return try residualForward(plan, rows: rows, features: features, epsilon: epsilon, input: input,
                               residual: residual, output: output, sum: sum, scale: scale, bias: bias,
                               inputBias: inputBias)
}

private func residualBackwardAnyElement<E: NormElement>(
    _ plan: RowBackwardPlan, rows: Int, features: Int, centered: Bool,
    sum: UnsafeBufferPointer<E>, gradOutput: UnsafeBufferPointer<E>, gradSum: UnsafeBufferPointer<E>?,
    saved: SavedStatistics, scale: UnsafeBufferPointer<Float>?,
    gradInput: UnsafeMutableBufferPointer<E>?, gradScale: UnsafeMutableBufferPointer<Float>?,
    gradBias: UnsafeMutableBufferPointer<Float>?, gradInputBias: UnsafeMutableBufferPointer<Float>?
) throws {
    if E.self == BFloat16.self {
        return try residualBackward(
            plan, rows: rows, features: features, centered: centered, sum: retyped(sum) as UnsafeBufferPointer<BFloat16>,
            gradOutput: retyped(gradOutput) as UnsafeBufferPointer<BFloat16>,
            gradSum: gradSum.map { retyped($0) as UnsafeBufferPointer<BFloat16> }, saved: saved, scale: scale,
            gradInput: gradInput.map { retyped($0) as UnsafeMutableBufferPointer<BFloat16> }, gradScale: gradScale,
            gradBias: gradBias, gradInputBias: gradInputBias)
    }
    #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
    if E.self == Float16.self {
        return try residualBackward(
            plan, rows: rows, features: features, centered: centered, sum: retyped(sum) as UnsafeBufferPointer<Float16>,
            gradOutput: retyped(gradOutput) as UnsafeBufferPointer<Float16>,
            gradSum: gradSum.map { retyped($0) as UnsafeBufferPointer<Float16> }, saved: saved, scale: scale,
            gradInput: gradInput.map { retyped($0) as UnsafeMutableBufferPointer<Float16> }, gradScale: gradScale,
            gradBias: gradBias, gradInputBias: gradInputBias)
    }
    #endif
    if E.self == Float.self {
        return try residualBackward(
            plan, rows: rows, features: features, centered: centered, sum: retyped(sum) as UnsafeBufferPointer<Float>,
            gradOutput: retyped(gradOutput) as UnsafeBufferPointer<Float>,
            gradSum: gradSum.map { retyped($0) as UnsafeBufferPointer<Float> }, saved: saved, scale: scale,
            gradInput: gradInput.map { retyped($0) as UnsafeMutableBufferPointer<Float> }, gradScale: gradScale,
            gradBias: gradBias, gradInputBias: gradInputBias)
    }
    try residualBackward(plan, rows: rows, features: features, centered: centered, sum: sum, gradOutput: gradOutput,
                         gradSum: gradSum, saved: saved, scale: scale, gradInput: gradInput, gradScale: gradScale,
                         gradBias: gradBias, gradInputBias: gradInputBias)
}
