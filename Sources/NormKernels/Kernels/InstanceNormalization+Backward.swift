extension InstanceNormalization {
    /// Gradients of `forwardTraining` (statistics of each instance) with respect to
    /// the input, γ and β; pass only the gradient buffers you want.
    ///
    /// Per (n, c) with M = H·W values, μ and r = 1/√(σ² + ε) from `saved`:
    /// ```
    /// x̂ = (x − μ)·r
    /// dx    = γ[c]·r·(dy − mean(dy) − x̂·mean(dy·x̂))
    ///       = (γ[c]·r)·dy + b·(x − p) + c′       b = −γ·r²·mean(dy·x̂), c′ = −γ·r·(mean(dy) + t·mean(dy·x̂))
    /// dγ[c] = Σ_n Σ_hw dy·x̂,   dβ[c] = Σ_n Σ_hw dy
    /// ```
    /// Bitwise identical for any thread count (fixed blocks, fixed Float64 trees;
    /// dγ/dβ merge the per-(n, c) sums over n in a fixed tree).
    ///
    /// **Memory passes**: with `gradInput`, reads `x` and `dy` twice and writes dx
    /// once (the second read from cache when an instance — NCHW — or a sample — NHWC —
    /// fits in L2); only `gradScale`/`gradBias`: one pass.
    /// `gradInput` may be `gradOutput` or `input`. Throws before writing anything.
    public func backwardTraining(
        input: UnsafeBufferPointer<Float>, gradOutput: UnsafeBufferPointer<Float>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardTrainingElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale,
                                     gradInput: gradInput, gradScale: gradScale, gradBias: gradBias)
    }

    /// The training backward of every element type: the checks, then the path
    /// specialized for `E`. Out of line, as `GroupNormalization.backwardElements`.
    @inline(never)
    func backwardTrainingElements<E: NormElement>(
        input: UnsafeBufferPointer<E>, gradOutput: UnsafeBufferPointer<E>, saved: SavedStatistics,
        scale: UnsafeBufferPointer<Float>?, gradInput: UnsafeMutableBufferPointer<E>?,
        gradScale: UnsafeMutableBufferPointer<Float>?, gradBias: UnsafeMutableBufferPointer<Float>?
    ) throws {
        let slots = shape.n * shape.c
        try checkGroupedBackward(shape: shape, slots: slots, input: input, gradOutput: gradOutput, saved: saved,
                                 scale: scale, gradInput: gradInput, gradScale: gradScale, gradBias: gradBias)
        let x = try Check.base(input, "input"), dy = try Check.base(gradOutput, "gradOutput")
        let dx = gradInput?.baseAddress
        guard dx != nil || gradScale != nil || gradBias != nil else { return }
        let channels = shape.c, count = Double(shape.spatial)
        let mean = saved.mean, invStd = saved.invStd
        let pool = paths.channelGroups.workspace, workspace = pool.take()
        defer { pool.recycle(workspace) }
        let xhat = CoefficientTable(count: slots, in: workspace)
        // x̂ coefficients: here for the channel-groups engine, per chunk (in parallel) for tiny instances.
        let path = paths.backward
        let perInstance = path == .channelGroups
        if perInstance { for s in 0..<slots { xhat[s] = AffineCoefficients(mean: mean[s], invStd: invStd[s]) } }
        let sums = SlotBuffer(count: slots, initial: GradientSums.zero, in: workspace)
        let table: GradientTable? = dx != nil && perInstance ? GradientTable(count: slots, in: workspace) : nil
        let gamma = scale?.baseAddress
        func coefficients(_ slot: Int, _ s: GradientSums) -> GradientCoefficients {
            let gain = Double(gamma?[slot % channels] ?? 1), r = invStd[slot]
            return GradientCoefficients(mean: mean[slot], invStd: r, a: gain * r,
                                        m1: gain * s.dy / count, m2: gain * s.dyXhat / count)
        }
        switch path {
        case .tinyUnits:
            // 8 instances per vector (`TinyUnits`); each instance's dx right after its sums.
            let length = shape.spatial, base = sums.base
            ChunkSchedule.forEachChunk(units: slots, valuesPerUnit: 2 * length, threading: threading) { chunk in
                for u in chunk { xhat[u] = AffineCoefficients(mean: mean[u], invStd: invStd[u]) }
                for first in stride(from: chunk.lowerBound, to: chunk.upperBound, by: 8) {
                    TinyUnits.gradientSums8(x, dy, first: first, last: chunk.upperBound - 1, length: length, xhat: xhat,
                                            into: base + first)
                    guard let dx else { continue }
                    for u in first..<min(chunk.upperBound, first + 8) {
                        let o = u * length
                        TinyUnits.gradient(x + o, dy + o, dx + o, length, coefficients(u, base[u]))
                    }
                }
            }
        case .tinyChannels:
            // 8 channels per vector, each position one vector load (NHWC small maps).
            tinyChannelsBackward(x, dy, mean: mean, invStd: invStd, dx: dx, sums: sums.base, coefficients: coefficients)
        case .channelGroups:
            channelGroupsBackward(paths.channelGroups, x: x, dy: dy, xhat: xhat, channelSums: sums.base,
                                  table: table, dx: dx, workspace: workspace) { slot, channelSums in
                table?[slot] = coefficients(slot, channelSums[0])
            }
        }
        channelGradients(sums.base, samples: shape.n, channels: channels,
                         gradScale: gradScale?.baseAddress, gradBias: gradBias?.baseAddress, threading: threading)
    }

    /// Gradients of `forwardInference` (running statistics held fixed): this is
    /// `BatchNormalization.backwardInference` with the same shape and ε.
    public func backwardInference(
        input: UnsafeBufferPointer<Float>, gradOutput: UnsafeBufferPointer<Float>,
        running: RunningStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try inference.backwardInference(input: input, gradOutput: gradOutput, running: running, scale: scale,
                                        gradInput: gradInput, gradScale: gradScale, gradBias: gradBias)
    }
}
