import CNormSupport

extension BatchNormalization {
    /// NCHW with short runs (H·W < `shortRunSpatial`, e.g. 7×7). Sums are formed
    /// per (sample, channel) run, then merged per channel down the samples in a
    /// fixed tree; dx is written run by run with its channel's coefficients. Two
    /// passes in memory order, one parallel call: the sums of whole samples, the
    /// channels' trees, then dx of whole samples.
    ///
    /// Why not blocks of channels whose x and dy stay in L2 between the sums and
    /// dx (read from memory once, not twice; this path did that from 2026-12-06
    /// until 2026-12-07): a block reads one run of (channels · H·W) values per
    /// sample, C·H·W apart, and past the L2 those scattered runs, a new 4 KiB
    /// page every 2 KiB or so, came slower than reading x and dy twice in memory
    /// order. Zen 4, one binary, blocks against these passes (6 rounds;
    /// docs/data/2026-12-07-smallbwd/summary.md): 1.2–1.3× faster on
    /// [64, 512, 7, 7], [128, 256, 4, 4], [128, 512, 5, 5] at 1 and 2 threads,
    /// 1.9–2.1× on [256, 512, 7, 7] (51 MB of x and dy), 4.4–5.1× on
    /// [2048, 256, 4, 4].
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
        /// Σ of the runs of every channel of `sample`, into their partial slots.
        @inline(__always) func sums(_ sample: Int, _ lanes: UnsafeMutablePointer<F8>) {
            let o = sample * perSample
            if gradIdentity != nil || hw > BlockGradients.runsAtATimeSpatial {
                // Run by run: `segmented` (one segment) also stores g; `contiguous` for
                // runs too long to gain from eight at a time. The same sums as
                // `shortRunSums` (all three are the per-run kernel's order).
                for ch in 0..<c {
                    let r = o + ch * hw
                    if let gradIdentity {
                        (partials! + sample * c + ch).initialize(to: BlockGradients.segmented(
                            x + r, dy + r, length: hw, stride: 0, segments: 1, xhat[ch], mask: mask.map { $0 + r },
                            gamma: nil, store: gradIdentity + r))
                    } else {
                        (partials! + sample * c + ch).initialize(to: BlockGradients.contiguous(
                            x + r, dy + r, hw, xhat[ch], mask: mask.map { $0 + r }, gamma: nil))
                    }
                }
                return
            }
            BlockGradients.shortRunSums(x + o, dy + o, mask: mask.map { $0 + o }, n: hw, channels: 0..<c, xhat: xhat,
                                        lanes: lanes, into: partials! + sample * c)
        }
        /// dx of every channel of `sample`.
        @inline(__always) func writeDx(_ sample: Int) {
            let o = sample * perSample
            if let wide {
                BlockGradients.applyColumns(x: xForDx.map { $0 + o }, dy: dyForDx + o, mask: maskForDx.map { $0 + o },
                                            dx! + o, rows: 1, columns: perSample, stride: perSample, table: wide,
                                            slot: 0, streaming: streaming)
                return
            }
            BlockGradients.shortRunApply(x: xForDx.map { $0 + o }, dy: dyForDx + o, mask: maskForDx.map { $0 + o }, dx! + o,
                                         n: hw, channels: 0..<c, table: table!, streaming: streaming)
        }
        // One parallel call: sums per (sample, channel) run, the per-channel trees, then dx.
        let phases: InlineArray = [Parallel.Phase(count: reduce ? n : 0, elementsPerItem: perSample),
                      Parallel.Phase(count: reduce ? c : 0, elementsPerItem: 8 * n),
                      Parallel.Phase(count: write ? n : 0, elementsPerItem: perSample)]
        Parallel.forEach(phases: phases, threading: threading) { phase, range in
            switch phase {
            case 0:
                withScratch(of: F8.self, capacity: BlockGradients.runLanes) { lanes in
                    for sample in range { sums(sample, lanes.baseAddress!) }
                }
            case 1:
                RowTree.forEachColumn(partials!, stride: c, rows: n, columns: range, finalize)
                if let wide { table!.expand(into: wide, run: hw, channels: range) }
            default:
                for sample in range { writeDx(sample) }
            }
        }
    }
}
