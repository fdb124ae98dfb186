extension LayerNormalization {
    /// Gradients of `forward` with respect to the input, γ and β; the caller
    /// passes only the gradient buffers it wants and pays only for those.
    ///
    /// ```
    /// x̂ = (x − μ)·r            r = 1/√(σ² + ε), μ and r from `saved` (Float64)
    /// g = dy · γ               (γ = 1 without scale)
    /// dx    = r · (g − mean_i(g) − x̂ · mean_i(g·x̂))          per row
    ///       = (r·γ[i])·dy + b·(x − p) + c                       p = Float(μ), t = −(μ − p)·r,
    ///                                                           b = −r²·mean(g·x̂), c = −r·(mean(g) + t·mean(g·x̂))
    /// dγ[i] = Σ_rows dy · x̂     dβ[i] = Σ_rows dy               column sums across rows
    /// ```
    /// Row sums are formed per block of ≤ 4096 values and merged per row in a fixed
    /// tree; column sums per block of rows (partials per row block and column) and
    /// merged down the row blocks in a fixed tree: bitwise identical for any thread count.
    ///
    /// **Memory passes** (T = rows·features values):
    /// - `gradInput` requested: reads `x` and `dy` twice (row sums, then one sweep that
    ///   writes dx and, if requested, accumulates dγ/dβ) and writes dx once. Work goes
    ///   by blocks of rows sized to L2/8 per input, so when rows are short the second
    ///   read comes from cache.
    /// - only `gradScale`/`gradBias`: one pass reading `x` and `dy`.
    ///
    /// **Aliasing**: `gradInput` may be `gradOutput` or `input` (in place); gradient
    /// buffers must not otherwise share memory with each other or the inputs.
    /// Throws before writing anything on a wrong length (input, gradOutput, saved
    /// statistics, scale, any gradient buffer) or overlap.
    public func backward(
        input: UnsafeBufferPointer<Float>, gradOutput: UnsafeBufferPointer<Float>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale,
                             gradInput: gradInput, gradScale: gradScale, gradBias: gradBias)
    }

    /// The backward of every element type (x, dy, dx of type `E`; γ, dγ, dβ
    /// Float32): validation, then the row engine specialized for `E`.
    @inline(__always)
    func backwardElements<E: NormElement>(
        input: UnsafeBufferPointer<E>, gradOutput: UnsafeBufferPointer<E>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>?,
        gradInput: UnsafeMutableBufferPointer<E>?,
        gradScale: UnsafeMutableBufferPointer<Float>?, gradBias: UnsafeMutableBufferPointer<Float>?
    ) throws {
        let total = rows * features
        try Check.length(input.count, total, "input")
        try Check.length(gradOutput.count, total, "gradOutput")
        try Check.saved(saved.mean, rows, "saved.mean")
        try Check.saved(saved.invStd, rows, "saved.invStd")
        try Check.length(scale, features, "scale (γ)")
        try Check.length(gradInput, total, "gradInput")
        try Check.length(gradScale, features, "gradScale (dγ)")
        try Check.length(gradBias, features, "gradBias (dβ)")
        try Check.buffers(
            writes: [("gradInput", MemorySpan(gradInput)), ("gradScale", MemorySpan(gradScale)), ("gradBias", MemorySpan(gradBias))],
            reads: [("input", MemorySpan(input)), ("gradOutput", MemorySpan(gradOutput)), ("scale (γ)", MemorySpan(scale))],
            inPlace: [("gradInput", "input"), ("gradInput", "gradOutput")])
        let x = try Check.base(input, "input"), dy = try Check.base(gradOutput, "gradOutput")
        rowNormalizationBackward(
            backwardPlan, x: x, dy: dy, mean: saved.mean, invStd: saved.invStd, gamma: scale?.baseAddress,
            dx: gradInput?.baseAddress, gradScale: gradScale?.baseAddress, gradBias: gradBias?.baseAddress)
    }
}
