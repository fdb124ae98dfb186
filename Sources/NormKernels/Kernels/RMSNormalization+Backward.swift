extension RMSNormalization {
    /// Gradients of `forward` with respect to the input and γ.
    ///
    /// ```
    /// x̂ = x·r                  r = 1/√(mean(x²) + ε) from `saved.invStd` (saved.mean is ignored)
    /// g = dy · γ
    /// dx    = r · (g − x̂ · mean_i(g·x̂))  =  (r·γ[i])·dy − r²·mean(g·x̂)·x
    /// dγ[i] = Σ_rows dy · x̂
    /// ```
    /// Same engine, determinism and memory passes as `LayerNormalization.backward`:
    /// with `gradInput`, `x` and `dy` are read twice and dx written once; dγ alone
    /// is one pass. `gradInput` may be `gradOutput` or `input`.
    public func backward(
        input: UnsafeBufferPointer<Float>, gradOutput: UnsafeBufferPointer<Float>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale,
                             gradInput: gradInput, gradScale: gradScale)
    }

    /// The backward of every element type (x, dy, dx of type `E`; γ, dγ
    /// Float32): validation, then the row engine specialized for `E`.
    @inline(__always)
    func backwardElements<E: NormElement>(
        input: UnsafeBufferPointer<E>, gradOutput: UnsafeBufferPointer<E>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>?,
        gradInput: UnsafeMutableBufferPointer<E>?, gradScale: UnsafeMutableBufferPointer<Float>?
    ) throws {
        let total = rows * features
        try Check.length(input.count, total, "input")
        try Check.length(gradOutput.count, total, "gradOutput")
        try Check.saved(saved.invStd, rows, "saved.invStd")
        try Check.length(scale, features, "scale (γ)")
        try Check.length(gradInput, total, "gradInput")
        try Check.length(gradScale, features, "gradScale (dγ)")
        try Check.buffers(
            writes: [("gradInput", MemorySpan(gradInput)), ("gradScale", MemorySpan(gradScale))],
            reads: [("input", MemorySpan(input)), ("gradOutput", MemorySpan(gradOutput)), ("scale (γ)", MemorySpan(scale))],
            inPlace: [("gradInput", "input"), ("gradInput", "gradOutput")])
        let x = try Check.base(input, "input"), dy = try Check.base(gradOutput, "gradOutput")
        rowNormalizationBackward(
            backwardPlan, x: x, dy: dy, mean: nil, invStd: saved.invStd, gamma: scale?.baseAddress,
            dx: gradInput?.baseAddress, gradScale: gradScale?.baseAddress, gradBias: nil)
    }
}
