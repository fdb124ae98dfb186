/// Which dγ and dβ a synchronized backward writes.
public enum ParameterGradients: Sendable, Hashable {
    /// Sums over this rank's values only, as PyTorch's `SyncBatchNorm` returns
    /// them: use with data-parallel training that reduces parameter gradients
    /// across ranks itself (DDP).
    case local
    /// Sums over all ranks' values (the same on every rank): the gradients of
    /// single-process BatchNorm on the concatenated batch.
    case global
}

extension SynchronizedBatchNormalization {
    /// Gradients of `forwardTraining` through the statistics of all ranks.
    ///
    /// Per channel c, with M = Σᵣ Mᵣ values over all ranks and μ, r = 1/σ from
    /// `saved` (the synchronized forward's, equal on every rank):
    /// ```
    /// g = dy (0 where y ≤ 0 with fusedReLU),   x̂ = (x − μ)·r
    /// rank r:     (Mᵣ, Σᵣ g, Σᵣ g·x̂)[c] with BatchNorm's blocks and tree   (Float64)
    /// exchange:   every rank receives every rank's sums                   2C + 1 values + 1 header
    /// every rank: dβ = Σ g, dγ = Σ g·x̂ summed over the ranks in the fixed tree over rank order
    ///             dx = γ·r·(g − dβ/M − x̂·dγ/M)   on this rank's values
    /// ```
    /// `gradScale`/`gradBias` receive the global sums or this rank's
    /// (`parameterGradients`). Every rank contributes its sums even when it asks
    /// for no gradient (the others need them).
    ///
    /// Collective; same buffer rules as ``BatchNormalization``'s `backwardTraining`
    /// (in place allowed: `gradInput` may be `input`, `gradOutput` or `output`).
    /// Throws on every rank, before anything is written on any rank, if a rank's
    /// arguments are wrong or the exchange fails.
    public func backwardTraining(
        input: UnsafeBufferPointer<Float>, gradOutput: UnsafeBufferPointer<Float>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        output: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil,
        parameterGradients: ParameterGradients
    ) throws {
        try backwardElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale, output: output,
                             gradInput: gradInput, gradScale: gradScale, gradBias: gradBias,
                             parameterGradients: parameterGradients)
    }

    /// `backwardTraining` for any element type: x, dy (and y) widened exactly,
    /// dx rounded once to `E`; dγ, dβ and the exchanged sums as in Float32.
    func backwardElements<E: NormElement>(
        input: UnsafeBufferPointer<E>, gradOutput: UnsafeBufferPointer<E>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>?, output: UnsafeBufferPointer<E>?,
        gradInput: UnsafeMutableBufferPointer<E>?, gradScale: UnsafeMutableBufferPointer<Float>?,
        gradBias: UnsafeMutableBufferPointer<Float>?, parameterGradients: ParameterGradients
    ) throws {
        let c = shape.c
        var payload = [Double](repeating: 0, count: stepLength)
        var localError: (any Error)?
        var mask: UnsafePointer<E>?
        let workspace = self.workspace.take()
        defer { self.workspace.recycle(workspace) }
        let xhat = CoefficientTable(count: c, in: workspace)
        do {
            try Check.saved(saved.mean, c, "saved.mean")
            try Check.saved(saved.invStd, c, "saved.invStd")
            if let local {
                mask = try local.validateBackward(input, gradOutput, scale, output, gradInput, gradScale, gradBias)
                let x = try Check.base(input, "input"), dy = try Check.base(gradOutput, "gradOutput")
                for ch in 0..<c { xhat[ch] = AffineCoefficients(mean: saved.mean[ch], invStd: saved.invStd[ch]) }
                let nodes = backwardPlan.nodes[exchange.rank]
                payload.withUnsafeMutableBufferPointer { slots in
                    let p = slots.baseAddress!
                    if nodes.count == 1 {
                        // One subtree (or the ranks are the leaves): BatchNorm's own sums.
                        p[1] = Double(shape.n * shape.spatial)
                        // Channels may finish on different workers: each writes its own two slots.
                        local.channelPasses(x: x, dy: dy, mask: mask, xhat: xhat, reduce: true, table: nil, dx: nil,
                                            dxReadsInput: true, workspace: workspace) { ch, sums in
                            p[2 + ch] = sums.dy
                            p[2 + c + ch] = sums.dyXhat
                        }
                    } else {
                        let shift = backwardPlan.leafStart[exchange.rank]
                        local.nodeGradientSums(x: x, dy: dy, mask: mask, xhat: xhat,
                                               nodes: nodes.map { ($0.lowerBound - shift)..<($0.upperBound - shift) },
                                               counts: backwardPlan.nodeCounts[exchange.rank], workspace: workspace,
                                               into: p + 1)
                    }
                }
            } else {
                try validateEmptyBackward(input, gradOutput, scale, output, gradInput, gradScale, gradBias)
            }
        } catch { localError = error }
        let gathered = try Self.exchangeStep(.backward, &payload, localError: localError, exchange: exchange)

        let global = merged(gathered, backwardPlan, workspace: workspace) { _, dy, dyXhat in
            GradientSums(dy: dy, dyXhat: dyXhat)
        }
        let count = Double(backwardPlan.nodeCounts.joined().reduce(0, +))
        if let local, let dx = gradInput?.baseAddress {
            let x = try Check.base(input, "input"), dy = try Check.base(gradOutput, "gradOutput")
            let table = GradientTable(count: c, in: workspace)
            for ch in 0..<c {
                let gain = Double(scale?[ch] ?? 1), r = saved.invStd[ch], s = global[ch]
                table[ch] = GradientCoefficients(mean: saved.mean[ch], invStd: r, a: gain * r,
                                                 m1: gain * s.dy / count, m2: gain * s.dyXhat / count)
            }
            local.gradientInputPass(x: x, dy: dy, mask: mask, table: table, dx: dx)
        }
        // This rank's own sums: its one node, or its nodes summed in order.
        let own = parameterGradients == .global ? [] : (0..<c).map { ch in
            (1..<max(1, backwardPlan.nodes[exchange.rank].count)).reduce(
                GradientSums(dy: payload[2 + ch], dyXhat: payload[2 + c + ch])) { sum, k in
                let o = 1 + k * (2 * c + 1)
                return sum + GradientSums(dy: payload[o + 1 + ch], dyXhat: payload[o + 1 + c + ch])
            }
        }
        for ch in 0..<c {
            let s = parameterGradients == .global ? global[ch] : own[ch]
            gradScale?[ch] = Float(s.dyXhat)
            gradBias?[ch] = Float(s.dy)
        }
    }

    /// The checks of `backwardTraining` on a rank with no samples: every
    /// per-value buffer empty, per-channel ones of C values, no gradient sharing
    /// memory with γ or with another gradient.
    private func validateEmptyBackward<E: NormElement>(
        _ input: UnsafeBufferPointer<E>, _ gradOutput: UnsafeBufferPointer<E>,
        _ scale: UnsafeBufferPointer<Float>?, _ output: UnsafeBufferPointer<E>?,
        _ gradInput: UnsafeMutableBufferPointer<E>?, _ gradScale: UnsafeMutableBufferPointer<Float>?,
        _ gradBias: UnsafeMutableBufferPointer<Float>?
    ) throws {
        try Check.length(input.count, 0, "input")
        try Check.length(gradOutput.count, 0, "gradOutput")
        if fusedReLU, output == nil {
            throw NormError.invalidArgument(argument: "output",
                                            reason: "fusedReLU backward needs the forward output (the ReLU mask)")
        }
        try Check.length(output, 0, "output")
        try Check.length(scale, shape.c, "scale (γ)")
        try Check.length(gradInput, 0, "gradInput")
        try Check.length(gradScale, shape.c, "gradScale (dγ)")
        try Check.length(gradBias, shape.c, "gradBias (dβ)")
        try Check.buffers(writes: [("gradScale", MemorySpan(gradScale)), ("gradBias", MemorySpan(gradBias))],
                          reads: [("scale (γ)", MemorySpan(scale))])
    }
}
