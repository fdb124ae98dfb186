// Σg and Σg·x̂ of many short consecutive runs at once (BatchNorm NCHW with
// H·W < `BatchNormalization.shortRunSpatial`: one run per (sample, channel)),
// bit for bit what `BlockGradients.contiguous` gives each run. Per run, the same
// Float32 lanes in the same order (four accumulator pairs, 32 values a step,
// then 8 a step into the first pair, the last < 8 values in Float64); what
// changes is the end: the eight lane sums of a run (`laneSum64`: lanes added in
// order in Float64) are formed for 8 runs at a time by `nk_lane_sums8`, a
// transpose then vector additions. On a 49-value run the scalar lane sums had
// cost more than the run's arithmetic (BatchNorm backward [64, 512, 7, 7]: the
// sums phase took twice the dx phase, nearly all of it in lane extraction).
// Generic over the tensors' element type (`NormElement`), as RowGradientSums.swift.

import CNormSupport

extension BlockGradients {
    /// `out[k] = contiguous(x + k·n, dy + k·n, n, xhat[slot + k], mask: mask + k·n, gamma: nil)`
    /// for k in 0..<runs (runs of `n` values, one after another).
    static func runSums<E: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<E>, mask: UnsafePointer<E>?, length n: Int, runs: Int,
        xhat: CoefficientTable, slot: Int, into out: UnsafeMutablePointer<GradientSums>
    ) {
        if let mask {
            runSums(x, dy, mask, n, runs, xhat, slot, out)
        } else {
            runSums(x, dy, nil, n, runs, xhat, slot, out)
        }
    }

    @inline(__always)
    private static func runSums<E: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<E>, _ mask: UnsafePointer<E>?, _ n: Int, _ runs: Int,
        _ xhat: CoefficientTable, _ slot: Int, _ out: UnsafeMutablePointer<GradientSums>
    ) {
        // lanes[a · 8 + r]: accumulator a (g0…g3, h0…h3) of run r of the batch;
        // tails[r], tails[8 + r]: the run's Float64 tail sums; sums[a · 8 + r]: L(lanes[a · 8 + r]).
        withScratch(of: F8.self, capacity: 64) { lanesBuffer in
        withScratch(of: Double.self, capacity: 80) { doubles in
            let lanes = lanesBuffer.baseAddress!, tails = doubles.baseAddress!, sums = tails + 16
            var first = 0
            while first < runs {
                let batch = min(8, runs - first)
                for r in 0..<batch {
                    let o = (first + r) * n
                    runLanes(x + o, dy + o, mask.map { $0 + o }, n, xhat[slot + first + r], lanes + r, tails + r)
                }
                for r in batch..<8 {
                    for a in 0..<8 { lanes[a * 8 + r] = F8() }
                }
                for a in 0..<8 { nk_lane_sums8(OpaquePointer(lanes + a * 8), sums + a * 8) }
                for r in 0..<batch {
                    // ((L(g0) + L(g1)) + (L(g2) + L(g3))) + tail, as `segmentedFloat32`.
                    let l = sums + r
                    let s = GradientSums(dy: ((l[0] + l[8]) + (l[16] + l[24])) + tails[r],
                                         dyXhat: ((l[32] + l[40]) + (l[48] + l[56])) + tails[8 + r])
                    let k = first + r, o = k * n
                    out[k] = s.isFinite ? s : contiguous(x + o, dy + o, n, xhat[slot + k],
                                                         mask: mask.map { $0 + o }, gamma: nil)
                }
                first += batch
            }
        }
        }
    }

    /// One run's Float32 accumulators (to `lanes[0], lanes[8], …, lanes[56]`) and
    /// Float64 tail sums (`tails[0]`, `tails[8]`): `segmentedFloat32` with one segment.
    @inline(__always)
    private static func runLanes<E: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<E>, _ mask: UnsafePointer<E>?, _ n: Int,
        _ c: AffineCoefficients, _ lanes: UnsafeMutablePointer<F8>, _ tails: UnsafeMutablePointer<Double>
    ) {
        let p = F8(repeating: c.pivot), s = F8(repeating: c.scale), t = F8(repeating: c.shift)
        var g0 = F8(), g1 = F8(), g2 = F8(), g3 = F8(), h0 = F8(), h1 = F8(), h2 = F8(), h3 = F8()
        @inline(__always) func step(_ i: Int, _ g: inout F8, _ h: inout F8) {
            let d = gradient8(dy, mask, nil, i)
            g += d
            h = muladd(d, muladd(E.load8(x + i) - p, s, t), h)
        }
        var i = 0
        // scalar math: x̂ = (x − p)·s + t;  Σg += g;  Σgx̂ += g·x̂
        while i + 32 <= n {
            step(i, &g0, &h0); step(i + 8, &g1, &h1); step(i + 16, &g2, &h2); step(i + 24, &g3, &h3)
            i += 32
        }
        while i + 8 <= n {
            step(i, &g0, &h0)
            i += 8
        }
        var tailDy = 0.0, tailDyXhat = 0.0
        while i < n {
            let d = gradient1(dy, mask, nil, i)
            let h = muladd(E.widen(x[i]) - c.pivot, c.scale, c.shift)
            tailDy += Double(d)
            tailDyXhat += Double(d) * Double(h)
            i += 1
        }
        lanes[0] = g0; lanes[8] = g1; lanes[16] = g2; lanes[24] = g3
        lanes[32] = h0; lanes[40] = h1; lanes[48] = h2; lanes[56] = h3
        tails[0] = tailDy; tails[8] = tailDyXhat
    }
}
