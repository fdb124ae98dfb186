// Per-column moments of wide blocks (≥ `rowMajorColumns` columns): the block
// is read row by row, in strips of `rowsPerStrip` rows, each column's Welford
// state in L1 (see `wideColumns` for why not column tiles).
// Generic over the tensors' element type (`NormElement`): x and dy are widened
// exactly on load, outputs rounded once from the Float32 value; everything else
// is Float32/Float64 (docs/ARCHITECTURE.md, "Adding an element type").

import CNormSupport

extension BlockMoments {
    /// From this many columns on, a block is reduced row by row with the lanes'
    /// state in memory (L1) rather than in registers tile by tile. A tile walks
    /// down the rows at the row stride; with wide rows every step lands on another
    /// page, the prefetcher stops, and each tile's lines come from DRAM one miss at
    /// a time (BatchNorm [32768, 1024] ran at 4 GB/s). Row by row streams.
    static let rowMajorColumns = 64

    /// Wide blocks: each row updates every column's Welford state (pivot from
    /// `columnPivots`, mean and M2 in Float32 arrays that stay in L1), folded
    /// into Float64 every `columnChunkRows` rows like the tiles.
    ///
    /// Every column of a chunk has seen the same number of rows, so Chan's merge
    /// of chunk B into the running total A has the same weights for all columns
    /// (nB/n and nA·nB/n); the merge then runs 8 columns at a time in Float64
    /// SIMD instead of one `Moments.merged` (a division) per column and chunk,
    /// which cost a fifth of the reduction with 64 columns.
    static func wideColumns<E: NormElement>(
        _ base: UnsafePointer<E>, rows: Int, columns: Int, stride: Int,
        into out: UnsafeMutablePointer<Moments>
    ) {
        withScratch(of: Float.self, capacity: 3 * columns) { state in
            withScratch(of: Double.self, capacity: 3 * columns) { total in
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
            let meanA = load8(totalMean + c), m2A = load8(totalM2 + c)
            let delta = (widened(load8(pivot + c)) + widened(load8(mean + c))) - meanA
            store8(meanA + delta * f, totalMean + c)
            store8(m2A + load8(m2 + c) + delta * delta * a * f, totalM2 + c)
            c += 8
        }
        while c < columns {
            let delta = (Double(pivot[c]) + Double(mean[c])) - totalMean[c]
            totalMean[c] = totalMean[c] + delta * fraction
            totalM2[c] = totalM2[c] + m2[c] + delta * delta * nA * fraction
            c += 1
        }
    }

    /// Rows of the wide-block reduction (out of line: see `welfordLanes32`).
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
    /// 1.15× from 1024; "Strips prefetch the next strip" in docs/PERFORMANCE-HISTORY.md).
    ///
    /// Pivots start as `columnPivots` and move to each column's running mean every
    /// `pivotGroup` rows, when the Float32 M2 is folded into `total` (Float64) —
    /// see `pivotGroup`; both after the last row too. The 32-column tiles do it
    /// on their state in registers at the end of a group's last strip (a group's
    /// first strip then starts M2 at 0 without loading it) instead of reloading
    /// it in a separate pass over the columns; `foldGroup` does it for the last
    /// < 32 columns. Same arithmetic in the same order: same bits.
    @inline(never)
    private static func welfordRows<E: NormElement>(
        _ first: UnsafePointer<E>, rows: Int, stride: Int,
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
                    welfordStep(E.load8(q) - k0, &m0, &s0, r: r, q: w)
                    welfordStep(E.load8(q + 8) - k1, &m1, &s1, r: r, q: w)
                    welfordStep(E.load8(q + 16) - k2, &m2v, &s2, r: r, q: w)
                    welfordStep(E.load8(q + 24) - k3, &m3, &s3, r: r, q: w)
                    q += stride
                }
                if closes {
                    repivot(&k0, &m0); repivot(&k1, &m1); repivot(&k2, &m2v); repivot(&k3, &m3)
                    store8(k0, pivot + c); store8(k1, pivot + c + 8); store8(k2, pivot + c + 16); store8(k3, pivot + c + 24)
                    store8(load8(total + c) + widened(s0), total + c)
                    store8(load8(total + c + 8) + widened(s1), total + c + 8)
                    store8(load8(total + c + 16) + widened(s2), total + c + 16)
                    store8(load8(total + c + 24) + widened(s3), total + c + 24)
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
            store8(load8(total + c) + widened(load8(m2 + c)), total + c)
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
    private static func welfordRow<E: NormElement>(
        _ x: UnsafePointer<E>, from start: Int, pivot k: UnsafePointer<Float>,
        mean: UnsafeMutablePointer<Float>, m2: UnsafeMutablePointer<Float>, columns: Int, r: F8, q: F8, rs: Float
    ) {
        // scalar math per column: d = (x − K) − m;  m += d · r;  s += d · ((x − K) − m)
        var c = start
        while c + 8 <= columns {
            var m = load8(mean + c), s = load8(m2 + c)
            welfordStep(E.load8(x + c) - load8(k + c), &m, &s, r: r, q: q)
            store8(m, mean + c)
            store8(s, m2 + c)
            c += 8
        }
        while c < columns {
            let v = E.widen(x[c]) - k[c]
            let d = v - mean[c]
            mean[c] += d * rs
            m2[c] += d * (v - mean[c])
            c += 1
        }
    }
}
