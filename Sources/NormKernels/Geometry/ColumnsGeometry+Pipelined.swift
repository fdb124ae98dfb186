// The whole-matrices path of `ColumnsGeometry.reduceThenApply` for a backward
// whose matrices stream from memory (InstanceNorm/GroupNorm NHWC, one matrix per
// sample), with each worker's passes over two matrices interleaved: the sums of
// matrix m + 1 run `pipelineRows` rows at a time between the same number of rows
// of matrix m's dx pass.
//
// Why: a sample of [32, 64, 56, 56] (x + dy = 1.6 MB) does not fit the 1 MiB L2,
// and its dx cannot start before all its rows are summed. Run one after the
// other, the sums pass waits for DRAM reads (x, dy) and the dx pass for its
// non-temporal writes and L3 reads, each at one core's limit for its direction
// (docs/data/2026-12-06-nhwc-zen4/summary.md: sums 47 %, dx 22 % of the
// samples); interleaved, the reads of m + 1 are in flight while m's dx rows
// are computed and written. Measured in docs/data/2026-12-07-innhwc/summary.md.
//
// Same bits as `reduceThenApply`: every block's sums come in row order through
// `reduce` (pieces that keep the block's Float32 flushes, see
// ColumnGradientPieces.swift), the same merge tree per matrix (`mergeSlots`),
// and each dx row is computed from the same table whatever the call's length.

import Foundation

extension ColumnsGeometry {
    /// Rows of matrix m + 1's sums, then rows of matrix m's dx, per step:
    /// `NORMKERNELS_PIPELINE_ROWS` when set to a non-negative integer (0: no
    /// pipelining, the passes one after the other as in `reduceThenApply`), else
    /// `defaultPipelineRows`.
    static let pipelineRows: Int = pipelineRows(fromEnvironment: getenv("NORMKERNELS_PIPELINE_ROWS").map {
        String(cString: $0)
    })
    static let defaultPipelineRows = 16

    static func pipelineRows(fromEnvironment text: String?) -> Int {
        guard let text else { return defaultPipelineRows }
        guard let n = Int(text.trimmingCharacters(in: .whitespaces)), n >= 0 else {
            warn("NORMKERNELS_PIPELINE_ROWS=\(text) is not a non-negative integer; using \(defaultPipelineRows)")
            return defaultPipelineRows
        }
        return n
    }

    /// Whether `reduceThenApplyPipelined` may run: pipelining on, whole matrices
    /// per worker (`splitsMatrices` false) and more than one matrix.
    func pipelines(threading: Threading, rowsPerStep: Int = ColumnsGeometry.pipelineRows) -> Bool {
        rowsPerStep > 0 && matrices > 1 && !splitsMatrices(threading: threading)
    }

    /// `reduceThenApply(threading:workspace:slotGroup:reduce:finalize:apply:)` with
    /// the output pass (one partial per column), each worker's matrices pipelined
    /// (see the top of this file). Only where `pipelines(threading:)`.
    ///
    /// - `reduce(m, blockFirst, blockRows, first, count, scratch, out)` adds rows
    ///   `first ..< first + count` of the row block at row `blockFirst` of matrix m
    ///   (`blockRows` rows) to that block's `columns` partials at `out`. A block's
    ///   pieces come in row order, without gaps; the first has `first == 0`.
    ///   `scratch` (`scratchFloats` values) is the worker's and lives between the
    ///   pieces.
    /// - `rowsPerStep`: rows per step (the tests pass their own).
    /// - `finalize`, `apply`: as in `reduceThenApply`; matrix m's rows are applied
    ///   in the same order (last block first, each block forward), cut into pieces.
    func reduceThenApplyPipelined<Partial: TreeMergeable>(
        threading: Threading, workspace: Arena, slotGroup: Int = 1, scratchFloats: Int,
        rowsPerStep step: Int = ColumnsGeometry.pipelineRows,
        reduce: (_ matrix: Int, _ blockFirst: Int, _ blockRows: Int, _ first: Int, _ count: Int,
                 _ scratch: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Partial>) -> Void,
        finalize: (_ matrix: Int, _ slots: Range<Int>, _ merged: UnsafePointer<Partial>) -> Void,
        apply: (_ matrix: Int, _ firstRow: Int, _ rowCount: Int) -> Void
    ) {
        precondition(pipelines(threading: threading, rowsPerStep: step),
                     "reduceThenApplyPipelined: row blocks split across workers, or no rows per step")
        let perMatrix = blocksPerMatrix, width = columns, rows = self.rows, rowBlock = self.rowBlock
        let chunk = min(width, (ColumnsGeometry.mergeWidth + slotGroup - 1) / slotGroup * slotGroup)
        let chunks = (width + chunk - 1) / chunk
        let partials = workspace.take(Partial.self, count: blocks * width)
        let merged = workspace.take(Partial.self, count: matrices * width)
        // The dx order: the last block's rows, then each earlier block's, last first.
        let lastFirst = (perMatrix - 1) * rowBlock, lastRows = rows - lastFirst

        Parallel.forEach(count: matrices, elementsPerItem: matrixElements, threading: threading) { range in
            withScratch(of: Float.self, capacity: max(1, scratchFloats)) { buffer in
                let scratch = buffer.baseAddress!
                /// Matrix m's sums of rows `row ..< row + count` (pieces cut at block ends).
                func sums(_ m: Int, from row: Int, _ count: Int) {
                    var row = row, left = count
                    while left > 0 {
                        let b = row / rowBlock, blockFirst = b * rowBlock
                        let blockRows = min(rowBlock, rows - blockFirst), n = min(left, blockFirst + blockRows - row)
                        reduce(m, blockFirst, blockRows, row - blockFirst, n, scratch,
                               partials + (m * perMatrix + b) * width)
                        row += n
                        left -= n
                    }
                }
                /// Matrix m's dx of `count` rows from position `position` of the dx order.
                func dx(_ m: Int, at position: Int, _ count: Int) {
                    var position = position, left = count
                    while left > 0 {
                        let first: Int, end: Int
                        if position < lastRows {
                            first = lastFirst + position
                            end = rows
                        } else {
                            let q = position - lastRows, b = perMatrix - 2 - q / rowBlock
                            first = b * rowBlock + q % rowBlock
                            end = (b + 1) * rowBlock
                        }
                        let n = min(left, end - first)
                        apply(m, first, n)
                        position += n
                        left -= n
                    }
                }
                func merge(_ m: Int) {
                    for k in 0..<chunks {
                        mergeSlots(m, chunk: k, of: chunk, width: width, partials: partials, merged: merged,
                                   finalize: finalize)
                    }
                }
                sums(range.lowerBound, from: 0, rows)
                merge(range.lowerBound)
                for m in range {
                    guard m + 1 < range.upperBound else {
                        dx(m, at: 0, rows)
                        break
                    }
                    var row = 0
                    while row < rows {
                        let n = min(step, rows - row)
                        sums(m + 1, from: row, n)
                        dx(m, at: row, n)
                        row += n
                    }
                    merge(m + 1)
                }
            }
        }
    }
}
