// One row block's per-column gradient sums (`BlockGradients.columns`) taken in
// pieces, so that a caller can put other work between them: the pipelined
// InstanceNorm/GroupNorm NHWC backward (ColumnsGeometry+Pipelined.swift) runs
// the next sample's sums a few rows at a time between the rows of this
// sample's dx pass.
//
// Same bits as one `columns` call over the block: the Float32 accumulators are
// zeroed and added into the Float64 sums at the same rows (every `flushRows`
// rows from the block's first row, and at its end), each column adds its rows in
// row order (`accumulateRows`), and the non-finite columns are summed again in
// Float64 over the whole block after its last piece.

extension BlockGradients {
    /// Whether `columnsPiece` may take a block of `columns` contiguous columns
    /// without a mask: the strided loops (≥ 8 columns). Narrower rows take the
    /// periodic loop, whose lanes fold at other rows.
    static func sumsInPieces(columns: Int) -> Bool { columns >= 8 }

    /// Rows `first ..< first + count` of a block of `blockRows` rows (counted from
    /// the block's first row; `x`, `dy` point at that row): the sums of those rows
    /// added into `out`. The pieces of a block must come in row order, without gaps,
    /// with the same `accumulators` (2·`columns` Float32 values that live between
    /// the calls). The first piece (`first == 0`) initializes `out`; after the last
    /// one `out` holds what `columns` writes.
    static func columnsPiece<E: NormElement, D: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<D>, blockRows: Int, first: Int, count: Int,
        columns: Int, stride: Int,
        pivot: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
        accumulators: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<GradientSums>
    ) {
        precondition(sumsInPieces(columns: columns) && first >= 0 && count > 0 && first + count <= blockRows,
                     "columnsPiece: rows out of the block")
        let accG = accumulators, accH = accumulators + columns
        if first == 0 { out.initialize(repeating: .zero, count: columns) }
        var row = first
        let end = first + count
        while row < end {
            // The flush this row belongs to: [k·flushRows, min(blockRows, (k + 1)·flushRows)).
            if row % flushRows == 0 {
                accG.update(repeating: 0, count: columns)
                accH.update(repeating: 0, count: columns)
            }
            let flushEnd = min(blockRows, (row / flushRows + 1) * flushRows), stop = min(end, flushEnd)
            accumulateRows(x, dy, nil, rows: row..<stop, columns: columns, stride: stride,
                           pivot: pivot, scale: scale, shift: shift, accG: accG, accH: accH)
            if stop == flushEnd {
                for j in 0..<columns {
                    out[j].dy += Double(accG[j])
                    out[j].dyXhat += Double(accH[j])
                }
            }
            row = stop
        }
        if end == blockRows {
            repairNonFinite(x, dy, mask: nil, rows: blockRows, columns: columns, stride: stride,
                            pivot: pivot, scale: scale, shift: shift, out)
        }
    }
}
