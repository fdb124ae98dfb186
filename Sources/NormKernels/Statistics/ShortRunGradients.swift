// The BatchNorm NCHW backward microkernels for short runs (H·W < 256 values,
// e.g. 7×7): consecutive channels of one sample are consecutive runs in
// memory, and these kernels take up to eight of them per call.

import CNormSupport
//
// Why: a 49-value run is about six vectors of each tensor, and per run the
// general kernels paid a call, the case dispatch, and eight Float64 lane sums
// (`laneSum64`: each lane extracted on its own, then a chain of eight scalar
// Float64 adds): more than the run's own arithmetic. Here the eight runs'
// Float32 accumulators are transposed (one lane per run; `nk_lane_sums8`) and
// summed in Float64 vectors, lane by lane in the order `laneSum64` uses, so every run's sums are
// bitwise those of `BlockGradients.contiguous` (same lanes, same Float64 order,
// same Float64 tail). dx is written run by run with each run's coefficients,
// the arithmetic of `BlockGradients.apply` (same bits).

extension BlockGradients {
    /// Vectors of scratch `shortRunSums` needs (2 KiB: from `withScratch`, since a
    /// temporary allocation over 1 KiB goes to the heap).
    static let runLanes = 64

    /// The longest runs whose sums go eight channels at a time. Measured on the
    /// Xeon (1 thread, backward, against per-run sums): 7×7 runs 1.10×, 14×14 runs
    /// 0.84× (the next sample's prefetch then comes in bursts of ~100 lines per
    /// eight channels instead of ~12 per channel), so longer runs are summed one
    /// at a time with the prefetch after each.
    static let runsAtATimeSpatial = 64

    /// The runs of `channels` in one sample (`x`, `dy`, `mask` at the sample's
    /// first value, runs of `n` values): Σg and Σg·x̂ of channel ch into
    /// `partials[ch]`, eight channels at a time (`runs`); `lanes` holds
    /// `runLanes` vectors.
    @inline(__always)
    static func shortRunSums<E: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<E>, mask: UnsafePointer<E>?, n: Int, channels: Range<Int>,
        xhat: CoefficientTable, lanes: UnsafeMutablePointer<F8>, into partials: UnsafeMutablePointer<GradientSums>
    ) {
        if n < 8 { nk_tiny_sums_note() }
        var ch = channels.lowerBound
        while ch < channels.upperBound {
            let count = min(8, channels.upperBound - ch), o = ch * n
            runs(x + o, dy + o, mask: mask.map { $0 + o }, n: n, count: count, xhat: xhat, first: ch, lanes: lanes,
                 into: partials + ch)
            ch += count
        }
    }

    /// dx of the runs of `channels` in one sample (pointers at the sample's first
    /// value, runs of `n` values), channel ch with `table[ch]`: the values of
    /// `apply` (same arithmetic per value, same bits). `x` nil: dx = a·g.
    /// In place is allowed (`dx` equal to `x`, `dy` or `mask`).
    @inline(__always)
    static func shortRunApply<E: NormElement>(
        x: UnsafePointer<E>?, dy: UnsafePointer<E>, mask: UnsafePointer<E>?, _ dx: UnsafeMutablePointer<E>,
        n: Int, channels: Range<Int>, table: GradientTable, streaming: Bool
    ) {
        guard !streaming && n >= 8 else {
            for ch in channels {
                let o = ch * n
                apply(x: x.map { $0 + o }, dy: dy + o, mask: mask.map { $0 + o }, gamma: nil, dx + o, n, table[ch],
                      streaming: streaming)
            }
            return
        }
        switch (x, mask) {
        case let (x?, nil): runsApply(x, dy, nil, dx, n, channels, table, useX: true)
        case let (x?, mask?): runsApply(x, dy, mask, dx, n, channels, table, useX: true)
        case (nil, nil): runsApply(nil, dy, nil, dx, n, channels, table, useX: false)
        case let (nil, mask?): runsApply(nil, dy, mask, dx, n, channels, table, useX: false)
        }
    }

    /// `shortRunApply`'s loop for n ≥ 8, cached stores. A run's last vector (at
    /// n − 8, overlapping the one before when n % 8 ≠ 0) is computed first and
    /// stored last: in place, every value is read before any is written, and the
    /// overlap is written twice with the same bits (each value depends only on
    /// its own position). It replaces `apply`'s scalar remainder, whose
    /// arithmetic is a lane's.
    @inline(__always)
    private static func runsApply<E: NormElement>(
        _ x: UnsafePointer<E>?, _ dy: UnsafePointer<E>, _ mask: UnsafePointer<E>?, _ dx: UnsafeMutablePointer<E>,
        _ n: Int, _ channels: Range<Int>, _ table: GradientTable, useX: Bool
    ) {
        let last = n - 8
        for ch in channels {
            let o = ch * n
            let k = table[ch]
            let p = F8(repeating: k.pivot), a = F8(repeating: k.a), b = F8(repeating: k.b), c = F8(repeating: k.c)
            let xs = x.map { $0 + o }, ds = dy + o, ms = mask.map { $0 + o }, out = dx + o
            // scalar math: dx = a·g + (b·(x − p) + c)
            @inline(__always) func value(_ i: Int) -> F8 {
                let g = gradient8(ds, ms, nil, i)
                return useX ? muladd(a, g, muladd(b, E.load8(xs! + i) - p, c)) : a * g
            }
            let tail = value(last)
            var i = 0
            while i < last {
                E.store8(value(i), out + i)
                i += 8
            }
            E.store8(tail, out + last)
        }
    }

    /// Σg and Σg·x̂ of `count` (1…8) runs of `n` values, run i at `x + i·n`
    /// (`dy`, `mask` alike) with x̂ coefficients `xhat[first + i]`, into
    /// `out[0..<count]`; each bitwise equal to `contiguous(x + i·n, dy + i·n, n,
    /// xhat[first + i], mask:, gamma: nil)`. `lanes` holds 64 vectors.
    @inline(__always)
    static func runs<E: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<E>, mask: UnsafePointer<E>?, n: Int, count: Int,
        xhat: CoefficientTable, first: Int, lanes: UnsafeMutablePointer<F8>, into out: UnsafeMutablePointer<GradientSums>
    ) {
        if n < 8 {
            for r in 0..<count {
                let o = r * n
                out[r] = tinyRun(x + o, dy + o, mask: mask.map { $0 + o }, n: n, xhat[first + r])
            }
            return
        }
        // Accumulators the loops below reach: g1…g3 and h1…h3 only from 32 values
        // on. The others stay zero for every run, and their lane sums are +0
        // exactly, so they are written as +0 instead of transposed (runs of 9–31
        // values, e.g. 3×3, 4×4 and 5×5 planes, transposed six zero accumulators
        // of eight: most of the backward's sums pass on [128, 256, 4, 4]).
        let used = n >= 32 ? 4 : 1
        withUnsafeTemporaryAllocation(of: Double.self, capacity: 96) { buffer in
            // d[0..<64]: the lane sums of the 8 accumulators (8 runs each); d[64..<80]:
            // Σg and Σg·x̂ of the 8 runs; d[80..<96]: the runs' Float64 tails.
            let d = buffer.baseAddress!
            for r in 0..<8 {
                guard r < count else {
                    for k in 0..<8 where k % 4 < used { lanes[8 * k + r] = F8() }
                    d[80 + r] = 0; d[88 + r] = 0
                    continue
                }
                let o = r * n
                let xs = x + o, ds = dy + o, ms = mask.map { $0 + o }
                let c = xhat[first + r]
                let p = F8(repeating: c.pivot), s = F8(repeating: c.scale), t = F8(repeating: c.shift)
                // `segmentedFloat32`'s accumulators for one segment, in its order.
                var g0 = F8(), g1 = F8(), g2 = F8(), g3 = F8(), h0 = F8(), h1 = F8(), h2 = F8(), h3 = F8()
                @inline(__always) func step(_ i: Int, _ g: inout F8, _ h: inout F8) {
                    let v = gradient8(ds, ms, nil, i)
                    g += v
                    h = muladd(v, muladd(E.load8(xs + i) - p, s, t), h)
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
                var tail = GradientSums.zero
                while i < n {
                    let v = gradient1(ds, ms, nil, i)
                    let h = muladd(E.widen(xs[i]) - c.pivot, c.scale, c.shift)
                    tail.dy += Double(v)
                    tail.dyXhat += Double(v) * Double(h)
                    i += 1
                }
                lanes[r] = g0; lanes[32 + r] = h0
                if used > 1 {
                    lanes[8 + r] = g1; lanes[16 + r] = g2; lanes[24 + r] = g3
                    lanes[40 + r] = h1; lanes[48 + r] = h2; lanes[56 + r] = h3
                }
                d[80 + r] = tail.dy; d[88 + r] = tail.dyXhat
            }
            // `laneSum64` of each accumulator, 8 runs at a time (+0 for those never
            // reached: the lane sum of a zero vector), then `segmentedFloat32`'s
            // combination in Float64 vectors (one lane per run).
            for k in 0..<8 {
                if k % 4 < used {
                    nk_lane_sums8(UnsafeRawPointer(lanes + 8 * k), d + 8 * k)
                } else {
                    (d + 8 * k).initialize(repeating: 0, count: 8)
                }
            }
            store8(((load8(d) + load8(d + 8)) + (load8(d + 16) + load8(d + 24))) + load8(d + 80), d + 64)
            store8(((load8(d + 32) + load8(d + 40)) + (load8(d + 48) + load8(d + 56))) + load8(d + 88), d + 72)
            for r in 0..<count {
                let sums = GradientSums(dy: d[64 + r], dyXhat: d[72 + r])
                // Not finite: `contiguous` redoes the run in Float64, as it would have.
                out[r] = sums.isFinite
                    ? sums
                    : contiguous(x + r * n, dy + r * n, n, xhat[first + r], mask: mask.map { $0 + r * n }, gamma: nil)
            }
        }
    }

    /// Σg and Σg·x̂ of one run of n < 8 values: bitwise `runs`' result for it
    /// (and so `contiguous`'s).
    ///
    /// Why: below 8 values `runs` has no full vector, so its 8 accumulators per
    /// run stay zero; it still stored 64 zero vectors, transposed them
    /// (`nk_lane_sums8`) and added the zero lane sums to each run's Float64 tail,
    /// which was most of the backward's time on 2×2 planes. The result is the tail:
    /// ```
    /// Σg = ((0 + 0) + (0 + 0)) + tail.dy = tail.dy
    /// ```
    /// since +0 + t = t for every t except t = −0, and the tail, a sum that
    /// starts at +0, is never −0 (+0 + −0 = +0; IEEE round-to-nearest gives −0
    /// for a sum only when both addends are −0). NaN and ±∞ are not finite
    /// either way, and the run is redone by `contiguous`, as `runs` does.
    @inline(__always)
    static func tinyRun<E: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<E>, mask: UnsafePointer<E>?, n: Int, _ c: AffineCoefficients
    ) -> GradientSums {
        var tail = GradientSums.zero
        // scalar math, `runs`' tail loop: x̂ = (x − p)·s + t;  Σg += g;  Σgx̂ += g·x̂ (in Float64)
        for i in 0..<n {
            let v = gradient1(dy, mask, nil, i)
            let h = muladd(E.widen(x[i]) - c.pivot, c.scale, c.shift)
            tail.dy += Double(v)
            tail.dyXhat += Double(v) * Double(h)
        }
        return tail.isFinite ? tail : contiguous(x, dy, n, c, mask: mask, gamma: nil)
    }
}
