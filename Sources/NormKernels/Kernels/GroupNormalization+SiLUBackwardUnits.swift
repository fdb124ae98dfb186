// GroupNorm + SiLU backward on 16-bit NCHW tensors, one (n, g) unit at a time
// (issues 20 and 21): the gradient g = dy·silu′(z)·m of a unit's channels goes
// into a Float32 scratch of the worker, which stays in its L2, and GroupNorm's
// backward reads it there, instead of a Float32 g tensor as large as x twice
// over (the path of `backwardSiLUElements`).
//
// Why: in 16 bits that tensor was most of the call's memory traffic and took
// the tensors out of the last-level cache. [2, 320, 64, 64] moves x and dy
// (5.2 MB each) and dx (5.2 MB) but wrote and read back a 10.5 MB g twice, so
// the 16-bit backward ran slower than the Float32 one, which writes g into dx
// (docs/data/2026-12-06-gnsilu16/summary.md). Here x and dy are read once from
// memory, x once more from L2, and dx written once: plain GroupNorm's traffic.
//
// Per unit u = n·G + g of `size` channels of H·W values (scalar math):
//
//     for each channel c:  g[c, ·] = dy·silu′(z)·m,  A, B per (n, c)   (`SiLUGradientPass.channel`)
//                          ds[n, c], dsx[n, c] = Σg, Σg·x̂             (`BlockGradients.contiguous`)
//     m₁, m₂ of the unit → a, b, c per channel                         (`channelGroupsPathBackward`'s)
//     for each channel c:  dx = a·g + (b·(x − p) + c), rounded once    (`BlockGradients.apply`)
//
// Bits: every value is the one the two-pass form computes. g is elementwise;
// the channel sums are `BlockGradients.contiguous` over the same H·W values
// (the plan's backward geometry has one block per channel here:
// `backwardLoopsOverUnits`, so the geometry's partial of a channel is that one
// call); the coefficients are the same arithmetic on the same sums; A and B
// are `SiLUGradientPass`'s own per-(n, c) sums. So dx == E.narrow(the Float32
// kernel's dx) bit for bit, and every Float32 gradient is its own, for any
// thread count (tests: `HalfPrecisionTests+GroupNormSiLUChannels.swift`).

import CNormSupport
import Synchronization

extension GroupNormalization {
    /// Whether a 16-bit GroupNorm + SiLU backward on `plan` runs unit by unit:
    /// NCHW with channels of one block each and whole units per worker
    /// (`backwardLoopsOverUnits`), and a unit's Float32 g (size·H·W values) in
    /// half the L2, beside the unit's x that the dx loop reads again.
    static func siluBackwardRunsUnits(_ plan: ChannelGroupsPlan) -> Bool {
        guard SiLUBackwardUnits.enabled, case .rows = plan.backward, plan.backwardLoopsOverUnits else { return false }
        return 4 * plan.groupSize * plan.shape.spatial <= Topology.current.l2CacheBytes / 2
    }

    /// The unit loop (file comment): dx, dγ, dβ and, when `modulationSums` is
    /// given, A and B per (n, c) into it. Tables from `workspace`.
    func siluBackwardUnits<E: NormElement>(
        _ plan: ChannelGroupsPlan, pass: SiLUGradientPass, x: UnsafePointer<E>, dy: UnsafePointer<E>,
        saved: SavedStatistics, gamma scale: UnsafePointer<Float>?, dx: UnsafeMutablePointer<E>?,
        gradScale: UnsafeMutablePointer<Float>?, gradBias: UnsafeMutablePointer<Float>?,
        modulationSums: UnsafeMutablePointer<SIMD2<Double>>?, workspace: Arena
    ) {
        guard case .rows(let geometry) = plan.backward else { return }
        nk_silu_units_note()
        let slots = shape.n * groups, size = shape.c / groups, channels = shape.c, G = groups
        let spatial = shape.spatial
        let mean = saved.mean, invStd = saved.invStd
        let xhat = CoefficientTable(count: slots, in: workspace)
        for s in 0..<slots { xhat[s] = AffineCoefficients(mean: mean[s], invStd: invStd[s]) }
        let channelSums = SlotBuffer(count: shape.n * channels, initial: GradientSums.zero, in: workspace)
        let table: GradientTable? = dx != nil ? GradientTable(count: shape.n * channels, in: workspace) : nil
        // dx streams under the plan's rule, as in `channelGroupsBackward` (never in place).
        let streaming = dx.map { plan.backwardStore.streaming(output: $0, reading: x, dy) } ?? false
        let wantSums = modulationSums != nil

        /// `channelGroupsPathBackward`'s coefficients of unit `slot` from its channel sums.
        func finalize(_ slot: Int) {
            guard let table else { return }
            let n = slot / G, first = (slot - n * G) * size
            unitGradientCoefficients(slot, channelSums.base + n * channels + first, mean: mean, invStd: invStd,
                                     gamma: scale, into: table)
        }

        Parallel.forEach(count: geometry.units, elementsPerItem: geometry.unitCost, threading: threading) { range in
            withScratch(of: Float.self, capacity: size * spatial) { buffer in
                let g = buffer.baseAddress!
                for u in range {
                    // Unit u holds channels (n, g·size + j): slots u·size + j, offset u·size·H·W + j·H·W.
                    let base = u * size, offset = geometry.unitOffset(u)
                    for j in 0..<size {
                        let o = offset + j * spatial, k = base + j, gj = g + j * spatial
                        let s = pass.channel(x + o, dy + o, gj, spatial, k, wantSums: wantSums)
                        modulationSums?[k] = s
                        channelSums[k] = BlockGradients.contiguous(x + o, UnsafePointer(gj), spatial, xhat[u],
                                                                   mask: nil, gamma: nil)
                    }
                    finalize(u)
                    guard let dx, let table else { continue }
                    for j in 0..<size {
                        let o = offset + j * spatial
                        BlockGradients.apply(x: x + o, dy: UnsafePointer(g + j * spatial), mask: nil, gamma: nil,
                                             dx + o, spatial, table[base + j], streaming: streaming)
                    }
                }
            }
        }
        channelGradients(channelSums.base, samples: shape.n, channels: channels,
                         gradScale: gradScale, gradBias: gradBias, threading: threading)
    }
}

/// The unit loop's switch (tests: the two-pass form on the same inputs; the
/// calls are counted per thread by `nk_silu_units_thread_calls`).
enum SiLUBackwardUnits {
    private static let off = Atomic<Bool>(false)

    /// On unless a test turned it off (`set(false)`).
    static var enabled: Bool { !off.load(ordering: .relaxed) }
    static func set(_ on: Bool) { off.store(!on, ordering: .relaxed) }
}
