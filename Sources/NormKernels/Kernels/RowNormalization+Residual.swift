// Residual LayerNorm and RMSNorm (issue 21), a transformer block's
// "add & norm" in one pass:
//
//     s = (x + residual) + bias          (bias: per feature, optional)
//     y = LayerNorm(s)·γ + β   or   RMSNorm(s)·γ
//
// `sum`, when given, receives s (the next block's residual stream) in the same
// pass. The saved statistics are those of s. Forward: `normalizeRowsFused`
// with `ResidualRows` (the add happens as x and the residual are loaded, in
// Float32); the output equals our unfused sequence — s = (x + r) + b, then the
// plain forward on s — bit for bit, for any thread count.
//
// Backward, with g_s the total gradient with respect to s:
//
//     g_s = norm'(s)ᵀ·dy + ds         (ds: the upstream gradient of s, optional)
//     dx = d residual = g_s,   d bias[i] = Σ_rows g_s[·, i],   dγ, dβ as the plain backward on s
//
// The plain row backward on s writes norm'(s)ᵀ·dy into gradInput; a residual
// step (`ResidualRowGradient`) adds ds and sums the columns for d bias, in fixed
// row blocks merged in a fixed tree (the same bits for any thread count): with
// many row blocks inside the engine's sweep, eight rows at a time right after
// their dx (`BlockwiseRowBackward`), else as a pass of its own. Without ds and
// d bias there is no such step.

extension LayerNormalization {
    /// Residual LayerNorm: `s = (input + residual) + inputBias`, `output = LayerNorm(s)·γ + β`;
    /// writes s to `sum` when given. Returns the mean and 1/σ of each row of s.
    ///
    /// The output equals, bit for bit and for any thread count, forming s in
    /// Float32 and then calling ``forward(input:output:scale:bias:)-(UnsafeBufferPointer<Float>,_,_,_)`` on it.
    ///
    /// **Memory passes**: reads `input` and `residual` once where the plain
    /// forward reads x (for rows longer than 16 384 values, twice, as the plain
    /// forward reads x twice), writes `output` and, if given, `sum` once.
    ///
    /// **Aliasing**: `output` may be exactly `input` or exactly `residual`; `sum`
    /// may be exactly `input` or exactly `residual` (the residual stream updated
    /// in place); `output` and `sum` must not share memory. `input` and
    /// `residual` may share memory. Any other overlap throws.
    ///
    /// Throws before writing anything on a wrong length (every tensor: rows ×
    /// features; `scale`, `bias`, `inputBias`: features) or a forbidden overlap.
    @discardableResult
    public func forward(
        input: UnsafeBufferPointer<Float>, residual: UnsafeBufferPointer<Float>,
        output: UnsafeMutableBufferPointer<Float>, sum: UnsafeMutableBufferPointer<Float>? = nil,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        inputBias: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try residualForward(forwardPlan, rows: rows, features: features, epsilon: epsilon, input: input,
                            residual: residual, output: output, sum: sum, scale: scale, bias: bias,
                            inputBias: inputBias)
    }

    /// Gradients of the residual forward, given `sum` (s, as the forward wrote
    /// it) and its saved statistics: `gradInput` = dx = d residual = the total
    /// gradient of s (LayerNorm's backward on s, plus `gradSum` when given),
    /// `gradInputBias` = its column sums, dγ and dβ as the plain backward on s.
    ///
    /// **Memory passes**: the plain backward's on s, plus one read of `gradSum`
    /// when given; with few row blocks (long rows), one more pass over dx (and
    /// ds) when `gradSum` or `gradInputBias` is given.
    ///
    /// **Aliasing**: `gradInput` may be exactly `gradOutput` or `sum`; it must
    /// not share memory with `gradSum`. Other outputs share nothing. Throws
    /// before writing anything.
    public func backward(
        sum: UnsafeBufferPointer<Float>, gradOutput: UnsafeBufferPointer<Float>,
        gradSum: UnsafeBufferPointer<Float>? = nil, saved: SavedStatistics,
        scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil,
        gradInputBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try residualBackward(backwardPlan, rows: rows, features: features, centered: true, sum: sum,
                             gradOutput: gradOutput, gradSum: gradSum, saved: saved, scale: scale,
                             gradInput: gradInput, gradScale: gradScale, gradBias: gradBias,
                             gradInputBias: gradInputBias)
    }
}

extension RMSNormalization {
    /// Residual RMSNorm: `s = (input + residual) + inputBias`, `output = RMSNorm(s)·γ`;
    /// writes s to `sum` when given. Returns 1/rms of each row of s in `invStd`.
    ///
    /// The output equals, bit for bit and for any thread count, forming s in
    /// Float32 and then calling ``forward(input:output:scale:)-(UnsafeBufferPointer<Float>,_,_)`` on it.
    /// Memory passes, aliasing and errors as the LayerNorm overload
    /// (``LayerNormalization/forward(input:residual:output:sum:scale:bias:inputBias:)-(UnsafeBufferPointer<Float>,_,_,_,_,_,_)``).
    @discardableResult
    public func forward(
        input: UnsafeBufferPointer<Float>, residual: UnsafeBufferPointer<Float>,
        output: UnsafeMutableBufferPointer<Float>, sum: UnsafeMutableBufferPointer<Float>? = nil,
        scale: UnsafeBufferPointer<Float>? = nil, inputBias: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try residualForward(forwardPlan, rows: rows, features: features, epsilon: epsilon, input: input,
                            residual: residual, output: output, sum: sum, scale: scale, bias: nil,
                            inputBias: inputBias)
    }

    /// Gradients of the residual forward: as the LayerNorm overload
    /// (``LayerNormalization/backward(sum:gradOutput:gradSum:saved:scale:gradInput:gradScale:gradBias:gradInputBias:)-(UnsafeBufferPointer<Float>,_,_,_,_,_,_,_,_)``),
    /// without β.
    public func backward(
        sum: UnsafeBufferPointer<Float>, gradOutput: UnsafeBufferPointer<Float>,
        gradSum: UnsafeBufferPointer<Float>? = nil, saved: SavedStatistics,
        scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradInputBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try residualBackward(backwardPlan, rows: rows, features: features, centered: false, sum: sum,
                             gradOutput: gradOutput, gradSum: gradSum, saved: saved, scale: scale,
                             gradInput: gradInput, gradScale: gradScale, gradBias: nil,
                             gradInputBias: gradInputBias)
    }
}

/// Validation, then the fused forward: the bias and the sum output resolved to
/// their types once, here.
func residualForward<E: NormElement>(
    _ plan: RowPlan, rows: Int, features: Int, epsilon: Float,
    input: UnsafeBufferPointer<E>, residual: UnsafeBufferPointer<E>,
    output: UnsafeMutableBufferPointer<E>, sum: UnsafeMutableBufferPointer<E>?,
    scale: UnsafeBufferPointer<Float>?, bias: UnsafeBufferPointer<Float>?, inputBias: UnsafeBufferPointer<Float>?
) throws -> SavedStatistics {
    let total = rows * features
    try Check.length(input.count, total, "input")
    try Check.length(residual.count, total, "residual")
    try Check.length(output.count, total, "output")
    try Check.length(sum, total, "sum")
    try Check.length(scale, features, "scale (γ)")
    try Check.length(bias, features, "bias (β)")
    try Check.length(inputBias, features, "inputBias")
    try Check.buffers(
        writes: [("output", MemorySpan(output)), ("sum", MemorySpan(sum))],
        reads: [("input", MemorySpan(input)), ("residual", MemorySpan(residual)), ("scale (γ)", MemorySpan(scale)),
                ("bias (β)", MemorySpan(bias)), ("inputBias", MemorySpan(inputBias))],
        inPlace: [("output", "input"), ("output", "residual"), ("sum", "input"), ("sum", "residual")])
    let x = try Check.base(input, "input"), r = try Check.base(residual, "residual")
    let y = try Check.base(output, "output")
    let s = try sum.map { try Check.base($0, "sum") }
    let streaming = plan.store.streaming(output: y, reading: x, r)
    @inline(__always) func run<B: AddedBias>(_ b: B) -> SavedStatistics {
        normalizeRowsFused(plan, ResidualRows(x: x, residual: r, bias: b, sum: s), y, epsilon: epsilon,
                           gamma: scale?.baseAddress, beta: bias?.baseAddress, NoEpilogue(), streaming: streaming)
    }
    if let b = inputBias?.baseAddress { return run(FeatureBias(base: b)) }
    return run(NoAddedBias())
}

/// Validation, then the plain row backward on s and the residual pass.
func residualBackward<E: NormElement>(
    _ plan: RowBackwardPlan, rows: Int, features: Int, centered: Bool,
    sum: UnsafeBufferPointer<E>, gradOutput: UnsafeBufferPointer<E>, gradSum: UnsafeBufferPointer<E>?,
    saved: SavedStatistics, scale: UnsafeBufferPointer<Float>?,
    gradInput: UnsafeMutableBufferPointer<E>?, gradScale: UnsafeMutableBufferPointer<Float>?,
    gradBias: UnsafeMutableBufferPointer<Float>?, gradInputBias: UnsafeMutableBufferPointer<Float>?
) throws {
    let total = rows * features
    try Check.length(sum.count, total, "sum")
    try Check.length(gradOutput.count, total, "gradOutput")
    try Check.length(gradSum, total, "gradSum")
    if centered { try Check.saved(saved.mean, rows, "saved.mean") }
    try Check.saved(saved.invStd, rows, "saved.invStd")
    try Check.length(scale, features, "scale (γ)")
    try Check.length(gradInput, total, "gradInput")
    try Check.length(gradScale, features, "gradScale (dγ)")
    try Check.length(gradBias, features, "gradBias (dβ)")
    try Check.length(gradInputBias, features, "gradInputBias")
    try Check.buffers(
        writes: [("gradInput", MemorySpan(gradInput)), ("gradScale", MemorySpan(gradScale)),
                 ("gradBias", MemorySpan(gradBias)), ("gradInputBias", MemorySpan(gradInputBias))],
        reads: [("sum", MemorySpan(sum)), ("gradOutput", MemorySpan(gradOutput)), ("gradSum", MemorySpan(gradSum)),
                ("scale (γ)", MemorySpan(scale))],
        inPlace: [("gradInput", "sum"), ("gradInput", "gradOutput")])
    let s = try Check.base(sum, "sum"), dy = try Check.base(gradOutput, "gradOutput")
    let ds = try gradSum.map { try Check.base($0, "gradSum") }
    let dx = gradInput?.baseAddress, dBias = gradInputBias?.baseAddress, D = features
    let mean = centered ? saved.mean : nil
    let steps = BlockwiseRowBackward(plan: plan, mean: mean, invStd: saved.invStd, gamma: scale?.baseAddress,
                                     gradScale: gradScale?.baseAddress, gradBias: gradBias?.baseAddress)
    guard (dx != nil && ds != nil) || dBias != nil else {
        // Nothing to add: the plain backward on s.
        rowNormalizationBackward(plan, x: s, dy: dy, mean: mean, invStd: saved.invStd, gamma: scale?.baseAddress,
                                 dx: dx, gradScale: gradScale?.baseAddress, gradBias: gradBias?.baseAddress)
        return
    }
    // d bias partials, and the total gradient when there is no gradInput, come
    // from the plan's workspace pool (the engine takes an arena of its own).
    let workspace = plan.workspace.take()
    defer { plan.workspace.recycle(workspace) }
    if steps.blockwise(plan.threading) {
        // Each block's dx (or, without gradInput, the block's rows of a scratch
        // tensor, for d bias) is finished while it is in cache.
        let biasPartials: UnsafeMutablePointer<Double>? = dBias != nil ? workspace.take(Double.self, count: steps.blocks * D) : nil
        // Where dx streams (a large tensor, not in place), the engine writes each
        // block's dx to the worker's block scratch (in cache), and the residual
        // step streams the finished dx out: dx is written once, with no read
        // for ownership. Same values either way.
        let streaming = dx.map { plan.store.streaming(output: $0, reading: s, dy, ds) } ?? false
        let scratch: UnsafeMutablePointer<E>? = dx == nil ? workspace.take(E.self, count: rows * D) : nil
        steps.run(
            blockScratch: streaming,
            before: { r0, n, blockScratch in
                biasPartials?.advanced(by: r0 / steps.rowsPerBlock * D).initialize(repeating: 0, count: D)
                return (s + r0 * D, dy + r0 * D, blockScratch ?? (dx ?? scratch!) + r0 * D)
            },
            // Rows of the block as the engine finishes them (eight at a time in
            // the short-row sweep, from L1), in order: the same sums as a whole block.
            after: { k, r0, n, blockDx, _ in
                if streaming {
                    ResidualRowGradient.streamBlock(UnsafePointer(blockDx!), ds.map { $0 + r0 * D }, into: dx! + r0 * D,
                                                    rows: n, features: D, sums: biasPartials.map { $0 + k * D })
                } else {
                    ResidualRowGradient.block(blockDx!, ds.map { $0 + r0 * D }, rows: n, features: D,
                                              sums: biasPartials.map { $0 + k * D })
                }
            },
            finish: { columns in
                if let biasPartials, let dBias {
                    ResidualRowGradient.merge(biasPartials, blocks: steps.blocks, features: D, columns: columns,
                                              into: dBias)
                }
            })
        return
    }
    // Few row blocks: the plain engine spreads them over the workers, then the
    // residual step as a pass of its own (the same bits). d bias needs the total
    // gradient even without gradInput: then in a workspace.
    let target = dx ?? workspace.take(E.self, count: rows * D)
    rowNormalizationBackward(plan, x: s, dy: dy, mean: mean, invStd: saved.invStd, gamma: scale?.baseAddress,
                             dx: target, gradScale: gradScale?.baseAddress, gradBias: gradBias?.baseAddress)
    ResidualRowGradient.wholeTensor(dx: target, ds: ds, plan: plan, gradBias: dBias, workspace: workspace)
}
