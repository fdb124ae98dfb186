import Synchronization

// The row backward run one row block at a time, with a fused step before and
// after each block (the residual and gated row backwards, issue 21).
//
// A row block of the plan (`RowBackwardPlan.rowBlock` rows, ≈ L2/2 per input)
// goes through the plain engine on one worker (`rowNormalizationBackward` with
// a one-block plan), right after `before` prepared its dy (the gate: dy ⊙ gate)
// and right before `after` finishes its dx (the residual: dx += ds, d bias
// partials) — while the block is in cache, so the extra tensors cost their own
// bytes and no second pass over dx. The engine's column partials of each block
// (`columnTotals`) are merged down the blocks in `RowTree`'s tree, exactly as
// the engine merges its row blocks' partials: dx, dγ and dβ are the plain
// backward's bits, and the same for any thread count.
//
// The one-block plans are made at the first blockwise call and kept with the
// plan (`RowBlockPlans`), and a block's statistics are read in place
// (`firstSlot`): a warm call allocates nothing (issue 24).
//
// With few blocks per worker (long rows, few rows) the plain engine over the
// whole tensor spreads each block over the workers instead, and the steps run
// as passes of their own (`wholeTensor`); both give the same bits, so the
// choice may depend on the thread count.

struct BlockwiseRowBackward {
    let plan: RowBackwardPlan
    /// Saved statistics per row (mean nil: RMSNorm).
    let mean: [Double]?
    let invStd: [Double]
    let gamma: UnsafePointer<Float>?
    let gradScale: UnsafeMutablePointer<Float>?
    let gradBias: UnsafeMutablePointer<Float>?

    var rowsPerBlock: Int { plan.rowBlock }
    var blocks: Int { plan.rowBlocks }

    /// Whether to go block by block: more than one block, and enough of them to
    /// keep every worker busy (or one worker).
    func blockwise(_ threading: Threading) -> Bool {
        let workers = Parallel.workers(count: blocks, elementsPerItem: rowsPerBlock * plan.features,
                                       threading: threading)
        return blocks > 1 && (workers == 1 || blocks >= 4 * workers)
    }

    /// Runs every block: `before(first row, rows, scratch)` returns the block's x, dy and
    /// dx (dx nil: column sums only); then the engine, with
    /// `prepare(block first row, first, rows, dy)` before rows `first ..< first +
    /// rows` of the block's x and dy are read, and `after(block, first, rows, dx, dy)`
    /// once their dx is written (dx and dy pointing at row `first`; dy as `before`
    /// returned it). Both see every row of the block once, in order: with the
    /// short-row sweep (rows of ≤ 4096 values, dx wanted) eight rows at a time,
    /// inside the sweep, while the rows are in L1 (`ShortRowsBackward.rowBlock`);
    /// otherwise the whole block, before and after the engine. `finish(columns)`
    /// runs once the blocks are done, on column ranges (for the caller's own
    /// column merges). With `blockScratch`, each block gets the worker's scratch
    /// of a block's values (`scratch`, else nil), kept in cache from one block to
    /// the next: the engine may write dx there for `after` to finish and stream
    /// out, or `prepare` dy there.
    /// Generic over the element type of x, dy and dx (specialized per type).
    func run<E: NormElement>(
        blockScratch: Bool = false,
        before: (_ first: Int, _ rows: Int, _ scratch: UnsafeMutablePointer<E>?)
            -> (x: UnsafePointer<E>, dy: UnsafePointer<E>, dx: UnsafeMutablePointer<E>?),
        prepare: (_ blockFirst: Int, _ first: Int, _ rows: Int, _ dy: UnsafePointer<E>) -> Void = { _, _, _, _ in },
        after: (_ block: Int, _ first: Int, _ rows: Int, _ dx: UnsafeMutablePointer<E>?, _ dy: UnsafePointer<E>) -> Void,
        finish: (Range<Int>) -> Void
    ) {
        let D = plan.features, perBlock = rowsPerBlock
        let needColumns = gradScale != nil || gradBias != nil
        let (full, last) = plan.blockPlans.plans(of: plan)
        let workspace = plan.workspace.take()
        defer { plan.workspace.recycle(workspace) }
        let partials: UnsafeMutablePointer<GradientSums>? = needColumns
            ? workspace.take(GradientSums.self, count: blocks * D) : nil
        let chunk = RowTree.columnChunk
        let phases: InlineArray<2, Parallel.Phase> = [
            Parallel.Phase(count: blocks, elementsPerItem: perBlock * D),
            Parallel.Phase(count: (D + chunk - 1) / chunk, elementsPerItem: blocks * chunk)]
        Parallel.forEach(phases: phases, threading: plan.threading) { phase, range in
            if phase == 0 {
                @inline(__always) func block(_ k: Int, _ scratch: UnsafeMutablePointer<E>?,
                                             _ sweepScratch: UnsafeMutablePointer<Float>) {
                    let r0 = k * perBlock, n = min(perBlock, plan.rows - r0)
                    let (x, dy, dx) = before(r0, n, scratch)
                    let blockPlan = k == blocks - 1 ? last : full
                    if let dx, blockPlan.strategy(gradInput: true) == .shortRowSweep {
                        // The engine's short-row sweep itself (what `rowNormalizationBackward`
                        // runs on a one-block plan: the same bits), with the steps inside.
                        let sums = partials.map { $0 + k * D }
                        sums?.initialize(repeating: .zero, count: D)
                        ShortRowsBackward.rowBlock(
                            x: x, dy: dy, dx: dx, gamma: gamma, rows: n, length: D, firstRow: r0, mean: mean,
                            invStd: invStd, columnSums: sums, scratch: sweepScratch,
                            streaming: blockPlan.store.streaming(output: dx, reading: x, dy),
                            prepare: { first, rows in prepare(r0, r0 + first, rows, dy) },
                            finish: { first, rows in after(k, r0 + first, rows, dx + first * D, dy + first * D) })
                        return
                    }
                    prepare(r0, r0, n, dy)
                    rowNormalizationBackward(
                        blockPlan, x: x, dy: dy, mean: mean, invStd: invStd, gamma: gamma,
                        dx: dx, gradScale: nil, gradBias: nil, columnTotals: partials.map { $0 + k * D },
                        firstSlot: r0)
                    after(k, r0, n, dx, dy)
                }
                withScratch(of: Float.self, capacity: 2 * D) { sweepScratch in
                    if blockScratch {
                        withScratch(of: E.self, capacity: perBlock * D) { scratch in
                            for k in range { block(k, scratch.baseAddress!, sweepScratch.baseAddress!) }
                        }
                    } else {
                        for k in range { block(k, nil, sweepScratch.baseAddress!) }
                    }
                }
            } else {
                let columns = (range.lowerBound * chunk)..<min(D, range.upperBound * chunk)
                if let partials {
                    RowTree.forEachColumn(UnsafePointer(partials), stride: D, rows: blocks, columns: columns) { c, sums in
                        gradScale?[c] = Float(sums.dyXhat)
                        gradBias?[c] = Float(sums.dy)
                    }
                }
                finish(columns)
            }
        }
    }
}

/// The one-block plans of a `RowBackwardPlan`'s blockwise backward (a full row
/// block and the last, on one worker), made on first use and kept, so that
/// their workspace pools stay warm from one call to the next.
final class RowBlockPlans: Sendable {
    private let cached = Mutex<(full: RowBackwardPlan, last: RowBackwardPlan)?>(nil)

    init() {}

    func plans(of plan: RowBackwardPlan) -> (full: RowBackwardPlan, last: RowBackwardPlan) {
        cached.withLock { cached in
            if let cached { return cached }
            let D = plan.features, perBlock = plan.rowBlock
            let full = RowBackwardPlan(rows: perBlock, features: D, centered: plan.centered, threading: .serial)
            let lastRows = plan.rows - (plan.rowBlocks - 1) * perBlock
            let last = lastRows == perBlock ? full
                : RowBackwardPlan(rows: lastRows, features: D, centered: plan.centered, threading: .serial)
            cached = (full, last)
            return (full, last)
        }
    }
}
