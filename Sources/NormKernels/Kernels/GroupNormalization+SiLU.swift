// GroupNorm + SiLU (issue 21), the diffusion UNet/VAE block's head in one call:
//
//     z = GN(x)·γ + β                                   (no modulation)
//     z = (GN(x)·γ + β)·(1 + scale[n, c]) + shift[n, c]  (timestep modulation)
//     y = silu(z) = z·σ(z)
//
// With x̂ = (x − μ)·r per (n, g), z is one a·x + b per (n, c):
//
//     a = γ·(1 + scale)·r,   b = (β·(1 + scale) + shift) − μ·a
//
// so on the channel-groups path (every map of ≥ 8×8 NCHW, > 4×4 NHWC) the
// modulation folds into the per-(n, c) coefficient table GroupNorm builds
// anyway, and SiLU is the output loop's epilogue (`SiLUActivation`, resolved
// once per loop): the same passes as plain GroupNorm. Without modulation the
// coefficients are GroupNorm's own, so y = silu(GroupNorm's output) bit for bit.
//
// The row-engine paths (feature vectors, small maps: `GroupNormPlan`) keep one
// coefficient per (n, g) and γ, β per position; there GroupNorm's output is
// written first and `silu(v·(1 + scale) + shift)` runs as a second sweep over
// y per (n, c) run (y read and written once more). On 16-bit feature vectors
// that sweep is the fused row engine's epilogue instead (`rowPathsSiLUForward`).
// The backward is in
// `GroupNormalization+SiLUBackward.swift`; 16-bit tensors in
// `GroupNormalization+SiLUHalfPrecision.swift` (the bodies here are generic
// over the element type).

extension GroupNormalization {
    /// GroupNorm followed by SiLU: `y = silu((GN(x)·γ + β)·(1 + modulationScale) + modulationShift)`,
    /// silu(z) = z·σ(z), with the modulation per (n, c) (the diffusion form: scale
    /// and shift from a timestep embedding; both optional, absent = 0).
    ///
    /// Statistics and the returned ``SavedStatistics`` are exactly those of
    /// ``forward(input:output:scale:bias:)-(UnsafeBufferPointer<Float>,_,_,_)``; pass them to
    /// ``backwardSiLU(input:gradOutput:saved:scale:bias:modulationScale:modulationShift:gradInput:gradScale:gradBias:gradModulationScale:gradModulationShift:)-(UnsafeBufferPointer<Float>,_,_,_,_,_,_,_,_,_,_,_)``.
    /// Without modulation the output is bitwise `silu` of GroupNorm's output.
    /// The result is bitwise identical for any thread count.
    ///
    /// **Memory passes**: plain GroupNorm's (x read twice, the second from cache
    /// when a group fits in L2; y written once) on the channel-groups path; the
    /// row-engine paths (H·W = 1, small maps) add one read and write of y
    /// (16-bit feature vectors excepted: the generic overload).
    /// `modulationScale`/`modulationShift` have N·C values, n-major.
    ///
    /// **Aliasing**: `output` may be exactly `input` (in place); any other overlap
    /// of `output` with an argument throws. Throws before writing anything.
    @discardableResult
    public func forwardSiLU(
        input: UnsafeBufferPointer<Float>, output: UnsafeMutableBufferPointer<Float>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        modulationScale: UnsafeBufferPointer<Float>? = nil, modulationShift: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try forwardSiLUElements(input: input, output: output, scale: scale, bias: bias,
                                modulationScale: modulationScale, modulationShift: modulationShift)
    }

    /// The forward of every element type (16-bit entry points:
    /// `GroupNormalization+SiLUHalfPrecision.swift`): the checks, then the path.
    func forwardSiLUElements<E: NormElement>(
        input: UnsafeBufferPointer<E>, output: UnsafeMutableBufferPointer<E>,
        scale: UnsafeBufferPointer<Float>?, bias: UnsafeBufferPointer<Float>?,
        modulationScale: UnsafeBufferPointer<Float>?, modulationShift: UnsafeBufferPointer<Float>?
    ) throws -> SavedStatistics {
        let perSample = shape.n * shape.c
        try Check.length(input.count, shape.count, "input")
        try Check.length(output.count, shape.count, "output")
        try Check.length(scale, shape.c, "scale (γ)")
        try Check.length(bias, shape.c, "bias (β)")
        try Check.length(modulationScale, perSample, "modulationScale")
        try Check.length(modulationShift, perSample, "modulationShift")
        try Check.buffers(
            writes: [("output", MemorySpan(output))],
            reads: [("input", MemorySpan(input)), ("scale (γ)", MemorySpan(scale)), ("bias (β)", MemorySpan(bias)),
                    ("modulationScale", MemorySpan(modulationScale)), ("modulationShift", MemorySpan(modulationShift))],
            inPlace: [("output", "input")], bareNameAgainst: "input")
        let x = try Check.base(input, "input"), y = try Check.base(output, "output")
        let modulation = SiLUModulation(scale: modulationScale?.baseAddress, shift: modulationShift?.baseAddress)
        guard case .channelGroups(let plan) = path else {
            return try rowPathsSiLUForward(x, y, scale: scale, bias: bias, modulation)
        }
        return channelGroupsSiLUForward(plan, x, y, gamma: scale?.baseAddress, beta: bias?.baseAddress, modulation)
    }

    /// The row-engine paths. On `Float`: GroupNorm writes y, then the SiLU sweep
    /// runs over it in place. On 16-bit feature vectors (H·W = 1): the fused row
    /// engine (`normalizeRowsFused`, the plain strategies' twins) reads x in 16
    /// bits, widened on load, and the sweep's arithmetic runs as its epilogue
    /// (`SiLUEpilogues.swift`) before the one rounding: no Float32 copy of x,
    /// no second sweep; 2.5–3.4× on `[32, 512, 1, 1]` (docs/PERFORMANCE.md,
    /// "16-bit fused kernels"). On 16-bit small maps: GroupNorm on x widened
    /// into a Float32 scratch tensor (in place there), then the sweep rounds
    /// once into y: the fused engine measured 1.6–2.9× slower there (with a
    /// per-lane (n, c) lookup where NCHW runs are shorter than a vector, and its
    /// rows geometry taught the grouped short segments of NHWC small maps, which
    /// it does not handle: the earlier failure on `[8, 512, 4, 4]`). Either way
    /// y == E.narrow(the Float32 result) bit for bit.
    private func rowPathsSiLUForward<E: NormElement>(
        _ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>,
        scale: UnsafeBufferPointer<Float>?, bias: UnsafeBufferPointer<Float>?, _ modulation: SiLUModulation
    ) throws -> SavedStatistics {
        let count = shape.count
        if E.self == Float.self {
            let y32 = UnsafeMutableRawPointer(y).assumingMemoryBound(to: Float.self)
            let x32 = UnsafeRawPointer(x).assumingMemoryBound(to: Float.self)
            let saved = try forward(input: UnsafeBufferPointer(start: x32, count: count),
                                    output: UnsafeMutableBufferPointer(start: y32, count: count),
                                    scale: scale, bias: bias)
            siluSweep(y32, y, modulation)
            return saved
        }
        let pool = path.workspace
        let workspace = pool.take()
        defer { pool.recycle(workspace) }
        guard case .featureVectors(let rows, _) = path else {
            let v = workspace.take(Float.self, count: count)
            widen(x, into: v, count: count, threading: threading)
            let saved = try forward(input: UnsafeBufferPointer(start: v, count: count),
                                    output: UnsafeMutableBufferPointer(start: v, count: count), scale: scale, bias: bias)
            siluSweep(v, y, modulation)
            return saved
        }
        let streaming = rows.store.streaming(output: y, reading: x)
        func run<G: FusedRowEpilogue>(_ epilogue: G) -> SavedStatistics {
            normalizeRowsFused(rows, PlainRows(x: x), y, epsilon: epsilon, gamma: scale?.baseAddress,
                               beta: bias?.baseAddress, epilogue, streaming: streaming)
        }
        guard modulation.isPresent else { return run(SiLUEpilogue()) }
        let slots = shape.n * shape.c
        let m = workspace.take(Float.self, count: 2 * slots), t = m + slots
        for k in 0..<slots { m[k] = modulation.multiplier(k); t[k] = modulation.offset(k) }
        return run(FeatureSiLUEpilogue(multiplier: m, shift: t))
    }

    /// The channel-groups path with the modulation folded into the per-(n, c)
    /// coefficients (file comment) and SiLU in the output loops.
    private func channelGroupsSiLUForward<E: NormElement>(
        _ plan: ChannelGroupsPlan, _ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>,
        gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, _ modulation: SiLUModulation
    ) -> SavedStatistics {
        let slots = shape.n * groups, size = shape.c / groups, channels = shape.c, G = groups, eps = epsilon
        let workspace = plan.workspace.take()
        defer { plan.workspace.recycle(workspace) }
        let mean = SlotBuffer(count: slots, initial: 0.0, in: workspace)
        let invStd = SlotBuffer(count: slots, initial: 0.0, in: workspace)
        let table = CoefficientTable(count: shape.n * shape.c, streaming: plan.store.streaming(output: y, reading: x),
                                     in: workspace)
        // A local function, not a closure value (whose context went to the heap).
        func finalize(_ slot: Int, _ m: Moments) {
            mean[slot] = m.mean
            invStd[slot] = inverseStandardDeviation(m.biasedVariance, eps)
            let n = slot / G, first = (slot - n * G) * size
            for c in first..<(first + size) {
                table[n * channels + c] = modulation.coefficients(
                    mean: m.mean, invStd: invStd[slot], gamma: gamma, beta: beta, channel: c, slot: n * channels + c)
            }
        }
        switch plan.forward {
        case .columns(let g):
            g.reduceThenApply(x, groupSize: size, threading: plan.threading, workspace: workspace,
                finalize: { n, range, moments in for group in range { finalize(n * G + group, moments[group]) } },
                apply: { n, first, rows in
                    table.applyColumns(x, y, matrix: n, geometry: g, first: first, rows: rows,
                                       activation: SiLUActivation.self)
                })
        case .rows(let g):
            // NCHW maps of H·W > 1 (H·W = 1 is the feature-vector path): one run per channel.
            g.reduceThenApply(x, statistic: .moments, threading: plan.threading, workspace: workspace, finalize: finalize,
                apply: { block in
                    table.applyRuns(x, y, block, run: shape.spatial, runsPerSegment: size, activation: SiLUActivation.self)
                })
        }
        return SavedStatistics(mean: mean.array, invStd: invStd.array)
    }

    /// The row-engine paths' epilogue: `y = silu(v·(1 + scale) + shift)` per
    /// (n, c) (`silu(v)` without modulation) from GroupNorm's Float32 output v,
    /// rounded once to `E`; elementwise (so independent of the thread count).
    /// For `Float`, `v` is y itself (in place).
    private func siluSweep<E: NormElement>(_ v: UnsafePointer<Float>, _ y: UnsafeMutablePointer<E>,
                                           _ modulation: SiLUModulation) {
        let hw = shape.spatial, channels = shape.c
        if !modulation.isPresent {
            let count = shape.count, chunk = ResidualGradient.chunk
            Parallel.forEach(count: (count + chunk - 1) / chunk, elementsPerItem: chunk, threading: threading) { range in
                for k in range {
                    let o = k * chunk
                    Apply.silu(v + o, y + o, min(chunk, count - o), multiplier: 1, shift: 0)
                }
            }
            return
        }
        if shape.layout == .nchw || hw == 1 {
            // One contiguous run of H·W values per (n, c).
            Parallel.forEach(count: shape.n * channels, elementsPerItem: hw, threading: threading) { range in
                for k in range {
                    Apply.silu(v + k * hw, y + k * hw, hw, multiplier: modulation.multiplier(k),
                               shift: modulation.offset(k))
                }
            }
            return
        }
        // NHWC: rows of C values, (n, c) coefficients along the row.
        let rows = shape.n * hw
        withScratch(of: Float.self, capacity: 2 * shape.n * channels) { buffer in
            let m = buffer.baseAddress!, t = m + shape.n * channels
            for k in 0..<(shape.n * channels) { m[k] = modulation.multiplier(k); t[k] = modulation.offset(k) }
            Parallel.forEach(count: rows, elementsPerItem: channels, threading: threading) { range in
                for row in range {
                    let src = v + row * channels, dst = y + row * channels, n = row / hw
                    let mr = m + n * channels, tr = t + n * channels
                    var c = 0
                    while c + 8 <= channels {
                        E.store8(SiLUActivation.apply(muladd(load8(src + c), load8(mr + c), load8(tr + c))), dst + c)
                        c += 8
                    }
                    while c < channels { dst[c] = E.narrow(SiLUActivation.apply(muladd(src[c], mr[c], tr[c]))); c += 1 }
                }
            }
        }
    }
}

/// `dst[i] = Float(src[i])` (exact), in parallel chunks: the Float32 copy of a
/// 16-bit tensor that the fused kernels' row-engine paths run GroupNorm on.
func widen<E: NormElement>(_ src: UnsafePointer<E>, into dst: UnsafeMutablePointer<Float>, count: Int,
                           threading: Threading) {
    let chunk = ResidualGradient.chunk
    Parallel.forEach(count: (count + chunk - 1) / chunk, elementsPerItem: chunk, threading: threading) { range in
        for k in range {
            let o = k * chunk, n = min(chunk, count - o)
            var i = 0
            while i + 8 <= n { store8(E.load8(src + o + i), dst + o + i); i += 8 }
            while i < n { dst[o + i] = E.widen(src[o + i]); i += 1 }
        }
    }
}

/// `dst[i] = E.narrow(src[i])` (one rounding), in parallel chunks.
func narrow<E: NormElement>(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<E>, count: Int,
                            threading: Threading) {
    let chunk = ResidualGradient.chunk
    Parallel.forEach(count: (count + chunk - 1) / chunk, elementsPerItem: chunk, threading: threading) { range in
        for k in range {
            let o = k * chunk, n = min(chunk, count - o)
            var i = 0
            while i + 8 <= n { E.store8(load8(src + o + i), dst + o + i); i += 8 }
            while i < n { dst[o + i] = E.narrow(src[o + i]); i += 1 }
        }
    }
}

/// The per-(n, c) modulation of GroupNorm + SiLU (either part may be absent).
struct SiLUModulation {
    let scale: UnsafePointer<Float>?
    let shift: UnsafePointer<Float>?

    var isPresent: Bool { scale != nil || shift != nil }

    /// 1 + scale[k] in Float32 (as the composed PyTorch sequence forms it).
    @inline(__always) func multiplier(_ k: Int) -> Float { scale.map { 1 + $0[k] } ?? 1 }
    @inline(__always) func offset(_ k: Int) -> Float { shift?[k] ?? 0 }

    /// z = a·(x − p) + b for channel c of (n, c) slot k (file comment of
    /// `GroupNormalization+SiLU.swift`): γ·m and β·m + shift in Float64, m = 1 + scale.
    /// Without modulation exactly GroupNorm's coefficients.
    @inline(__always)
    func coefficients(mean: Double, invStd: Double, gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
                      channel c: Int, slot k: Int) -> AffineCoefficients {
        let g = Double(gamma?[c] ?? 1), b = Double(beta?[c] ?? 0)
        guard isPresent else { return AffineCoefficients(mean: mean, invStd: invStd, gamma: g, beta: b) }
        let m = Double(multiplier(k))
        return AffineCoefficients(mean: mean, invStd: invStd, gamma: g * m, beta: b * m + Double(offset(k)))
    }
}
