import CNormSupport

extension BatchNormalization {
    /// NCHW with short runs (H·W < `shortRunSpatial`, e.g. 7×7). Sums are formed
    /// per (sample, channel) run, then merged per channel down the samples in a
    /// fixed tree; dx is written run by run with its channel's coefficients.
    ///
    /// With sums and dx both wanted, the channels go in blocks whose x and dy
    /// (every sample) fill at most half of L2 (`shortRunBlockWidth`): a block's sums,
    /// its channels' trees, then its dx while the block is still in L2, so x and
    /// dy come from memory once, not twice (as PyTorch's channel-by-channel
    /// kernel does). A block reads one run of (channels · H·W) values per sample,
    /// and prefetches the next sample's run as it goes: channel by channel the
    /// runs would be 49 values, C·H·W apart, and the prefetchers give up
    /// (BatchNorm backward [64, 512, 7, 7] took 4.9 ms that way). Same partials,
    /// same trees, same dx code as the two memory-order passes (below), which
    /// remain for sums alone, dx alone, inputs that fit in L2 and channels longer
    /// than half of it: same bits (docs/PERFORMANCE-HISTORY.md, "Channel kernels,
    /// issue 18 items 1 and 4").
    ///
    /// The runs of a sample are taken eight channels at a time
    /// (`BlockGradients.shortRunSums`, `shortRunApply`): the eight runs' lane sums
    /// in Float64 vectors, one lane per run, in the order of the per-run kernel
    /// (same bits; docs/PERFORMANCE.md, "BatchNorm NCHW backward on short planes").
    func shortRunPasses<E: NormElement>(
        x: UnsafePointer<E>, dy: UnsafePointer<E>, mask: UnsafePointer<E>?, xForDx: UnsafePointer<E>?,
        xhat: CoefficientTable, reduce: Bool, table: GradientTable?, dx: UnsafeMutablePointer<E>?,
        streaming: Bool, workspace: Arena, gradIdentity: UnsafeMutablePointer<E>? = nil,
        finalize: (Int, GradientSums) -> Void
    ) {
        let n = shape.n, c = shape.c, hw = shape.spatial
        // BatchNorm + add + ReLU: the sums pass also stores g = dy·[y > 0] into
        // gradIdentity, and dx then reads g without the mask.
        let dyForDx = gradIdentity.map { UnsafePointer($0) } ?? dy
        let maskForDx = gradIdentity == nil ? mask : nil
        let perSample = c * hw
        let partials: UnsafeMutablePointer<GradientSums>? = reduce ? workspace.take(GradientSums.self, count: n * c) : nil
        let write = dx != nil && table != nil
        // Planes of 2–7 values: dx as one row of per-position coefficients per
        // sample (TinyRuns.swift; same bits as `shortRunApply`'s run-by-run
        // `apply`), the table expanded once its channels are final.
        let wide: GradientTable? = write && Apply.tinyRuns(hw) ? GradientTable(count: c * hw, in: workspace) : nil
        if wide != nil { nk_tiny_runs_note() }
        if let wide, !reduce { table!.expand(into: wide, run: hw, channels: 0..<c) }
        /// Σ of the runs of `channels` in `sample`, into their partial slots.
        @inline(__always) func sums(_ sample: Int, _ channels: Range<Int>, _ lanes: UnsafeMutablePointer<F8>,
                                    afterGroup: (Int) -> Void = { _ in }) {
            let o = sample * perSample
            if gradIdentity != nil || hw > BlockGradients.runsAtATimeSpatial {
                // Run by run: `segmented` (one segment) also stores g; `contiguous` for
                // runs too long to gain from eight at a time. The same sums as
                // `shortRunSums` (all three are the per-run kernel's order).
                var done = 0
                for ch in channels {
                    let r = o + ch * hw
                    if let gradIdentity {
                        (partials! + sample * c + ch).initialize(to: BlockGradients.segmented(
                            x + r, dy + r, length: hw, stride: 0, segments: 1, xhat[ch], mask: mask.map { $0 + r },
                            gamma: nil, store: gradIdentity + r))
                    } else {
                        (partials! + sample * c + ch).initialize(to: BlockGradients.contiguous(
                            x + r, dy + r, hw, xhat[ch], mask: mask.map { $0 + r }, gamma: nil))
                    }
                    done += hw
                    afterGroup(done)
                }
                return
            }
            BlockGradients.shortRunSums(x + o, dy + o, mask: mask.map { $0 + o }, n: hw, channels: channels, xhat: xhat,
                                        lanes: lanes, into: partials! + sample * c, afterGroup: afterGroup)
        }
        @inline(__always) func writeDx(_ sample: Int, _ channels: Range<Int>) {
            let o = sample * perSample
            if let wide {
                let f = o + channels.lowerBound * hw, width = channels.count * hw
                BlockGradients.applyColumns(x: xForDx.map { $0 + f }, dy: dyForDx + f, mask: maskForDx.map { $0 + f },
                                            dx! + f, rows: 1, columns: width, stride: width, table: wide,
                                            slot: channels.lowerBound * hw, streaming: streaming)
                return
            }
            BlockGradients.shortRunApply(x: xForDx.map { $0 + o }, dy: dyForDx + o, mask: maskForDx.map { $0 + o }, dx! + o,
                                         n: hw, channels: channels, table: table!, streaming: streaming)
        }
        if reduce && write, let width = shortRunBlockWidth(tensors: gradIdentity != nil ? 4 : mask == nil ? 2 : 3,
                                                                bytes: MemoryLayout<E>.stride) {
            let blocks = (c + width - 1) / width
            Parallel.forEach(count: blocks, elementsPerItem: 3 * n * width * hw, threading: threading) { range in
                withScratch(of: F8.self, capacity: BlockGradients.runLanes) { lanes in
                    for block in range {
                        let channels = (block * width)..<min(c, (block + 1) * width)
                        // Samples ahead of the one summed: about 6 KiB of each tensor, so
                        // that past the cache the prefetch covers memory's latency (one
                        // sample of an 8-channel 7×7 block is 1.5 KiB).
                        let ahead = max(1, (6 << 10) / max(1, channels.count * hw * MemoryLayout<E>.stride))
                        for sample in 0..<n {
                            // That sample's run of this block, a line of each tensor per 16
                            // values of this one (hints only: past the end is harmless).
                            let next = (sample + ahead) * perSample + channels.lowerBound * hw
                            var line = 0
                            sums(sample, channels, lanes.baseAddress!) { done in
                                while line < done {
                                    nk_prefetch(x + next + line); nk_prefetch(dy + next + line)
                                    if let mask { nk_prefetch(mask + next + line) }
                                    line += 64 / MemoryLayout<E>.stride
                                }
                            }
                        }
                        RowTree.forEachColumn(partials!, stride: c, rows: n, columns: channels, finalize)
                        if let wide { table!.expand(into: wide, run: hw, channels: channels) }
                        for sample in 0..<n { writeDx(sample, channels) }
                    }
                }
            }
            return
        }
        // One parallel call: sums per (sample, channel) run, the per-channel trees, then dx.
        let phases: InlineArray = [Parallel.Phase(count: reduce ? n : 0, elementsPerItem: perSample),
                      Parallel.Phase(count: reduce ? c : 0, elementsPerItem: 8 * n),
                      Parallel.Phase(count: write ? n : 0, elementsPerItem: perSample)]
        Parallel.forEach(phases: phases, threading: threading) { phase, range in
            switch phase {
            case 0:
                withScratch(of: F8.self, capacity: BlockGradients.runLanes) { lanes in
                    for sample in range { sums(sample, 0..<c, lanes.baseAddress!) }
                }
            case 1:
                RowTree.forEachColumn(partials!, stride: c, rows: n, columns: range, finalize)
                if let wide { table!.expand(into: wide, run: hw, channels: range) }
            default:
                for sample in range { writeDx(sample, 0..<c) }
            }
        }
    }

    /// Channels per block of the fused short-run backward: as many as keep the
    /// block's `tensors` inputs (all samples) within half of L2, at most a quarter
    /// of the channels per worker (balance); nil when all inputs fit in L2, or when
    /// one channel alone is larger than half of it (the memory-order passes).
    /// Where it can, a multiple of 8 (the runs go eight at a time) that gives
    /// every worker the same number of blocks ([64, 512, 7, 7] on 2 threads:
    /// 16 blocks of 32, where 41 channels gave 13 blocks, 7 on one worker and 6
    /// on the other).
    func shortRunBlockWidth(tensors: Int, bytes: Int) -> Int? {
        let perChannel = shape.n * shape.spatial * tensors * bytes, l2 = Topology.current.l2CacheBytes
        // Inputs that fit in L2 come back from it for the second pass anyway; the
        // blocks would only add their prefetches ([32, 128, 7, 7]: 0.97×).
        guard perChannel * shape.c > l2 else { return nil }
        let fit = l2 / 2 / max(1, perChannel)
        guard fit >= 1 else { return nil }
        let workers = max(1, threading.threads)
        let balanced = workers > 1 ? max(1, shape.c / (4 * workers)) : shape.c
        let widest = min(fit, balanced, shape.c)
        for width in stride(from: widest / 8 * 8, through: 8, by: -8) {
            let blocks = (shape.c + width - 1) / width
            if blocks % workers == 0 { return width }
        }
        return widest
    }
}
