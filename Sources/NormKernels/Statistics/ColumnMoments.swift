// Per-column moments of a block of strided columns (the columns geometry:
// BatchNorm NHWC and [N, D], InstanceNorm/GroupNorm NHWC): narrow blocks
// (< 8 columns) fold rows into one wider row, blocks of up to
// `rowMajorColumns` columns go in register tiles of 32 or 8 columns down the
// rows, wider ones row by row (WideColumnMoments.swift). Shifted Welford in
// Float32 lanes with pivots that move to the running mean (see Welford.swift).
// Generic over the tensors' element type (`NormElement`): x and dy are widened
// exactly on load, outputs rounded once from the Float32 value; everything else
// is Float32/Float64 (docs/ARCHITECTURE.md, "Adding an element type").

extension BlockMoments {
    /// Per-column moments of a `rows × columns` tile with row stride `stride`
    /// (the strided-column geometry: NHWC and [N, D]). Writes `columns` values
    /// to `out`. Columns go 32 at a time in SIMD lanes, rows one at a time, so
    /// the loop streams along memory; pivots are a mean of the first rows
    /// (`columnPivot`), then each lane's running mean (`pivotGroup`).
    static func columns<E: NormElement>(
        _ base: UnsafePointer<E>, rows: Int, columns: Int, stride: Int,
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
    private static func narrowColumns<E: NormElement>(
        _ base: UnsafePointer<E>, rows: Int, columns: Int, stride: Int,
        into out: UnsafeMutablePointer<Moments>
    ) {
        let k = foldedRows(columns: columns)
        let superRows = stride == columns ? rows / k : 0
        if superRows < 2 {
            for c in 0..<columns { out[c] = columnFloat64(base + c, rows: rows, stride: stride) }
            return
        }
        let width = k * columns
        withScratch(of: Moments.self, capacity: width) { wide in
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
    private static func columnTile<E: NormElement>(
        _ p: UnsafePointer<E>, rows: Int, stride: Int, width: Int, into out: UnsafeMutablePointer<Moments>,
        _ chunk: (UnsafePointer<E>, _ rows: Int, _ stride: Int, UnsafeMutablePointer<Moments>) -> Void
    ) {
        for j in 0..<width { out[j] = .empty }
        var first = 0
        while first < rows {
            let n = min(columnChunkRows, rows - first)
            chunk(p + first * stride, n, stride, out)
            first += n
        }
    }

    private static func columnTile32<E: NormElement>(
        _ p: UnsafePointer<E>, rows: Int, stride: Int, into out: UnsafeMutablePointer<Moments>
    ) {
        columnTile(p, rows: rows, stride: stride, width: 32, into: out) { columnChunk32($0, rows: $1, stride: $2, into: $3) }
    }

    private static func columnTile8<E: NormElement>(
        _ p: UnsafePointer<E>, rows: Int, stride: Int, into out: UnsafeMutablePointer<Moments>
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
    static func columnPivot<E: NormElement>(_ p: UnsafePointer<E>, stride: Int, rows: Int) -> F8 {
        let first = E.load8(p)
        guard rows >= 8 else { return first }
        let a = (first + E.load8(p + stride)) + (E.load8(p + 2 * stride) + E.load8(p + 3 * stride))
        let b = (E.load8(p + 4 * stride) + E.load8(p + 5 * stride)) + (E.load8(p + 6 * stride) + E.load8(p + 7 * stride))
        let k = (a + b) * 0.125
        return k.replacing(with: first, where: .!((k - k) .== F8()))  // k − k is 0 only when k is finite
    }

    /// `columnPivot` for every column of a wide block (scalar for the last < 8).
    @inline(__always)
    static func columnPivots<E: NormElement>(_ p: UnsafePointer<E>, stride: Int, rows: Int, columns: Int,
                             into pivot: UnsafeMutablePointer<Float>) {
        var c = 0
        while c + 8 <= columns {
            store8(columnPivot(p + c, stride: stride, rows: rows), pivot + c)
            c += 8
        }
        while c < columns {
            let p = p + c
            @inline(__always) func x(_ i: Int) -> Float { E.widen(p[i]) }
            var k = x(0)
            if rows >= 8 {
                let a = (x(0) + x(stride)) + (x(2 * stride) + x(3 * stride))
                let b = (x(4 * stride) + x(5 * stride)) + (x(6 * stride) + x(7 * stride))
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

    /// ≤ 128 rows of a 32-column tile in Float32 lanes (pivots: `columnPivot` of
    /// the chunk, then each lane's running mean every `pivotGroup` rows), merged into
    /// `out` with Chan's formula.
    @inline(never)
    private static func columnChunk32<E: NormElement>(
        _ p: UnsafePointer<E>, rows: Int, stride: Int, into out: UnsafeMutablePointer<Moments>
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
                welfordStep(E.load8(q) - k0, &m0, &s0, r: r, q: w)
                welfordStep(E.load8(q + 8) - k1, &m1, &s1, r: r, q: w)
                welfordStep(E.load8(q + 16) - k2, &m2, &s2, r: r, q: w)
                welfordStep(E.load8(q + 24) - k3, &m3, &s3, r: r, q: w)
                q += stride
                row += 1
            }
            t0 += widened(s0); t1 += widened(s1); t2 += widened(s2); t3 += widened(s3)
            if row < rows { repivot(&k0, &m0); repivot(&k1, &m1); repivot(&k2, &m2); repivot(&k3, &m3) }
        }
        let count = Double(rows)
        mergeColumnLanes(count, k0, m0, t0, out)
        mergeColumnLanes(count, k1, m1, t1, out + 8)
        mergeColumnLanes(count, k2, m2, t2, out + 16)
        mergeColumnLanes(count, k3, m3, t3, out + 24)
    }

    @inline(never)
    private static func columnChunk8<E: NormElement>(
        _ p: UnsafePointer<E>, rows: Int, stride: Int, into out: UnsafeMutablePointer<Moments>
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
                welfordStep(E.load8(q) - k, &m, &s, r: r, q: w)
                q += stride
                row += 1
            }
            t += widened(s)
            if row < rows { repivot(&k, &m) }
        }
        mergeColumnLanes(Double(rows), k, m, t, out)
    }

    /// out[l] ← out[l] ⊕ (count, K[l] + m[l], s[l]) for the 8 lanes.
    @inline(__always)
    private static func mergeColumnLanes(_ count: Double, _ k: F8, _ m: F8, _ s: D8, _ out: UnsafeMutablePointer<Moments>) {
        for l in 0..<8 {
            out[l] = out[l].merged(with: Moments(count: count, mean: Double(k[l]) + Double(m[l]), m2: s[l]))
        }
    }
}
