import CNormSupport
// The innermost loops of every backward kernel: the gradient sums of one block
// (reduction pass) and the dx pass.
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

/// g = dy · γ[i] (γ when given), 0 where the forward output y ≤ 0 (fused ReLU).
@inline(__always)
private func gradient8(_ dy: UnsafePointer<Float>, _ mask: UnsafePointer<Float>?,
                       _ gamma: UnsafePointer<Float>?, _ i: Int) -> F8 {
    var d = load8(dy + i)
    if let mask { d.replace(with: F8(), where: load8(mask + i) .<= F8()) }
    if let gamma { d *= load8(gamma + i) }
    return d
}

@inline(__always)
private func gradient1(_ dy: UnsafePointer<Float>, _ mask: UnsafePointer<Float>?,
                       _ gamma: UnsafePointer<Float>?, _ i: Int) -> Float {
    var d = dy[i]
    if let mask, mask[i] <= 0 { d = 0 }
    if let gamma { d *= gamma[i] }
    return d
}

enum BlockGradients {
    /// Rows of a column tile accumulated in Float32 before they are added in Float64.
    static let flushRows = 128

    // MARK: Reduction pass

    /// Σg and Σg·x̂ over `n` contiguous values, x̂ = (x − c.pivot)·c.scale + c.shift,
    /// g = dy (· γ[i] when `gamma`) (0 where `mask[i]` ≤ 0 when `mask`).
    @inline(__always)
    static func contiguous(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ n: Int, _ c: AffineCoefficients,
        mask: UnsafePointer<Float>?, gamma: UnsafePointer<Float>?
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
    static func shortRow(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ n: Int, _ c: AffineCoefficients,
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
            h0 = muladd(d0, muladd(load8(x + i) - p, s, t), h0)
            h1 = muladd(d1, muladd(load8(x + i + 8) - p, s, t), h1)
            i += 16
        }
        if i + 8 <= n {
            let d0 = gradient8(dy, nil, gamma, i)
            g0 += d0
            h0 = muladd(d0, muladd(load8(x + i) - p, s, t), h0)
            i += 8
        }
        var sums = GradientSums(dy: laneSum64(g0 + g1), dyXhat: laneSum64(h0 + h1))
        while i < n {
            let d = gradient1(dy, nil, gamma, i)
            sums.dy += Double(d)
            sums.dyXhat += Double(d) * Double(muladd(x[i] - c.pivot, c.scale, c.shift))
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
    static func segmented(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, length n: Int, stride: Int, segments: Int,
        _ c: AffineCoefficients, mask: UnsafePointer<Float>?, gamma: UnsafePointer<Float>?, following: Int = 0
    ) -> GradientSums {
        let sums: GradientSums
        if following != 0 && gamma == nil {
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
    @inline(__always)
    private static func segmentedFloat32<P: StreamPrefetch>(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ n: Int, _ stride: Int, _ segments: Int,
        _ c: AffineCoefficients, _ mask: UnsafePointer<Float>?, _ gamma: UnsafePointer<Float>?,
        _ following: Int, _: P.Type
    ) -> GradientSums {
        let p = F8(repeating: c.pivot), s = F8(repeating: c.scale), t = F8(repeating: c.shift)
        // Four accumulator pairs: Σg·x̂ is a chain of multiply-adds (4 cycles each),
        // so four independent chains keep the pipes full.
        var g0 = F8(), g1 = F8(), g2 = F8(), g3 = F8(), h0 = F8(), h1 = F8(), h2 = F8(), h3 = F8()
        var tail = GradientSums.zero
        @inline(__always) func step(_ xs: UnsafePointer<Float>, _ ds: UnsafePointer<Float>,
                                    _ ms: UnsafePointer<Float>?, _ i: Int, _ g: inout F8, _ h: inout F8) {
            let d = gradient8(ds, ms, gamma, i)
            g += d
            h = muladd(d, muladd(load8(xs + i) - p, s, t), h)
        }
        for segment in 0..<segments {
            let o = segment * stride
            let xs = x + o, ds = dy + o, ms = mask.map { $0 + o }
            var i = 0
            // scalar math: x̂ = (x − p)·s + t;  Σg += g;  Σgx̂ += g·x̂
            while i + 32 <= n {
                P.lines(xs, i, length: n, segment: segment, segments: segments, stride: stride, following: following)
                P.lines(ds, i, length: n, segment: segment, segments: segments, stride: stride, following: following)
                if let ms {
                    P.lines(ms, i, length: n, segment: segment, segments: segments, stride: stride, following: following)
                }
                step(xs, ds, ms, i, &g0, &h0); step(xs, ds, ms, i + 8, &g1, &h1)
                step(xs, ds, ms, i + 16, &g2, &h2); step(xs, ds, ms, i + 24, &g3, &h3)
                i += 32
            }
            while i + 8 <= n {
                step(xs, ds, ms, i, &g0, &h0)
                i += 8
            }
            while i < n {
                let d = gradient1(ds, ms, gamma, i)
                let h = muladd(xs[i] - c.pivot, c.scale, c.shift)
                tail.dy += Double(d)
                tail.dyXhat += Double(d) * Double(h)
                i += 1
            }
        }
        return GradientSums(dy: ((laneSum64(g0) + laneSum64(g1)) + (laneSum64(g2) + laneSum64(g3))) + tail.dy,
                            dyXhat: ((laneSum64(h0) + laneSum64(h1)) + (laneSum64(h2) + laneSum64(h3))) + tail.dyXhat)
    }

    /// The Float64 fallback (also what non-finite inputs end in).
    private static func segmentedFloat64(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ n: Int, _ stride: Int, _ segments: Int,
        _ c: AffineCoefficients, _ mask: UnsafePointer<Float>?, _ gamma: UnsafePointer<Float>?
    ) -> GradientSums {
        var sums = GradientSums.zero
        let p = Double(c.pivot), s = Double(c.scale), t = Double(c.shift)
        for segment in 0..<segments {
            let o = segment * stride
            for i in 0..<n {
                var d = Double(dy[o + i])
                if let mask, mask[o + i] <= 0 { d = 0 }
                if let gamma { d *= Double(gamma[i]) }
                sums.dy += d
                sums.dyXhat += d * ((Double(x[o + i]) - p) * s + t)
            }
        }
        return sums
    }

    /// Per-column Σg and Σg·x̂ of a `rows × columns` tile (row stride `stride`), with
    /// per-column x̂ coefficients; writes (initializes) `columns` sums at `out`.
    /// Rows are read in memory order into per-column Float32 accumulators, added
    /// into the Float64 sums every `flushRows` rows (< 8 contiguous columns: periodic
    /// lanes, see `periodicColumns`).
    static func columns(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, mask: UnsafePointer<Float>?,
        rows: Int, columns: Int, stride: Int,
        pivot: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
        into out: UnsafeMutablePointer<GradientSums>
    ) {
        out.initialize(repeating: .zero, count: columns)
        if columns < 8 && stride == columns && rows * columns >= 8 * periodVectors(columns) {
            periodicColumns(x, dy, mask: mask, rows: rows, columns: columns,
                            pivot: pivot, scale: scale, shift: shift, into: out)
        } else {
            stridedColumns(x, dy, mask: mask, rows: rows, columns: columns, stride: stride,
                           pivot: pivot, scale: scale, shift: shift, into: out)
        }
        for j in 0..<columns where !out[j].isFinite {
            out[j] = columnFloat64(x + j, dy + j, mask.map { $0 + j }, rows, stride, pivot[j], scale[j], shift[j])
        }
    }

    /// Vectors in one period of a contiguous `columns`-wide stream: lcm(columns, 8)/8.
    @inline(__always)
    static func periodVectors(_ columns: Int) -> Int {
        var a = columns, b = 8
        while b != 0 { (a, b) = (b, a % b) }
        return columns / a
    }

    /// Fewer than 8 contiguous columns (NHWC with C = 3, [N, D] with D < 8): the
    /// rows form one contiguous stream whose lane l of vector v always holds column
    /// (8v + l) mod C, so the stream goes through full SIMD vectors with per-lane
    /// coefficient patterns (period lcm(C, 8) values) instead of one strided scalar
    /// loop per column. Lanes are folded into their columns in Float64 every
    /// ≈ `flushRows` rows; the last < period values are added in Float64.
    private static func periodicColumns(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, mask: UnsafePointer<Float>?,
        rows: Int, columns: Int,
        pivot: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
        into out: UnsafeMutablePointer<GradientSums>
    ) {
        let vectors = periodVectors(columns), period = 8 * vectors
        let total = rows * columns
        let stepsPerFlush = max(1, flushRows * columns / period)
        withUnsafeTemporaryAllocation(of: F8.self, capacity: 5 * vectors) { buffer in
            let p = buffer.baseAddress!, s = p + vectors, t = s + vectors, g = t + vectors, h = g + vectors
            for v in 0..<vectors {
                for l in 0..<8 {
                    let j = (8 * v + l) % columns
                    p[v][l] = pivot[j]; s[v][l] = scale[j]; t[v][l] = shift[j]
                }
            }
            func fold() {
                for v in 0..<vectors {
                    for l in 0..<8 {
                        let j = (8 * v + l) % columns
                        out[j].dy += Double(g[v][l])
                        out[j].dyXhat += Double(h[v][l])
                    }
                    g[v] = F8(); h[v] = F8()
                }
            }
            for v in 0..<vectors { g[v] = F8(); h[v] = F8() }
            var i = 0, steps = 0
            // scalar math per lane: x̂ = (x − p)·s + t;  Σg += g;  Σgx̂ += g·x̂
            while i + period <= total {
                for v in 0..<vectors {
                    let o = i + 8 * v
                    let d = gradient8(dy + o, mask.map { $0 + o }, nil, 0)
                    g[v] += d
                    h[v] = muladd(d, muladd(load8(x + o) - p[v], s[v], t[v]), h[v])
                }
                i += period
                steps += 1
                if steps == stepsPerFlush { fold(); steps = 0 }
            }
            fold()
            while i < total {
                let j = i % columns
                var d = Double(dy[i])
                if let mask, mask[i] <= 0 { d = 0 }
                out[j].dy += d
                out[j].dyXhat += d * Double(muladd(x[i] - pivot[j], scale[j], shift[j]))
                i += 1
            }
        }
    }

    /// ≥ 8 columns: rows outer, so memory is read in order (an 8-column tile walked
    /// down the rows used half a cache line per row and ran at a third of the
    /// bandwidth); per-column Float32 accumulators live in `scratch`-sized stack
    /// memory and are added into the Float64 sums every `flushRows` rows. A column
    /// gets the same Float32 operations in a vector and in the remainder.
    private static func stridedColumns(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, mask: UnsafePointer<Float>?,
        rows: Int, columns: Int, stride: Int,
        pivot: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
        into out: UnsafeMutablePointer<GradientSums>
    ) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * columns) { scratch in
            let accG = scratch.baseAddress!, accH = accG + columns
            var row = 0
            while row < rows {
                let end = min(rows, row + flushRows)
                accG.update(repeating: 0, count: columns)
                accH.update(repeating: 0, count: columns)
                if usesStrips(columns: columns) {
                    accumulateStrips(x, dy, mask, rows: row..<end, columns, stride, pivot, scale, shift, accG, accH)
                    row = end
                }
                while row < end {
                    let o = row * stride
                    if let mask {
                        accumulateRow(x + o, dy + o, mask + o, columns, pivot, scale, shift, accG, accH)
                    } else {
                        accumulateRow(x + o, dy + o, nil, columns, pivot, scale, shift, accG, accH)
                    }
                    row += 1
                }
                for j in 0..<columns {
                    out[j].dy += Double(accG[j])
                    out[j].dyXhat += Double(accH[j])
                }
            }
        }
    }

    /// Rows per strip of `stridedColumns` and of the dx pass (`applyStrips`).
    static let rowsPerStrip = 8
    /// The dx pass goes in strips from this many columns on (see `applyColumns`):
    /// at 1024 columns strips ran 0.7–0.85× row by row (ninth pass; 1.2–1.7× on
    /// the eighth's machine), at 1280 1.04–1.07× on a 2.6 MB tensor but 0.88–0.93×
    /// on 16 MB, at 2048–3072 1.04–1.17× (docs/PERFORMANCE-HISTORY.md, "Ninth pass").
    static let stripColumns = 1280

    /// Whether `stridedColumns` sums in strips (with the next strip prefetched,
    /// see `accumulateStrip`) rather than row by row. Measured on BatchNorm and
    /// InstanceNorm NHWC backward in alternating rounds (docs/PERFORMANCE-HISTORY.md,
    /// "Ninth pass"): strips gain 1.1–1.4× at 128–384 columns, 1.1× at 1280 on
    /// small tensors and 1.02–1.17× at 1536–3072, but lose 0.7–0.9× at 512–1152
    /// columns (prefetch distances of 4–32 rows, at least 4–16 KiB, into L2 only,
    /// or per tile measured no better — not understood) and at 64 columns on
    /// 25 MB tensors (InstanceNorm `[32, 64, 56, 56]` 0.83–0.91×); row by row there.
    static func usesStrips(columns: Int) -> Bool {
        (128..<512).contains(columns) || columns >= stripColumns
    }

    /// Rows `rows` in strips of up to `rowsPerStrip`: each 16-column tile keeps its
    /// coefficients and accumulators in registers down the strip, so 8 values cost
    /// the x and dy loads instead of 7 loads and 2 stores. Every column still sums
    /// its rows in row order: same bits. Out of line, so that the row-by-row loop
    /// of narrower blocks keeps its registers (inlined, it reloaded a pointer from
    /// the stack every 8 values and ran 0.76× on 64 channels).
    @inline(never)
    private static func accumulateStrips(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ mask: UnsafePointer<Float>?, rows: Range<Int>,
        _ columns: Int, _ stride: Int,
        _ pivot: UnsafePointer<Float>, _ scale: UnsafePointer<Float>, _ shift: UnsafePointer<Float>,
        _ accG: UnsafeMutablePointer<Float>, _ accH: UnsafeMutablePointer<Float>
    ) {
        var row = rows.lowerBound
        while row < rows.upperBound {
            let n = min(rowsPerStrip, rows.upperBound - row), o = row * stride
            if let mask {
                accumulateStrip(x + o, dy + o, mask + o, rows: n, columns, stride, pivot, scale, shift, accG, accH)
            } else {
                accumulateStrip(x + o, dy + o, nil, rows: n, columns, stride, pivot, scale, shift, accG, accH)
            }
            row += n
        }
    }

    @inline(__always)
    private static func accumulateStrip(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ mask: UnsafePointer<Float>?, rows: Int,
        _ columns: Int, _ stride: Int,
        _ pivot: UnsafePointer<Float>, _ scale: UnsafePointer<Float>, _ shift: UnsafePointer<Float>,
        _ accG: UnsafeMutablePointer<Float>, _ accH: UnsafeMutablePointer<Float>
    ) {
        var j = 0
        // The strip reads tile by tile down its rows, out of address order, so the
        // hardware prefetchers lose the stream: each step also prefetches the next
        // line of x and of dy of the *next* strip, in address order (16 columns ×
        // rows × 64 B = the next strip exactly when columns % 16 == 0).
        var aheadX = UnsafeRawPointer(x + rows * stride), aheadDy = UnsafeRawPointer(dy + rows * stride)
        // scalar math per column: x̂ = (x − p)·s + t;  Σg += g;  Σgx̂ += g·x̂
        while j + 16 <= columns {
            let p0 = load8(pivot + j), p1 = load8(pivot + j + 8)
            let s0 = load8(scale + j), s1 = load8(scale + j + 8)
            let t0 = load8(shift + j), t1 = load8(shift + j + 8)
            var g0 = load8(accG + j), g1 = load8(accG + j + 8)
            var h0 = load8(accH + j), h1 = load8(accH + j + 8)
            var o = j
            for _ in 0..<rows {
                nk_prefetch(aheadX); nk_prefetch(aheadDy); aheadX += 64; aheadDy += 64
                let d0 = gradient8(dy, mask, nil, o), d1 = gradient8(dy, mask, nil, o + 8)
                g0 += d0
                g1 += d1
                h0 = muladd(d0, muladd(load8(x + o) - p0, s0, t0), h0)
                h1 = muladd(d1, muladd(load8(x + o + 8) - p1, s1, t1), h1)
                o += stride
            }
            store8(g0, accG + j); store8(g1, accG + j + 8)
            store8(h0, accH + j); store8(h1, accH + j + 8)
            j += 16
        }
        guard j < columns else { return }
        for r in 0..<rows {
            let o = r * stride
            accumulateRow(x + o, dy + o, mask.map { $0 + o }, columns, pivot, scale, shift, accG, accH, from: j)
        }
    }

    @inline(__always)
    private static func accumulateRow(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ mask: UnsafePointer<Float>?, _ columns: Int,
        _ pivot: UnsafePointer<Float>, _ scale: UnsafePointer<Float>, _ shift: UnsafePointer<Float>,
        _ accG: UnsafeMutablePointer<Float>, _ accH: UnsafeMutablePointer<Float>, from start: Int = 0
    ) {
        var j = start
        // scalar math per column: x̂ = (x − p)·s + t;  Σg += g;  Σgx̂ += g·x̂
        while j + 8 <= columns {
            let d = gradient8(dy, mask, nil, j)
            store8(load8(accG + j) + d, accG + j)
            store8(muladd(d, muladd(load8(x + j) - load8(pivot + j), load8(scale + j), load8(shift + j)), load8(accH + j)), accH + j)
            j += 8
        }
        while j < columns {
            let d = gradient1(dy, mask, nil, j)
            accG[j] += d
            accH[j] = muladd(d, muladd(x[j] - pivot[j], scale[j], shift[j]), accH[j])
            j += 1
        }
    }

    private static func columnFloat64(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ mask: UnsafePointer<Float>?,
        _ rows: Int, _ stride: Int, _ p: Float, _ s: Float, _ t: Float
    ) -> GradientSums {
        var sums = GradientSums.zero
        for row in 0..<rows {
            let o = row * stride
            var d = Double(dy[o])
            if let mask, mask[o] <= 0 { d = 0 }
            sums.dy += d
            sums.dyXhat += d * ((Double(x[o]) - Double(p)) * Double(s) + Double(t))
        }
        return sums
    }

    // MARK: Output pass

    /// `dst[i] = a·g + (b·(x[i] − pivot) + c)` over `n` contiguous values, with
    /// g = dy (· γ[i]) (0 where mask ≤ 0). `x` nil drops the x term (dst = a·g:
    /// inference); `dy` nil drops the g term (dst = b·(x − pivot) + c: AdaIN's style).
    /// `dst` may equal `x` or `dy` (each element is read before it is written).
    /// `streaming` writes with non-temporal stores (callers pass
    /// `prefersStreamingStores`, which is false in place).
    static func apply(
        x: UnsafePointer<Float>?, dy: UnsafePointer<Float>?, mask: UnsafePointer<Float>?,
        gamma: UnsafePointer<Float>?, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _ k: GradientCoefficients,
        streaming: Bool = false
    ) {
        if streaming {
            apply(x, dy, mask, gamma, dst, n, k, StreamingStore.self)
        } else {
            apply(x, dy, mask, gamma, dst, n, k, CachedStore.self)
        }
    }

    @inline(__always)
    private static func apply<S: VectorStore>(
        _ x: UnsafePointer<Float>?, _ dy: UnsafePointer<Float>?, _ mask: UnsafePointer<Float>?,
        _ gamma: UnsafePointer<Float>?, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _ k: GradientCoefficients,
        _: S.Type
    ) {
        guard let dy else {
            if let x { applyCore(x, nil, nil, nil, dst, n, k, useX: true, useDy: false, S.self) }
            return
        }
        guard let x else {
            switch (mask, gamma) {
            case (nil, nil): applyCore(nil, dy, nil, nil, dst, n, k, useX: false, useDy: true, S.self)
            case let (mask?, nil): applyCore(nil, dy, mask, nil, dst, n, k, useX: false, useDy: true, S.self)
            case let (nil, gamma?): applyCore(nil, dy, nil, gamma, dst, n, k, useX: false, useDy: true, S.self)
            case let (mask?, gamma?): applyCore(nil, dy, mask, gamma, dst, n, k, useX: false, useDy: true, S.self)
            }
            return
        }
        switch (mask, gamma) {
        case (nil, nil): applyCore(x, dy, nil, nil, dst, n, k, useX: true, useDy: true, S.self)
        case let (mask?, nil): applyCore(x, dy, mask, nil, dst, n, k, useX: true, useDy: true, S.self)
        case let (nil, gamma?): applyCore(x, dy, nil, gamma, dst, n, k, useX: true, useDy: true, S.self)
        case let (mask?, gamma?): applyCore(x, dy, mask, gamma, dst, n, k, useX: true, useDy: true, S.self)
        }
    }

    @inline(__always)
    private static func applyCore<S: VectorStore>(
        _ x: UnsafePointer<Float>?, _ dy: UnsafePointer<Float>?, _ mask: UnsafePointer<Float>?,
        _ gamma: UnsafePointer<Float>?, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _ k: GradientCoefficients,
        useX: Bool, useDy: Bool, _: S.Type
    ) {
        @inline(__always) func scalar(_ i: Int) {
            var v: Float = 0
            if useX { v = muladd(k.b, x![i] - k.pivot, k.c) }
            if useDy { v = useX ? muladd(k.a, gradient1(dy!, mask, gamma, i), v) : k.a * gradient1(dy!, mask, gamma, i) }
            dst[i] = v
        }
        let p = F8(repeating: k.pivot), a = F8(repeating: k.a), b = F8(repeating: k.b), c = F8(repeating: k.c)
        var i = 0
        let head = S.prologue(dst, n)
        while i < head { scalar(i); i += 1 }
        // scalar math: dx = a·g + (b·(x − p) + c)
        while i + 8 <= n {
            var v = F8()
            if useX { v = muladd(b, load8(x! + i) - p, c) }
            if useDy { v = useX ? muladd(a, gradient8(dy!, mask, gamma, i), v) : a * gradient8(dy!, mask, gamma, i) }
            S.store(v, dst + i)
            i += 8
        }
        while i < n { scalar(i); i += 1 }
    }

    /// Strided columns: for `rows` rows of `columns` values (row stride `stride`),
    /// `dst[r, j] = a[j]·g + (b[j]·(x[r, j] − pivot[j]) + c[j])` with the table's
    /// slots `slot ..< slot + columns`; `x` nil or `dy` nil as in `apply`.
    static func applyColumns(
        x: UnsafePointer<Float>?, dy: UnsafePointer<Float>?, mask: UnsafePointer<Float>?,
        _ dst: UnsafeMutablePointer<Float>, rows: Int, columns: Int, stride: Int,
        table: GradientTable, slot: Int, streaming: Bool = false
    ) {
        let pivot = table.pivot + slot, a = table.a + slot, b = table.b + slot, c = table.c + slot
        if columns < 8 && stride == columns && rows * columns >= 8 * periodVectors(columns) {
            periodicApply(x: x, dy: dy, mask: mask, dst, total: rows * columns, columns: columns,
                          pivot: pivot, a: a, b: b, c: c)
            return
        }
        // Stream only when every row starts 32-byte aligned (see `Apply.columns`).
        if streaming && stride % 8 == 0 && Int(bitPattern: UInt(bitPattern: dst)) & 31 == 0 {
            applyColumns(x, dy, mask, dst, rows, columns, stride, pivot, a, b, c, StreamingStore.self)
        } else {
            applyColumns(x, dy, mask, dst, rows, columns, stride, pivot, a, b, c, CachedStore.self)
        }
    }

    @inline(__always)
    private static func applyColumns<S: VectorStore>(
        _ x: UnsafePointer<Float>?, _ dy: UnsafePointer<Float>?, _ mask: UnsafePointer<Float>?,
        _ dst: UnsafeMutablePointer<Float>, _ rows: Int, _ columns: Int, _ stride: Int,
        _ pivot: UnsafePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>,
        _: S.Type
    ) {
        // One specialized row loop per case (the case is decided once, not per row).
        @inline(__always)
        func sweep(_ x: UnsafePointer<Float>?, _ dy: UnsafePointer<Float>?, _ mask: UnsafePointer<Float>?,
                  useX: Bool, useDy: Bool) {
            for r in 0..<rows {
                let o = r * stride
                applyRow(x.map { $0 + o }, dy.map { $0 + o }, mask.map { $0 + o }, dst + o, columns,
                         pivot, a, b, c, useX: useX, useDy: useDy, S.self)
            }
        }
        if columns >= stripColumns {
            applyStrips(x, dy, mask, dst, rows, columns, stride, pivot, a, b, c, S.self)
            return
        }
        switch (x, dy, mask) {
        case let (x?, dy?, nil): sweep(x, dy, nil, useX: true, useDy: true)
        case let (x?, dy?, mask?): sweep(x, dy, mask, useX: true, useDy: true)
        case let (nil, dy?, nil): sweep(nil, dy, nil, useX: false, useDy: true)
        case let (nil, dy?, mask?): sweep(nil, dy, mask, useX: false, useDy: true)
        case let (x?, nil, _): sweep(x, nil, nil, useX: true, useDy: false)
        case (nil, nil, _): return
        }
    }

    /// `applyColumns` for rows of at least `stripColumns` columns, in strips of
    /// `rowsPerStrip` rows (see `applyStrip`). Out of line for the same reason as
    /// `accumulateStrips`.
    @inline(never)
    private static func applyStrips<S: VectorStore>(
        _ x: UnsafePointer<Float>?, _ dy: UnsafePointer<Float>?, _ mask: UnsafePointer<Float>?,
        _ dst: UnsafeMutablePointer<Float>, _ rows: Int, _ columns: Int, _ stride: Int,
        _ pivot: UnsafePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>,
        _: S.Type
    ) {
        @inline(__always)
        func sweep(_ x: UnsafePointer<Float>?, _ dy: UnsafePointer<Float>?, _ mask: UnsafePointer<Float>?,
                   useX: Bool, useDy: Bool) {
            var r = 0
            while r < rows {
                let n = min(rowsPerStrip, rows - r), o = r * stride
                applyStrip(x.map { $0 + o }, dy.map { $0 + o }, mask.map { $0 + o }, dst + o, rows: n, columns, stride,
                           pivot, a, b, c, useX: useX, useDy: useDy, S.self)
                r += n
            }
        }
        switch (x, dy, mask) {
        case let (x?, dy?, nil): sweep(x, dy, nil, useX: true, useDy: true)
        case let (x?, dy?, mask?): sweep(x, dy, mask, useX: true, useDy: true)
        case let (nil, dy?, nil): sweep(nil, dy, nil, useX: false, useDy: true)
        case let (nil, dy?, mask?): sweep(nil, dy, mask, useX: false, useDy: true)
        case let (x?, nil, _): sweep(x, nil, nil, useX: true, useDy: false)
        case (nil, nil, _): return
        }
    }

    /// `rows` rows of `applyColumns` (every row start aligned for `S`, as
    /// `applyColumns` ensures): each 16-column tile loads its four coefficient pairs
    /// once and runs down the strip, so 8 values cost the x and dy loads and the
    /// store instead of four more coefficient loads. Same arithmetic per value.
    @inline(__always)
    private static func applyStrip<S: VectorStore>(
        _ x: UnsafePointer<Float>?, _ dy: UnsafePointer<Float>?, _ mask: UnsafePointer<Float>?,
        _ dst: UnsafeMutablePointer<Float>, rows: Int, _ columns: Int, _ stride: Int,
        _ pivot: UnsafePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>,
        useX: Bool, useDy: Bool, _: S.Type
    ) {
        @inline(__always) func value(_ o: Int, _ p: F8, _ a: F8, _ b: F8, _ c: F8) -> F8 {
            var v = F8()
            if useX { v = muladd(b, load8(x! + o) - p, c) }
            if useDy {
                let g = gradient8(dy!, mask, nil, o)
                v = useX ? muladd(a, g, v) : a * g
            }
            return v
        }
        var j = 0
        // The next strip's x and dy, prefetched in address order as in
        // `accumulateStrip` ([4096, 1024] and 2048 channels 1.04–1.13×; 2.6 MB
        // tensors of 1280 channels, already in L3, pay 3–6 % for the hints).
        var aheadX = UnsafeRawPointer((x ?? dy!) + rows * stride), aheadDy = UnsafeRawPointer((dy ?? x!) + rows * stride)
        while j + 16 <= columns {
            let p0 = load8(pivot + j), p1 = load8(pivot + j + 8), a0 = load8(a + j), a1 = load8(a + j + 8)
            let b0 = load8(b + j), b1 = load8(b + j + 8), c0 = load8(c + j), c1 = load8(c + j + 8)
            var o = j
            for _ in 0..<rows {
                if useX { nk_prefetch(aheadX); aheadX += 64 }
                if useDy { nk_prefetch(aheadDy); aheadDy += 64 }
                S.store(value(o, p0, a0, b0, c0), dst + o)
                S.store(value(o + 8, p1, a1, b1, c1), dst + o + 8)
                o += stride
            }
            j += 16
        }
        guard j < columns else { return }
        for r in 0..<rows {
            let o = r * stride + j
            applyRow(x.map { $0 + o }, dy.map { $0 + o }, mask.map { $0 + o }, dst + o, columns - j,
                     pivot + j, a + j, b + j, c + j, useX: useX, useDy: useDy, S.self)
        }
    }

    /// `applyColumns` for < 8 contiguous columns: the rows as one stream with
    /// per-lane coefficient patterns of period lcm(C, 8) (see `periodicColumns`).
    private static func periodicApply(
        x: UnsafePointer<Float>?, dy: UnsafePointer<Float>?, mask: UnsafePointer<Float>?,
        _ dst: UnsafeMutablePointer<Float>, total: Int, columns: Int,
        pivot: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafePointer<Float>
    ) {
        let vectors = periodVectors(columns), period = 8 * vectors
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * period) { buffer in
            let pp = buffer.baseAddress!, pa = pp + period, pb = pa + period, pc = pb + period
            for i in 0..<period {
                let j = i % columns
                pp[i] = pivot[j]; pa[i] = a[j]; pb[i] = b[j]; pc[i] = c[j]
            }
            // The pattern repeats every `period` values: apply it period by period
            // with the row kernel (its `columns` = period, all vectors full).
            var i = 0
            while i + period <= total {
                switch (x, dy, mask) {
                case let (x?, dy?, nil):
                    applyRow(x + i, dy + i, nil, dst + i, period, pp, pa, pb, pc, useX: true, useDy: true, CachedStore.self)
                case let (x?, dy?, mask?):
                    applyRow(x + i, dy + i, mask + i, dst + i, period, pp, pa, pb, pc, useX: true, useDy: true, CachedStore.self)
                case let (nil, dy?, nil):
                    applyRow(nil, dy + i, nil, dst + i, period, pp, pa, pb, pc, useX: false, useDy: true, CachedStore.self)
                case let (nil, dy?, mask?):
                    applyRow(nil, dy + i, mask + i, dst + i, period, pp, pa, pb, pc, useX: false, useDy: true, CachedStore.self)
                case let (x?, nil, _):
                    applyRow(x + i, nil, nil, dst + i, period, pp, pa, pb, pc, useX: true, useDy: false, CachedStore.self)
                case (nil, nil, _):
                    return
                }
                i += period
            }
            // The rest (whole rows, fewer than a period) with the same per-element math.
            let rest = total - i
            if rest > 0 {
                applyColumnsScalarRest(x: x.map { $0 + i }, dy: dy.map { $0 + i }, mask: mask.map { $0 + i },
                                       dst + i, count: rest, pattern: (UnsafePointer(pp), UnsafePointer(pa), UnsafePointer(pb), UnsafePointer(pc)))
            }
        }
    }

    private static func applyColumnsScalarRest(
        x: UnsafePointer<Float>?, dy: UnsafePointer<Float>?, mask: UnsafePointer<Float>?,
        _ dst: UnsafeMutablePointer<Float>, count: Int,
        pattern: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>)
    ) {
        let (pp, pa, pb, pc) = pattern
        for k in 0..<count {
            var v: Float = 0
            if let x { v = muladd(pb[k], x[k] - pp[k], pc[k]) }
            if let dy {
                let g = gradient1(dy, mask, nil, k)
                v = x != nil ? muladd(pa[k], g, v) : pa[k] * g
            }
            dst[k] = v
        }
    }

    @inline(__always)
    private static func applyRow<S: VectorStore>(
        _ x: UnsafePointer<Float>?, _ dy: UnsafePointer<Float>?, _ mask: UnsafePointer<Float>?,
        _ dst: UnsafeMutablePointer<Float>, _ columns: Int,
        _ pivot: UnsafePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>,
        useX: Bool, useDy: Bool, _: S.Type
    ) {
        @inline(__always) func scalar(_ j: Int) {
            var v: Float = 0
            if useX { v = muladd(b[j], x![j] - pivot[j], c[j]) }
            if useDy {
                let g = gradient1(dy!, mask, nil, j)
                v = useX ? muladd(a[j], g, v) : a[j] * g
            }
            dst[j] = v
        }
        var j = 0
        let head = S.prologue(dst, columns)
        while j < head { scalar(j); j += 1 }
        while j + 8 <= columns {
            var v = F8()
            if useX { v = muladd(load8(b + j), load8(x! + j) - load8(pivot + j), load8(c + j)) }
            if useDy {
                let g = gradient8(dy!, mask, nil, j)
                v = useX ? muladd(load8(a + j), g, v) : load8(a + j) * g
            }
            S.store(v, dst + j)
            j += 8
        }
        while j < columns { scalar(j); j += 1 }
    }
}

extension BlockGradients {
    /// The LayerNorm/RMSNorm tile: `rows` rows × `columns` columns (row stride
    /// `stride`) of rows `firstRow ..< firstRow + rows`, each row with its own
    /// x̂ coefficients (`xhat`) and dx coefficients (`dxTable`), γ per column.
    /// With `segmentWidth` < `columns` (GroupNorm on feature vectors) each row is
    /// cut into segments of that many columns, segment s of row r using slot
    /// `r·slotsPerRow + firstSlot + s` of both tables; with `rowsPerSlot` = R,
    /// `(r / R)·slotsPerRow + firstSlot + s` (R rows share statistics).
    /// One sweep, rows outer, that
    /// - writes `dx = a·(dy·γ) + (b·(x − pivot) + c)` when `dx` is given, and
    /// - adds each column's Σdy and Σdy·x̂ (dy not scaled by γ: these are dβ and dγ)
    ///   into `columnSums` when given, from Float32 accumulators (`scratch`, 2·columns
    ///   values) flushed into Float64 every `flushRows` rows; a column whose Float32
    ///   partial of those rows is not finite gets their Float64 sums instead
    ///   (`rowsColumnFloat64`: one test per column and flush, and the rows of a flush
    ///   depend only on the tile, so the bits do not depend on the thread count).
    ///   When `dx` is `x` or `dy` (in place), each flush's rows are summed before
    ///   their dx is written, so the redo still reads the inputs.
    /// A column's sums use the same Float32 operations whether it is in a vector or
    /// in the remainder, so they do not depend on how columns are cut into tiles.
    static func rowTile(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
        gamma: UnsafePointer<Float>?, rows: Int, columns: Int, stride: Int, firstRow: Int,
        xhat: CoefficientTable, dxTable: GradientTable?,
        columnSums: UnsafeMutablePointer<GradientSums>?, scratch: UnsafeMutablePointer<Float>,
        streaming: Bool = false, segmentWidth: Int? = nil, slotsPerRow: Int = 1, firstSlot: Int = 0,
        rowsPerSlot: Int = 1, beforeRow: ((Int) -> Void)? = nil
    ) {
        let slots = RowSlots(width: segmentWidth ?? columns, perRow: slotsPerRow, first: firstSlot, rowsPerSlot: rowsPerSlot)
        // Stream dx only when every row (and segment) starts 32-byte aligned (see `Apply.columns`).
        if streaming, let dx, stride % 8 == 0, slots.width % 8 == 0 || slots.width >= columns,
           Int(bitPattern: UInt(bitPattern: dx)) & 31 == 0 {
            rowTile(x, dy, dx: dx, gamma: gamma, rows: rows, columns: columns, stride: stride, firstRow: firstRow,
                    xhat: xhat, dxTable: dxTable, columnSums: columnSums, scratch: scratch, slots: slots,
                    beforeRow: beforeRow, StreamingStore.self)
        } else {
            rowTile(x, dy, dx: dx, gamma: gamma, rows: rows, columns: columns, stride: stride, firstRow: firstRow,
                    xhat: xhat, dxTable: dxTable, columnSums: columnSums, scratch: scratch, slots: slots,
                    beforeRow: beforeRow, CachedStore.self)
        }
    }

    /// Which table slot each `width`-column segment of a tile row uses.
    struct RowSlots {
        var width: Int
        var perRow: Int
        var first: Int
        var rowsPerSlot: Int
    }

    @inline(__always)
    private static func rowTile<S: VectorStore>(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
        gamma: UnsafePointer<Float>?, rows: Int, columns: Int, stride: Int, firstRow: Int,
        xhat: CoefficientTable, dxTable: GradientTable?,
        columnSums: UnsafeMutablePointer<GradientSums>?, scratch: UnsafeMutablePointer<Float>,
        slots: RowSlots, beforeRow: ((Int) -> Void)?, _: S.Type
    ) {
        let accG = scratch, accH = scratch + columns
        /// Slot of the first segment of tile row `row`.
        @inline(__always) func firstSlot(_ row: Int) -> Int {
            let slotRow = slots.rowsPerSlot == 1 ? firstRow + row : (firstRow + row) / slots.rowsPerSlot
            return slotRow * slots.perRow + slots.first
        }
        /// Rows `rows` of the tile: the column sums (`sums`) and/or dx (`write`).
        @inline(__always) func sweep(_ rows: Range<Int>, sums: Bool, write: Bool) {
            for row in rows {
                if write { beforeRow?(row) }
                var j = 0
                var slot = firstSlot(row)
                while j < columns {
                    let w = min(slots.width, columns - j)
                    let o = row * stride + j
                    let h = xhat[slot]
                    let ag = accG + j, ah = accH + j, gj = gamma.map { $0 + j }
                    switch (dx, dxTable, write) {
                    case let (dx?, table?, true):
                        let k = table[slot]
                        if let gj {
                            if sums {
                                tileRow(x + o, dy + o, dx + o, gj, w, h, k, ag, ah, sums: true, write: true, S.self)
                            } else {
                                tileRow(x + o, dy + o, dx + o, gj, w, h, k, ag, ah, sums: false, write: true, S.self)
                            }
                        } else if sums {
                            tileRow(x + o, dy + o, dx + o, nil, w, h, k, ag, ah, sums: true, write: true, S.self)
                        } else {
                            tileRow(x + o, dy + o, dx + o, nil, w, h, k, ag, ah, sums: false, write: true, S.self)
                        }
                    default:
                        let k = GradientCoefficients(pivot: 0, a: 0, b: 0, c: 0)
                        tileRow(x + o, dy + o, nil, nil, w, h, k, ag, ah, sums: true, write: false, S.self)
                    }
                    j += w
                    slot += 1
                }
            }
        }
        // dx over x or dy (in place) with column sums: a chunk's sums first, so that
        // a Float64 redo still reads the inputs, then its dx (same sums, same bits).
        let writes = dx != nil && dxTable != nil
        let split = writes && columnSums != nil
            && (UnsafeRawPointer(dx!) == UnsafeRawPointer(x) || UnsafeRawPointer(dx!) == UnsafeRawPointer(dy))
        var row = 0
        while row < rows {
            let end = min(rows, row + flushRows)
            guard let columnSums else {
                sweep(row..<end, sums: false, write: true)
                row = end
                continue
            }
            accG.update(repeating: 0, count: columns)
            accH.update(repeating: 0, count: columns)
            if split {
                sweep(row..<end, sums: true, write: false)
            } else {
                sweep(row..<end, sums: true, write: writes)
            }
            for j in 0..<columns {
                var part = GradientSums(dy: Double(accG[j]), dyXhat: Double(accH[j]))
                if !part.isFinite {
                    // Float32 overflow (or non-finite inputs): this chunk of the column in Float64.
                    part = rowsColumnFloat64(x + j, dy + j, rows: row..<end, stride: stride) { r in
                        xhat[firstSlot(r) + j / slots.width]
                    }
                }
                columnSums[j] = columnSums[j] + part
            }
            if split { sweep(row..<end, sums: false, write: true) }
            row = end
        }
    }

    /// Σdy and Σdy·x̂ of one column down rows `rows` (row stride `stride`) in
    /// Float64, x̂ = (x − p)·s + t with row r's coefficients `xhat(r)`: the redo of
    /// a Float32 column partial of the row tiles that overflowed.
    @inline(never)
    static func rowsColumnFloat64(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, rows: Range<Int>, stride: Int,
        xhat: (Int) -> AffineCoefficients
    ) -> GradientSums {
        var sums = GradientSums.zero
        for r in rows {
            let c = xhat(r), d = Double(dy[r * stride])
            sums.dy += d
            sums.dyXhat += d * ((Double(x[r * stride]) - Double(c.pivot)) * Double(c.scale) + Double(c.shift))
        }
        return sums
    }

    @inline(__always)
    private static func tileRow<S: VectorStore>(
        _ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>?,
        _ gamma: UnsafePointer<Float>?, _ columns: Int, _ h: AffineCoefficients, _ k: GradientCoefficients,
        _ accG: UnsafeMutablePointer<Float>, _ accH: UnsafeMutablePointer<Float>, sums: Bool, write: Bool,
        _: S.Type
    ) {
        let p = F8(repeating: h.pivot), s = F8(repeating: h.scale), t = F8(repeating: h.shift)
        let a = F8(repeating: k.a), b = F8(repeating: k.b), c = F8(repeating: k.c), q = F8(repeating: k.pivot)
        @inline(__always) func scalar(_ j: Int) {
            let xv = x[j], d = dy[j]
            if sums {
                accG[j] += d
                accH[j] = muladd(d, muladd(xv - h.pivot, h.scale, h.shift), accH[j])
            }
            if write {
                let g = gamma.map { d * $0[j] } ?? d
                dx![j] = muladd(k.a, g, muladd(k.b, xv - k.pivot, k.c))
            }
        }
        var j = 0
        let head = write ? S.prologue(dx!, columns) : 0
        while j < head { scalar(j); j += 1 }
        // scalar math: x̂ = (x − p)·s + t;  ΣG[j] += dy;  ΣH[j] += dy·x̂;  dx = a·(dy·γ[j]) + (b·(x − p) + c)
        while j + 8 <= columns {
            let xv = load8(x + j), d = load8(dy + j)
            if sums {
                store8(load8(accG + j) + d, accG + j)
                store8(muladd(d, muladd(xv - p, s, t), load8(accH + j)), accH + j)
            }
            if write {
                let g = gamma.map { d * load8($0 + j) } ?? d
                S.store(muladd(a, g, muladd(b, xv - q, c)), dx! + j)
            }
            j += 8
        }
        while j < columns { scalar(j); j += 1 }
    }
}
