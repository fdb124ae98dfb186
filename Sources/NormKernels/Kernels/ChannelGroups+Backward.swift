/// The channel-groups engine, backward (InstanceNorm, GroupNorm, AdaIN content):
/// per-(n, c) sums Σdy and Σdy·x̂, with x̂ from the statistics of the (n, g)
/// group slot, then (optionally) the dx pass with one coefficient set per (n, c).
///
/// - NCHW: unit (n, g) of the rows geometry with one *segment per channel*
///   (`segments` = groupSize runs of H·W values). A channel's block partials are
///   tree-merged, then the group's channel sums go to `finalizeGroup`.
/// - NHWC: each sample is an H·W × C matrix (columns geometry); per-column partials
///   per row block are tree-merged down the row blocks.
///
/// `finalizeGroup(groupSlot, channelSums)` runs once per (n, g) (slot n·G + g) with
/// that group's `groupSize` channel sums (also stored in `channelSums` at n·C + c);
/// when `dx` is given it must fill `table` for the group's (n, c) slots.
/// Results do not depend on the thread count (fixed blocks, fixed trees).
/// Side tables and partials come from `workspace`. dy may have an element type
/// `D` of its own (GroupNorm + SiLU's 16-bit backward: x and dx in 16 bits, g
/// in Float32), widened exactly on load as x is.
func channelGroupsBackward<E: NormElement, D: NormElement>(
    _ plan: ChannelGroupsPlan, x: UnsafePointer<E>, dy: UnsafePointer<D>,
    xhat: CoefficientTable, channelSums: UnsafeMutablePointer<GradientSums>,
    table: GradientTable?, dx: UnsafeMutablePointer<E>?, workspace: Arena,
    finalizeGroup: (_ groupSlot: Int, _ channelSums: UnsafePointer<GradientSums>) -> Void
) {
    let shape = plan.shape, groupSize = plan.groupSize, threading = plan.threading
    let groups = shape.c / groupSize, channels = shape.c, spatial = shape.spatial
    // (dy only compared with dx's address: in place when they are one buffer.)
    let streaming = dx.map {
        plan.backwardStore.streaming(output: $0, reading: x, UnsafeRawPointer(dy).assumingMemoryBound(to: E.self))
    } ?? false
    switch plan.backward {
    case .columns(let g):
        // Column j of sample n uses its group's x̂ coefficients.
        let expanded = CoefficientTable(count: shape.n * channels, in: workspace)
        for n in 0..<shape.n {
            for group in 0..<groups {
                let coefficients = xhat[n * groups + group], first = n * channels + group * groupSize
                for j in 0..<groupSize { expanded[first + j] = coefficients }
            }
        }
        // Merge ranges hold whole groups, so each range finalizes its own groups.
        g.reduceThenApply(
            threading: threading, workspace: workspace, slotGroup: groupSize,
            reduce: { m, first, rows, out in
                let o = m * g.matrixElements + first * channels, s = m * channels
                BlockGradients.columns(
                    x + o, dy + o, mask: nil, rows: rows, columns: channels, stride: channels,
                    pivot: expanded.pivot + s, scale: expanded.scale + s, shift: expanded.shift + s, into: out)
            },
            finalize: { m, range, sums in
                for c in range { channelSums[m * channels + c] = sums[c] }
                for group in (range.lowerBound / groupSize)..<(range.upperBound / groupSize) {
                    finalizeGroup(m * groups + group, channelSums + m * channels + group * groupSize)
                }
            },
            writesOutput: dx != nil,
            apply: { m, first, rows in
                let o = m * g.matrixElements + first * channels
                BlockGradients.applyColumns(x: x + o, dy: dy + o, mask: nil, dx! + o, rows: rows,
                                            columns: channels, stride: channels, table: table!, slot: m * channels,
                                            streaming: streaming)
            })
    case .rows(let g):
        let perSegment = g.blocksPerSegment
        /// Σdy and Σdy·x̂ of `count` values of unit u at element `o`.
        func sums(_ o: Int, _ count: Int, unit u: Int) -> GradientSums {
            BlockGradients.contiguous(x + o, dy + o, count, xhat[u], mask: nil, gamma: nil)
        }
        /// dx of `count` values at element `o` with the coefficients of (n, c) slot `slot`.
        func writeDx(_ dx: UnsafeMutablePointer<E>, _ o: Int, _ count: Int, slot: Int) {
            BlockGradients.apply(x: x + o, dy: dy + o, mask: nil, gamma: nil, dx + o, count, table![slot], streaming: streaming)
        }
        // Channels of one block each (H·W ≤ the block length) in a tensor that stays
        // in cache, with whole units per worker: each unit's channel sums, its
        // coefficients and its dx straight from a loop over the units. The geometry
        // would hand out the same one-block partials (a one-part tree is the part)
        // and the same coefficients, so the bits are those of the other strategy;
        // what goes is its per-block bookkeeping, which cost as much as the
        // arithmetic on 256-value channels: GroupNorm/InstanceNorm NCHW
        // [2, 1280, 16, 16] backward 1.2–1.5×, [16, 64, 17, 17] 1.2–1.6×
        // (docs/PERFORMANCE-HISTORY.md, "Grouped backward: a loop over units for
        // short channels"). Larger tensors keep the geometry's batches, whose long
        // read and write phases matter once the data streams.
        if plan.backwardLoopsOverUnits && !streaming {
            Parallel.forEach(count: g.units, elementsPerItem: g.unitCost, threading: threading) { range in
                for u in range {
                    let base = u * groupSize, offset = g.unitOffset(u)
                    for j in 0..<groupSize { channelSums[base + j] = sums(offset + j * spatial, spatial, unit: u) }
                    finalizeGroup(u, channelSums + base)
                    guard let dx else { continue }
                    for j in 0..<groupSize { writeDx(dx, offset + j * spatial, spatial, slot: base + j) }
                }
            }
            return
        }
        g.reduceThenApply(
            threading: threading, workspace: workspace,
            reduce: { b in sums(b.offset, b.count, unit: b.unit) },
            finalize: { u, parts in
                // Unit u = n·G + g holds channels (n, g·size + j): slots u·size + j.
                let base = u * groupSize
                for j in 0..<groupSize {
                    channelSums[base + j] = GradientSums.treeSum(count: perSegment) { parts[j * perSegment + $0] }
                }
                finalizeGroup(u, channelSums + base)
            },
            writesOutput: dx != nil,
            apply: { b in writeDx(dx!, b.offset, b.count, slot: b.unit * groupSize + b.segment) })
    }
}

/// dγ[c] = Σ_n Σdy·x̂ and dβ[c] = Σ_n Σdy from per-(n, c) sums, tree-merged over n.
func channelGradients(
    _ sums: UnsafePointer<GradientSums>, samples: Int, channels: Int,
    gradScale: UnsafeMutablePointer<Float>?, gradBias: UnsafeMutablePointer<Float>?,
    threading: Threading = .serial
) {
    guard gradScale != nil || gradBias != nil else { return }
    // dγ[c], dβ[c]: the tree of `GradientSums.treeSum(count: samples)` over
    // sums[n·C + c], formed for a chunk of channels at a time so each step reads
    // contiguous rows (column by column, [4096, 1024] missed the cache on every
    // one of its 4 M reads). Same association, so the same bits as per column.
    let width = RowTree.columnChunk
    let chunks = (channels + width - 1) / width
    Parallel.forEach(count: chunks, elementsPerItem: samples * width, threading: threading) { range in
        RowTree.forEachColumn(sums, stride: channels, rows: samples,
                              columns: (range.lowerBound * width)..<min(channels, range.upperBound * width)) { c, total in
            gradScale?[c] = Float(total.dyXhat)
            gradBias?[c] = Float(total.dy)
        }
    }
}

/// Argument checks shared by the InstanceNorm and GroupNorm backward.
func checkGroupedBackward<E: NormElement>(
    shape: TensorShape, slots: Int, input: UnsafeBufferPointer<E>, gradOutput: UnsafeBufferPointer<E>,
    saved: SavedStatistics, scale: UnsafeBufferPointer<Float>?,
    gradInput: UnsafeMutableBufferPointer<E>?, gradScale: UnsafeMutableBufferPointer<Float>?,
    gradBias: UnsafeMutableBufferPointer<Float>?
) throws {
    try Check.length(input.count, shape.count, "input")
    try Check.length(gradOutput.count, shape.count, "gradOutput")
    try Check.saved(saved.mean, slots, "saved.mean")
    try Check.saved(saved.invStd, slots, "saved.invStd")
    try Check.length(scale, shape.c, "scale (γ)")
    try Check.length(gradInput, shape.count, "gradInput")
    try Check.length(gradScale, shape.c, "gradScale (dγ)")
    try Check.length(gradBias, shape.c, "gradBias (dβ)")
    // The rule of `Check.buffers`, decided first without building its argument
    // lists (which this generic function's callers kept on the heap: one more
    // allocation per call); they are built only to name a conflict that exists.
    let dx = MemorySpan(gradInput), dg = MemorySpan(gradScale), db = MemorySpan(gradBias)
    let x = MemorySpan(input), dy = MemorySpan(gradOutput), g = MemorySpan(scale)
    func clash(_ w: MemorySpan?, _ r: MemorySpan?, inPlace: Bool = false) -> Bool {
        guard let w, let r, w.overlaps(r) else { return false }
        return !(inPlace && w == r)
    }
    let conflict = clash(dx, x, inPlace: true) || clash(dx, dy, inPlace: true) || clash(dx, g)
        || clash(dg, x) || clash(dg, dy) || clash(dg, g) || clash(db, x) || clash(db, dy) || clash(db, g)
        || clash(dx, dg) || clash(dx, db) || clash(dg, db)
    guard conflict else { return }
    try Check.buffers(
        writes: [("gradInput", MemorySpan(gradInput)), ("gradScale", MemorySpan(gradScale)), ("gradBias", MemorySpan(gradBias))],
        reads: [("input", MemorySpan(input)), ("gradOutput", MemorySpan(gradOutput)), ("scale (γ)", MemorySpan(scale))],
        inPlace: [("gradInput", "input"), ("gradInput", "gradOutput")])
}
