// BatchNorm NCHW on planes of 2–7 values (H·W = 2…7, e.g. 2×2): the per-channel
// coefficients repeated over each channel's H·W positions, so that a pass in
// memory order is one row of per-column coefficients (as H·W = 1 already is)
// instead of one call per 2–7-value run.
//
// Why: run by run, the output pass (`CoefficientTable.applyRuns`) called
// `Apply.affine` once per run, and the backward's dx (`BlockGradients.shortRunApply`)
// called `BlockGradients.apply` once per run: each call paid a case dispatch
// and a scalar loop over its 2–7 values (BatchNorm inference [256, 512, 2, 2]:
// 131 072 calls of 4 values each). `Apply.shortRuns` only takes runs of ≥ 8
// values (one whole vector each).
//
// Same bits: per value the column loops compute what the run loops compute,
//
//     y  = act((x − p[c])·s[c] + t[c] (+ r))          (`Apply.columns` / `Apply.affine`)
//     dx = a[c]·g + (b[c]·(x − p[c]) + c[c])           (`applyColumns` / `apply`)
//
// with c = position / H·W: the expanded table holds, at each position, the very
// Float32 coefficients of its channel. Only the loop structure changes; the
// statistics and their merge order are untouched.

import CNormSupport

extension Apply {
    /// Runs of 2 ≤ n < `shortRunsMinimum` values: BatchNorm NCHW's memory-order
    /// passes take them as one row of expanded coefficients.
    @inline(__always)
    static func tinyRuns(_ n: Int) -> Bool { n >= 2 && n < shortRunsMinimum }
}

extension CoefficientTable {
    /// This table's `channels` slots, each repeated `run` times (slot c·run + j =
    /// slot c), from `workspace`: 3·C·H·W Float32 values, written once per call.
    func expanded(run: Int, channels: Int, in workspace: Arena) -> CoefficientTable {
        nk_tiny_runs_note()
        let wide = CoefficientTable(count: channels * run, streaming: streaming, in: workspace)
        for ch in 0..<channels {
            let o = ch * run
            (wide.pivot + o).initialize(repeating: pivot[ch], count: run)
            (wide.scale + o).initialize(repeating: scale[ch], count: run)
            (wide.shift + o).initialize(repeating: shift[ch], count: run)
        }
        return wide
    }
}

extension GradientTable {
    /// Slots of `channels` repeated `run` times each into `wide` (slot c·run + j
    /// of `wide` = slot c of this table), for the channels whose coefficients
    /// are final.
    func expand(into wide: GradientTable, run: Int, channels: Range<Int>) {
        for ch in channels {
            let o = ch * run
            (wide.pivot + o).initialize(repeating: pivot[ch], count: run)
            (wide.a + o).initialize(repeating: a[ch], count: run)
            (wide.b + o).initialize(repeating: b[ch], count: run)
            (wide.c + o).initialize(repeating: c[ch], count: run)
        }
    }
}
