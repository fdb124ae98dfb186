extension LayerNormalization {
    /// Gradients of `forward` with respect to the input, γ and β; the caller
    /// passes only the gradient buffers it wants and pays only for those.
    ///
    /// ```
    /// x̂ = (x − μ)·r            r = 1/√(σ² + ε), μ and r from `saved` (Float64)
    /// g = dy · γ               (γ = 1 without scale)
    /// dx    = r · (g − mean_i(g) − x̂ · mean_i(g·x̂))          per row
    ///       = (r·γ[i])·dy + b·(x − p) + c                       p = Float(μ), t = −(μ − p)·r,
    ///                                                           b = −r²·mean(g·x̂), c = −r·(mean(g) + t·mean(g·x̂))
    /// dγ[i] = Σ_rows dy · x̂     dβ[i] = Σ_rows dy               column sums across rows
    /// ```
    /// Row sums are formed per block of ≤ 4096 values and merged per row in a fixed
    /// tree; column sums per block of rows (partials per row block and column) and
    /// merged down the row blocks in a fixed tree: bitwise identical for any thread count.
    ///
    /// **Memory passes** (T = rows·features values):
    /// - `gradInput` requested: reads `x` and `dy` twice (row sums, then one sweep that
    ///   writes dx and, if requested, accumulates dγ/dβ) and writes dx once. Work goes
    ///   by blocks of rows sized to L2/8 per input, so when rows are short the second
    ///   read comes from cache.
    /// - only `gradScale`/`gradBias`: one pass reading `x` and `dy`.
    ///
    /// **Aliasing**: `gradInput` may be `gradOutput` or `input` (in place); gradient
    /// buffers must not otherwise share memory with each other or the inputs.
    /// Throws before writing anything on a wrong length (input, gradOutput, saved
    /// statistics, scale, any gradient buffer) or overlap.
    public func backward(
        input: UnsafeBufferPointer<Float>, gradOutput: UnsafeBufferPointer<Float>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        let total = rows * features
        try Check.length(input.count, total, "input")
        try Check.length(gradOutput.count, total, "gradOutput")
        try Check.saved(saved.mean, rows, "saved.mean")
        try Check.saved(saved.invStd, rows, "saved.invStd")
        try Check.length(scale, features, "scale (γ)")
        try Check.length(gradInput, total, "gradInput")
        try Check.length(gradScale, features, "gradScale (dγ)")
        try Check.length(gradBias, features, "gradBias (dβ)")
        try Check.buffers(
            writes: [("gradInput", MemorySpan(gradInput)), ("gradScale", MemorySpan(gradScale)), ("gradBias", MemorySpan(gradBias))],
            reads: [("input", MemorySpan(input)), ("gradOutput", MemorySpan(gradOutput)), ("scale (γ)", MemorySpan(scale))],
            inPlace: [("gradInput", "input"), ("gradInput", "gradOutput")])
        let x = try Check.base(input, "input"), dy = try Check.base(gradOutput, "gradOutput")
        rowNormalizationBackward(
            rows: rows, features: features, x: x, dy: dy, mean: saved.mean, invStd: saved.invStd, centered: true,
            gamma: scale?.baseAddress, dx: gradInput?.baseAddress,
            gradScale: gradScale?.baseAddress, gradBias: gradBias?.baseAddress, threading: threading)
    }
}

extension RMSNormalization {
    /// Gradients of `forward` with respect to the input and γ.
    ///
    /// ```
    /// x̂ = x·r                  r = 1/√(mean(x²) + ε) from `saved.invStd` (saved.mean is ignored)
    /// g = dy · γ
    /// dx    = r · (g − x̂ · mean_i(g·x̂))  =  (r·γ[i])·dy − r²·mean(g·x̂)·x
    /// dγ[i] = Σ_rows dy · x̂
    /// ```
    /// Same engine, determinism and memory passes as `LayerNormalization.backward`:
    /// with `gradInput`, `x` and `dy` are read twice and dx written once; dγ alone
    /// is one pass. `gradInput` may be `gradOutput` or `input`.
    public func backward(
        input: UnsafeBufferPointer<Float>, gradOutput: UnsafeBufferPointer<Float>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        let total = rows * features
        try Check.length(input.count, total, "input")
        try Check.length(gradOutput.count, total, "gradOutput")
        try Check.saved(saved.invStd, rows, "saved.invStd")
        try Check.length(scale, features, "scale (γ)")
        try Check.length(gradInput, total, "gradInput")
        try Check.length(gradScale, features, "gradScale (dγ)")
        try Check.buffers(
            writes: [("gradInput", MemorySpan(gradInput)), ("gradScale", MemorySpan(gradScale))],
            reads: [("input", MemorySpan(input)), ("gradOutput", MemorySpan(gradOutput)), ("scale (γ)", MemorySpan(scale))],
            inPlace: [("gradInput", "input"), ("gradInput", "gradOutput")])
        let x = try Check.base(input, "input"), dy = try Check.base(gradOutput, "gradOutput")
        rowNormalizationBackward(
            rows: rows, features: features, x: x, dy: dy, mean: nil, invStd: saved.invStd, centered: false,
            gamma: scale?.baseAddress, dx: gradInput?.baseAddress,
            gradScale: gradScale?.baseAddress, gradBias: nil, threading: threading)
    }
}

/// Column tile width of the row-normalization backward sweep (a multiple of 8).
/// Each row of a tile is 16 KiB of contiguous data per input (several pages, so
/// few rows 4 MiB apart still stream), and the Float32 column accumulators
/// (32 KiB) stay in L1/L2. The width does not change any result.
let rowNormalizationTileColumns = 4096

/// Rows from this length on take their row sums in sub-blocks just ahead of the
/// dx sweep (see `rowNormalizationBackward`).
let fusedRowLength = 512

/// The engine of LayerNorm and RMSNorm backward over `rows × features`.
///
/// Two reductions with different directions: per-row Σg, Σg·x̂ (for dx; the rows
/// geometry's blocks of a row, merged per row in a fixed tree) and per-column
/// Σdy, Σdy·x̂ (dβ, dγ; partials per block of rows — the columns geometry's row
/// blocks — merged down the row blocks in a fixed tree). The dx sweep and the
/// column sums share one pass over tiles of (row block × ≤ 1024 columns).
///
/// With `groups` > 1 (GroupNorm on feature vectors, H·W = 1) each row is `groups`
/// segments of `features / groups` values with their own statistics: slot
/// `row·groups + g` of `mean`/`invStd`, row sums per (row, group), and dx
/// coefficients per (row, group); γ and the column sums stay per feature.
///
/// With `rowsPerSlot` = R > 1 (GroupNorm NHWC with small H·W: rows are the
/// N·H·W positions, R = H·W) R consecutive rows share their statistics: segment g
/// of row r uses slot (r / R)·groups + g, its row sums run over R segments C apart,
/// and row blocks hold whole samples.
///
/// `columnTotals`, when given, gets every column's Float64 sums (dβ in `.dy`, dγ in
/// `.dyXhat`) before they are rounded to Float32 (GroupNorm's expanded γ sums them
/// further, over each channel's positions).
///
/// Strategies: with many row blocks (≥ 4 per worker, or one worker) each worker
/// takes whole row blocks — row sums, then the sweep, while the block (≈ L2/8 per
/// input) is in cache. With few row blocks (long rows), the row sums are spread
/// over all workers by blocks, then the tiles. Same partials, same trees: same bits.
func rowNormalizationBackward(
    rows: Int, features: Int, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
    groups: Int = 1, rowsPerSlot R: Int = 1, mean: [Double]?, invStd: [Double], centered: Bool,
    gamma: UnsafePointer<Float>?, dx: UnsafeMutablePointer<Float>?,
    gradScale: UnsafeMutablePointer<Float>?, gradBias: UnsafeMutablePointer<Float>?,
    columnTotals: UnsafeMutablePointer<GradientSums>? = nil, threading: Threading
) {
    let needColumns = gradScale != nil || gradBias != nil || columnTotals != nil
    guard dx != nil || needColumns else { return }
    let D = features, S = features / groups, slots = rows / R * groups
    // Slot u = (row / R)·groups + g: R segments of S values, D apart, from
    // (u / groups)·R·D + (u % groups)·S (with R = 1 simply u·S).
    let rowGeometry = RowsGeometry(units: slots, segments: R, segmentLength: S, unitStride: S, segmentStride: D,
                                   unitsPerRun: groups, runStride: R * D, groupShortSegments: R > 1)
    let rowBlock = max(1, ColumnsGeometry(matrices: 1, rows: rows, columns: D).rowBlock / R) * R
    let rowBlocks = (rows + rowBlock - 1) / rowBlock
    // Tiles hold whole groups, so a tile row is whole segments.
    let tileWidth = groups == 1 ? min(D, rowNormalizationTileColumns) : S * max(1, min(groups, rowNormalizationTileColumns / S))
    let tilesPerRowBlock = (D + tileWidth - 1) / tileWidth
    let streaming = dx.map { prefersStreamingStores(elements: rows * D, output: $0, inputs: x, dy) } ?? false

    // Rows of up to `ShortRowsBackward.maxLength` values (one group, R = 1): each
    // row block in one sweep of eight rows at a time (`ShortRowsBackward`), and in
    // every strategy: the row block is the item whatever the worker count, so the
    // bits do not depend on it. (Row sums via `tinyRows`/`shortRows` remain for
    // GroupNorm's per-group segments and for dγ/dβ alone.) It forms each row's
    // x̂ coefficients itself, in parallel: no table to fill first (16 384 rows
    // took a tenth of the one-thread call).
    let shortSweep = dx != nil && groups == 1 && R == 1 && D <= ShortRowsBackward.maxLength
    let xhat = CoefficientTable(count: shortSweep ? 0 : slots)
    defer { xhat.deallocate() }
    if !shortSweep {
        for u in 0..<slots { xhat[u] = AffineCoefficients(mean: mean?[u] ?? 0, invStd: invStd[u]) }
    }
    let table: GradientTable? = dx != nil && !shortSweep ? GradientTable(count: slots) : nil
    defer { table?.deallocate() }
    // Column partials per (row block, column). With a single row block (fewer rows
    // than a block) each tile's sums are final: they go from a per-worker buffer
    // straight to dγ/dβ, with no T-sized partial buffer (whose first touch cost
    // as much as the pass) and no merge pass. Same values: a one-part tree is the part.
    let direct = rowBlocks == 1
    let columnSums: UnsafeMutablePointer<GradientSums>? = needColumns && !direct ? .allocate(capacity: rowBlocks * D) : nil
    defer { columnSums?.deallocate() }

    func reduceRowBlock(_ b: RowBlock) -> GradientSums {
        BlockGradients.segmented(x + b.offset, dy + b.offset, length: b.count, stride: D, segments: b.segmentCount,
                                 xhat[b.unit], mask: nil, gamma: gamma.map { $0 + (b.unit % groups) * S + b.start })
    }
    // Short segments (R = 1, ≤ `TinyUnits.maxBackwardRowLength` values): row sums of
    // 8 slots per vector (`TinyUnits`) instead of a block reduction per slot. A
    // slot's sums depend only on its own values, so any grouping of slots gives
    // the same bits.
    let tinyRows = R == 1 && S <= TinyUnits.maxBackwardRowLength
    // Other rows of up to `BlockGradients.shortRowLength` values (one block each):
    // row sums inlined into the row loop, no per-row reduce and merge calls.
    let shortRows = !tinyRows && R == 1 && S <= BlockGradients.shortRowLength && rowGeometry.blocksPerUnit == 1
    /// Row sums of slots `lo ..< hi` into `out[0 ..< hi − lo]`, 8 at a time.
    func tinyRowSums(_ lo: Int, _ hi: Int, _ out: UnsafeMutablePointer<GradientSums>) {
        for first in stride(from: lo, to: hi, by: 8) {
            TinyUnits.gradientSums8(x, dy, first: first, last: hi - 1, length: S, xhat: xhat, gamma: gamma,
                                    groups: groups, into: out + (first - lo))
        }
    }
    /// Slot u = (row / R)·groups + g.
    /// Row sums of slot u (rows of ≤ `BlockGradients.shortRowLength` values, R = 1:
    /// slot u is the S values from u·S), the same in every strategy.
    func shortRowSums(_ u: Int) -> GradientSums {
        BlockGradients.shortRow(x + u * S, dy + u * S, S, xhat[u], gamma: gamma.map { $0 + (u % groups) * S })
    }
    /// Row sums of slot u from its `perRow` blocks (`parts`: room for them), then its dx coefficients.
    func blockRowSums(_ u: Int, _ parts: UnsafeMutablePointer<GradientSums>) {
        for i in 0..<perRow { (parts + i).initialize(to: reduceRowBlock(rowGeometry.block(u * perRow + i))) }
        finalizeRow(u, UnsafeBufferPointer(start: parts, count: perRow))
    }
    func finalizeRow(_ u: Int, _ parts: UnsafeBufferPointer<GradientSums>) {
        coefficients(u, GradientSums.treeSum(count: parts.count) { parts[$0] })
    }
    func coefficients(_ u: Int, _ sums: GradientSums) {
        let count = Double(S * R)
        table![u] = GradientCoefficients(
            mean: mean?[u] ?? 0, invStd: invStd[u], a: invStd[u],
            m1: centered ? sums.dy / count : 0, m2: sums.dyXhat / count)
    }
    /// Where tile (rb, columns c0 ..< c0 + nc) adds its column sums (zeroed), if wanted.
    func tileColumnSums(_ rb: Int, _ c0: Int, _ nc: Int, _ tileSums: UnsafeMutablePointer<GradientSums>)
        -> UnsafeMutablePointer<GradientSums>? {
        let sums: UnsafeMutablePointer<GradientSums>? = needColumns ? (direct ? tileSums : columnSums! + rb * D + c0) : nil
        sums?.initialize(repeating: .zero, count: nc)
        return sums
    }
    /// With a single row block the tile's column sums are final: dγ, dβ.
    func finishTile(_ c0: Int, _ nc: Int, _ tileSums: UnsafeMutablePointer<GradientSums>) {
        if needColumns && direct {
            for j in 0..<nc {
                gradScale?[c0 + j] = Float(tileSums[j].dyXhat)
                gradBias?[c0 + j] = Float(tileSums[j].dy)
                columnTotals?[c0 + j] = tileSums[j]
            }
        }
    }
    func tile(_ rb: Int, _ ct: Int, _ scratch: UnsafeMutablePointer<Float>, _ tileSums: UnsafeMutablePointer<GradientSums>,
              beforeRow: ((Int) -> Void)? = nil) {
        let r0 = rb * rowBlock, c0 = ct * tileWidth
        let nc = min(tileWidth, D - c0)
        let sums = tileColumnSums(rb, c0, nc, tileSums)
        let o = r0 * D + c0
        BlockGradients.rowTile(
            x + o, dy + o, dx: dx.map { $0 + o }, gamma: gamma.map { $0 + c0 },
            rows: min(rowBlock, rows - r0), columns: nc, stride: D, firstRow: r0,
            xhat: xhat, dxTable: table, columnSums: sums, scratch: scratch, streaming: streaming,
            segmentWidth: S, slotsPerRow: groups, firstSlot: c0 / S, rowsPerSlot: R, beforeRow: beforeRow)
        finishTile(c0, nc, tileSums)
    }
    /// A whole row block of short rows in one sweep (`ShortRowsBackward`).
    func shortRowBlock(_ rb: Int, _ scratch: UnsafeMutablePointer<Float>, _ tileSums: UnsafeMutablePointer<GradientSums>) {
        let r0 = rb * rowBlock
        let sums = tileColumnSums(rb, 0, D, tileSums)
        ShortRowsBackward.rowBlock(
            x: x + r0 * D, dy: dy + r0 * D, dx: dx! + r0 * D, gamma: gamma, rows: min(rowBlock, rows - r0), length: D,
            firstRow: r0, mean: mean, invStd: invStd, columnSums: sums, scratch: scratch, streaming: streaming)
        finishTile(0, D, tileSums)
    }
    /// Per-worker scratch: Float32 column accumulators and (single row block) the tile's sums.
    func withTileScratch(_ body: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<GradientSums>) -> Void) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * tileWidth) { scratch in
            withUnsafeTemporaryAllocation(of: GradientSums.self, capacity: direct && needColumns ? tileWidth : 1) { sums in
                body(scratch.baseAddress!, sums.baseAddress!)
            }
        }
    }

    // Rows of at least `fusedRowLength` values (one group, R = 1, one tile per row
    // block): whole row blocks take their row sums `fusedRows` rows at a time (an
    // eighth of the L2 of x and dy), each just before the sweep reaches those rows,
    // so the sweep reads them again from L1/L2 instead of from L3 or memory: a row
    // block of 128 rows of 4096 values is 4 MB of x and dy. Same sums, same
    // coefficients, same sweep: same bits as the other strategies. 1.15–1.7× on
    // [8192, 1024] to [2048, 4096], level at 512 values, 0.92–0.97× at 200
    // (docs/PERFORMANCE-HISTORY.md, "Ninth pass").
    let fused = !tinyRows && !shortRows && groups == 1 && R == 1 && tilesPerRowBlock == 1 && D >= fusedRowLength
    let fusedRows = max(1, Topology.current.l2CacheBytes / 8 / (8 * D))
    let perRow = rowGeometry.blocksPerUnit

    // Whether to go parallel is decided on the finest items (tiles), not on row
    // blocks: long rows make a single row block (LayerNorm over C·H·W of a few
    // samples), which must still be spread over the workers by blocks and tiles.
    let workers = Parallel.workers(count: rowBlocks * tilesPerRowBlock, elementsPerItem: rowBlock * tileWidth,
                                   threading: threading)
    let wholeRowBlocks = workers == 1 || rowBlocks >= 4 * workers || shortSweep
    let spreadSums = !wholeRowBlocks && dx != nil
    let blockSums: UnsafeMutablePointer<GradientSums>? = spreadSums ? .allocate(capacity: rowGeometry.blocks) : nil
    defer { blockSums?.deallocate() }
    // One parallel call. Whole row blocks: phase 0 (row sums then the sweep of each
    // block while it is in cache). Few row blocks: phases 1–3 (row sums spread over
    // the workers by blocks, merged per slot, then the tiles). Phase 4 merges the
    // column partials down the row blocks. Same partials, same trees: same bits.
    let phases = [
        Parallel.Phase(count: wholeRowBlocks ? rowBlocks : 0, elementsPerItem: rowBlock * D),
        Parallel.Phase(count: spreadSums ? rowGeometry.blocks : 0, elementsPerItem: rowGeometry.blockLength),
        Parallel.Phase(count: spreadSums ? slots : 0, elementsPerItem: perRow * 8),
        Parallel.Phase(count: wholeRowBlocks ? 0 : rowBlocks * tilesPerRowBlock, elementsPerItem: rowBlock * tileWidth),
        Parallel.Phase(count: columnSums != nil ? D : 0, elementsPerItem: rowBlocks * 4),
    ]
    Parallel.forEach(phases: phases, threading: threading) { phase, range in
        switch phase {
        case 0:
            withUnsafeTemporaryAllocation(of: GradientSums.self, capacity: max(perRow, 8)) { parts in
                withTileScratch { scratch, tileSums in
                    for rb in range {
                        let slotRange = (rb * rowBlock / R * groups)..<(min(rows, (rb + 1) * rowBlock) / R * groups)
                        if shortSweep {
                            shortRowBlock(rb, scratch, tileSums)
                            continue
                        }
                        if dx != nil && fused {
                            // Row sums of each sub-block just before the sweep reaches it.
                            tile(rb, 0, scratch, tileSums) { row in
                                guard row % fusedRows == 0 else { return }
                                let first = slotRange.lowerBound + row
                                for u in first..<min(slotRange.upperBound, first + fusedRows) { blockRowSums(u, parts.baseAddress!) }
                            }
                            continue    // the sweep is done
                        }
                        // Otherwise the whole block's row sums, then the sweep.
                        if dx != nil && tinyRows {
                            for first in stride(from: slotRange.lowerBound, to: slotRange.upperBound, by: 8) {
                                let end = min(slotRange.upperBound, first + 8)
                                tinyRowSums(first, end, parts.baseAddress!)
                                for u in first..<end { finalizeRow(u, UnsafeBufferPointer(start: parts.baseAddress! + (u - first), count: 1)) }
                            }
                        } else if dx != nil && shortRows {
                            for u in slotRange { coefficients(u, shortRowSums(u)) }
                        } else if dx != nil {
                            for u in slotRange { blockRowSums(u, parts.baseAddress!) }
                        }
                        for ct in 0..<tilesPerRowBlock { tile(rb, ct, scratch, tileSums) }
                    }
                }
            }
        case 1:
            if tinyRows {
                tinyRowSums(range.lowerBound, range.upperBound, blockSums! + range.lowerBound)
            } else if shortRows {
                // One block per row (perRow = 1): block u is slot u, summed as in phase 0.
                for u in range { (blockSums! + u).initialize(to: shortRowSums(u)) }
            } else {
                for b in range { (blockSums! + b).initialize(to: reduceRowBlock(rowGeometry.block(b))) }
            }
        case 2:
            for u in range { finalizeRow(u, UnsafeBufferPointer(start: blockSums! + u * perRow, count: perRow)) }
        case 3:
            withTileScratch { scratch, tileSums in
                for i in range { tile(i / tilesPerRowBlock, i % tilesPerRowBlock, scratch, tileSums) }
            }
        default:
            RowTree.forEachColumn(columnSums!, stride: D, rows: rowBlocks, columns: range) { c, sums in
                gradScale?[c] = Float(sums.dyXhat)
                gradBias?[c] = Float(sums.dy)
                columnTotals?[c] = sums
            }
        }
    }
}
