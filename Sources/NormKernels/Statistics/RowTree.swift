/// Partial results that merge pairwise: `Moments` (Chan's formula) and
/// `GradientSums` (addition), both in Float64.
protocol TreeMergeable {
    static var identity: Self { get }
    /// The merge of two disjoint parts, `earlier` first (Chan's merge is not
    /// bitwise symmetric, so the order is part of the result).
    static func combine(_ earlier: Self, _ later: Self) -> Self
}

extension Moments: TreeMergeable {
    static var identity: Moments { .empty }
    @inline(__always)
    static func combine(_ earlier: Moments, _ later: Moments) -> Moments { earlier.merged(with: later) }
}

extension GradientSums: TreeMergeable {
    static var identity: GradientSums { .zero }
    @inline(__always)
    static func combine(_ earlier: GradientSums, _ later: GradientSums) -> GradientSums { earlier + later }
}

/// Tree merges of many columns at once, down the rows of a row-major table of
/// partials (row k = block k, column j = channel or group j).
///
/// Column by column, each merge would read one value per row, `stride` values
/// apart (BatchNorm [4096, 1024]: 32 rows × 1024 columns, every read a new cache
/// line, and a closure call per merge). Here every step of the tree combines two
/// whole rows, `width` contiguous values at a time. The tree is the one of
/// `Moments.treeMerge` / `GradientSums.treeSum` — split at lo + (hi − lo)/2,
/// pairs (lo, lo + 1) at the leaves — so column j's result has the same bits as
/// the per-column tree.
enum RowTree {
    /// Scratch values `merge` needs for `rows` rows of `width` columns: one row
    /// per level of recursion below the top.
    static func scratchCount(rows: Int, width: Int) -> Int {
        width * max(1, Int.bitWidth - rows.leadingZeroBitCount)
    }

    /// Columns merged per step of `forEachColumn`.
    static let columnChunk = 64

    /// `body(j, merged)` for every column j in `columns`, in column order, where
    /// `merged` is the tree merge of rows `0..<rows` of column j (row stride
    /// `stride`): `merge` over chunks of `columnChunk` columns, scratch from `withScratch`.
    @inline(__always)
    static func forEachColumn<P: TreeMergeable>(
        _ base: UnsafePointer<P>, stride: Int, rows: Int, columns: Range<Int>, _ body: (Int, P) -> Void
    ) {
        let chunk = columnChunk
        withScratch(of: P.self, capacity: chunk + scratchCount(rows: rows, width: chunk)) { buffer in
            let out = buffer.baseAddress!
            for c0 in Swift.stride(from: columns.lowerBound, to: columns.upperBound, by: chunk) {
                let w = min(chunk, columns.upperBound - c0)
                merge(base + c0, stride: stride, rows: 0, rows, width: w, into: out, scratch: out + chunk)
                for j in 0..<w { body(c0 + j, out[j]) }
            }
        }
    }

    /// `into[j]` = tree merge of rows `lo..<hi` of column j (row stride `stride`)
    /// for j in 0..<width. `scratch` holds `scratchCount(rows: hi - lo, width:)` values.
    static func merge<P: TreeMergeable>(
        _ base: UnsafePointer<P>, stride: Int, rows lo: Int, _ hi: Int, width: Int,
        into out: UnsafeMutablePointer<P>, scratch: UnsafeMutablePointer<P>
    ) {
        switch hi - lo {
        case 0:
            for j in 0..<width { out[j] = .identity }
        case 1:
            for j in 0..<width { out[j] = base[lo * stride + j] }
        case 2:
            let a = base + lo * stride, b = a + stride
            for j in 0..<width { out[j] = P.combine(a[j], b[j]) }
        default:
            let mid = lo + (hi - lo) / 2
            merge(base, stride: stride, rows: lo, mid, width: width, into: out, scratch: scratch + width)
            merge(base, stride: stride, rows: mid, hi, width: width, into: scratch, scratch: scratch + width)
            for j in 0..<width { out[j] = P.combine(out[j], scratch[j]) }
        }
    }
}
