extension GroupNormalization {
    /// Gradients of `forward` with respect to the input, γ and β; pass only the
    /// gradient buffers you want.
    ///
    /// Per (n, g) with M = (C/G)·H·W values, μ and r = 1/√(σ² + ε) from `saved`:
    /// ```
    /// x̂ = (x − μ)·r
    /// ds[n, c] = Σ_hw dy,   dsx[n, c] = Σ_hw dy·x̂                      per (n, c)
    /// m₁ = Σ_{c∈g} γ[c]·ds[n, c] / M,   m₂ = Σ_{c∈g} γ[c]·dsx[n, c] / M
    /// dx[n, c, ·] = r·(γ[c]·dy − m₁ − x̂·m₂)
    ///             = (γ[c]·r)·dy + b·(x − p) + c′      b = −r²·m₂, c′ = −r·(m₁ + t·m₂), p = Float(μ), t = −(μ − p)·r
    /// dγ[c] = Σ_n dsx[n, c],   dβ[c] = Σ_n ds[n, c]
    /// ```
    /// (PyTorch's `group_norm_kernel.cpp` form.) Sums are formed per block in
    /// Float32 lanes and merged in Float64 in fixed trees: bitwise identical for
    /// any thread count.
    ///
    /// **Memory passes**: with `gradInput`, reads `x` and `dy` twice (sums, then dx)
    /// and writes dx once; the second read comes from cache when one sample's group
    /// (NCHW) or one sample (NHWC) fits in L2. Only `gradScale`/`gradBias`: one pass.
    /// Feature vectors (H·W = 1) and small maps run on the row engine
    /// (`RowNormalization+Backward.swift`) with per-group statistics; see `GroupNormPlan`.
    ///
    /// **Aliasing**: `gradInput` may be `gradOutput` or `input` (in place); gradient
    /// buffers must not otherwise share memory. Throws before writing anything.
    public func backward(
        input: UnsafeBufferPointer<Float>, gradOutput: UnsafeBufferPointer<Float>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale, gradInput: gradInput,
                             gradScale: gradScale, gradBias: gradBias)
    }

    /// The backward of every element type: the checks, then the path's engine
    /// specialized for `E`. Out of line: each specialization is then one
    /// function, as the Float32 `backward` was.
    @inline(never)
    func backwardElements<E: NormElement>(
        input: UnsafeBufferPointer<E>, gradOutput: UnsafeBufferPointer<E>, saved: SavedStatistics,
        scale: UnsafeBufferPointer<Float>?, gradInput: UnsafeMutableBufferPointer<E>?,
        gradScale: UnsafeMutableBufferPointer<Float>?, gradBias: UnsafeMutableBufferPointer<Float>?
    ) throws {
        let slots = shape.n * groups
        try checkGroupedBackward(shape: shape, slots: slots, input: input, gradOutput: gradOutput, saved: saved,
                                 scale: scale, gradInput: gradInput, gradScale: gradScale, gradBias: gradBias)
        let x = try Check.base(input, "input"), dy = try Check.base(gradOutput, "gradOutput")
        let dx = gradInput?.baseAddress
        guard dx != nil || gradScale != nil || gradBias != nil else { return }
        let gamma = scale?.baseAddress
        switch path {
        case .featureVectors(_, let rows), .groupSegments(_, let rows):
            rowNormalizationBackward(rows, x: x, dy: dy, mean: saved.mean, invStd: saved.invStd, gamma: gamma, dx: dx,
                                     gradScale: gradScale?.baseAddress, gradBias: gradBias?.baseAddress)
        case .expandedAffine(_, let rows):
            expandedAffineBackward(rows, x, dy, saved: saved, gamma: gamma, dx: dx,
                                   gradScale: gradScale?.baseAddress, gradBias: gradBias?.baseAddress)
        case .channelGroups(let plan):
            channelGroupsPathBackward(plan, x, dy, saved: saved, gamma: gamma, dx: dx,
                                      gradScale: gradScale?.baseAddress, gradBias: gradBias?.baseAddress)
        }
    }

    /// The dx coefficients of unit `slot` = n·G + g from its channels' sums
    /// (`channelSums[j]`: channel g·size + j of sample n): the γ-weighted totals
    /// over the unit, Σ γ·dy and Σ γ·dy·x̂ (a fixed tree), then per channel
    /// a = γ·r, m1 = Σ γ·dy / count, m2 = Σ γ·dy·x̂ / count into `table` at n·C + c.
    /// Shared by `channelGroupsPathBackward` and the GroupNorm + SiLU unit loop.
    func unitGradientCoefficients(_ slot: Int, _ channelSums: UnsafePointer<GradientSums>, mean: [Double],
                                  invStd: [Double], gamma scale: UnsafePointer<Float>?, into table: GradientTable) {
        let size = shape.c / groups, count = Double(size * shape.spatial)
        let n = slot / groups, first = (slot - n * groups) * size
        func gain(_ j: Int) -> Double { Double(scale?[first + j] ?? 1) }   // a local func: no closure box per slot
        let total = GradientSums.treeSum(count: size) { j in
            GradientSums(dy: gain(j) * channelSums[j].dy, dyXhat: gain(j) * channelSums[j].dyXhat)
        }
        let r = invStd[slot]
        for j in 0..<size {
            table[n * shape.c + first + j] = GradientCoefficients(
                mean: mean[slot], invStd: r, a: gain(j) * r, m1: total.dy / count, m2: total.dyXhat / count)
        }
    }

    /// The channel-groups path: per-(n, c) sums, then per (n, g) the γ-weighted
    /// sums of its channels and one dx coefficient set per (n, c). dy may have
    /// an element type of its own (GroupNorm + SiLU's 16-bit backward passes its
    /// Float32 g with 16-bit x and dx: `GroupNormalization+SiLUBackward.swift`).
    func channelGroupsPathBackward<E: NormElement, D: NormElement>(
        _ plan: ChannelGroupsPlan, _ x: UnsafePointer<E>, _ dy: UnsafePointer<D>, saved: SavedStatistics,
        gamma scale: UnsafePointer<Float>?, dx: UnsafeMutablePointer<E>?,
        gradScale: UnsafeMutablePointer<Float>?, gradBias: UnsafeMutablePointer<Float>?
    ) {
        let slots = shape.n * groups, channels = shape.c
        let mean = saved.mean, invStd = saved.invStd
        let workspace = plan.workspace.take()
        defer { plan.workspace.recycle(workspace) }
        let xhat = CoefficientTable(count: slots, in: workspace)
        for s in 0..<slots { xhat[s] = AffineCoefficients(mean: mean[s], invStd: invStd[s]) }
        let sums = SlotBuffer(count: shape.n * channels, initial: GradientSums.zero, in: workspace)
        let table: GradientTable? = dx != nil ? GradientTable(count: shape.n * channels, in: workspace) : nil
        channelGroupsBackward(plan, x: x, dy: dy, xhat: xhat, channelSums: sums.base, table: table, dx: dx,
                              workspace: workspace) { slot, channelSums in
            guard let table else { return }
            unitGradientCoefficients(slot, channelSums, mean: mean, invStd: invStd, gamma: scale, into: table)
        }
        channelGradients(sums.base, samples: shape.n, channels: channels,
                         gradScale: gradScale, gradBias: gradBias, threading: threading)
    }

    /// NCHW with small H·W: each sample is one row of C·H·W values in G contiguous
    /// groups, γ expanded to every position; the row engine's backward then gives
    /// dx and per-position dγ, dβ sums (Float64, never rounded to Float32: a
    /// position's sum may pass Float32's range where its channel's does not), which
    /// are summed over each channel's H·W positions in order (Float64).
    private func expandedAffineBackward<E: NormElement>(
        _ plan: RowBackwardPlan, _ x: UnsafePointer<E>, _ dy: UnsafePointer<E>, saved: SavedStatistics, gamma: UnsafePointer<Float>?,
        dx: UnsafeMutablePointer<E>?, gradScale: UnsafeMutablePointer<Float>?, gradBias: UnsafeMutablePointer<Float>?
    ) {
        let hw = shape.spatial, features = shape.c * hw
        let workspace = plan.workspace.take()
        defer { plan.workspace.recycle(workspace) }
        let affine = ExpandedAffine(gamma: gamma, beta: nil, channels: shape.c, spatial: hw, in: workspace)
        let positions: UnsafeMutablePointer<GradientSums>? = gradScale != nil || gradBias != nil
            ? workspace.take(GradientSums.self, count: features) : nil
        rowNormalizationBackward(
            plan, x: x, dy: dy, mean: saved.mean, invStd: saved.invStd, gamma: affine.gamma.map { UnsafePointer($0) },
            dx: dx, gradScale: nil, gradBias: nil, columnTotals: positions)
        guard let positions else { return }
        for c in 0..<shape.c {
            var sum = GradientSums.zero
            for i in 0..<hw { sum = sum + positions[c * hw + i] }
            gradScale?[c] = Float(sum.dyXhat)
            gradBias?[c] = Float(sum.dy)
        }
    }
}
