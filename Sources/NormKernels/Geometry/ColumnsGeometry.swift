/// The strided-columns geometry: `matrices` independent row-major matrices of
/// `rows × columns` values; statistics are per (matrix, column), reduced down
/// the rows.
///
/// | kernel              | matrices | rows     | columns |
/// |---------------------|----------|----------|---------|
/// | BatchNorm NHWC      | 1        | N·H·W    | C       |
/// | BatchNorm [N, D]    | 1        | N        | D       |
/// | InstanceNorm NHWC   | N        | H·W      | C       |
/// | GroupNorm NHWC      | N        | H·W      | C (columns then merged per group) |
///
/// Rows are cut into blocks of `rowBlock` rows, sized from the L2 cache and the
/// row width only (never from the thread count): a block of a few hundred KiB is
/// reduced 32 columns at a time while it stays in cache.
struct ColumnsGeometry: CustomStringConvertible {
    var matrices: Int
    var rows: Int
    var columns: Int
    var rowBlock: Int

    init(matrices: Int, rows: Int, columns: Int) {
        self.matrices = matrices
        self.rows = rows
        self.columns = columns
        // Aim for blocks of about L2/2 bytes but never fewer than 128 rows, so the
        // per-block partials (24 bytes per column) stay under 5 % of the data read
        // and the Float64 merges of the partials (one per column per block) stay cheap.
        let target = max(1, Topology.current.l2CacheBytes / 2 / (4 * columns))
        self.rowBlock = min(rows, max(128, target))
    }

    var blocksPerMatrix: Int { (rows + rowBlock - 1) / rowBlock }
    var blocks: Int { matrices * blocksPerMatrix }
    var matrixElements: Int { rows * columns }

    var description: String {
        "columns: \(matrices) matrices × \(rows) rows × \(columns) columns, blocks of \(rowBlock) rows (\(blocks) blocks)"
    }

    /// Whole matrices per worker when there are ≥ 4 per worker (InstanceNorm and
    /// GroupNorm NHWC with large N); otherwise row blocks spread over workers
    /// (BatchNorm NHWC, small N). Same partials, same merge tree: same bits.
    func splitsMatrices(threading: Threading) -> Bool {
        let workers = Parallel.workers(count: blocks, elementsPerItem: rowBlock * columns, threading: threading)
        return workers > 1 && blocksPerMatrix > 1 && matrices < 4 * workers
    }

    func plan(threading: Threading) -> PlanDescription {
        let split = splitsMatrices(threading: threading)
        let workers = split
            ? Parallel.workers(count: blocks, elementsPerItem: rowBlock * columns, threading: threading)
            : Parallel.workers(count: matrices, elementsPerItem: matrixElements, threading: threading)
        return PlanDescription(
            geometry: description,
            strategy: split ? "split row blocks across workers (column partials, merge, normalize)"
                            : "whole matrices per worker (statistics then normalize while in cache)",
            blocks: blocks, blockElements: rowBlock * columns, workers: workers)
    }

    /// Per-(matrix, group) statistics, where a group is `groupSize` consecutive
    /// columns (1: per column — BatchNorm and InstanceNorm NHWC; C/G: GroupNorm
    /// NHWC), then normalization.
    ///
    /// With groups of several columns, each row block's column moments are
    /// combined into its groups' moments at once, so only G partials per block go
    /// down the merge tree instead of C column partials followed by a merge over
    /// each group's columns. Every column of a block has seen the same n rows, so
    /// the group's moments need no division per column (k columns of means mᵢ and
    /// sums of squares M2ᵢ):
    /// ```
    /// mean = (Σ mᵢ) / k        M2 = Σ M2ᵢ + n · Σ (mᵢ − mean)²
    /// ```
    /// (Chan's merge of k equal-count parts, in Float64, in column order.) With 2×1280
    /// channels the per-column tree merges had cost a tenth of the forward.
    ///
    /// - `finalize(m, groups, moments)` runs once for each range of matrix m's
    ///   groups (the ranges cover `0..<columns / groupSize`), with `moments[g]` the
    ///   merged moments of group g for g in that range, before any block of that
    ///   matrix is applied. Ranges may run concurrently; each must write only its
    ///   own groups' slots.
    /// - `apply(m, firstRow, rowCount)` writes those rows of matrix m.
    func reduceThenApply<E: NormElement>(
        _ x: UnsafePointer<E>, groupSize: Int = 1, threading: Threading, workspace: Arena,
        finalize: (_ matrix: Int, _ groups: Range<Int>, _ moments: UnsafePointer<Moments>) -> Void,
        apply: (_ matrix: Int, _ firstRow: Int, _ rowCount: Int) -> Void
    ) {
        let groups = columns / groupSize
        let columns = self.columns, matrixElements = self.matrixElements
        reduceThenApply(
            threading: threading, workspace: workspace, partialsPerBlock: groups,
            reduce: { m, first, rows, out in
                let block = x + m * matrixElements + first * columns
                if groupSize == 1 {
                    BlockMoments.columns(block, rows: rows, columns: columns, stride: columns, into: out)
                    return
                }
                withScratch(of: Moments.self, capacity: columns) { column in
                    let c = column.baseAddress!
                    BlockMoments.columns(block, rows: rows, columns: columns, stride: columns, into: c)
                    for g in 0..<groups {
                        (out + g).initialize(to: Moments.equalCounts(c + g * groupSize, groupSize))
                    }
                }
            },
            finalize: finalize,
            apply: apply)
    }

    /// Partials merged per item of the merge phase: a fixed number (never from
    /// the thread count), so BatchNorm [N, 1024] spreads its merge over 8 items.
    static let mergeWidth = 128

    /// The engine behind every columns-geometry kernel, forward and backward:
    /// `width` partials per row block (one per column by default), merged down
    /// each matrix's row blocks, handed to `finalize`, then (when `apply` is
    /// given) the output pass.
    ///
    /// - `reduce(m, firstRow, rowCount, out)` writes the row block's `width`
    ///   partials to `out`; it must depend only on that block's data.
    ///   `Partial` must be a trivial type (plain numbers).
    /// - The partials of slot j are merged down matrix m's row blocks in the
    ///   fixed tree of `RowTree` (same bits as `Moments.treeMerge` of that slot),
    ///   `mergeWidth` slots at a time (rounded up to a multiple of `slotGroup`).
    /// - `finalize(m, slots, merged)` runs once for each such range of slots, with
    ///   `merged[j]` the merged partial of slot j for j in `slots`. It runs before
    ///   any block of matrix m is applied, may run concurrently with other ranges,
    ///   and must write only what belongs to its slots.
    /// - `apply(m, firstRow, rowCount)`, when `writesOutput`, writes those rows of
    ///   matrix m. Without, the call is a single pass over the data. Not optional,
    ///   so that it need not escape (see `RowsGeometry.reduceThenApply`).
    /// - `workspace`: the call's arena, for the partials per (row block, slot) and
    ///   the merged ones.
    func reduceThenApply<Partial: TreeMergeable>(
        threading: Threading, workspace: Arena, partialsPerBlock width: Int? = nil, slotGroup: Int = 1,
        reduce: (_ matrix: Int, _ firstRow: Int, _ rowCount: Int, _ out: UnsafeMutablePointer<Partial>) -> Void,
        finalize: (_ matrix: Int, _ slots: Range<Int>, _ merged: UnsafePointer<Partial>) -> Void,
        writesOutput: Bool = true, apply: (_ matrix: Int, _ firstRow: Int, _ rowCount: Int) -> Void
    ) {
        let perMatrix = blocksPerMatrix, width = width ?? columns
        let chunk = min(width, (ColumnsGeometry.mergeWidth + slotGroup - 1) / slotGroup * slotGroup)
        let chunks = (width + chunk - 1) / chunk
        let partials = workspace.take(Partial.self, count: blocks * width)
        let merged = workspace.take(Partial.self, count: matrices * width)

        func reduceBlock(_ b: Int) {
            let m = b / perMatrix
            let first = (b - m * perMatrix) * rowBlock
            reduce(m, first, min(rowBlock, rows - first), partials + b * width)
        }
        func mergeChunk(_ m: Int, _ k: Int) {
            let lo = k * chunk, hi = min(width, lo + chunk)
            let out = merged + m * width
            withScratch(of: Partial.self, capacity: RowTree.scratchCount(rows: perMatrix, width: chunk)) {
                RowTree.merge(partials + m * perMatrix * width + lo, stride: width, rows: 0, perMatrix,
                              width: hi - lo, into: out + lo, scratch: $0.baseAddress!)
            }
            finalize(m, lo..<hi, out)
        }
        func applyBlock(_ b: Int) {
            let m = b / perMatrix
            let first = (b - m * perMatrix) * rowBlock
            apply(m, first, min(rowBlock, rows - first))
        }

        if splitsMatrices(threading: threading) {
            // One parallel call, three phases: partials, merge by slot ranges, output.
            let phases: InlineArray = [Parallel.Phase(count: blocks, elementsPerItem: rowBlock * columns),
                          Parallel.Phase(count: matrices * chunks, elementsPerItem: perMatrix * chunk * 8),
                          Parallel.Phase(count: writesOutput ? blocks : 0, elementsPerItem: rowBlock * columns,
                                         fromTheEnd: true)]
            Parallel.forEach(phases: phases, threading: threading) { phase, range in
                switch phase {
                case 0: for b in range { reduceBlock(b) }
                case 1: for i in range { mergeChunk(i / chunks, i % chunks) }
                default: for b in range { applyBlock(b) }
                }
            }
        } else {
            Parallel.forEach(count: matrices, elementsPerItem: matrixElements, threading: threading) { range in
                for m in range {
                    for b in (m * perMatrix)..<((m + 1) * perMatrix) { reduceBlock(b) }
                    for k in 0..<chunks { mergeChunk(m, k) }
                    if writesOutput {
                        // Last block first: it is the one most surely still in cache.
                        for b in ((m * perMatrix)..<((m + 1) * perMatrix)).reversed() { applyBlock(b) }
                    }
                }
            }
        }
    }

    /// Normalization only (inference): `apply(m, firstRow, rowCount)` over all blocks.
    /// `fromTheEnd`: last blocks first (a second pass over data just read; see `Parallel.forEach`).
    func apply(threading: Threading, fromTheEnd: Bool = false,
               _ apply: (_ matrix: Int, _ firstRow: Int, _ rowCount: Int) -> Void) {
        let perMatrix = blocksPerMatrix
        Parallel.forEach(count: blocks, elementsPerItem: rowBlock * columns, threading: threading,
                         fromTheEnd: fromTheEnd) { range in
            for b in range {
                let m = b / perMatrix
                let first = (b - m * perMatrix) * rowBlock
                apply(m, first, min(rowBlock, rows - first))
            }
        }
    }
}
