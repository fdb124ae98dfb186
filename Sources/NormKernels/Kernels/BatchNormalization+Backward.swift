import CNormSupport

extension BatchNormalization {
    /// Gradients of `forwardTraining` through the batch statistics, with respect to
    /// the input, γ and β; pass only the gradient buffers you want.
    ///
    /// Per channel c with M = N·H·W values, μ and r = 1/√(σ²_B + ε) from `saved`:
    /// ```
    /// g  = dy, or 0 where the forward output y ≤ 0 (fusedReLU; y passed as `output`)
    /// x̂  = (x − μ)·r  =  (x − p)·r + t          p = Float(μ), t = −(μ − p)·r
    /// dβ[c] = Σ g,   dγ[c] = Σ g·x̂
    /// dx = γ·r·(g − dβ/M − x̂·dγ/M)
    ///    = (γ·r)·g + b·(x − p) + c′              b = −γ·r²·dγ/M,  c′ = −γ·r·(dβ + t·dγ)/M
    /// ```
    /// The sums are formed per block in Float32 lanes, converted to Float64 and
    /// merged per channel in a fixed tree (NCHW: the forward's blocks of each
    /// channel; NHWC/[N, D]: per-column partials per block of rows, merged down the
    /// row blocks), so every gradient is bitwise identical for any thread count;
    /// dγ and dβ are exactly those per-channel sums.
    ///
    /// **Memory passes** (T = N·C·H·W values):
    /// - `gradInput` requested: reads `x` and `dy` (and `output` with fusedReLU) twice
    ///   and writes dx once; the second read comes from cache when a channel (NCHW)
    ///   or a block of rows (NHWC) fits in L2.
    /// - only `gradScale`/`gradBias`: one pass.
    ///
    /// **Aliasing**: `gradInput` may be `gradOutput`, `input` or `output` (in place);
    /// gradient buffers must not otherwise share memory with each other or the inputs.
    /// Throws before writing anything on a wrong length (input, gradOutput, output,
    /// saved statistics, scale, any gradient buffer), a missing `output` with
    /// fusedReLU, or an overlap.
    public func backwardTraining(
        input: UnsafeBufferPointer<Float>, gradOutput: UnsafeBufferPointer<Float>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        output: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try Check.saved(saved.mean, shape.c, "saved.mean")
        try Check.saved(saved.invStd, shape.c, "saved.invStd")
        let mask = try validateBackward(input, gradOutput, scale, output, gradInput, gradScale, gradBias)
        let x = try Check.base(input, "input"), dy = try Check.base(gradOutput, "gradOutput")
        trainingGradients(x: x, dy: dy, mask: mask, saved: saved, scale: scale, dx: gradInput?.baseAddress,
                          gradScale: gradScale, gradBias: gradBias)
    }

    /// `backwardTraining` after its checks: g = dy, masked where `mask` ≤ 0 when
    /// given. BatchNorm + add + ReLU passes `gradIdentity` with the mask: g is
    /// written there by the sums pass (see `channelPasses`).
    func trainingGradients<E: NormElement>(
        x: UnsafePointer<E>, dy: UnsafePointer<E>, mask: UnsafePointer<E>?, saved: SavedStatistics,
        scale: UnsafeBufferPointer<Float>?, dx: UnsafeMutablePointer<E>?,
        gradScale: UnsafeMutableBufferPointer<Float>?, gradBias: UnsafeMutableBufferPointer<Float>?,
        gradIdentity: UnsafeMutablePointer<E>? = nil
    ) {
        guard dx != nil || gradScale != nil || gradBias != nil else { return }
        let channels = shape.c, count = Double(shape.n * shape.spatial)
        let mean = saved.mean, invStd = saved.invStd
        let workspace = paths.workspace.take()
        defer { paths.workspace.recycle(workspace) }
        let xhat = CoefficientTable(count: channels, in: workspace)
        for c in 0..<channels { xhat[c] = AffineCoefficients(mean: mean[c], invStd: invStd[c]) }
        let sums = SlotBuffer(count: channels, initial: GradientSums.zero, in: workspace)
        let table: GradientTable? = dx != nil ? GradientTable(count: channels, in: workspace) : nil
        channelPasses(x: x, dy: dy, mask: mask, xhat: xhat, reduce: true, table: table, dx: dx, dxReadsInput: true,
                      workspace: workspace, gradIdentity: gradIdentity) { c, s in
            sums[c] = s
            if let table {
                let gain = Double(scale?[c] ?? 1), r = invStd[c]
                table[c] = GradientCoefficients(mean: mean[c], invStd: r, a: gain * r,
                                                m1: gain * s.dy / count, m2: gain * s.dyXhat / count)
            }
        }
        for c in 0..<channels {
            gradScale?[c] = Float(sums[c].dyXhat)
            gradBias?[c] = Float(sums[c].dy)
        }
    }

    /// Gradients of `forwardInference`: the running statistics are constants.
    /// ```
    /// r = 1/√(running_var + ε),   x̂ = (x − running_mean)·r,   g = dy (0 where y ≤ 0 with fusedReLU)
    /// dx = γ·r·g,   dγ[c] = Σ g·x̂,   dβ[c] = Σ g
    /// ```
    /// **Memory passes**: dx alone reads `dy` once (x is not needed) and writes dx
    /// once; dγ/dβ read `x` and `dy` once; all three read `dy` twice and `x` once.
    /// Same aliasing rules and checks as `backwardTraining`.
    public func backwardInference(
        input: UnsafeBufferPointer<Float>, gradOutput: UnsafeBufferPointer<Float>,
        running: RunningStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        output: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        let (runningMean, runningVariance) = try running.snapshot(expectedChannels: shape.c)
        let mask = try validateBackward(input, gradOutput, scale, output, gradInput, gradScale, gradBias)
        let x = try Check.base(input, "input"), dy = try Check.base(gradOutput, "gradOutput")
        inferenceGradients(x: x, dy: dy, mask: mask, runningMean: runningMean, runningVariance: runningVariance,
                           scale: scale, dx: gradInput?.baseAddress, gradScale: gradScale, gradBias: gradBias)
    }

    /// `backwardInference` after its checks, with the snapshot of the running statistics.
    func inferenceGradients<E: NormElement>(
        x: UnsafePointer<E>, dy: UnsafePointer<E>, mask: UnsafePointer<E>?,
        runningMean: [Float], runningVariance: [Float],
        scale: UnsafeBufferPointer<Float>?, dx: UnsafeMutablePointer<E>?,
        gradScale: UnsafeMutableBufferPointer<Float>?, gradBias: UnsafeMutableBufferPointer<Float>?,
        gradIdentity: UnsafeMutablePointer<E>? = nil
    ) {
        let needSums = gradScale != nil || gradBias != nil
        guard dx != nil || needSums else { return }
        let channels = shape.c
        let workspace = paths.workspace.take()
        defer { paths.workspace.recycle(workspace) }
        let xhat = CoefficientTable(count: channels, in: workspace)
        let table: GradientTable? = dx != nil ? GradientTable(count: channels, in: workspace) : nil
        for c in 0..<channels {
            let r = inverseStandardDeviation(Double(runningVariance[c]), epsilon)
            xhat[c] = AffineCoefficients(mean: Double(runningMean[c]), invStd: r)
            table?[c] = GradientCoefficients(pivot: 0, a: Float(Double(scale?[c] ?? 1) * r), b: 0, c: 0)
        }
        let sums = SlotBuffer(count: channels, initial: GradientSums.zero, in: workspace)
        channelPasses(x: x, dy: dy, mask: mask, xhat: xhat, reduce: needSums, table: table, dx: dx,
                      dxReadsInput: false, workspace: workspace, gradIdentity: gradIdentity) { c, s in sums[c] = s }
        for c in 0..<channels {
            gradScale?[c] = Float(sums[c].dyXhat)
            gradBias?[c] = Float(sums[c].dy)
        }
    }

    /// Checks shared by both backward passes; returns the ReLU mask (the forward
    /// output) when `fusedReLU`.
    func validateBackward<E: NormElement>(
        _ input: UnsafeBufferPointer<E>, _ gradOutput: UnsafeBufferPointer<E>,
        _ scale: UnsafeBufferPointer<Float>?, _ output: UnsafeBufferPointer<E>?,
        _ gradInput: UnsafeMutableBufferPointer<E>?, _ gradScale: UnsafeMutableBufferPointer<Float>?,
        _ gradBias: UnsafeMutableBufferPointer<Float>?, gradIdentity: UnsafeMutableBufferPointer<E>? = nil
    ) throws -> UnsafePointer<E>? {
        try Check.length(input.count, shape.count, "input")
        try Check.length(gradOutput.count, shape.count, "gradOutput")
        if fusedReLU, output == nil {
            throw NormError.invalidArgument(argument: "output",
                                            reason: "fusedReLU backward needs the forward output (the ReLU mask)")
        }
        // Checked whenever it is passed, used only with fusedReLU.
        try Check.length(output, shape.count, "output")
        try Check.length(scale, shape.c, "scale (γ)")
        try Check.length(gradInput, shape.count, "gradInput")
        try Check.length(gradIdentity, shape.count, "gradIdentity")
        try Check.length(gradScale, shape.c, "gradScale (dγ)")
        try Check.length(gradBias, shape.c, "gradBias (dβ)")
        let y = fusedReLU ? output : nil
        try Check.buffers(
            writes: [("gradInput", MemorySpan(gradInput)), ("gradScale", MemorySpan(gradScale)), ("gradBias", MemorySpan(gradBias)),
                     ("gradIdentity", MemorySpan(gradIdentity))],
            reads: [("input", MemorySpan(input)), ("gradOutput", MemorySpan(gradOutput)), ("output", MemorySpan(output)),
                     ("scale (γ)", MemorySpan(scale))],
            inPlace: [("gradInput", "input"), ("gradInput", "gradOutput"), ("gradInput", "output"),
                      ("gradIdentity", "gradOutput")])
        return try y.map { try Check.base($0, "output") }
    }

    /// The passes over the data: per-channel sums (when `reduce`; `finalize(c, sums)`
    /// runs once per channel), then dx from `table` (when `dx`; without
    /// `dxReadsInput` dx = a·g, x unread). NCHW uses the rows geometry (unit =
    /// channel, N segments of H·W), NHWC/[N, D] the columns geometry; their
    /// partials come from `workspace`. The output passes are local functions
    /// passed as non-escaping closures (no context on the heap).
    /// (Internal: `SynchronizedBatchNormalization` calls it twice, sums then dx,
    /// with the sums exchanged between processes in between.)
    ///
    /// `gradIdentity` (BatchNorm + add (+ ReLU), with `reduce`): the sums pass
    /// also writes g = dy (masked where `mask`) into it, block by block, and the
    /// dx pass reads g from there without the mask: x, dy (and y) read once and g
    /// written in one pass, then x and g (often from cache), instead of a
    /// separate masking or copying pass over dy. The same g in the same order:
    /// the same bits. NCHW runs and short runs store g inside the sums loop; NHWC
    /// blocks mask (or copy) each `flushRows` rows just before summing them (they
    /// stay in L1/L2).
    func channelPasses<E: NormElement>(
        x: UnsafePointer<E>, dy: UnsafePointer<E>, mask: UnsafePointer<E>?,
        xhat: CoefficientTable, reduce: Bool, table: GradientTable?, dx: UnsafeMutablePointer<E>?,
        dxReadsInput: Bool, workspace: Arena, gradIdentity: UnsafeMutablePointer<E>? = nil,
        finalize: (Int, GradientSums) -> Void
    ) {
        precondition(gradIdentity == nil || reduce, "channelPasses: g is stored by the sums pass")
        // What the dx pass reads: g once the sums pass has stored it.
        let dyForDx = gradIdentity.map { UnsafePointer($0) } ?? dy
        let maskForDx = gradIdentity == nil ? mask : nil
        let xForDx: UnsafePointer<E>? = dxReadsInput ? x : nil
        let channels = shape.c
        let streaming = dx.map { paths.backward.streaming(output: $0, reading: x, dy, mask) } ?? false
        switch paths.path {
        case .columns(let g):
            func apply(_: Int, _ first: Int, _ rows: Int) {
                let o = first * channels
                BlockGradients.applyColumns(x: xForDx.map { $0 + o }, dy: dyForDx + o, mask: maskForDx.map { $0 + o }, dx! + o,
                                            rows: rows, columns: channels, stride: channels, table: table!, slot: 0,
                                            streaming: streaming)
            }
            guard reduce else {
                if dx != nil { g.apply(threading: threading, apply) }
                return
            }
            g.reduceThenApply(
                threading: threading, workspace: workspace,
                reduce: { _, first, rows, out in
                    let o = first * channels
                    BlockGradients.columns(
                        x + o, dy + o, mask: mask.map { $0 + o }, rows: rows, columns: channels, stride: channels,
                        pivot: xhat.pivot, scale: xhat.scale, shift: xhat.shift, into: out,
                        store: gradIdentity.map { $0 + o })
                },
                finalize: { _, range, sums in for c in range { finalize(c, sums[c]) } },
                writesOutput: dx != nil, apply: apply)
        case .shortRuns:
            shortRunPasses(x: x, dy: dy, mask: mask, xForDx: xForDx, xhat: xhat, reduce: reduce, table: table,
                           dx: dx, streaming: streaming, workspace: workspace, gradIdentity: gradIdentity,
                           finalize: finalize)
        case .channelRuns(let g):   // the forward's blocks
            func apply(_ b: RowBlock) {
                BlockGradients.apply(x: xForDx.map { $0 + b.offset }, dy: dyForDx + b.offset,
                                     mask: maskForDx.map { $0 + b.offset },
                                     gamma: nil, dx! + b.offset, b.count, table![b.unit], streaming: streaming)
            }
            guard reduce else {
                if dx != nil { g.apply(threading: threading, apply) }
                return
            }
            g.reduceThenApply(
                threading: threading, workspace: workspace,
                reduce: { b in
                    BlockGradients.segmented(x + b.offset, dy + b.offset, length: b.count, stride: g.segmentStride,
                                             segments: b.segmentCount, xhat[b.unit],
                                             mask: mask.map { $0 + b.offset }, gamma: nil, following: b.following,
                                             store: gradIdentity.map { $0 + b.offset })
                },
                finalize: { c, parts in finalize(c, GradientSums.treeSum(parts)) },
                writesOutput: dx != nil, apply: apply)
        }
    }
}
