// Moments of blocks whose runs are shorter than 8 values (BatchNorm NCHW on
// planes of 1–7 values, e.g. 2×2: a channel's block is N runs of H·W values,
// C·H·W apart), eight units at a time, one unit per Float64 lane.
//
// Why: such a block has no full 8-value chunk, so `segmented` takes every value
// through its Float64 one-by-one stage (stage 3): a Welford step whose division
// waits for the previous step's mean (≈ 20 cycles per value on Zen 4). BatchNorm
// training [256, 512, 2, 2] spent ~3 ms of 3.09 ms there on one thread
// (docs/data/2026-12-07-gnsmall/summary.md, section 6). Eight units' steps are
// independent, so they go as one SIMD8<Double> step: the same divisions, eight
// at a time.
//
// Same bits: each lane performs, in the same order, the very Float64 operations
// `segmented` performs for its unit's block when runs are shorter than 8,
//
//     K = x[0] (`blockPivot`);  for each run, each value:
//         n += 1;  v = x − K;  d = v − mean;  mean += d/n;  M2 += d·(v − mean)
//     (`Moments.welfordAdd`), then mean += K;
//
// (stages 1 and 2 never run; the empty stage merged with stage 3 is stage 3).
// IEEE operations on Float64 lanes round exactly as the scalar ones, and Swift
// contracts nothing into fused multiply-adds. A lane whose mean or M2 is not
// finite is redone by `segmented` itself (its Float64 fallback), as before.
// The partial of every block is therefore unchanged, and so is every merge:
// results keep their bits at every thread count (the split strategy, which
// reduces block by block, gives the same partials).

import CNormSupport

extension BlockMoments {
    /// Units reduced together by `tinyRunLanes` (one per Float64 lane).
    static let tinyRunUnits = 8

    /// Run steps between a prefetch and the read (`tinyRunLanes`): a step of eight
    /// lanes of 4 values takes ~30 ns, memory's latency ~100 ns and more.
    static let prefetchedRuns = 16

    /// Whether blocks of runs of `length` values go through `tinyRunLanes`.
    @inline(__always)
    static func tinyRuns(_ length: Int) -> Bool { length < 8 }

    /// The moments of `units` (1…8) blocks, block j at `p + j·laneStride`, each
    /// `segments` runs of `length` (< 8) values `stride` apart, into
    /// `out[j·outStride]`: each bitwise `segmented(p + j·laneStride, length:
    /// length, stride: stride, segments: segments)`. Lanes past `units` repeat
    /// the last block (nothing is read outside the blocks given).
    ///
    /// `prefetch`: each run step first prefetches the runs `prefetchedRuns`
    /// ahead (every line the eight lanes span there). Runs C·H·W apart are one
    /// or two lines each, 8 KiB and more apart, across pages, which the hardware
    /// prefetchers do not follow: without it BatchNorm training [4096, 512, 2, 2]
    /// (32 MB, past the cache) took 36 ms on one thread, ~2 GB/s of x.
    /// Hints only (nothing faults past the end); the arithmetic is the same.
    static func tinyRunLanes<E: NormElement>(
        _ p: UnsafePointer<E>, laneStride: Int, units: Int, length: Int, stride: Int, segments: Int,
        prefetch: Bool = false, into out: UnsafeMutablePointer<Moments>, outStride: Int
    ) {
        precondition(tinyRuns(length) && (1...tinyRunUnits).contains(units))
        nk_tiny_moments_note()
        let o = pointwiseMin(SIMD8<Int>(0, 1, 2, 3, 4, 5, 6, 7), SIMD8(repeating: units - 1)) &* laneStride
        /// One value of each lane's block, at element `i` from the lane's start.
        @inline(__always) func lanes(_ q: UnsafePointer<E>) -> D8 {
            D8(Double(E.widen(q[o[0]])), Double(E.widen(q[o[1]])), Double(E.widen(q[o[2]])), Double(E.widen(q[o[3]])),
               Double(E.widen(q[o[4]])), Double(E.widen(q[o[5]])), Double(E.widen(q[o[6]])), Double(E.widen(q[o[7]])))
        }
        // K: each block's first value (`blockPivot` for runs shorter than 8).
        let k = lanes(p)
        var mean = D8(), m2 = D8(), count = 0.0
        // Elements the lanes span from a run's start, and the prefetch distance.
        let span = o[7] + length, ahead = prefetchedRuns * stride, line = 64 / MemoryLayout<E>.stride
        var q = p
        for _ in 0..<segments {
            if prefetch {
                var l = 0
                while l < span { nk_prefetch(q + ahead + l); l += line }
                nk_prefetch(q + ahead + span - 1)
            }
            // scalar math per lane (`welfordAdd` on v = x − K):
            // n += 1;  d = v − mean;  mean += d/n;  M2 += d·(v − mean)
            for i in 0..<length {
                count += 1
                let v = lanes(q + i) - k
                let d = v - mean
                mean += d / D8(repeating: count)
                m2 += d * (v - mean)
            }
            q += stride
        }
        mean += k
        for j in 0..<units {
            let m = Moments(count: count, mean: mean[j], m2: m2[j])
            out[j * outStride] = m.mean.isFinite && m.m2.isFinite
                ? m : segmented(p + j * laneStride, length: length, stride: stride, segments: segments)
        }
    }
}
