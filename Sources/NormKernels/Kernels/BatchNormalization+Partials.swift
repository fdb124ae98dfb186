/// The training forward of BatchNorm cut in two at the per-channel statistics,
/// for ``SynchronizedBatchNormalization``: the statistics of this process's
/// values (merged across processes in between), then the output pass with
/// statistics given. Both halves use exactly the blocks, merge trees and output
/// code of `forwardTraining`, so with the same statistics the output has the
/// same bits; only the fusion (reading a block again while it is in cache) is lost.
extension BatchNormalization {
    /// Per-channel (count, mean, M2) of `x` into `out[0 ..< C]`: the partials and
    /// merge tree of `forwardTraining` (NCHW: blocks of each channel's runs, tree
    /// over the blocks; NHWC/[N, D]: column partials per row block, `RowTree` down
    /// the row blocks).
    func channelMoments<E: NormElement>(_ x: UnsafePointer<E>, into out: UnsafeMutablePointer<Moments>, workspace: Arena) {
        if shape.isChannelsLast {
            let c = shape.c
            columns.reduceThenApply(
                threading: threading, workspace: workspace,
                reduce: { _, first, rows, partials in
                    BlockMoments.columns(x + first * c, rows: rows, columns: c, stride: c, into: partials)
                },
                finalize: { _, channels, merged in for ch in channels { out[ch] = merged[ch] } },
                writesOutput: false, apply: { _, _, _ in })
        } else {
            rows.reduce(x, statistic: .moments, threading: threading, workspace: workspace, into: out)
        }
    }

    /// The output pass of `forwardTraining` with per-channel coefficients
    /// already folded into `table` (`AffineCoefficients` from mean, 1/σ, γ, β).
    /// Last blocks first: the statistics pass read x just before, and its end is
    /// what is still in cache (BatchNorm itself writes each batch while it is in L2).
    func applyChannels<E: NormElement>(_ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>, _ table: CoefficientTable) {
        let relu = fusedReLU
        if shape.isChannelsLast {
            let g = columns
            g.apply(threading: threading, fromTheEnd: true) { m, first, rows in
                table.applyColumns(x, y, matrix: m, geometry: g, first: first, rows: rows, relu: relu)
            }
        } else if shape.spatial < BatchNormalization.shortRunSpatial {
            // Memory order, one unit per sample (as forwardTraining's short-run path).
            let hw = shape.spatial, c = shape.c
            let g = RowsGeometry(units: shape.n, segmentLength: c * hw, unitStride: c * hw)
            g.apply(threading: threading, fromTheEnd: true) {
                table.applyRuns(x, y, $0, run: hw, runsPerSegment: c, slotsPerUnit: 0, relu: relu)
            }
        } else {
            let g = rows
            g.apply(threading: threading, fromTheEnd: true) {
                table.applyRuns(x, y, $0, run: g.segmentLength, runsPerSegment: 1, relu: relu)
            }
        }
    }

    /// How many ranges `partialRanges(backward:)` returns, without forming them
    /// (a legal descriptor of 2⁴⁰ short-plane samples would have 2⁴⁰).
    func partialRangeCount(backward: Bool) -> Int {
        if shape.isChannelsLast { return columns.blocksPerMatrix }
        if backward && shape.spatial < BatchNormalization.shortRunSpatial { return shape.n }
        return rows.blocksPerUnit
    }

    /// Per-channel ranges, in the channel's values taken sample-major (sample,
    /// then position), of the blocks whose partials the training forward
    /// (`backward` false) or backward (`backward` true) merges, in merge order.
    /// Two tensors give the same per-channel statistics bit for bit when these
    /// lists and the merge trees over them agree (see
    /// `SynchronizedBatchNormalization.singleProcessEquivalence`).
    func partialRanges(backward: Bool) -> [Range<Int>] {
        if shape.isChannelsLast {
            // Rows of N·H·W values, one per (sample, position): the channel's order.
            let g = columns
            return (0..<g.blocksPerMatrix).map { b in (b * g.rowBlock)..<min(g.rows, (b + 1) * g.rowBlock) }
        }
        let hw = shape.spatial
        if backward && hw < BatchNormalization.shortRunSpatial {
            // The short-run backward forms one partial per (sample, channel) run.
            return (0..<shape.n).map { ($0 * hw)..<(($0 + 1) * hw) }
        }
        let g = rows
        return (0..<g.blocksPerUnit).map { i in
            let b = g.block(i)   // unit 0: every channel has the same blocks
            let start = b.segment * hw + b.start
            return start..<(start + (b.segmentCount > 1 ? b.segmentCount * hw : b.count))
        }
    }
}
