// Per-column gradient sums of a block of strided columns (the columns
// geometry: BatchNorm NHWC and [N, D], InstanceNorm/GroupNorm NHWC): Σg and
// Σg·x̂ per column with per-column x̂ coefficients, rows read in memory order
// into Float32 accumulators flushed into Float64 every `flushRows` rows. The
// same centered, shifted form as the row sums (see RowGradientSums.swift).
// Generic over the tensors' element type (`NormElement`): x and dy are widened
// exactly on load, outputs rounded once from the Float32 value; everything else
// is Float32/Float64 (docs/ARCHITECTURE.md, "Adding an element type").

import CNormSupport

extension BlockGradients {
    /// Rows of a column tile accumulated in Float32 before they are added in Float64.
    static let flushRows = 128

    /// Per-column Σg and Σg·x̂ of a `rows × columns` tile (row stride `stride`), with
    /// per-column x̂ coefficients; writes (initializes) `columns` sums at `out`.
    /// Rows are read in memory order into per-column Float32 accumulators, added
    /// into the Float64 sums every `flushRows` rows (< 8 contiguous columns: periodic
    /// lanes, see `periodicColumns`).
    ///
    /// `store` (BatchNorm + add (+ ReLU); contiguous rows): g = dy (masked with
    /// `mask`) is also written there (d identity), `flushRows` rows at a time just
    /// before they are summed, so the sums read g back from L1/L2 instead of dy
    /// (and the mask). The same g in the same order: the same bits.
    ///
    /// dy (with the mask and `store`) may have an element type `D` of its own,
    /// as in `contiguous`.
    static func columns<E: NormElement, D: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<D>, mask: UnsafePointer<D>?,
        rows: Int, columns: Int, stride: Int,
        pivot: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
        into out: UnsafeMutablePointer<GradientSums>, store: UnsafeMutablePointer<D>? = nil
    ) {
        precondition(store == nil || stride == columns, "columns: g is stored for contiguous rows")
        out.initialize(repeating: .zero, count: columns)
        if columns < 8 && stride == columns && rows * columns >= 8 * periodVectors(columns) {
            if let store {
                ResidualGradient.mask(dy, mask, store, rows * columns)
                periodicColumns(x, UnsafePointer(store), mask: nil, rows: rows, columns: columns,
                                pivot: pivot, scale: scale, shift: shift, into: out)
            } else {
                periodicColumns(x, dy, mask: mask, rows: rows, columns: columns,
                                pivot: pivot, scale: scale, shift: shift, into: out)
            }
        } else {
            stridedColumns(x, dy, mask: mask, rows: rows, columns: columns, stride: stride,
                           pivot: pivot, scale: scale, shift: shift, into: out, store: store)
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
    private static func periodicColumns<E: NormElement, D: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<D>, mask: UnsafePointer<D>?,
        rows: Int, columns: Int,
        pivot: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
        into out: UnsafeMutablePointer<GradientSums>
    ) {
        let vectors = periodVectors(columns), period = 8 * vectors
        let total = rows * columns
        let stepsPerFlush = max(1, flushRows * columns / period)
        withScratch(of: F8.self, capacity: 5 * vectors) { buffer in
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
                    h[v] = muladd(d, muladd(E.load8(x + o) - p[v], s[v], t[v]), h[v])
                }
                i += period
                steps += 1
                if steps == stepsPerFlush { fold(); steps = 0 }
            }
            fold()
            while i < total {
                let j = i % columns
                var d = Double(D.widen(dy[i]))
                if let mask, D.widen(mask[i]) <= 0 { d = 0 }
                out[j].dy += d
                out[j].dyXhat += d * Double(muladd(E.widen(x[i]) - pivot[j], scale[j], shift[j]))
                i += 1
            }
        }
    }

    /// ≥ 8 columns: rows outer, so memory is read in order (an 8-column tile walked
    /// down the rows used half a cache line per row and ran at a third of the
    /// bandwidth); per-column Float32 accumulators live in `scratch`-sized stack
    /// memory and are added into the Float64 sums every `flushRows` rows. A column
    /// gets the same Float32 operations in a vector and in the remainder.
    private static func stridedColumns<E: NormElement, D: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<D>, mask: UnsafePointer<D>?,
        rows: Int, columns: Int, stride: Int,
        pivot: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
        into out: UnsafeMutablePointer<GradientSums>, store: UnsafeMutablePointer<D>?
    ) {
        withScratch(of: Float.self, capacity: 2 * columns) { scratch in
            let accG = scratch.baseAddress!, accH = accG + columns
            var row = 0
            while row < rows {
                let end = min(rows, row + flushRows)
                accG.update(repeating: 0, count: columns)
                accH.update(repeating: 0, count: columns)
                // With `store`, these rows' g first, then their sums from it (no mask).
                var dy = dy, mask = mask
                if let store {
                    let o = row * stride
                    ResidualGradient.mask(dy + o, mask.map { $0 + o }, store + o, (end - row) * stride)
                    dy = UnsafePointer(store)
                    mask = nil
                }
                if ColumnGradientsWide.runs(E.self, D.self, columns: columns) {
                    // AVX-512, the accumulators in registers (ColumnGradientsWide.swift): same bits.
                    let o = row * stride
                    ColumnGradientsWide.sums(x + o, dy + o, mask.map { $0 + o }, rows: end - row, columns: columns,
                                             stride: stride, pivot: pivot, scale: scale, shift: shift,
                                             accG: accG, accH: accH)
                    row = end
                } else if usesStrips(columns: columns) {
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
    /// at 1024 columns strips ran 0.7–0.85× row by row (1.2–1.7× on an earlier
    /// machine), at 1280 1.04–1.07× on a 2.6 MB tensor but 0.88–0.93× on 16 MB, at
    /// 2048–3072 1.04–1.17× (docs/PERFORMANCE-HISTORY.md, "Backward strips from
    /// 1280 columns, not 1024").
    static let stripColumns = 1280

    /// Whether `stridedColumns` sums in strips (with the next strip prefetched,
    /// see `accumulateStrip`) rather than row by row. Measured on BatchNorm and
    /// InstanceNorm NHWC backward in alternating rounds (docs/PERFORMANCE-HISTORY.md,
    /// "Strips prefetch the next strip"): strips gain 1.1–1.4× at 128–384 columns, 1.1× at 1280 on
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
    private static func accumulateStrips<E: NormElement, D: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<D>, _ mask: UnsafePointer<D>?, rows: Range<Int>,
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
    private static func accumulateStrip<E: NormElement, D: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<D>, _ mask: UnsafePointer<D>?, rows: Int,
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
                h0 = muladd(d0, muladd(E.load8(x + o) - p0, s0, t0), h0)
                h1 = muladd(d1, muladd(E.load8(x + o + 8) - p1, s1, t1), h1)
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
    private static func accumulateRow<E: NormElement, D: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<D>, _ mask: UnsafePointer<D>?, _ columns: Int,
        _ pivot: UnsafePointer<Float>, _ scale: UnsafePointer<Float>, _ shift: UnsafePointer<Float>,
        _ accG: UnsafeMutablePointer<Float>, _ accH: UnsafeMutablePointer<Float>, from start: Int = 0
    ) {
        var j = start
        // scalar math per column: x̂ = (x − p)·s + t;  Σg += g;  Σgx̂ += g·x̂
        while j + 8 <= columns {
            let d = gradient8(dy, mask, nil, j)
            store8(load8(accG + j) + d, accG + j)
            store8(muladd(d, muladd(E.load8(x + j) - load8(pivot + j), load8(scale + j), load8(shift + j)), load8(accH + j)), accH + j)
            j += 8
        }
        while j < columns {
            let d = gradient1(dy, mask, nil, j)
            accG[j] += d
            accH[j] = muladd(d, muladd(E.widen(x[j]) - pivot[j], scale[j], shift[j]), accH[j])
            j += 1
        }
    }

    private static func columnFloat64<E: NormElement, D: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<D>, _ mask: UnsafePointer<D>?,
        _ rows: Int, _ stride: Int, _ p: Float, _ s: Float, _ t: Float
    ) -> GradientSums {
        var sums = GradientSums.zero
        for row in 0..<rows {
            let o = row * stride
            var d = Double(D.widen(dy[o]))
            if let mask, D.widen(mask[o]) <= 0 { d = 0 }
            sums.dy += d
            sums.dyXhat += d * ((Double(E.widen(x[o])) - Double(p)) * Double(s) + Double(t))
        }
        return sums
    }
}
