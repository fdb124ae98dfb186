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
    /// With H·W = 1 (feature vectors) the layouts coincide and LayerNorm's engine
    /// runs with per-group statistics (blocks of rows, as `LayerNormalization.backward`).
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
        let slots = shape.n * groups
        try checkGroupedBackward(shape: shape, slots: slots, input: input, gradOutput: gradOutput, saved: saved,
                                 scale: scale, gradInput: gradInput, gradScale: gradScale, gradBias: gradBias)
        let x = try Check.base(input, "input"), dy = try Check.base(gradOutput, "gradOutput")
        let dx = gradInput?.baseAddress
        guard dx != nil || gradScale != nil || gradBias != nil else { return }
        if shape.spatial == 1 {
            // Feature vectors ([N, C], H·W = 1): each sample is one row of C values in
            // G contiguous groups, so LayerNorm's backward engine runs it with per-group
            // statistics (as the forward runs `normalizeRows`). The per-(n, c) path
            // below would keep ~48 bytes of side tables per 12 bytes of data here.
            rowNormalizationBackward(
                rows: shape.n, features: shape.c, x: x, dy: dy, groups: groups, mean: saved.mean, invStd: saved.invStd,
                centered: true, gamma: scale?.baseAddress, dx: dx,
                gradScale: gradScale?.baseAddress, gradBias: gradBias?.baseAddress, threading: threading)
            return
        }
        switch smallMapPath {
        case .expandedAffine:
            expandedAffineBackward(x, dy, saved: saved, gamma: scale?.baseAddress, dx: dx,
                                   gradScale: gradScale?.baseAddress, gradBias: gradBias?.baseAddress)
            return
        case .groupSegments:
            // Rows are the N·H·W positions of C values; H·W consecutive rows (one
            // sample) share each group's statistics, and γ, dγ, dβ are per column.
            rowNormalizationBackward(
                rows: shape.n * shape.spatial, features: shape.c, x: x, dy: dy, groups: groups,
                rowsPerSlot: shape.spatial, mean: saved.mean, invStd: saved.invStd, centered: true,
                gamma: scale?.baseAddress, dx: dx,
                gradScale: gradScale?.baseAddress, gradBias: gradBias?.baseAddress, threading: threading)
            return
        case nil:
            break
        }
        let size = shape.c / groups, channels = shape.c, G = groups
        let count = Double(size * shape.spatial)
        let mean = saved.mean, invStd = saved.invStd
        let xhat = CoefficientTable(count: slots)
        defer { xhat.deallocate() }
        for s in 0..<slots { xhat[s] = AffineCoefficients(mean: mean[s], invStd: invStd[s]) }
        let sums = SlotBuffer(count: shape.n * channels, initial: GradientSums.zero)
        defer { sums.deallocate() }
        let table: GradientTable? = dx != nil ? GradientTable(count: shape.n * channels) : nil
        defer { table?.deallocate() }
        groupedBackward(shape: shape, groupSize: size, x: x, dy: dy, xhat: xhat, channelSums: sums.base,
                        table: table, dx: dx, threading: threading) { slot, channelSums in
            guard let table else { return }
            let n = slot / G, first = (slot - n * G) * size
            func gain(_ j: Int) -> Double { Double(scale?[first + j] ?? 1) }   // a local func: no closure box per slot
            let total = GradientSums.treeSum(count: size) { j in
                GradientSums(dy: gain(j) * channelSums[j].dy, dyXhat: gain(j) * channelSums[j].dyXhat)
            }
            let r = invStd[slot]
            for j in 0..<size {
                table[n * channels + first + j] = GradientCoefficients(
                    mean: mean[slot], invStd: r, a: gain(j) * r, m1: total.dy / count, m2: total.dyXhat / count)
            }
        }
        channelGradients(sums.base, samples: shape.n, channels: channels,
                         gradScale: gradScale?.baseAddress, gradBias: gradBias?.baseAddress, threading: threading)
    }

    /// NCHW with small H·W: each sample is one row of C·H·W values in G contiguous
    /// groups, γ expanded to every position; LayerNorm's backward engine then gives
    /// dx and per-position dγ, dβ sums (Float64, never rounded to Float32: a
    /// position's sum may pass Float32's range where its channel's does not), which
    /// are summed over each channel's H·W positions in order (Float64).
    private func expandedAffineBackward(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, saved: SavedStatistics, gamma: UnsafePointer<Float>?,
        dx: UnsafeMutablePointer<Float>?, gradScale: UnsafeMutablePointer<Float>?, gradBias: UnsafeMutablePointer<Float>?
    ) {
        let hw = shape.spatial, features = shape.c * hw
        let affine = ExpandedAffine(gamma: gamma, beta: nil, channels: shape.c, spatial: hw)
        let positions: UnsafeMutablePointer<GradientSums>? = gradScale != nil || gradBias != nil ? .allocate(capacity: features) : nil
        defer { affine.deallocate(); positions?.deallocate() }
        rowNormalizationBackward(
            rows: shape.n, features: features, x: x, dy: dy, groups: groups, mean: saved.mean, invStd: saved.invStd,
            centered: true, gamma: affine.gamma.map { UnsafePointer($0) }, dx: dx,
            gradScale: nil, gradBias: nil, columnTotals: positions, threading: threading)
        guard let positions else { return }
        for c in 0..<shape.c {
            var sum = GradientSums.zero
            for i in 0..<hw { sum = sum + positions[c * hw + i] }
            gradScale?[c] = Float(sum.dyXhat)
            gradBias?[c] = Float(sum.dy)
        }
    }
}
