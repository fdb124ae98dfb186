// Single-pass statistics of one block of Float32 data: the innermost loops of
// every forward kernel. A block is at most a few KiB, so a block's values live in
// L1 while its moments are formed; blocks are then merged in Float64 (Moments).
//
// Why shifted Welford in SIMD lanes:
// - Welford's update never forms E[x²] − E[x]², so there is no cancellation.
// - Subtracting a pivot K close to the mean (`blockPivot`, `columnPivot`) first
//   makes x − K exact for data clustered far from zero (mean 1e4, std 1e-2): the
//   lanes then work on values of the size of the spread, and Float32 keeps ~7
//   digits of *them*. The lanes' mean of x − K rounds in proportion to |μ − K|,
//   so K is a mean of a few values, not the first one, and column lanes move K to
//   their running mean every `pivotGroup` rows (issue 19, AccuracyTests).
// - Every lane sees the same number of values, so the 1/k of the update is one
//   scalar per vector step shared by all 32 lanes (no per-element division).
// - The 32 lanes are combined with Chan's formula, their M2 summed in Float64.
// If Float32 overflows (|x − K| beyond ~1e19, e.g. values near 1e30) the block
// is recomputed in Float64, so huge inputs give finite, correct statistics.

import CNormSupport

/// One Welford step of 8 lanes that have each seen k − 1 values, with
/// r = 1/k and q = 1 − 1/k broadcast:
/// ```
/// d  = x − m
/// m' = m·q + x·r          (= m + d/k, written so that m' depends on m through one multiply-add)
/// s' = s + d·(x − m')
/// ```
/// The textbook m + (x − m)/k chains a subtract and a multiply-add through m
/// (7 cycles per step on Zen 4); here the chain is one multiply-add (4 cycles),
/// so 4 vectors of lanes keep the floating-point pipes busy instead of waiting.
@inline(__always)
func welfordStep(_ x: F8, _ m: inout F8, _ s: inout F8, r: F8, q: F8) {
    let d = x - m
    m = muladd(m, q, x * r)
    s = muladd(d, x - m, s)
}

/// The weights (r, q) = (1/k, 1 − 1/k) of Welford step k, from a table for the
/// first `count` steps: a scalar division per step (vdivss) costs more than the
/// whole vector update of 32 lanes (measured: 4096 values in L1, 0.46 µs with
/// the division, 0.32 µs with the table).
enum WelfordWeights {
    static let count = 512
    /// Pairs (1/k, 1 − 1/k) at index 2k, for k in 1..<count (index 0 unused).
    static var table: UnsafePointer<Float> { shared.value }

    /// Written once, when first used, and only read after (see `UncheckedSendable`).
    private static let shared = UncheckedSendable<UnsafePointer<Float>>({
        let t = UnsafeMutablePointer<Float>.allocate(capacity: 2 * count)
        t[0] = 0; t[1] = 0
        for k in 1..<count { t[2 * k] = 1 / Float(k); t[2 * k + 1] = 1 - 1 / Float(k) }
        return UnsafePointer(t)
    }())

    @inline(__always)
    static func step(_ k: Int, _ table: UnsafePointer<Float>) -> (r: F8, q: F8) {
        if k < count { return (F8(repeating: table[2 * k]), F8(repeating: table[2 * k + 1])) }
        let r = 1 / Float(k)
        return (F8(repeating: r), F8(repeating: 1 - r))
    }

    @inline(__always)
    static func scalar(_ k: Int, _ table: UnsafePointer<Float>) -> Float {
        k < count ? table[2 * k] : 1 / Float(k)
    }
}

enum BlockMoments {
    /// Count, mean and M2 of `p[0..<n]` (n ≥ 1) in one pass over memory.
    @inline(__always)
    static func contiguous(_ p: UnsafePointer<Float>, _ n: Int) -> Moments {
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
    /// (`mergeLanes`), stage 1's M2 is summed in Float64; the stages merge with
    /// Chan's formula in Float64.
    ///
    /// `following` ≠ 0: the element distance from `p` to the block reduced next,
    /// prefetched while this one is read (see `StreamPrefetch`).
    static func segmented(_ p: UnsafePointer<Float>, length: Int, stride: Int, segments: Int,
                          following: Int = 0) -> Moments {
        let result = segmentedFloat32(p, length: length, stride: stride, segments: segments, following: following)
        if result.mean.isFinite && result.m2.isFinite { return result }
        var all = Moments.empty
        for s in 0..<segments { all = all.merged(with: contiguousFloat64(p + s * stride, length)) }
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
    static func welfordLanes32<P: StreamPrefetch>(_ p: UnsafePointer<Float>, length: Int, stride: Int, segments: Int,
                                                  pivot: Float, following: Int, _: P.Type) -> Lanes {
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
                welfordStep(load8(q) - k, &m0, &s0, r: r, q: w)
                welfordStep(load8(q + 8) - k, &m1, &s1, r: r, q: w)
                welfordStep(load8(q + 16) - k, &m2, &s2, r: r, q: w)
                welfordStep(load8(q + 24) - k, &m3, &s3, r: r, q: w)
                q += 32
            }
        }
        return Lanes(m0: m0, m1: m1, m2: m2, m3: m3, s0: s0, s1: s1, s2: s2, s3: s3)
    }

    /// Stage 2: the full 8-value chunks after each run's 32-value chunks.
    @inline(never)
    static func welfordLanes8(_ p: UnsafePointer<Float>, length: Int, stride: Int, segments: Int,
                              from first: Int, pivot: Float) -> (mean: F8, m2: F8, steps: Int) {
        let k = F8(repeating: pivot)
        var m = F8(), s = F8()
        let chunks = (length - first) / 8
        let weights = WelfordWeights.table
        var step = 0
        for segment in 0..<segments {
            var q = p + segment * stride + first
            for _ in 0..<chunks {
                step += 1
                let (r, w) = WelfordWeights.step(step, weights)
                welfordStep(load8(q) - k, &m, &s, r: r, q: w)
                q += 8
            }
        }
        return (m, s, step)
    }

    private static func segmentedFloat32(_ p: UnsafePointer<Float>, length: Int, stride: Int, segments: Int,
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
            // Chan's merge of the 32 lanes, all of count c (see `mergeLanes`): means
            // and spread terms pairwise in Float32; the lanes' M2 summed 4 → 1
            // vectors in Float32 (two roundings) and 8 → 1 in Float64 (three fewer
            // Float32 roundings than the pairwise merge: 1.5 → 0.5 ulp of 1/σ on
            // LayerNorm [256, 1000], AccuracyTests).
            let c = Float(steps32), z = F8()
            let (m, spread) = mergePair(mergePair((l.m0, z), (l.m1, z), count: c),
                                        mergePair((l.m2, z), (l.m3, z), count: c), count: 2 * c)
            all = mergeLanes(m, spread, count: 4 * c)
            all.m2 += widened((l.s0 + l.s1) + (l.s2 + l.s3)).sum()
        }
        let stage1 = steps32 > 0 ? length / 32 * 32 : 0
        if length - stage1 >= 8 {
            let l = welfordLanes8(p, length: length, stride: stride, segments: segments, from: stage1, pivot: pivot)
            all = all.merged(with: mergeLanes(l.mean, l.m2, count: Float(l.steps)))
        }
        if length % 8 > 0 {
            // Stage 3: the last length % 8 values of each run, Welford in Float64.
            var tail = Moments.empty
            let from = length - length % 8
            for segment in 0..<segments {
                let q = p + segment * stride
                for i in from..<length {
                    let x = Double(q[i]) - kd
                    tail.count += 1
                    let d = x - tail.mean
                    tail.mean += d / tail.count
                    tail.m2 += d * (x - tail.mean)
                }
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
    static func blockPivot(_ p: UnsafePointer<Float>, length: Int, stride: Int, segments: Int) -> Float {
        guard length >= 8 else { return p[0] }
        var v: F8, scale: Float
        if segments >= 2 {
            if segments >= 4 {
                v = (load8(p) + load8(p + segments / 4 * stride))
                    + (load8(p + segments / 2 * stride) + load8(p + 3 * segments / 4 * stride))
                scale = 0.03125
            } else {
                v = load8(p) + load8(p + stride)
                scale = 0.0625
            }
        } else if length >= 32 {
            v = (load8(p) + load8(p + 8)) + (load8(p + 16) + load8(p + 24))
            scale = 0.03125
        } else {
            v = load8(p)
            scale = 0.125
        }
        let v4 = v.lowHalf + v.highHalf, v2 = v4.lowHalf + v4.highHalf
        let k = (v2[0] + v2[1]) * scale
        return k.isFinite ? k : p[0]
    }

    /// The Float64 fallback: Welford on x − K in double precision.
    static func contiguousFloat64(_ p: UnsafePointer<Float>, _ n: Int) -> Moments {
        let kd = Double(p[0])
        var m = Moments.empty
        for i in 0..<n {
            let x = Double(p[i]) - kd
            m.count += 1
            let d = x - m.mean
            m.mean += d / m.count
            m.m2 += d * (x - m.mean)
        }
        m.mean += kd
        return m
    }

    /// Mean of squares of `p[0..<n]` as Moments(count: n, mean: Σx²/n, m2: 0),
    /// for RMSNorm and weight normalization. Merging with Chan's formula then
    /// gives the mean square of the union (its m2 is meaningless and unused).
    static func meanSquare(_ p: UnsafePointer<Float>, _ n: Int) -> Moments {
        // scalar math: s += x · x
        var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8()
        var q = p
        let steps = n / 32
        for _ in 0..<steps {
            let x0 = load8(q), x1 = load8(q + 8), x2 = load8(q + 16), x3 = load8(q + 24)
            a0 += x0 * x0; a1 += x1 * x1; a2 += x2 * x2; a3 += x3 * x3
            q += 32
        }
        var sum = Double(((a0 + a1) + (a2 + a3)).sum())
        for i in (steps * 32)..<n { sum += Double(p[i]) * Double(p[i]) }
        let count = Double(n)
        if !sum.isFinite || sum < count * 0x1p-100 {
            // Float32 squares overflow beyond ~1.8e19 and lose bits below ~1e-19
            // (they reach the subnormal range): redo such blocks in Float64.
            sum = 0
            for i in 0..<n { sum += Double(p[i]) * Double(p[i]) }
        }
        return Moments(count: count, mean: sum / count, m2: 0)
    }

    /// Per-column moments of a `rows × columns` tile with row stride `stride`
    /// (the strided-column geometry: NHWC and [N, D]). Writes `columns` values
    /// to `out`. Columns go 32 at a time in SIMD lanes, rows one at a time, so
    /// the loop streams along memory; pivots are the tile's first row.
    static func columns(
        _ base: UnsafePointer<Float>, rows: Int, columns: Int, stride: Int,
        into out: UnsafeMutablePointer<Moments>
    ) {
        if columns < 8 {
            narrowColumns(base, rows: rows, columns: columns, stride: stride, into: out)
            return
        }
        if columns >= rowMajorColumns {
            wideColumns(base, rows: rows, columns: columns, stride: stride, into: out)
            return
        }
        var c = 0
        while c + 32 <= columns {
            columnTile32(base + c, rows: rows, stride: stride, into: out + c)
            c += 32
        }
        while c + 8 <= columns {
            columnTile8(base + c, rows: rows, stride: stride, into: out + c)
            c += 8
        }
        if c < columns {
            // The last 1–7 columns: one more 8-wide tile ending at the last column.
            // Lanes never mix, so the columns it recomputes get the same bits again.
            columnTile8(base + columns - 8, rows: rows, stride: stride, into: out + columns - 8)
        }
        for j in 0..<columns where !(out[j].mean.isFinite && out[j].m2.isFinite) {
            out[j] = columnFloat64(base + j, rows: rows, stride: stride)
        }
    }

    /// From this many columns on, a block is reduced row by row with the lanes'
    /// state in memory (L1) rather than in registers tile by tile. A tile walks
    /// down the rows at the row stride; with wide rows every step lands on another
    /// page, the prefetcher stops, and each tile's lines come from DRAM one miss at
    /// a time (BatchNorm [32768, 1024] ran at 4 GB/s). Row by row streams.
    static let rowMajorColumns = 64

    /// Wide blocks: each row updates every column's Welford state (pivot = the
    /// chunk's first row, mean and M2 in Float32 arrays that stay in L1), folded
    /// into Float64 every `columnChunkRows` rows like the tiles.
    ///
    /// Every column of a chunk has seen the same number of rows, so Chan's merge
    /// of chunk B into the running total A has the same weights for all columns
    /// (nB/n and nA·nB/n); the merge then runs 8 columns at a time in Float64
    /// SIMD instead of one `Moments.merged` (a division) per column and chunk,
    /// which cost a fifth of the reduction with 64 columns.
    private static func wideColumns(
        _ base: UnsafePointer<Float>, rows: Int, columns: Int, stride: Int,
        into out: UnsafeMutablePointer<Moments>
    ) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 3 * columns) { state in
            withUnsafeTemporaryAllocation(of: Double.self, capacity: 3 * columns) { total in
                let mean = state.baseAddress!, m2 = mean + columns, pivot = m2 + columns
                let totalMean = total.baseAddress!, totalM2 = totalMean + columns, chunkM2 = totalM2 + columns
                var first = 0
                while first < rows {
                    let n = min(columnChunkRows, rows - first)
                    let chunk = base + first * stride
                    mean.initialize(repeating: 0, count: 2 * columns)
                    columnPivots(chunk, stride: stride, rows: n, columns: columns, into: pivot)
                    chunkM2.initialize(repeating: 0, count: columns)
                    welfordRows(chunk, rows: n, stride: stride, mean: mean, m2: m2, pivot: pivot, total: chunkM2,
                                columns: columns)
                    mergeChunk(pivot: pivot, mean: mean, m2: chunkM2, count: n, into: totalMean, totalM2,
                               totalCount: first, columns: columns)
                    first += n
                }
                let count = Double(rows)
                for c in 0..<columns { out[c] = Moments(count: count, mean: totalMean[c], m2: totalM2[c]) }
            }
        }
        for j in 0..<columns where !(out[j].mean.isFinite && out[j].m2.isFinite) {
            out[j] = columnFloat64(base + j, rows: rows, stride: stride)
        }
    }

    /// totals ← totals ⊕ chunk for every column, where the totals have seen
    /// `totalCount` rows and the chunk (means K + mean, M2) `count` rows:
    /// ```
    /// δ = meanB − meanA;  mean = meanA + δ·(nB/n);  M2 = M2A + M2B + δ²·nA·(nB/n)
    /// ```
    /// (`Moments.merged`'s arithmetic in the same order; with nA = 0 it stores
    /// the chunk exactly).
    @inline(__always)
    private static func mergeChunk(
        pivot: UnsafePointer<Float>, mean: UnsafePointer<Float>, m2: UnsafePointer<Double>, count: Int,
        into totalMean: UnsafeMutablePointer<Double>, _ totalM2: UnsafeMutablePointer<Double>,
        totalCount: Int, columns: Int
    ) {
        if totalCount == 0 {
            for c in 0..<columns {
                totalMean[c] = Double(pivot[c]) + Double(mean[c])
                totalM2[c] = m2[c]
            }
            return
        }
        let nA = Double(totalCount), fraction = Double(count) / (nA + Double(count))
        let f = D8(repeating: fraction), a = D8(repeating: nA)
        var c = 0
        while c + 8 <= columns {
            let meanA = loadD8(totalMean + c), m2A = loadD8(totalM2 + c)
            let delta = (widened(load8(pivot + c)) + widened(load8(mean + c))) - meanA
            storeD8(meanA + delta * f, totalMean + c)
            storeD8(m2A + loadD8(m2 + c) + delta * delta * a * f, totalM2 + c)
            c += 8
        }
        while c < columns {
            let delta = (Double(pivot[c]) + Double(mean[c])) - totalMean[c]
            totalMean[c] = totalMean[c] + delta * fraction
            totalM2[c] = totalM2[c] + m2[c] + delta * delta * nA * fraction
            c += 1
        }
    }

    /// Rows of the wide-block reduction, pivots = the first row (out of line: see
    /// `welfordLanes32`).
    ///
    /// Rows go `rowsPerStrip` at a time: within a strip of rows (a few KiB of
    /// contiguous memory) each 32-column tile loads its Welford state once, runs
    /// the strip's rows with the state in registers, and stores it back. Row by
    /// row, every 8 values cost two state loads and two state stores besides the
    /// data load; per strip that is amortized over its rows.
    ///
    /// A strip reads its memory tile by tile, down the rows: not in address
    /// order, and the hardware prefetchers lose the stream (strips without help
    /// ran 0.5–0.9× row by row at 64–640 columns). So each step of a tile also
    /// prefetches the next 128 bytes of the *next* strip, walking it in address
    /// order: one strip's tiles × rows × 128 B cover exactly the next strip when
    /// the columns are a multiple of 32 and the rows contiguous. With it, strips
    /// beat rows at every width from 64 columns (1.06–1.47× at 64–640, level to
    /// 1.15× from 1024; "Ninth pass" in docs/PERFORMANCE-HISTORY.md).
    ///
    /// Pivots start as the first row and move to each column's running mean every
    /// `pivotGroup` rows, when the Float32 M2 is folded into `total` (Float64) —
    /// see `pivotGroup`; both after the last row too. The 32-column tiles do it
    /// on their state in registers at the end of a group's last strip (a group's
    /// first strip then starts M2 at 0 without loading it) instead of reloading
    /// it in a separate pass over the columns; `foldGroup` does it for the last
    /// < 32 columns. Same arithmetic in the same order: same bits.
    @inline(never)
    private static func welfordRows(
        _ first: UnsafePointer<Float>, rows: Int, stride: Int,
        mean: UnsafeMutablePointer<Float>, m2: UnsafeMutablePointer<Float>, pivot: UnsafeMutablePointer<Float>,
        total: UnsafeMutablePointer<Double>, columns: Int
    ) {
        precondition(rows < WelfordWeights.count)
        let weights = WelfordWeights.table
        var row = 0
        while row < rows {
            let n = min(rowsPerStrip, rows - row)
            let strip = first + row * stride
            var ahead = UnsafeRawPointer(strip + n * stride)
            // A group's first strip starts its lanes' M2 at 0 (the fold zeroed
            // it); its last strip folds in registers (see `foldGroup`).
            let opens = row % pivotGroup == 0
            let closes = (row + n) % pivotGroup == 0 || row + n == rows
            var c = 0
            while c + 32 <= columns {
                var k0 = load8(pivot + c), k1 = load8(pivot + c + 8), k2 = load8(pivot + c + 16), k3 = load8(pivot + c + 24)
                var m0 = load8(mean + c), m1 = load8(mean + c + 8), m2v = load8(mean + c + 16), m3 = load8(mean + c + 24)
                var s0 = F8(), s1 = F8(), s2 = F8(), s3 = F8()
                if !opens { s0 = load8(m2 + c); s1 = load8(m2 + c + 8); s2 = load8(m2 + c + 16); s3 = load8(m2 + c + 24) }
                var q = strip + c
                // Chunks have at most `columnChunkRows` rows (< WelfordWeights.count):
                // the weights come straight from the table, without the bounds
                // check or overflow-checked index of `WelfordWeights.step`.
                var weight = weights + 2 &* (row &+ 1)
                for _ in 0..<n {
                    nk_prefetch(ahead); nk_prefetch(ahead + 64); ahead += 128
                    let r = F8(repeating: weight[0]), w = F8(repeating: weight[1])
                    weight += 2
                    welfordStep(load8(q) - k0, &m0, &s0, r: r, q: w)
                    welfordStep(load8(q + 8) - k1, &m1, &s1, r: r, q: w)
                    welfordStep(load8(q + 16) - k2, &m2v, &s2, r: r, q: w)
                    welfordStep(load8(q + 24) - k3, &m3, &s3, r: r, q: w)
                    q += stride
                }
                if closes {
                    repivot(&k0, &m0); repivot(&k1, &m1); repivot(&k2, &m2v); repivot(&k3, &m3)
                    store8(k0, pivot + c); store8(k1, pivot + c + 8); store8(k2, pivot + c + 16); store8(k3, pivot + c + 24)
                    storeD8(loadD8(total + c) + widened(s0), total + c)
                    storeD8(loadD8(total + c + 8) + widened(s1), total + c + 8)
                    storeD8(loadD8(total + c + 16) + widened(s2), total + c + 16)
                    storeD8(loadD8(total + c + 24) + widened(s3), total + c + 24)
                } else {
                    store8(s0, m2 + c); store8(s1, m2 + c + 8); store8(s2, m2 + c + 16); store8(s3, m2 + c + 24)
                }
                store8(m0, mean + c); store8(m1, mean + c + 8); store8(m2v, mean + c + 16); store8(m3, mean + c + 24)
                c += 32
            }
            for i in 0..<n {
                let (r, w) = WelfordWeights.step(row + i + 1, weights)
                welfordRow(strip + i * stride, from: c, pivot: pivot, mean: mean, m2: m2, columns: columns,
                           r: r, q: w, rs: WelfordWeights.scalar(row + i + 1, weights))
            }
            if closes {
                foldGroup(mean: mean + c, m2: m2 + c, pivot: pivot + c, total: total + c, columns: columns - c)
            }
            row += n
        }
    }

    /// For every column: total += M2 (Float64), M2 = 0, and the pivot moves to the
    /// running mean (`repivot`: K + m unchanged, exactly).
    @inline(__always)
    private static func foldGroup(
        mean: UnsafeMutablePointer<Float>, m2: UnsafeMutablePointer<Float>, pivot: UnsafeMutablePointer<Float>,
        total: UnsafeMutablePointer<Double>, columns: Int
    ) {
        var c = 0
        while c + 8 <= columns {
            var k = load8(pivot + c), m = load8(mean + c)
            repivot(&k, &m)
            store8(k, pivot + c); store8(m, mean + c)
            storeD8(loadD8(total + c) + widened(load8(m2 + c)), total + c)
            store8(F8(), m2 + c)
            c += 8
        }
        while c < columns {
            let k = pivot[c], m = mean[c]
            let s = k + m, b = s - k
            mean[c] = (k - (s - b)) + (m - b)
            pivot[c] = s
            total[c] += Double(m2[c])
            m2[c] = 0
            c += 1
        }
    }

    /// Rows per strip in `welfordRows` (8 rows of 1024 columns = 32 KiB).
    static let rowsPerStrip = 8

    @inline(__always)
    private static func welfordRow(
        _ x: UnsafePointer<Float>, from start: Int, pivot k: UnsafePointer<Float>,
        mean: UnsafeMutablePointer<Float>, m2: UnsafeMutablePointer<Float>, columns: Int, r: F8, q: F8, rs: Float
    ) {
        // scalar math per column: d = (x − K) − m;  m += d · r;  s += d · ((x − K) − m)
        var c = start
        while c + 8 <= columns {
            var m = load8(mean + c), s = load8(m2 + c)
            welfordStep(load8(x + c) - load8(k + c), &m, &s, r: r, q: q)
            store8(m, mean + c)
            store8(s, m2 + c)
            c += 8
        }
        while c < columns {
            let v = x[c] - k[c]
            let d = v - mean[c]
            mean[c] += d * rs
            m2[c] += d * (v - mean[c])
            c += 1
        }
    }

    /// Rows folded into one "super-row" for narrow matrices (NHWC with C < 8,
    /// e.g. RGB): k·C ≥ 32 and a multiple of 8, so k consecutive rows form SIMD
    /// tiles whose columns repeat the channel pattern.
    static func foldedRows(columns c: Int) -> Int {
        var k = 1
        while (k * c) % 8 != 0 || k * c < 32 { k += 1 }
        return k
    }

    /// C < 8 columns: k rows at a time as one row of k·C columns through the SIMD
    /// tiles, then each channel's k columns merged in a fixed tree, then the
    /// remaining rows (< k) column by column in Float64.
    private static func narrowColumns(
        _ base: UnsafePointer<Float>, rows: Int, columns: Int, stride: Int,
        into out: UnsafeMutablePointer<Moments>
    ) {
        let k = foldedRows(columns: columns)
        let superRows = stride == columns ? rows / k : 0
        if superRows < 2 {
            for c in 0..<columns { out[c] = columnFloat64(base + c, rows: rows, stride: stride) }
            return
        }
        let width = k * columns
        withUnsafeTemporaryAllocation(of: Moments.self, capacity: width) { wide in
            self.columns(base, rows: superRows, columns: width, stride: width, into: wide.baseAddress!)
            let done = superRows * k
            for c in 0..<columns {
                var m = Moments.treeMerge(count: k) { wide[$0 * columns + c] }
                if done < rows {
                    m = m.merged(with: columnFloat64(base + done * columns + c, rows: rows - done, stride: columns))
                }
                out[c] = m
            }
        }
    }

    /// Rows a column tile's Float32 lanes run before they are folded into Float64:
    /// each lane's Welford then sees at most 128 values, as in the contiguous path,
    /// so a tall row block does not cost accuracy.
    static let columnChunkRows = 128

    /// A tile of `width` (32 or 8) columns down all its rows: `chunk` runs
    /// ≤ `columnChunkRows` rows at a time in Float32 lanes and merges them into `out`.
    @inline(__always)
    private static func columnTile(
        _ p: UnsafePointer<Float>, rows: Int, stride: Int, width: Int, into out: UnsafeMutablePointer<Moments>,
        _ chunk: (UnsafePointer<Float>, _ rows: Int, _ stride: Int, UnsafeMutablePointer<Moments>) -> Void
    ) {
        for j in 0..<width { out[j] = .empty }
        var first = 0
        while first < rows {
            let n = min(columnChunkRows, rows - first)
            chunk(p + first * stride, n, stride, out)
            first += n
        }
    }

    private static func columnTile32(
        _ p: UnsafePointer<Float>, rows: Int, stride: Int, into out: UnsafeMutablePointer<Moments>
    ) {
        columnTile(p, rows: rows, stride: stride, width: 32, into: out) { columnChunk32($0, rows: $1, stride: $2, into: $3) }
    }

    private static func columnTile8(
        _ p: UnsafePointer<Float>, rows: Int, stride: Int, into out: UnsafeMutablePointer<Moments>
    ) {
        columnTile(p, rows: rows, stride: stride, width: 8, into: out) { columnChunk8($0, rows: $1, stride: $2, into: $3) }
    }

    /// Rows a column lane runs between re-pivots: every `pivotGroup` rows each
    /// lane moves its pivot to its running mean (`repivot`) and folds its M2 into
    /// a Float64 total.
    ///
    /// Why: a Float32 Welford lane's mean rounds at every step by ε/2·|m|, where m
    /// is the running mean of x − K; the errors of late steps survive, so a lane of
    /// n rows ends up off by ~ε/2·|μ − K|·√(n/3). With K the chunk's first row
    /// (|μ − K| ~ σ, up to 3σ) that was up to 7.6 ε·σ on 128-row chunks; with K
    /// the running mean after each group it is ~0.3 ε·σ. Its M2 summed n terms in
    /// Float32 (relative error ~ε/2·√(n/3), up to 3 ulp of 1/σ); summed per group
    /// and folded in Float64 the error is ~ε/2·G/√(3n) (AccuracyTests).
    static let pivotGroup = 16

    /// The first pivots of 8 columns: the mean of their first 8 rows (the first row
    /// when there are fewer), summed in a tree and scaled by 1/8, so constant
    /// columns keep K = x exactly; a non-finite mean (values near Float32's limit)
    /// falls back to the first row, whose overflow the Float64 redo handles.
    /// Within ~σ/3 of μ instead of ~σ: the first group's lane means stay small.
    @inline(__always)
    static func columnPivot(_ p: UnsafePointer<Float>, stride: Int, rows: Int) -> F8 {
        let first = load8(p)
        guard rows >= 8 else { return first }
        let a = (first + load8(p + stride)) + (load8(p + 2 * stride) + load8(p + 3 * stride))
        let b = (load8(p + 4 * stride) + load8(p + 5 * stride)) + (load8(p + 6 * stride) + load8(p + 7 * stride))
        let k = (a + b) * 0.125
        return k.replacing(with: first, where: .!((k - k) .== F8()))  // k − k is 0 only when k is finite
    }

    /// `columnPivot` for every column of a wide block (scalar for the last < 8).
    @inline(__always)
    static func columnPivots(_ p: UnsafePointer<Float>, stride: Int, rows: Int, columns: Int,
                             into pivot: UnsafeMutablePointer<Float>) {
        var c = 0
        while c + 8 <= columns {
            store8(columnPivot(p + c, stride: stride, rows: rows), pivot + c)
            c += 8
        }
        while c < columns {
            let x = p + c
            var k = x[0]
            if rows >= 8 {
                let a = (x[0] + x[stride]) + (x[2 * stride] + x[3 * stride])
                let b = (x[4 * stride] + x[5 * stride]) + (x[6 * stride] + x[7 * stride])
                let mean = (a + b) * 0.125
                if mean.isFinite { k = mean }
            }
            pivot[c] = k
            c += 1
        }
    }

    /// Moves a lane's pivot to its running mean without changing K + m:
    /// K' = K + m rounded, m' = the rounding error (Knuth's TwoSum, exact).
    @inline(__always)
    static func repivot(_ k: inout F8, _ m: inout F8) {
        let s = k + m
        let b = s - k
        m = (k - (s - b)) + (m - b)
        k = s
    }

    /// ≤ 128 rows of a 32-column tile in Float32 lanes (pivots: the chunk's first
    /// row, then each lane's running mean every `pivotGroup` rows), merged into
    /// `out` with Chan's formula.
    @inline(never)
    private static func columnChunk32(
        _ p: UnsafePointer<Float>, rows: Int, stride: Int, into out: UnsafeMutablePointer<Moments>
    ) {
        var k0 = columnPivot(p, stride: stride, rows: rows), k1 = columnPivot(p + 8, stride: stride, rows: rows)
        var k2 = columnPivot(p + 16, stride: stride, rows: rows), k3 = columnPivot(p + 24, stride: stride, rows: rows)
        var m0 = F8(), m1 = F8(), m2 = F8(), m3 = F8()
        var t0 = D8(), t1 = D8(), t2 = D8(), t3 = D8()
        var q = p
        let weights = WelfordWeights.table
        var row = 0
        while row < rows {
            let end = min(rows, row + pivotGroup)
            var s0 = F8(), s1 = F8(), s2 = F8(), s3 = F8()
            while row < end {
                // scalar math per column: d = (x − K) − m;  m += d / (row + 1);  s += d · ((x − K) − m)
                let (r, w) = WelfordWeights.step(row + 1, weights)
                welfordStep(load8(q) - k0, &m0, &s0, r: r, q: w)
                welfordStep(load8(q + 8) - k1, &m1, &s1, r: r, q: w)
                welfordStep(load8(q + 16) - k2, &m2, &s2, r: r, q: w)
                welfordStep(load8(q + 24) - k3, &m3, &s3, r: r, q: w)
                q += stride
                row += 1
            }
            t0 += widened(s0); t1 += widened(s1); t2 += widened(s2); t3 += widened(s3)
            if row < rows { repivot(&k0, &m0); repivot(&k1, &m1); repivot(&k2, &m2); repivot(&k3, &m3) }
        }
        let count = Double(rows)
        mergeLanes(count, k0, m0, t0, out)
        mergeLanes(count, k1, m1, t1, out + 8)
        mergeLanes(count, k2, m2, t2, out + 16)
        mergeLanes(count, k3, m3, t3, out + 24)
    }

    @inline(never)
    private static func columnChunk8(
        _ p: UnsafePointer<Float>, rows: Int, stride: Int, into out: UnsafeMutablePointer<Moments>
    ) {
        var k = columnPivot(p, stride: stride, rows: rows)
        var m = F8(), t = D8()
        var q = p
        let weights = WelfordWeights.table
        var row = 0
        while row < rows {
            let end = min(rows, row + pivotGroup)
            var s = F8()
            while row < end {
                let (r, w) = WelfordWeights.step(row + 1, weights)
                welfordStep(load8(q) - k, &m, &s, r: r, q: w)
                q += stride
                row += 1
            }
            t += widened(s)
            if row < rows { repivot(&k, &m) }
        }
        mergeLanes(Double(rows), k, m, t, out)
    }

    /// out[l] ← out[l] ⊕ (count, K[l] + m[l], s[l]) for the 8 lanes.
    @inline(__always)
    private static func mergeLanes(_ count: Double, _ k: F8, _ m: F8, _ s: D8, _ out: UnsafeMutablePointer<Moments>) {
        for l in 0..<8 {
            out[l] = out[l].merged(with: Moments(count: count, mean: Double(k[l]) + Double(m[l]), m2: s[l]))
        }
    }

    /// Chan's merge of two parts with the same count n per lane, lane by lane:
    /// mean = (a + b)/2,  M2 = M2_a + M2_b + (n/2)·(a − b)².
    /// In Float32: every term of M2 is positive (no cancellation), and the means
    /// are of x − K (K = the block's pivot), so each merge level adds a
    /// rounding of ~6e-8 relative; the Float64 merge it replaced cost a third of
    /// LayerNorm's forward on 200-value rows (docs/PERFORMANCE-HISTORY.md, "Tenth pass").
    /// Stage 1 passes zero M2s here and sums its lanes' M2 in Float64 instead:
    /// five Float32 levels left LayerNorm [256, 1000]'s 1/σ 1.5 ulp off.
    @inline(__always)
    private static func mergePair<V: SIMD>(_ a: (V, V), _ b: (V, V), count n: Float) -> (V, V) where V.Scalar == Float {
        let d = a.0 - b.0
        return ((a.0 + b.0) * 0.5, a.1 + b.1 + d * d * (0.5 * n))
    }

    /// The 8 lanes of (mean, M2), each of `count` values, merged into one
    /// `Moments` of 8·count values: halves pairwise (8 → 4 → 2 → 1) with `mergePair`.
    @inline(__always)
    private static func mergeLanes(_ m: F8, _ s: F8, count c: Float) -> Moments {
        let (m4, s4) = mergePair((m.lowHalf, s.lowHalf), (m.highHalf, s.highHalf), count: c)
        let (m2, s2) = mergePair((m4.lowHalf, s4.lowHalf), (m4.highHalf, s4.highHalf), count: 2 * c)
        let d = m2[0] - m2[1]
        return Moments(count: 8 * Double(c), mean: Double((m2[0] + m2[1]) * 0.5),
                       m2: Double(s2[0] + s2[1] + d * d * (2 * c)))
    }

    /// One strided column in Float64: the remainder columns and the overflow fallback.
    static func columnFloat64(_ p: UnsafePointer<Float>, rows: Int, stride: Int) -> Moments {
        let kd = Double(p[0])
        var m = Moments.empty
        var q = p
        for _ in 0..<rows {
            let x = Double(q.pointee) - kd
            m.count += 1
            let d = x - m.mean
            m.mean += d / m.count
            m.m2 += d * (x - m.mean)
            q += stride
        }
        m.mean += kd
        return m
    }
}
