// The NCHW output pass over short channel runs (H·W of 8 to 255 values, 8 to 63
// for BFloat16, e.g. a 7×7 plane): several whole runs per call, each run with its own coefficients.
//
// Per value the arithmetic is `Apply.affine`'s, so the bits are the same:
//
//     y = act(((x − p[c])·s[c] + t[c]) + r)       (one subtract, one `muladd`,
//                                                   the residual r's add if any)
//
// Why: run by run, `CoefficientTable.applyRuns` called `Apply.affine` once per
// 49-value run, and each call paid a case dispatch (store, activation, residual),
// the element type's checks and a scalar remainder (49 = 6·8 + 1). A profile of
// BatchNorm NCHW inference [64, 512, 7, 7] on one thread put a third of the
// kernel there (docs/data/2026-12-07-bninf-profile). Here the dispatch happens
// once per block and each run is a short loop of whole vectors: a run's last
// vector (at n − 8, overlapping the one before when n % 8 ≠ 0) is computed
// first and stored last, as the backward's `BlockGradients.shortRunApply` does.
// In place (dst = src, or dst = residual) every value of a run is read before
// any of the run's values is written, the overlap is written twice with the
// same bits (a value depends only on its own position), and a run writes only
// its own positions, so the next run still reads its inputs unchanged.
// Cached stores only: a streamed output keeps `Apply.affine`'s aligned loop.

import CNormSupport

extension Apply {
    /// Runs of `n` values with 8 ≤ n < `shortRunsLimit(E.self)` go through `shortRuns`.
    static let shortRunsMinimum = 8

    /// 256 (every NCHW plane the memory-order passes take, `shortRunSpatial`),
    /// but 64 for BFloat16: there the run-by-run loop rounds 16 values at a time in
    /// C with `vcvtne2ps2bf16` (`nk_bf16_hw_affine`) where `E.store8` rounds in
    /// integer lanes, and by 196-value runs that outweighs the calls saved
    /// (BatchNorm NCHW inference [8, 256, 14, 14]: 0.89× on 1 thread, 0.76× on 2;
    /// [64, 512, 7, 7]: 1.71×, 1.52×; Float32 1.05×, 1.27× and 1.63×, 1.58×;
    /// docs/data/2026-12-07-bninf).
    @inline(__always)
    static func shortRunsLimit<E: NormElement>(_: E.Type) -> Int { E.self == BFloat16.self ? 64 : 256 }

    /// `runs` consecutive runs of `n` values each (8 ≤ n) from `src`/`dst`, run k
    /// with coefficients `(pivot[k], scale[k], shift[k])` and `residual + k·n`:
    /// for each run the values of `affine(src + k·n, dst + k·n, n, …)` with
    /// cached stores, bit for bit. `dst` may equal `src` or `residual`.
    static func shortRuns<E: NormElement>(
        _ src: UnsafePointer<E>, _ dst: UnsafeMutablePointer<E>, n: Int, runs: Int,
        pivot: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
        relu: Bool, residual: UnsafePointer<E>?
    ) {
        nk_short_runs_note()
        switch (residual, relu) {
        case let (r?, true): shortRuns(src, dst, n, runs, pivot, scale, shift, Residual(base: r), ReLUActivation.self)
        case let (r?, false): shortRuns(src, dst, n, runs, pivot, scale, shift, Residual(base: r), NoActivation.self)
        case (nil, true): shortRuns(src, dst, n, runs, pivot, scale, shift, NoResidual(), ReLUActivation.self)
        case (nil, false): shortRuns(src, dst, n, runs, pivot, scale, shift, NoResidual(), NoActivation.self)
        }
    }

    /// Out of line, specialized per element type, residual and activation.
    @inline(never)
    private static func shortRuns<E: NormElement, R: ResidualInput, A: FusedActivation>(
        _ src: UnsafePointer<E>, _ dst: UnsafeMutablePointer<E>, _ n: Int, _ runs: Int,
        _ pivot: UnsafePointer<Float>, _ scale: UnsafePointer<Float>, _ shift: UnsafePointer<Float>,
        _ res: R, _: A.Type
    ) {
        let last = n &- 8
        var o = 0
        for k in 0..<runs {
            let p = F8(repeating: pivot[k]), s = F8(repeating: scale[k]), t = F8(repeating: shift[k])
            let x = src + o, y = dst + o, e = res.advanced(by: o)
            // scalar math: y = act((x − p)·s + t (+ r))
            @inline(__always) func value(_ i: Int) -> F8 { A.apply(e.add(muladd(E.load8(x + i) - p, s, t), i)) }
            let tail = value(last)
            var i = 0
            while i < last {
                E.store8(value(i), y + i)
                i &+= 8
            }
            E.store8(tail, y + last)
            o &+= n
        }
    }
}
