/// One call of the row-normalization backward (`rowNormalizationBackward`): its
/// buffers, the shared steps (row sums of a slot, dx coefficients, a tile of
/// the sweep), and one function per `RowBackwardPlan.Strategy`. Each strategy is
/// one parallel call whose last phase merges the column partials down the row
/// blocks (when there are several). `E`: the element type of x, dy and dx.
struct RowBackwardPass<E: NormElement> {
    let plan: RowBackwardPlan
    let x: UnsafePointer<E>
    let dy: UnsafePointer<E>
    let mean: [Double]?
    let invStd: [Double]
    /// Slot u's statistics are at `firstSlot + u` of `mean` and `invStd`.
    let firstSlot: Int
    let gamma: UnsafePointer<Float>?
    let dx: UnsafeMutablePointer<E>?
    let gradScale: UnsafeMutablePointer<Float>?
    let gradBias: UnsafeMutablePointer<Float>?
    let columnTotals: UnsafeMutablePointer<GradientSums>?
    let needColumns: Bool
    let streaming: Bool
    /// x̂ = (x − p)·s + t per slot (empty for the short-row sweep).
    let xhat: CoefficientTable
    /// dx coefficients per slot (with dx, except the short-row sweep).
    let table: GradientTable?
    /// Column partials per (row block, column), with several row blocks.
    let columnSums: UnsafeMutablePointer<GradientSums>?
    /// The call's arena (the spread strategy's block sums).
    let workspace: Arena

    /// With a single row block, tiles write their column sums straight to dγ, dβ.
    private var direct: Bool { plan.rowBlocks == 1 }
    private var perRow: Int { plan.rowGeometry.blocksPerUnit }

    // MARK: Strategies

    /// `Strategy.shortRowSweep`: each row block in one sweep (`ShortRowsBackward`).
    /// The row block is the item whatever the worker count, so the bits do not
    /// depend on it.
    func sweepShortRowBlocks() {
        let phases: InlineArray = [Parallel.Phase(count: plan.rowBlocks, elementsPerItem: plan.rowBlock * plan.features),
                      mergePhase]
        Parallel.forEach(phases: phases, threading: plan.threading) { phase, range in
            guard phase == 0 else { return mergeColumns(range) }
            withTileScratch { scratch, tileSums in
                for rb in range { shortRowBlock(rb, scratch, tileSums) }
            }
        }
    }

    /// `Strategy.wholeRowBlocks`: per row block, its slots' row sums, then its tiles.
    func wholeRowBlocks() {
        let phases: InlineArray = [Parallel.Phase(count: plan.rowBlocks, elementsPerItem: plan.rowBlock * plan.features),
                      mergePhase]
        Parallel.forEach(phases: phases, threading: plan.threading) { phase, range in
            guard phase == 0 else { return mergeColumns(range) }
            withScratch(of: GradientSums.self, capacity: max(perRow, 8)) { parts in
                withTileScratch { scratch, tileSums in
                    for rb in range { wholeRowBlock(rb, parts.baseAddress!, scratch, tileSums) }
                }
            }
        }
    }

    /// `Strategy.spreadRowSums`: the slots' block sums over all workers, merged
    /// per slot, then the tiles. Without dx only the tiles (column sums).
    func spreadRowSums() {
        let rowSums = dx != nil, geometry = plan.rowGeometry
        let blockSums: UnsafeMutablePointer<GradientSums>? = rowSums ? workspace.take(GradientSums.self, count: geometry.blocks) : nil
        let phases: InlineArray = [
            Parallel.Phase(count: rowSums ? geometry.blocks : 0, elementsPerItem: geometry.blockLength),
            Parallel.Phase(count: rowSums ? plan.slots : 0, elementsPerItem: perRow * 8),
            Parallel.Phase(count: plan.rowBlocks * plan.tilesPerRowBlock, elementsPerItem: plan.rowBlock * plan.tileWidth),
            mergePhase,
        ]
        Parallel.forEach(phases: phases, threading: plan.threading) { phase, range in
            switch phase {
            case 0:
                switch plan.rowSums {
                case .eightSlotsPerVector:
                    eightSlotRowSums(range.lowerBound, range.upperBound, blockSums! + range.lowerBound)
                case .inlineShortRows:
                    // One block per slot (perRow = 1): block u is slot u.
                    for u in range { (blockSums! + u).initialize(to: shortRowSums(u)) }
                case .blocks:
                    for b in range { (blockSums! + b).initialize(to: reduceRowBlock(geometry.block(b))) }
                }
            case 1:
                for u in range { finalizeRow(u, UnsafeBufferPointer(start: blockSums! + u * perRow, count: perRow)) }
            case 2:
                withTileScratch { scratch, tileSums in
                    for i in range { tile(i / plan.tilesPerRowBlock, i % plan.tilesPerRowBlock, scratch, tileSums) }
                }
            default:
                mergeColumns(range)
            }
        }
    }

    // MARK: Row blocks and tiles

    /// Row block rb of `wholeRowBlocks`: row sums by the plan's `RowSums`, then the sweep.
    private func wholeRowBlock(_ rb: Int, _ parts: UnsafeMutablePointer<GradientSums>,
                               _ scratch: UnsafeMutablePointer<Float>, _ tileSums: UnsafeMutablePointer<GradientSums>) {
        let R = plan.rowsPerSlot, groups = plan.groups
        let slotRange = (rb * plan.rowBlock / R * groups)..<(min(plan.rows, (rb + 1) * plan.rowBlock) / R * groups)
        if dx != nil {
            switch plan.rowSums {
            case .eightSlotsPerVector:
                for first in stride(from: slotRange.lowerBound, to: slotRange.upperBound, by: 8) {
                    let end = min(slotRange.upperBound, first + 8)
                    eightSlotRowSums(first, end, parts)
                    for u in first..<end { finalizeRow(u, UnsafeBufferPointer(start: parts + (u - first), count: 1)) }
                }
            case .inlineShortRows:
                for u in slotRange { coefficients(u, shortRowSums(u)) }
            case .blocks:
                for u in slotRange { blockRowSums(u, parts) }
            }
        }
        for ct in 0..<plan.tilesPerRowBlock { tile(rb, ct, scratch, tileSums) }
    }

    /// Tile (row block rb, column tile ct): dx and the column sums in one pass
    /// (`BlockGradients.rowTile`).
    private func tile(_ rb: Int, _ ct: Int, _ scratch: UnsafeMutablePointer<Float>,
                      _ tileSums: UnsafeMutablePointer<GradientSums>) {
        let D = plan.features, r0 = rb * plan.rowBlock, c0 = ct * plan.tileWidth
        let nc = min(plan.tileWidth, D - c0)
        let sums = tileColumnSums(rb, c0, nc, tileSums)
        let o = r0 * D + c0
        BlockGradients.rowTile(
            x + o, dy + o, dx: dx.map { $0 + o }, gamma: gamma.map { $0 + c0 },
            rows: min(plan.rowBlock, plan.rows - r0), columns: nc, stride: D, firstRow: r0,
            xhat: xhat, dxTable: table, columnSums: sums, scratch: scratch, streaming: streaming,
            segmentWidth: plan.segment, slotsPerRow: plan.groups, firstSlot: c0 / plan.segment,
            rowsPerSlot: plan.rowsPerSlot)
        finishTile(c0, nc, tileSums)
    }

    /// A whole row block of short rows in one sweep (`ShortRowsBackward`).
    private func shortRowBlock(_ rb: Int, _ scratch: UnsafeMutablePointer<Float>,
                               _ tileSums: UnsafeMutablePointer<GradientSums>) {
        let D = plan.features, r0 = rb * plan.rowBlock
        let sums = tileColumnSums(rb, 0, D, tileSums)
        ShortRowsBackward.rowBlock(
            x: x + r0 * D, dy: dy + r0 * D, dx: dx! + r0 * D, gamma: gamma, rows: min(plan.rowBlock, plan.rows - r0),
            length: D, firstRow: firstSlot + r0, mean: mean, invStd: invStd, columnSums: sums, scratch: scratch,
            streaming: streaming)
        finishTile(0, D, tileSums)
    }

    // MARK: Row sums and dx coefficients

    /// Σg, Σg·x̂ of the rows geometry's block b.
    private func reduceRowBlock(_ b: RowBlock) -> GradientSums {
        BlockGradients.segmented(x + b.offset, dy + b.offset, length: b.count, stride: plan.features,
                                 segments: b.segmentCount, xhat[b.unit], mask: nil,
                                 gamma: gamma.map { $0 + (b.unit % plan.groups) * plan.segment + b.start })
    }

    /// Row sums of slots `lo ..< hi` into `out[0 ..< hi − lo]`, 8 at a time.
    private func eightSlotRowSums(_ lo: Int, _ hi: Int, _ out: UnsafeMutablePointer<GradientSums>) {
        for first in stride(from: lo, to: hi, by: 8) {
            TinyUnits.gradientSums8(x, dy, first: first, last: hi - 1, length: plan.segment, xhat: xhat, gamma: gamma,
                                    groups: plan.groups, into: out + (first - lo))
        }
    }

    /// Row sums of slot u (R = 1: the S values from u·S), the same in every strategy.
    private func shortRowSums(_ u: Int) -> GradientSums {
        let S = plan.segment
        return BlockGradients.shortRow(x + u * S, dy + u * S, S, xhat[u], gamma: gamma.map { $0 + (u % plan.groups) * S })
    }

    /// Row sums of slot u from its blocks (`parts`: room for them), then its dx coefficients.
    private func blockRowSums(_ u: Int, _ parts: UnsafeMutablePointer<GradientSums>) {
        let perRow = self.perRow
        for i in 0..<perRow { (parts + i).initialize(to: reduceRowBlock(plan.rowGeometry.block(u * perRow + i))) }
        finalizeRow(u, UnsafeBufferPointer(start: parts, count: perRow))
    }

    private func finalizeRow(_ u: Int, _ parts: UnsafeBufferPointer<GradientSums>) {
        coefficients(u, GradientSums.treeSum(count: parts.count) { parts[$0] })
    }

    /// dx coefficients of slot u from its row sums.
    private func coefficients(_ u: Int, _ sums: GradientSums) {
        let count = Double(plan.segment * plan.rowsPerSlot)
        table![u] = GradientCoefficients(
            mean: mean?[firstSlot + u] ?? 0, invStd: invStd[firstSlot + u], a: invStd[firstSlot + u],
            m1: plan.centered ? sums.dy / count : 0, m2: sums.dyXhat / count)
    }

    // MARK: Column sums

    /// Where tile (rb, columns c0 ..< c0 + nc) adds its column sums (zeroed), if wanted.
    private func tileColumnSums(_ rb: Int, _ c0: Int, _ nc: Int, _ tileSums: UnsafeMutablePointer<GradientSums>)
        -> UnsafeMutablePointer<GradientSums>? {
        let sums: UnsafeMutablePointer<GradientSums>? = needColumns
            ? (direct ? tileSums : columnSums! + rb * plan.features + c0) : nil
        sums?.initialize(repeating: .zero, count: nc)
        return sums
    }

    /// With a single row block the tile's column sums are final: dγ, dβ.
    private func finishTile(_ c0: Int, _ nc: Int, _ tileSums: UnsafeMutablePointer<GradientSums>) {
        guard needColumns && direct else { return }
        for j in 0..<nc {
            gradScale?[c0 + j] = Float(tileSums[j].dyXhat)
            gradBias?[c0 + j] = Float(tileSums[j].dy)
            columnTotals?[c0 + j] = tileSums[j]
        }
    }

    /// The last phase of every strategy: column partials merged down the row blocks.
    private var mergePhase: Parallel.Phase {
        Parallel.Phase(count: columnSums != nil ? plan.features : 0, elementsPerItem: plan.rowBlocks * 4)
    }

    private func mergeColumns(_ range: Range<Int>) {
        RowTree.forEachColumn(columnSums!, stride: plan.features, rows: plan.rowBlocks, columns: range) { c, sums in
            gradScale?[c] = Float(sums.dyXhat)
            gradBias?[c] = Float(sums.dy)
            columnTotals?[c] = sums
        }
    }

    /// Per-worker scratch: Float32 column accumulators and (single row block) the tile's sums.
    private func withTileScratch(_ body: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<GradientSums>) -> Void) {
        withScratch(of: Float.self, capacity: 2 * plan.tileWidth) { scratch in
            withScratch(of: GradientSums.self, capacity: direct && needColumns ? plan.tileWidth : 1) { sums in
                body(scratch.baseAddress!, sums.baseAddress!)
            }
        }
    }
}
