// Gradient sums of one block of contiguous rows (the rows geometry):
// Σg and Σg·x̂ over a run, or over several runs a stride apart, the reduction
// pass of every rows-geometry backward kernel.
//
// Why this form:
// - Centered sums Σg and Σg·x̂, with x̂ = (x − p)·s + t formed exactly as the
//   forward pass forms it (p = Float(μ), s = Float(invStd), t = −(μ − p)·invStd):
//   x − p is exact for data clustered far from zero, so nothing cancels. The
//   uncentered Σx·dy − μ·Σdy loses every digit at mean 1e4, std 1e-2.
// - Float32 SIMD lanes within a block (≤ 4096 values: ≤ 256 per lane), lanes
//   summed into Float64 in a fixed order; columns accumulate at most
//   `flushRows` rows in Float32 before adding into Float64. Blocks are merged
//   in Float64 trees by the geometries.
// - `muladd` (one fused multiply-add where the target has FMA, else a multiply
//   and an add), never `addingProduct`: without FMA in the target (SSE2 by
//   default) the latter is a library call per lane.
// - The scalar remainder columns use exactly the Float32 operations of a SIMD
//   lane, so a column's sums do not depend on whether it sits in a vector or
//   in the remainder (LayerNorm's column tiles rely on this).
// If Float32 overflows (dy or x̂ beyond ~1e19) the block is redone in Float64.

import CNormSupport

/// The gradient microkernels of the backward kernels: row sums (this file),
/// column sums (ColumnGradientSums.swift), the dx pass (ApplyGradient.swift)
/// and the LayerNorm/RMSNorm row tile that does both (RowTileBackward.swift).
enum BlockGradients {
    /// Σg and Σg·x̂ over `n` contiguous values, x̂ = (x − c.pivot)·c.scale + c.shift,
    /// g = dy (· γ[i] when `gamma`) (0 where `mask[i]` ≤ 0 when `mask`).
    /// dy (and the mask) may have an element type `D` of their own (GroupNorm +
    /// SiLU's 16-bit backward: x in 16 bits, its Float32 g as dy); each is
    /// widened exactly on load, so the sums are those of the widened values.
    @inline(__always)
    static func contiguous<E: NormElement, D: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<D>, _ n: Int, _ c: AffineCoefficients,
        mask: UnsafePointer<D>?, gamma: UnsafePointer<Float>?
    ) -> GradientSums {
        segmented(x, dy, length: n, stride: 0, segments: 1, c, mask: mask, gamma: gamma)
    }

    /// `contiguous` for a short row (≤ `shortRowLength` values, the rows of
    /// LayerNorm/RMSNorm on small feature vectors), inlined into the caller's row
    /// loop: two accumulator pairs joined in Float32 before one lane sum each,
    /// instead of four pairs and eight Float64 lane sums — the lane sums had cost
    /// more than the row's arithmetic. Non-finite Float32 sums are redone by
    /// `contiguous` (Float64 fallback).
    @inline(__always)
    static func shortRow<E: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<E>, _ n: Int, _ c: AffineCoefficients,
        gamma: UnsafePointer<Float>?
    ) -> GradientSums {
        let p = F8(repeating: c.pivot), s = F8(repeating: c.scale), t = F8(repeating: c.shift)
        var g0 = F8(), g1 = F8(), h0 = F8(), h1 = F8()
        var i = 0
        // scalar math: x̂ = (x − p)·s + t;  Σg += g;  Σgx̂ += g·x̂
        while i + 16 <= n {
            let d0 = gradient8(dy, nil, gamma, i), d1 = gradient8(dy, nil, gamma, i + 8)
            g0 += d0
            g1 += d1
            h0 = muladd(d0, muladd(E.load8(x + i) - p, s, t), h0)
            h1 = muladd(d1, muladd(E.load8(x + i + 8) - p, s, t), h1)
            i += 16
        }
        if i + 8 <= n {
            let d0 = gradient8(dy, nil, gamma, i)
            g0 += d0
            h0 = muladd(d0, muladd(E.load8(x + i) - p, s, t), h0)
            i += 8
        }
        var sums = GradientSums(dy: laneSum64(g0 + g1), dyXhat: laneSum64(h0 + h1))
        while i < n {
            let d = gradient1(dy, nil, gamma, i)
            sums.dy += Double(d)
            sums.dyXhat += Double(d) * Double(muladd(E.widen(x[i]) - c.pivot, c.scale, c.shift))
            i += 1
        }
        return sums.isFinite ? sums : contiguous(x, dy, n, c, mask: nil, gamma: gamma)
    }

    /// Longest row `shortRow` takes.
    static let shortRowLength = 64

    /// The same sums over `segments` runs of `length` values, `stride` apart (a block
    /// of the rows geometry that groups short segments: BatchNorm NCHW with small
    /// H·W). The SIMD lanes carry over from run to run; each run's last < 16 values
    /// are added in Float64. `gamma` and `mask` are indexed like `x`, except that
    /// γ restarts at every run (position within the run).
    static func segmented<E: NormElement, D: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<D>, length n: Int, stride: Int, segments: Int,
        _ c: AffineCoefficients, mask: UnsafePointer<D>?, gamma: UnsafePointer<Float>?, following: Int = 0,
        store: UnsafeMutablePointer<D>? = nil
    ) -> GradientSums {
        let sums: GradientSums
        if following != 0 && store == nil && mask == nil && gamma == nil && D.self == E.self
            && WelfordWide.runs(E.self) {
            // 16-bit x and dy in runs far apart (BatchNorm NCHW backward) on an AVX-512 CPU: the
            // same sums, bit for bit, prefetching into L2 (WelfordWide.swift).
            sums = WelfordWide.gradientSums(x, UnsafeRawPointer(dy).assumingMemoryBound(to: E.self), length: n,
                                            stride: stride, segments: segments, c, following: following)
        } else if let store {
            // BatchNorm + add (+ ReLU): g (dy, masked with the ReLU, no γ) also
            // written to `store`, d identity, in the same sweep (see `segmentedFloat32`).
            precondition(gamma == nil, "segmented: a stored g carries no γ")
            if let mask {
                sums = following != 0
                    ? segmentedFloat32(x, dy, n, stride, segments, c, mask, nil, following, PrefetchAhead.self, store)
                    : segmentedFloat32(x, dy, n, stride, segments, c, mask, nil, 0, NoPrefetch.self, store)
            } else {
                sums = following != 0
                    ? segmentedFloat32(x, dy, n, stride, segments, c, nil, nil, following, PrefetchAhead.self, store)
                    : segmentedFloat32(x, dy, n, stride, segments, c, nil, nil, 0, NoPrefetch.self, store)
            }
        } else if following != 0 && gamma == nil {
            // Runs far apart (BatchNorm NCHW): prefetch along the logical stream.
            sums = mask.map { segmentedFloat32(x, dy, n, stride, segments, c, $0, nil, following, PrefetchAhead.self) }
                ?? segmentedFloat32(x, dy, n, stride, segments, c, nil, nil, following, PrefetchAhead.self)
        } else {
            switch (mask, gamma) {
            case (nil, nil): sums = segmentedFloat32(x, dy, n, stride, segments, c, nil, nil, 0, NoPrefetch.self)
            case let (mask?, nil): sums = segmentedFloat32(x, dy, n, stride, segments, c, mask, nil, 0, NoPrefetch.self)
            case let (nil, gamma?): sums = segmentedFloat32(x, dy, n, stride, segments, c, nil, gamma, 0, NoPrefetch.self)
            case let (mask?, gamma?): sums = segmentedFloat32(x, dy, n, stride, segments, c, mask, gamma, 0, NoPrefetch.self)
            }
        }
        if sums.isFinite { return sums }
        return segmentedFloat64(x, dy, n, stride, segments, c, mask, gamma)
    }

    /// `P`: whether each 32-value step also prefetches x, dy (and the mask) along
    /// the logical stream (runs far apart; see `StreamPrefetch`). Same arithmetic
    /// in the same order either way: same bits.
    /// `store` (indexed like dy): each g is also written there, the vector values
    /// narrowed back from their exact widening and the scalar ones as dy's own bit
    /// pattern, as `ResidualGradient.mask` writes them (without a mask, dy's bit
    /// patterns copied, as its copy does); the Float64 redo needs not write again.
    @inline(__always)
    private static func segmentedFloat32<E: NormElement, D: NormElement, P: StreamPrefetch>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<D>, _ n: Int, _ stride: Int, _ segments: Int,
        _ c: AffineCoefficients, _ mask: UnsafePointer<D>?, _ gamma: UnsafePointer<Float>?,
        _ following: Int, _: P.Type, _ store: UnsafeMutablePointer<D>? = nil
    ) -> GradientSums {
        let p = F8(repeating: c.pivot), s = F8(repeating: c.scale), t = F8(repeating: c.shift)
        // Four accumulator pairs: Σg·x̂ is a chain of multiply-adds (4 cycles each),
        // so four independent chains keep the pipes full.
        var g0 = F8(), g1 = F8(), g2 = F8(), g3 = F8(), h0 = F8(), h1 = F8(), h2 = F8(), h3 = F8()
        var tail = GradientSums.zero
        @inline(__always) func step(_ xs: UnsafePointer<E>, _ ds: UnsafePointer<D>,
                                    _ ms: UnsafePointer<D>?, _ os: UnsafeMutablePointer<D>?, _ i: Int,
                                    _ g: inout F8, _ h: inout F8) {
            let d = gradient8(ds, ms, gamma, i)
            if let os {
                if ms != nil {
                    D.store8(d, os + i)
                } else {
                    UnsafeMutableRawPointer(os + i).copyMemory(from: ds + i, byteCount: 8 * MemoryLayout<D>.stride)
                }
            }
            g += d
            h = muladd(d, muladd(E.load8(xs + i) - p, s, t), h)
        }
        for segment in 0..<segments {
            let o = segment * stride
            let xs = x + o, ds = dy + o, ms = mask.map { $0 + o }, os = store.map { $0 + o }
            var i = 0
            // scalar math: x̂ = (x − p)·s + t;  Σg += g;  Σgx̂ += g·x̂
            while i + 32 <= n {
                P.lines(xs, i, length: n, segment: segment, segments: segments, stride: stride, following: following)
                P.lines(ds, i, length: n, segment: segment, segments: segments, stride: stride, following: following)
                if let ms {
                    P.lines(ms, i, length: n, segment: segment, segments: segments, stride: stride, following: following)
                }
                if let os {
                    P.lines(UnsafePointer(os), i, length: n, segment: segment, segments: segments, stride: stride,
                            following: following)
                }
                step(xs, ds, ms, os, i, &g0, &h0); step(xs, ds, ms, os, i + 8, &g1, &h1)
                step(xs, ds, ms, os, i + 16, &g2, &h2); step(xs, ds, ms, os, i + 24, &g3, &h3)
                i += 32
            }
            while i + 8 <= n {
                step(xs, ds, ms, os, i, &g0, &h0)
                i += 8
            }
            while i < n {
                let d = gradient1(ds, ms, gamma, i)
                if let os {
                    let masked = ms.map { D.widen($0[i]) <= 0 } ?? false
                    os[i] = masked ? D.narrow(0) : ds[i]
                }
                let h = muladd(E.widen(xs[i]) - c.pivot, c.scale, c.shift)
                tail.dy += Double(d)
                tail.dyXhat += Double(d) * Double(h)
                i += 1
            }
        }
        return GradientSums(dy: ((laneSum64(g0) + laneSum64(g1)) + (laneSum64(g2) + laneSum64(g3))) + tail.dy,
                            dyXhat: ((laneSum64(h0) + laneSum64(h1)) + (laneSum64(h2) + laneSum64(h3))) + tail.dyXhat)
    }

    /// The Float64 fallback (also what non-finite inputs end in).
    private static func segmentedFloat64<E: NormElement, D: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<D>, _ n: Int, _ stride: Int, _ segments: Int,
        _ c: AffineCoefficients, _ mask: UnsafePointer<D>?, _ gamma: UnsafePointer<Float>?
    ) -> GradientSums {
        var sums = GradientSums.zero
        let p = Double(c.pivot), s = Double(c.scale), t = Double(c.shift)
        for segment in 0..<segments {
            let o = segment * stride
            for i in 0..<n {
                var d = Double(D.widen(dy[o + i]))
                if let mask, D.widen(mask[o + i]) <= 0 { d = 0 }
                if let gamma { d *= Double(gamma[i]) }
                sums.dy += d
                sums.dyXhat += d * ((Double(E.widen(x[o + i])) - p) * s + t)
            }
        }
        return sums
    }
}
