// Moments of one block of contiguous rows (the rows geometry: LayerNorm, and
// BatchNorm/InstanceNorm/GroupNorm NCHW): count, mean and M2 of a run, or of
// several runs of equal length a stride apart, in one pass over memory. A block
// is at most a few KiB, so its values live in L1 while its moments are formed;
// blocks are then merged in Float64 (`Moments`). The arithmetic is shifted
// Welford in Float32 lanes (see Welford.swift).

/// The moments microkernels of the forward kernels: rows (this file), mean
/// squares (MeanSquares.swift), strided columns (ColumnMoments.swift,
/// WideColumnMoments.swift).
enum BlockMoments {
    /// Count, mean and M2 of `p[0..<n]` (n ≥ 1) in one pass over memory.
    @inline(__always)
    static func contiguous<E: NormElement>(_ p: UnsafePointer<E>, _ n: Int) -> Moments {
        segmented(p, length: n, stride: n, segments: 1)
    }

    /// Count, mean and M2 of `segments` runs of `length` contiguous values, `stride`
    /// apart (BatchNorm NCHW with a small H·W: one block spans several samples).
    ///
    /// Three stages, all on x − K (K = `blockPivot`, a mean of 8–32 of its values):
    /// 1. every run's full 32-value chunks through 32 Welford lanes (4 × SIMD8),
    ///    for runs of at least 64 values;
    /// 2. the remaining full 8-value chunks through 8 more lanes;
    /// 3. the last < 8 values of each run, one by one in Float64.
    /// Within a stage all lanes have seen the same number of values, so one 1/k per
    /// step serves every lane; the lanes' means merge pairwise in Float32
    /// (`mergeLanesPairwise`), stage 1's M2 is summed in Float64; the stages merge with
    /// Chan's formula in Float64.
    ///
    /// `following` ≠ 0: the element distance from `p` to the block reduced next,
    /// prefetched while this one is read (see `StreamPrefetch`).
    static func segmented<E: NormElement>(_ p: UnsafePointer<E>, length: Int, stride: Int, segments: Int,
                                          following: Int = 0) -> Moments {
        let result = segmentedFloat32(p, length: length, stride: stride, segments: segments, following: following)
        if result.mean.isFinite && result.m2.isFinite { return result }
        var all = Moments.empty
        for s in 0..<segments { all = all.merged(with: columnFloat64(p + s * stride, rows: length, stride: 1)) }
        return all
    }

    /// The 32 Welford lanes of a block: per-lane mean and M2 of x − K.
    struct Lanes {
        var m0 = F8(), m1 = F8(), m2 = F8(), m3 = F8()
        var s0 = F8(), s1 = F8(), s2 = F8(), s3 = F8()
    }

    /// Stage 1. Kept out of line so the optimizer vectorizes the loop as written
    /// (inlined into its callers, LLVM's SLP pass re-shuffled the lanes across
    /// accumulators and the loop ran 4× slower). `P` decides whether each step
    /// also prefetches along the logical stream (runs far apart; `following`,
    /// see `StreamPrefetch`); the arithmetic and its order are the same: same bits.
    @inline(never)
    static func welfordLanes32<E: NormElement, P: StreamPrefetch>(
        _ p: UnsafePointer<E>, length: Int, stride: Int, segments: Int, pivot: Float, following: Int, _: P.Type
    ) -> Lanes {
        let k = F8(repeating: pivot)
        // scalar math per lane, on x − K: d = x − m;  m += d / count;  s += d · (x − m)
        var m0 = F8(), m1 = F8(), m2 = F8(), m3 = F8()
        var s0 = F8(), s1 = F8(), s2 = F8(), s3 = F8()
        let chunks = length / 32
        let weights = WelfordWeights.table
        var step = 0
        for segment in 0..<segments {
            let start = p + segment * stride
            var q = start
            for c in 0..<chunks {
                P.lines(start, 32 * c, length: length, segment: segment, segments: segments, stride: stride,
                        following: following)
                step += 1
                let (r, w) = WelfordWeights.step(step, weights)
                welfordStep(E.load8(q) - k, &m0, &s0, r: r, q: w)
                welfordStep(E.load8(q + 8) - k, &m1, &s1, r: r, q: w)
                welfordStep(E.load8(q + 16) - k, &m2, &s2, r: r, q: w)
                welfordStep(E.load8(q + 24) - k, &m3, &s3, r: r, q: w)
                q += 32
            }
        }
        return Lanes(m0: m0, m1: m1, m2: m2, m3: m3, s0: s0, s1: s1, s2: s2, s3: s3)
    }

    /// Stage 2: the full 8-value chunks after each run's 32-value chunks. `P`:
    /// whether each run of a block of short runs (no stage 1) first prefetches a
    /// later run (`StreamPrefetch.run`); same arithmetic either way.
    @inline(never)
    static func welfordLanes8<E: NormElement, P: StreamPrefetch>(
        _ p: UnsafePointer<E>, length: Int, stride: Int, segments: Int, from first: Int, pivot: Float,
        following: Int, _: P.Type
    ) -> (mean: F8, m2: F8, steps: Int) {
        let k = F8(repeating: pivot)
        var m = F8(), s = F8()
        let chunks = (length - first) / 8
        let weights = WelfordWeights.table
        var step = 0
        for segment in 0..<segments {
            P.run(p, length: length, segment: segment, segments: segments, stride: stride, following: following)
            var q = p + segment * stride + first
            for _ in 0..<chunks {
                step += 1
                let (r, w) = WelfordWeights.step(step, weights)
                welfordStep(E.load8(q) - k, &m, &s, r: r, q: w)
                q += 8
            }
        }
        return (m, s, step)
    }

    private static func segmentedFloat32<E: NormElement>(_ p: UnsafePointer<E>, length: Int, stride: Int, segments: Int,
                                                         following: Int) -> Moments {
        let pivot = blockPivot(p, length: length, stride: stride, segments: segments)
        let kd = Double(pivot)
        var all = Moments.empty
        // Stage 1 only from two 32-value steps on: a single step leaves each lane
        // one value, and merging 32 lanes costs more than 4 steps of 8 lanes.
        let steps32 = length >= 64 ? length / 32 * segments : 0
        if steps32 > 0 {
            let l = following == 0
                ? welfordLanes32(p, length: length, stride: stride, segments: segments, pivot: pivot,
                                 following: 0, NoPrefetch.self)
                : welfordLanes32(p, length: length, stride: stride, segments: segments, pivot: pivot,
                                 following: following, PrefetchAhead.self)
            // Chan's merge of the 32 lanes, all of count c (see `mergeLanesPairwise`): means
            // and spread terms pairwise in Float32; the lanes' M2 summed 4 → 1
            // vectors in Float32 (two roundings) and 8 → 1 in Float64 (three fewer
            // Float32 roundings than the pairwise merge: 1.5 → 0.5 ulp of 1/σ on
            // LayerNorm [256, 1000], AccuracyTests).
            let c = Float(steps32), z = F8()
            let (m, spread) = mergePair(mergePair((l.m0, z), (l.m1, z), count: c),
                                        mergePair((l.m2, z), (l.m3, z), count: c), count: 2 * c)
            all = mergeLanesPairwise(m, spread, count: 4 * c)
            all.m2 += widened((l.s0 + l.s1) + (l.s2 + l.s3)).sum()
        }
        let stage1 = steps32 > 0 ? length / 32 * 32 : 0
        if length - stage1 >= 8 {
            // Runs of stage 1 were prefetched there; short runs are prefetched here.
            let l = following != 0 && stage1 == 0
                ? welfordLanes8(p, length: length, stride: stride, segments: segments, from: stage1, pivot: pivot,
                                following: following, PrefetchAhead.self)
                : welfordLanes8(p, length: length, stride: stride, segments: segments, from: stage1, pivot: pivot,
                                following: 0, NoPrefetch.self)
            all = all.merged(with: mergeLanesPairwise(l.mean, l.m2, count: Float(l.steps)))
        }
        if length % 8 > 0 {
            // Stage 3: the last length % 8 values of each run, Welford in Float64.
            var tail = Moments.empty
            let from = length - length % 8
            for segment in 0..<segments {
                welfordFloat64(p + segment * stride + from, count: length - from, stride: 1, pivot: kd, into: &tail)
            }
            all = all.merged(with: tail)
        }
        all.mean += kd
        return all
    }

    /// The pivot K of a block: the mean of its first 32 values (8 when it has
    /// fewer than 32), or, for a block of several runs, of the first 8 values of
    /// 2 or 4 runs spread over it; its first value when runs are shorter than 8.
    ///
    /// Why not the first value: every Welford step rounds the lane means (of
    /// x − K) by ~ε/2·|μ − K|, and the weights (1/k, 1 − 1/k) round the same way
    /// in all 32 lanes, so these errors do not average out: with K = x[0] (|μ − K|
    /// up to 3σ) saved means were off by up to 3.8 ε·σ on 1000–4600-value units.
    /// A mean of 32 values is within ~σ/6 of μ (AccuracyTests). Any finite
    /// Float32 is a valid pivot; a non-finite one (values near Float32's limit)
    /// falls back to x[0], whose overflow the Float64 redo then handles. Summed
    /// in a tree of 2ⁿ values and scaled by a power of two, so constant data
    /// gives K = x[0] exactly.
    @inline(__always)
    static func blockPivot<E: NormElement>(_ p: UnsafePointer<E>, length: Int, stride: Int, segments: Int) -> Float {
        guard length >= 8 else { return E.widen(p[0]) }
        var v: F8, scale: Float
        if segments >= 2 {
            if segments >= 4 {
                v = (E.load8(p) + E.load8(p + segments / 4 * stride))
                    + (E.load8(p + segments / 2 * stride) + E.load8(p + 3 * segments / 4 * stride))
                scale = 0.03125
            } else {
                v = E.load8(p) + E.load8(p + stride)
                scale = 0.0625
            }
        } else if length >= 32 {
            v = (E.load8(p) + E.load8(p + 8)) + (E.load8(p + 16) + E.load8(p + 24))
            scale = 0.03125
        } else {
            v = E.load8(p)
            scale = 0.125
        }
        let v4 = v.lowHalf + v.highHalf, v2 = v4.lowHalf + v4.highHalf
        let k = (v2[0] + v2[1]) * scale
        return k.isFinite ? k : E.widen(p[0])
    }
}
