/// The contiguous-rows geometry: a reduction *unit* is `segments` runs of
/// `segmentLength` contiguous values, `segmentStride` apart; unit u starts at
/// `u · unitStride`.
///
/// | kernel              | unit      | segments | segmentLength | unitStride | segmentStride |
/// |---------------------|-----------|----------|---------------|------------|---------------|
/// | BatchNorm NCHW      | channel c | N        | H·W           | H·W        | C·H·W         |
/// | LayerNorm / RMSNorm | row n     | 1        | D             | D          | —             |
/// | InstanceNorm NCHW   | (n, c)    | 1        | H·W           | H·W        | —             |
/// | GroupNorm NCHW      | (n, g)    | 1        | (C/G)·H·W     | (C/G)·H·W  | —             |
/// | WeightNorm, dim d   | index i   | outer    | inner         | inner      | size_d·inner  |
/// | GroupNorm NHWC, small H·W | (n, g) | H·W   | C/G           | C/G        | C             |
///
/// Units may also come in *runs* of `unitsPerRun` units, `runStride` apart (unit
/// u = r·unitsPerRun + i starts at r·runStride + i·unitStride): GroupNorm NHWC's
/// (n, g) starts at n·C·H·W + g·C/G. By default all units form one run.
///
/// Each segment is cut into blocks of `blockLength` values; the block size comes
/// from the L1 data cache size only, never from the thread count.
struct RowsGeometry: CustomStringConvertible {
    var units: Int
    var segments: Int
    var segmentLength: Int
    var unitStride: Int
    var segmentStride: Int
    var unitsPerRun: Int
    var runStride: Int
    var blockLength: Int
    /// Consecutive segments of one unit that share a block (1 unless short
    /// segments are grouped: BatchNorm NCHW with H·W = 49 puts 83 samples' runs
    /// in one 4096-value block instead of paying a block's overhead per 49 values).
    var segmentsPerBlock: Int
    /// Whether output passes get a block of grouped segments whole (and walk its
    /// `segmentCount` segments themselves) instead of one call per segment.
    var applyWholeBlocks = false
    /// Blocks per segment and per unit (stored: `block(_:)` runs once per block
    /// and integer divisions cost ~20 cycles each).
    private(set) var blocksPerSegment: Int
    private(set) var blocksPerUnit: Int
    /// Whether reductions prefetch the next block along `RowBlock.following`: a
    /// unit of several segments far apart (BatchNorm NCHW: N runs of H·W values,
    /// C·H·W apart). Each run starts a new stream the hardware prefetchers must
    /// learn again; BatchNorm [128, 64, 56, 56] read its channels at half the
    /// speed of memory order (24 vs 48 GB/s, one thread).
    let prefetchesAhead: Bool

    init(units: Int, segments: Int = 1, segmentLength: Int, unitStride: Int, segmentStride: Int = 0,
         unitsPerRun: Int? = nil, runStride: Int = 0,
         blockLength: Int = RowsGeometry.defaultBlockLength, groupShortSegments: Bool = false) {
        self.units = units
        // One run (the default) is the flat case u·unitStride; so is a run stride
        // equal to the run's length, which `unitOffset` then skips dividing for.
        let perRun = unitsPerRun ?? units
        self.unitsPerRun = perRun * unitStride == runStride ? units : perRun
        self.runStride = runStride
        self.segments = segments
        self.segmentLength = segmentLength
        self.unitStride = unitStride
        self.segmentStride = segmentStride
        self.blockLength = blockLength
        let grouped = groupShortSegments && segments > 1 && 2 * segmentLength <= blockLength
            ? min(segments, blockLength / segmentLength) : 1
        self.segmentsPerBlock = grouped
        self.blocksPerSegment = grouped > 1 ? 1 : (segmentLength + blockLength - 1) / blockLength
        self.blocksPerUnit = grouped > 1 ? (segments + grouped - 1) / grouped : segments * blocksPerSegment
        // Long runs far apart; or short ones grouped into blocks (fetched whole, a
        // few KiB ahead: `PrefetchAhead.run`) in a tensor past the cache, by the
        // size rule of streaming stores: in cache the prefetches only cost
        // instructions (BatchNorm [64, 512, 7, 7], 6.4 MB, 1.03–1.05× slower).
        // The 3/4 rule of two threads on every thread count: a geometry does not
        // know its thread count, and the one-thread store rule (1/2) was measured
        // for stores, not for these prefetches.
        let pastCache = StorePolicy.twoPassStreams(units * segments * segmentLength,
                                                   cache: StorePolicy.lastLevelCacheBytes, threads: 2)
        self.prefetchesAhead = segments > 1 && segmentStride != segmentLength
            && (segmentLength >= RowsGeometry.prefetchedRunLength || (grouped > 1 && pastCache))
    }

    /// Shortest run (values) prefetched step by step along the logical stream;
    /// shorter runs grouped into blocks are prefetched a whole run at a time.
    static let prefetchedRunLength = 256

    /// Block b, with `following` set to the block `b + 1` when that is the next
    /// one reduced (`b + 1 < end`) and it does not continue block b in memory.
    @inline(__always)
    func block(_ b: Int, before end: Int) -> RowBlock {
        var current = block(b)
        if prefetchesAhead && b + 1 < end {
            let jump = block(b + 1).offset - current.offset
            if current.segmentCount > 1 || jump != current.count { current.following = jump }
        }
        return current
    }

    /// Half the L1 data cache in Float32 values (4096 on a 32 KiB L1d), at least 1024.
    static let defaultBlockLength = max(1024, Topology.current.l1DataCacheBytes / 8)

    /// Bytes of whole units reduced before any of them is written (an eighth of
    /// the L2: the batch is read again from L2 by the output pass).
    static let batchBytes = max(64 << 10, Topology.current.l2CacheBytes / 8)

    /// The forward's batch bytes (of x; the output pass reads the batch back from
    /// L2) for a tensor of `elements` values. When the output streams past the
    /// cache (`StorePolicy(twoPass:)`), half the L2: each core reads and then
    /// writes in longer phases (GroupNorm/InstanceNorm NCHW on 100 MB tensors
    /// 1.3–1.4× faster, LayerNorm [32768, 1024] 1.15×; docs/PERFORMANCE-HISTORY.md,
    /// "Forward batches of half the L2 when the output streams"). Through the cache y's lines take L2 room too, and half the L2 ran
    /// 0.84–0.87× on 6 MB tensors; the backward, which holds x and dy, gained
    /// nothing from larger batches either.
    static func forwardBatchBytes(elements: Int, threads: Int) -> Int {
        StorePolicy(twoPass: elements, threads: threads).streams
            ? max(batchBytes, Topology.current.l2CacheBytes / 2) : batchBytes
    }

    var blocks: Int { units * blocksPerUnit }

    /// Element offset of unit u's first value.
    @inline(__always)
    func unitOffset(_ u: Int) -> Int {
        if unitsPerRun >= units { return u * unitStride }
        let run = u / unitsPerRun
        return run * runStride + (u - run * unitsPerRun) * unitStride
    }
    var unitElements: Int { segments * segmentLength }

    /// What a unit costs, in values, for the parallel threshold: its values plus
    /// the fixed work of a unit (reduce, finalize, apply calls: ≈ 80 ns measured
    /// on units of 4–32 values, the time of ~64 values). Without it, InstanceNorm
    /// on [64, 1024, 2, 2] (65 536 units of 4 values, 6 ms) ran on one thread.
    var unitCost: Int { unitElements + 64 }

    /// Block b of the flat enumeration unit-major, then segment, then position.
    @inline(__always)
    func block(_ b: Int) -> RowBlock {
        if blocksPerUnit == 1 && segmentsPerBlock == 1 {
            // One block per unit (LayerNorm rows, small groups): no divisions.
            return RowBlock(unit: b, segment: 0, start: 0, count: segmentLength, offset: unitOffset(b))
        }
        let unit = b / blocksPerUnit
        let within = b - unit * blocksPerUnit
        if segmentsPerBlock > 1 {
            let first = within * segmentsPerBlock
            return RowBlock(
                unit: unit, segment: first, start: 0, count: segmentLength,
                offset: unitOffset(unit) + first * segmentStride,
                segmentCount: min(segmentsPerBlock, segments - first))
        }
        let segment = within / blocksPerSegment
        let start = (within - segment * blocksPerSegment) * blockLength
        return RowBlock(
            unit: unit, segment: segment, start: start,
            count: min(blockLength, segmentLength - start),
            offset: unitOffset(unit) + segment * segmentStride + start)
    }

    var description: String {
        let blocking = segmentsPerBlock > 1
            ? "blocks of \(segmentsPerBlock) segments" : "blocks of \(blockLength) values"
        return "rows: \(units) units × \(segments) segments × \(segmentLength) values, \(blocking) (\(blocks) blocks)"
    }
}

/// One block of the rows geometry: `count` values at element `offset`, which is
/// position `start` of segment `segment` of unit `unit`.
struct RowBlock {
    var unit: Int
    var segment: Int
    var start: Int
    var count: Int
    var offset: Int
    /// Segments covered (each `count` values, `segmentStride` apart); 1 unless
    /// the geometry groups short segments. Output passes see one segment at a time.
    var segmentCount: Int = 1
    /// Element distance from `offset` to the block the same worker reduces next,
    /// when that block does not simply continue this one in memory; 0 otherwise.
    /// Reductions over far-apart segments prefetch along it (`RowsGeometry.prefetchesAhead`).
    var following: Int = 0
}

enum RowStatistic {
    /// Count, mean, M2 (Welford): BatchNorm, LayerNorm, InstanceNorm, GroupNorm, AdaIN.
    case moments
    /// Mean of squares: RMSNorm, weight normalization.
    case meanSquare
}

extension RowsGeometry {
    /// Whole units go to workers when there are enough of them to keep every worker
    /// busy (≥ 4 per worker) or a unit is a single block; each unit's statistics and
    /// normalization then run back to back while the unit is still in cache.
    /// Otherwise (few, large units: BatchNorm with C = 3, InstanceNorm with N·C = 2)
    /// every unit's blocks are spread over all workers, partials merged per unit,
    /// and the normalization spread again. Both strategies compute the same block
    /// partials and merge them in the same tree, so they give identical bits.
    func splitsUnits(threading: Threading) -> Bool {
        let workers = Parallel.workers(count: blocks, elementsPerItem: blockLength, threading: threading)
        return workers > 1 && blocksPerUnit > 1 && units < 4 * workers
    }

    func plan(threading: Threading) -> PlanDescription {
        let split = splitsUnits(threading: threading)
        let workers = split
            ? Parallel.workers(count: blocks, elementsPerItem: blockLength, threading: threading)
            : Parallel.workers(count: units, elementsPerItem: unitCost, threading: threading)
        return PlanDescription(
            geometry: description,
            strategy: split ? "split each unit's blocks across workers (statistics, merge, normalize)"
                            : "whole units per worker (statistics then normalize while in cache)",
            blocks: blocks, blockElements: blockLength, workers: workers)
    }

    /// Statistics of every unit, then normalization.
    ///
    /// - `finalize(unit, moments)` runs once per unit, after all its blocks are reduced
    ///   and merged, and before any of its blocks is applied; it may run concurrently
    ///   for different units and must write only that unit's slots.
    /// - `apply(block)` writes the block's outputs.
    func reduceThenApply<E: NormElement>(
        _ x: UnsafePointer<E>, statistic: RowStatistic, threading: Threading, workspace: Arena,
        finalize: (Int, Moments) -> Void, apply: (RowBlock) -> Void
    ) {
        reduceThenApply(
            threading: threading, workspace: workspace,
            reduce: { reduce(x, $0, statistic) },
            finalize: { u, partials in finalize(u, Moments.treeMerge(partials)) },
            apply: apply,
            batchBytes: RowsGeometry.forwardBatchBytes(elements: units * unitElements, threads: threading.threads),
            unitsAtATime: unitsAtATime(statistic),
            reduceUnits: { reduceUnits(x, $0, $1, $2, $3) })
    }

    /// The engine behind every rows-geometry kernel, forward and backward: a
    /// partial per block, the partials of each unit handed to `finalize`, then
    /// (when `apply` is given) the output pass.
    ///
    /// - `reduce(block)` returns the block's partial; it must depend only on the
    ///   block's data, never on which worker runs it.
    /// - `finalize(unit, partials)` gets the unit's `blocksPerUnit` partials in block
    ///   order (segment-major, then position) and merges them in a fixed order (a
    ///   tree). It runs once per unit, before any of that unit's blocks is applied,
    ///   possibly concurrently for different units; it writes only that unit's slots.
    /// - `apply(block)`, when `writesOutput`, writes the block's outputs. Without,
    ///   the call is a single pass over the data (statistics or gradient sums
    ///   only). A non-optional closure, so that it need not escape: an escaping
    ///   one (or `withoutActuallyEscaping`) would be a heap allocation per call.
    /// - `batchBytes`: with whole units per worker, units are reduced and written
    ///   in batches of about this many bytes of x.
    /// - `workspace`: the call's arena, for the split strategy's partial per block
    ///   (a batch's partials are per-worker scratch, `withScratch`).
    ///
    /// - `unitsAtATime` > 1: with whole units per worker, the partials of block i
    ///   of up to that many consecutive units come from one call
    ///   `reduceUnits(units, i, slot, stride)`, which must write, at `slot + j·stride`,
    ///   exactly what `reduce` returns for that block of unit `units.lowerBound + j`
    ///   (the tiny-run moments lanes; the split strategy keeps calling `reduce`).
    ///
    /// The two strategies (whole units per worker, or every unit's blocks spread
    /// over the workers) compute the same partials and hand them over in the same
    /// order, so results do not depend on the thread count.
    func reduceThenApply<Partial>(
        threading: Threading, workspace: Arena,
        reduce: (RowBlock) -> Partial,
        finalize: (_ unit: Int, _ partials: UnsafeBufferPointer<Partial>) -> Void,
        writesOutput: Bool = true, apply: (RowBlock) -> Void, batchBytes: Int = RowsGeometry.batchBytes,
        unitsAtATime: Int = 1,
        reduceUnits: (_ units: Range<Int>, _ block: Int, _ slot: UnsafeMutablePointer<Partial>, _ stride: Int) -> Void
            = { _, _, _, _ in }
    ) {
        let perUnit = blocksPerUnit
        if splitsUnits(threading: threading) {
            let partials = UnsafeMutableBufferPointer(start: workspace.take(Partial.self, count: blocks), count: blocks)
            // One parallel call, three phases: partials, per-unit merge, output.
            let phases: InlineArray = [Parallel.Phase(count: blocks, elementsPerItem: blockLength),
                          Parallel.Phase(count: units, elementsPerItem: perUnit * 8),
                          Parallel.Phase(count: writesOutput ? blocks : 0, elementsPerItem: blockLength, fromTheEnd: true)]
            Parallel.forEach(phases: phases, threading: threading) { phase, range in
                switch phase {
                case 0:
                    for b in range { (partials.baseAddress! + b).initialize(to: reduce(block(b, before: range.upperBound))) }
                case 1:
                    for u in range {
                        finalize(u, UnsafeBufferPointer(rebasing: partials[(u * perUnit)..<((u + 1) * perUnit)]))
                    }
                default:
                    for b in range { applyPieces(block(b), apply) }
                }
            }
        } else {
            // Small units go in batches of ≈ `batchBytes` (of x): reduce the batch, finalize
            // it, then write it. A LayerNorm row of 4 KiB alone would switch the core
            // from reading to writing every 4 KiB, and each new row's read stream
            // would start cold for the prefetcher (measured: LayerNorm [32768, 1024]
            // ran 1.5× slower than InstanceNorm on the same bytes in 64 KiB units).
            // Without an output pass the batch only bounds the scratch; it still holds
            // `unitsAtATime` units, so that the tiny-run lanes stay full (BatchNorm
            // [4096, 512, 2, 2]: 64 KiB per channel made batches of 2 channels).
            let fill = writesOutput ? 1 : unitsAtATime
            let batch = max(1, min(units, max(fill, batchBytes / (4 * max(1, unitElements)))))
            Parallel.forEach(count: units, elementsPerItem: unitCost, threading: threading) { range in
                withScratch(of: Partial.self, capacity: perUnit * batch) { partials in
                    var first = range.lowerBound
                    while first < range.upperBound {
                        let end = min(range.upperBound, first + batch)
                        // Up to `unitsAtATime` units per step (one call of `reduceUnits`
                        // per block index), else one unit's blocks through `reduce`.
                        var u = first
                        while u < end {
                            let k = min(unitsAtATime, end - u)
                            let slots = partials.baseAddress! + (u - first) * perUnit
                            for i in 0..<perUnit {
                                if unitsAtATime > 1 {
                                    reduceUnits(u..<(u + k), i, slots + i, perUnit)
                                } else {
                                    (slots + i).initialize(to: reduce(block(u * perUnit + i, before: end * perUnit)))
                                }
                            }
                            u += k
                        }
                        for u in first..<end {
                            let slots = partials.baseAddress! + (u - first) * perUnit
                            finalize(u, UnsafeBufferPointer(start: slots, count: perUnit))
                        }
                        if writesOutput {
                            // In address order: the whole batch is still in L2. Walking it
                            // backwards (last block first) turned the write stream into
                            // 1 KiB steps down memory with short rows, and LayerNorm
                            // [4096, 256] ran 1.6–2× slower (docs/PERFORMANCE-HISTORY.md, "Rows
                            // geometry writes each batch in address order").
                            for b in ((first * perUnit)..<(end * perUnit)) { applyPieces(block(b), apply) }
                        }
                        first = end
                    }
                }
            }
        }
    }

    /// Statistics only (no output pass): per-unit moments into `out[0..<units]`.
    func reduce<E: NormElement>(_ x: UnsafePointer<E>, statistic: RowStatistic, threading: Threading, workspace: Arena,
                               into out: UnsafeMutablePointer<Moments>) {
        reduce(x, statistic: statistic, threading: threading, workspace: workspace, finalize: { out[$0] = $1 })
    }

    /// Statistics only: `finalize(unit, moments)` once per unit, no output pass.
    func reduce<E: NormElement>(_ x: UnsafePointer<E>, statistic: RowStatistic, threading: Threading, workspace: Arena,
                               finalize: (Int, Moments) -> Void) {
        reduceThenApply(threading: threading, workspace: workspace,
                        reduce: { reduce(x, $0, statistic) },
                        finalize: { u, partials in finalize(u, Moments.treeMerge(partials)) },
                        writesOutput: false, apply: { _ in },
                        unitsAtATime: unitsAtATime(statistic),
                        reduceUnits: { reduceUnits(x, $0, $1, $2, $3) })
    }

    /// Normalization only, with coefficients already known (inference).
    /// `fromTheEnd`: last blocks first (a second pass over data just read; see `Parallel.forEach`).
    func apply(threading: Threading, fromTheEnd: Bool = false, _ apply: (RowBlock) -> Void) {
        Parallel.forEach(count: blocks, elementsPerItem: blockLength, threading: threading, fromTheEnd: fromTheEnd) { range in
            for b in range { applyPieces(block(b), apply) }
        }
    }

    /// Hands a block to an output pass one segment at a time.
    @inline(__always)
    func applyPieces(_ b: RowBlock, _ apply: (RowBlock) -> Void) {
        if b.segmentCount == 1 || applyWholeBlocks { apply(b); return }
        for i in 0..<b.segmentCount {
            apply(RowBlock(unit: b.unit, segment: b.segment + i, start: 0, count: b.count,
                           offset: b.offset + i * segmentStride))
        }
    }

    /// Units whose blocks `reduceUnits` takes together: eight for moments of runs
    /// shorter than 8 values laid out flat (unit u at u·unitStride), else 1.
    @inline(__always)
    private func unitsAtATime(_ statistic: RowStatistic) -> Int {
        statistic == .moments && BlockMoments.tinyRuns(segmentLength) && unitsPerRun >= units && units > 1
            ? BlockMoments.tinyRunUnits : 1
    }

    /// Block `index` of each unit of `group` (≤ 8 units, flat layout), moments
    /// into `slot[j·stride]`: bitwise each block's `reduce` (TinyRunMoments.swift).
    /// Blocks of runs shorter than 8 values were never prefetched along
    /// `following` (`segmented` prefetches only in stages 1 and 2); past the
    /// cache (`prefetchesAhead`) the lanes prefetch the runs ahead themselves.
    @inline(__always)
    private func reduceUnits<E: NormElement>(_ x: UnsafePointer<E>, _ group: Range<Int>, _ index: Int,
                                             _ slot: UnsafeMutablePointer<Moments>, _ stride: Int) {
        let b = block(group.lowerBound * blocksPerUnit + index)
        guard group.count > 1 else {
            slot.initialize(to: reduce(x, b, .moments))
            return
        }
        BlockMoments.tinyRunLanes(x + b.offset, laneStride: unitStride, units: group.count, length: b.count,
                                  stride: segmentStride, segments: b.segmentCount,
                                  prefetch: prefetchesAhead && b.segmentCount > 1, into: slot, outStride: stride)
    }

    @inline(__always)
    private func reduce<E: NormElement>(_ x: UnsafePointer<E>, _ b: RowBlock, _ statistic: RowStatistic) -> Moments {
        switch statistic {
        case .moments:
            return BlockMoments.segmented(x + b.offset, length: b.count, stride: segmentStride, segments: b.segmentCount,
                                          following: b.following)
        case .meanSquare:
            var m = Moments.empty
            for i in 0..<b.segmentCount { m = m.merged(with: BlockMoments.meanSquare(x + b.offset + i * segmentStride, b.count)) }
            return m
        }
    }
}
