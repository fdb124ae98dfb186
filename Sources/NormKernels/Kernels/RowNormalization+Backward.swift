/// The row-normalization engine, backward: LayerNorm, RMSNorm and GroupNorm's
/// row paths (feature vectors, NCHW small maps with γ expanded, NHWC small maps).
///
/// ```
/// x̂ = (x − μ)·r            g = dy·γ
/// dx    = r·(g − mean(g) − x̂·mean(g·x̂))  =  (r·γ[i])·dy + b·(x − p) + c      per slot
///         b = −r²·mean(g·x̂), c = −r·(mean(g) + t·mean(g·x̂)), p = Float(μ), t = −(μ − p)·r
/// dγ[i] = Σ_rows dy·x̂      dβ[i] = Σ_rows dy                               per column
/// ```
/// (RMSNorm: μ = p = t = 0 and no mean(g) term.) Two reductions with different
/// directions: per-slot row sums Σg, Σg·x̂ (for dx; the rows geometry's blocks of
/// a slot, merged in a fixed tree) and per-column sums Σdy, Σdy·x̂ (dβ, dγ;
/// partials per block of rows, merged down the row blocks in a fixed tree). The
/// dx sweep and the column sums share one pass over tiles of (row block ×
/// ≤ `rowNormalizationTileColumns` columns). Every strategy computes the same
/// partials and merges them in the same trees: same bits for any thread count.
///
/// With `groups` > 1 (GroupNorm) each row is `groups` segments of
/// `features / groups` values with their own statistics: slot `row·groups + g`.
/// With `rowsPerSlot` = R > 1 (GroupNorm NHWC with small H·W: rows are the N·H·W
/// positions, R = H·W) R consecutive rows share their statistics: segment g of
/// row r uses slot (r / R)·groups + g, and row blocks hold whole samples.
///
/// `RowBackwardPlan` fixes the strategy at the descriptor's `init`; the per-call
/// buffers and one function per strategy are in `RowNormalization+BackwardPass.swift`.
struct RowBackwardPlan: Sendable {
    /// How a row block's slots get their row sums before the dx sweep.
    enum RowSums: Sendable {
        /// Segments of ≤ `TinyUnits.maxBackwardRowLength` values (R = 1): 8 slots
        /// per vector (`TinyUnits.gradientSums8`). A slot's sums depend only on its
        /// own values, so any grouping of slots gives the same bits.
        case eightSlotsPerVector
        /// Other segments of ≤ `BlockGradients.shortRowLength` values, one block
        /// each (R = 1): the sums inlined in the row loop (`BlockGradients.shortRow`),
        /// no per-row reduce and merge calls.
        case inlineShortRows
        /// The rows geometry's blocks of each slot, merged in a fixed tree.
        case blocks
    }

    /// How the work of one call is spread over the workers.
    enum Strategy: Equatable {
        /// dx of rows of ≤ `ShortRowsBackward.maxLength` values (one group,
        /// R = 1): each row block in one sweep of eight rows at a time, forming
        /// each row's x̂ coefficients itself, in parallel (no table to fill
        /// first: 16 384 rows took a tenth of the one-thread call).
        case shortRowSweep
        /// Many row blocks (≥ 4 per worker, or one worker): each worker takes
        /// whole row blocks, row sums then the sweep while the block (≈ L2/8 per
        /// input) is in cache.
        case wholeRowBlocks
        /// Few row blocks (long rows): the row sums spread over all workers by
        /// blocks, merged per slot, then the tiles.
        case spreadRowSums
    }

    let rows: Int
    let features: Int
    let groups: Int
    let rowsPerSlot: Int
    /// Values per segment (`features / groups`) and statistics slots.
    let segment: Int
    let slots: Int
    /// Whether the statistics are centered (moments) or not (RMSNorm).
    let centered: Bool
    /// Slot u = (row / R)·groups + g: R segments of S values, D apart, from
    /// (u / groups)·R·D + (u % groups)·S.
    let rowGeometry: RowsGeometry
    /// Rows per row block (a multiple of R), row blocks, and tiles per row block.
    let rowBlock: Int
    let rowBlocks: Int
    let tileWidth: Int
    let tilesPerRowBlock: Int
    let rowSums: RowSums
    /// Whether dx can take `Strategy.shortRowSweep`.
    let sweepsShortRows: Bool
    /// Workers over the finest items (tiles): long rows make a single row block
    /// (LayerNorm over C·H·W of a few samples), which must still be spread.
    let workers: Int
    let store: StorePolicy
    let threading: Threading
    /// Where a call's workspace comes from (`workspaceBytes`).
    let workspace = WorkspacePool()
    /// The one-block plans of the blockwise fused backwards (`BlockwiseRowBackward`).
    let blockPlans = RowBlockPlans()

    /// `rowBlocksAtLeast`: cut the rows (R = 1) into at least that many row blocks of
    /// a multiple of 8 rows, for plans whose one row block would be one tile and so
    /// one worker. A function of the shape only, so the column partials' tree, and
    /// with it dγ and dβ, are the same on every thread count.
    init(rows: Int, features D: Int, groups: Int = 1, rowsPerSlot R: Int = 1, centered: Bool,
         rowBlocksAtLeast: Int = 1, threading: Threading) {
        let S = D / groups
        self.rows = rows
        self.features = D
        self.groups = groups
        self.rowsPerSlot = R
        self.segment = S
        self.slots = rows / R * groups
        self.centered = centered
        self.threading = threading
        rowGeometry = RowsGeometry(units: slots, segments: R, segmentLength: S, unitStride: S, segmentStride: D,
                                   unitsPerRun: groups, runStride: R * D, groupShortSegments: R > 1)
        // Tiles hold whole groups, so a tile row is whole segments.
        tileWidth = groups == 1 ? min(D, rowNormalizationTileColumns)
                                : S * max(1, min(groups, rowNormalizationTileColumns / S))
        tilesPerRowBlock = (D + tileWidth - 1) / tileWidth
        let natural = max(1, ColumnsGeometry(matrices: 1, rows: rows, columns: D).rowBlock / R) * R
        if R == 1 && rowBlocksAtLeast > 1 && natural >= rows && tilesPerRowBlock == 1 {
            let split = (rows + rowBlocksAtLeast - 1) / rowBlocksAtLeast
            rowBlock = min(natural, max(8, (split + 7) / 8 * 8))
        } else {
            rowBlock = natural
        }
        rowBlocks = (rows + rowBlock - 1) / rowBlock
        sweepsShortRows = groups == 1 && R == 1 && D <= ShortRowsBackward.maxLength
        if R == 1 && S <= TinyUnits.maxBackwardRowLength {
            rowSums = .eightSlotsPerVector
        } else if R == 1 && S <= BlockGradients.shortRowLength && rowGeometry.blocksPerUnit == 1 {
            rowSums = .inlineShortRows
        } else {
            rowSums = .blocks
        }
        workers = Parallel.workers(count: rowBlocks * tilesPerRowBlock, elementsPerItem: rowBlock * tileWidth,
                                   threading: threading)
        store = StorePolicy(backward: rows * D, threads: threading.threads)
    }

    /// The strategy of a call that does or does not write dx.
    func strategy(gradInput: Bool) -> Strategy {
        if gradInput && sweepsShortRows { return .shortRowSweep }
        return workers == 1 || rowBlocks >= 4 * workers ? .wholeRowBlocks : .spreadRowSums
    }

    /// Workspace a call carves from `workspace` (bytes, before alignment): x̂
    /// coefficients and dx coefficients per slot, and column partials per (row
    /// block, column) when there are several row blocks; per-worker scratch
    /// comes from `withScratch`.
    func workspaceBytes(gradInput: Bool, columnSums: Bool) -> Int {
        let shortSweep = strategy(gradInput: gradInput) == .shortRowSweep
        let perSlot = shortSweep ? 0 : slots * (3 * 4 + (gradInput ? MemoryLayout<GradientCoefficients>.stride : 0))
        let partials = columnSums && rowBlocks > 1 ? rowBlocks * features * MemoryLayout<GradientSums>.stride : 0
        let spread = gradInput && strategy(gradInput: true) == .spreadRowSums
            ? rowGeometry.blocks * MemoryLayout<GradientSums>.stride : 0
        return perSlot + partials + spread
    }
}

/// Column tile width of the row-normalization backward sweep (a multiple of 8).
/// Each row of a tile is 16 KiB of contiguous data per input (several pages, so
/// few rows 4 MiB apart still stream), and the Float32 column accumulators
/// (32 KiB) stay in L1/L2. The width does not change any result.
let rowNormalizationTileColumns = 4096


/// The backward of a row plan. `mean` nil: uncentered (RMSNorm). The caller
/// passes only the outputs it wants; `columnTotals`, when given, gets every
/// column's Float64 sums (dβ in `.dy`, dγ in `.dyXhat`) before they are rounded to
/// Float32 (GroupNorm's expanded γ sums them further, over each channel's positions).
/// `firstSlot`: the plan's slot u has its statistics at `mean[firstSlot + u]`,
/// `invStd[firstSlot + u]` (a row block run on its own, `BlockwiseRowBackward`).
///
/// Generic over the tensors' element type, as the forward (`normalizeRows`): x
/// and dy widened exactly on load, every sum and coefficient as in Float32, dx
/// rounded once (streamed in 16-byte stores where the plan streams), dγ and
/// dβ Float32. So a 16-bit dx is `E.narrow` of the Float32 kernel's dx on the
/// widened inputs, and dγ, dβ are the Float32 kernel's, bit for bit.
func rowNormalizationBackward<E: NormElement>(
    _ plan: RowBackwardPlan, x: UnsafePointer<E>, dy: UnsafePointer<E>,
    mean: [Double]?, invStd: [Double], gamma: UnsafePointer<Float>?, dx: UnsafeMutablePointer<E>?,
    gradScale: UnsafeMutablePointer<Float>?, gradBias: UnsafeMutablePointer<Float>?,
    columnTotals: UnsafeMutablePointer<GradientSums>? = nil, firstSlot: Int = 0
) {
    let needColumns = gradScale != nil || gradBias != nil || columnTotals != nil
    guard dx != nil || needColumns else { return }
    let strategy = plan.strategy(gradInput: dx != nil)
    let shortSweep = strategy == .shortRowSweep
    let workspace = plan.workspace.take()
    defer { plan.workspace.recycle(workspace) }
    // The short-row sweep forms each row's x̂ coefficients itself.
    let xhat = CoefficientTable(count: shortSweep ? 0 : plan.slots, in: workspace)
    if !shortSweep {
        for u in 0..<plan.slots {
            xhat[u] = AffineCoefficients(mean: mean?[firstSlot + u] ?? 0, invStd: invStd[firstSlot + u])
        }
    }
    let table: GradientTable? = dx != nil && !shortSweep ? GradientTable(count: plan.slots, in: workspace) : nil
    // Column partials per (row block, column). With a single row block (fewer rows
    // than a block) each tile's sums are final: they go from a per-worker buffer
    // straight to dγ/dβ, with no T-sized partial buffer (whose first touch cost
    // as much as the pass) and no merge pass. Same values: a one-part tree is the part.
    let columnSums: UnsafeMutablePointer<GradientSums>? = needColumns && plan.rowBlocks > 1
        ? workspace.take(GradientSums.self, count: plan.rowBlocks * plan.features) : nil
    let pass = RowBackwardPass(
        plan: plan, x: x, dy: dy, mean: mean, invStd: invStd, firstSlot: firstSlot, gamma: gamma, dx: dx,
        gradScale: gradScale, gradBias: gradBias, columnTotals: columnTotals, needColumns: needColumns,
        streaming: dx.map { plan.store.streaming(output: $0, reading: x, dy) } ?? false,
        xhat: xhat, table: table, columnSums: columnSums, workspace: workspace)
    switch strategy {
    case .shortRowSweep: pass.sweepShortRowBlocks()
    case .wholeRowBlocks: pass.wholeRowBlocks()
    case .spreadRowSums: pass.spreadRowSums()
    }
}
