// The forward output over strided columns (the columns geometry: BatchNorm
// NHWC and [N, D], InstanceNorm/GroupNorm NHWC): y = (x − pivot[c])·scale[c]
// + shift[c] with per-column coefficients, row by row, or in strips of rows
// for wide rows; narrow rows (< 8 columns) folded into wider ones.
// Generic over the tensors' element type (`NormElement`): x and dy are widened
// exactly on load, outputs rounded once from the Float32 value; everything else
// is Float32/Float64 (docs/ARCHITECTURE.md, "Adding an element type").

import CNormSupport

extension Apply {
    /// Strided columns: for each of `rows` rows of `columns` values (row stride
    /// `stride`), `dst[r, c] = (src[r, c] − pivot[c]) · scale[c] + shift[c]`
    /// (`+ residual[r, c]`, same layout as `src`, when given; see `Apply.affine`).
    static func columns<E: NormElement>(
        _ src: UnsafePointer<E>, _ dst: UnsafeMutablePointer<E>,
        rows: Int, columns: Int, stride: Int,
        pivot: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
        relu: Bool, streaming: Bool = false, residual: UnsafePointer<E>? = nil
    ) {
        if let residual {
            dispatchColumns(src, dst, rows, columns, stride, pivot, scale, shift, relu, streaming, Residual(base: residual))
        } else {
            dispatchColumns(src, dst, rows, columns, stride, pivot, scale, shift, relu, streaming, NoResidual())
        }
    }

    private static func dispatchColumns<E: NormElement, R: ResidualInput>(
        _ src: UnsafePointer<E>, _ dst: UnsafeMutablePointer<E>,
        _ rows: Int, _ columns: Int, _ stride: Int,
        _ pivot: UnsafePointer<Float>, _ scale: UnsafePointer<Float>, _ shift: UnsafePointer<Float>,
        _ relu: Bool, _ streaming: Bool, _ res: R
    ) {
        if columns < 8 && stride == columns {
            // Narrow rows (NHWC with C < 8): k rows at a time as one row of k·C
            // values with the coefficients repeated k times, as the statistics do.
            let k = BlockMoments.foldedRows(columns: columns), width = k * columns
            let superRows = rows / k
            if superRows > 0 {
                withScratch(of: Float.self, capacity: 3 * width) { wide in
                    let p = wide.baseAddress!, s = p + width, t = p + 2 * width
                    for j in 0..<width { p[j] = pivot[j % columns]; s[j] = scale[j % columns]; t[j] = shift[j % columns] }
                    dispatchColumns(src, dst, superRows, width, width, p, s, t, relu, streaming, res)
                }
            }
            let done = superRows * k
            if done < rows {
                rowByRow(src + done * columns, dst + done * columns, rows - done, columns, stride,
                         pivot, scale, shift, res.advanced(by: done * columns), relu: relu, streaming: false)
            }
            return
        }
        // Stream only when every row starts aligned to 8 values (32 bytes for
        // Float, 16 for 16-bit types: one non-temporal store): a scalar store into
        // a line that non-temporal stores are filling forces that line through
        // the cache and costs far more than streaming saves (measured 10× slower
        // on 64-channel Float NHWC rows with a 16-byte-aligned base).
        let aligned = stride % 8 == 0 && StreamingStore.isAligned(dst)
        rowByRow(src, dst, rows, columns, stride, pivot, scale, shift, res, relu: relu, streaming: streaming && aligned)
    }

    /// Picks the specialization of the row loop.
    private static func rowByRow<E: NormElement, R: ResidualInput>(
        _ src: UnsafePointer<E>, _ dst: UnsafeMutablePointer<E>,
        _ rows: Int, _ columns: Int, _ stride: Int,
        _ pivot: UnsafePointer<Float>, _ scale: UnsafePointer<Float>, _ shift: UnsafePointer<Float>,
        _ res: R, relu: Bool, streaming: Bool
    ) {
        switch (streaming, relu) {
        case (true, true):
            self.columns(src, dst, rows, columns, stride, pivot, scale, shift, res, StreamingStore.self, ReLUActivation.self)
        case (true, false):
            self.columns(src, dst, rows, columns, stride, pivot, scale, shift, res, StreamingStore.self, NoActivation.self)
        case (false, true):
            self.columns(src, dst, rows, columns, stride, pivot, scale, shift, res, CachedStore.self, ReLUActivation.self)
        case (false, false):
            self.columns(src, dst, rows, columns, stride, pivot, scale, shift, res, CachedStore.self, NoActivation.self)
        }
    }

    /// Out of line: inlined into the kernels' closures, the vector loop kept its
    /// coefficient pointers on the stack and ran at a third of its speed here
    /// (InstanceNorm NHWC training spent twice as long writing y as inference).
    @inline(never)
    static func columns<E: NormElement, R: ResidualInput, S: VectorStore, A: FusedActivation>(
        _ src: UnsafePointer<E>, _ dst: UnsafeMutablePointer<E>,
        _ rows: Int, _ columns: Int, _ stride: Int,
        _ pivot: UnsafePointer<Float>, _ scale: UnsafePointer<Float>, _ shift: UnsafePointer<Float>,
        _ res: R, _: S.Type, _: A.Type
    ) {
        if A.self == SiLUActivation.self, R.self == NoResidual.self, let code = SiLUWide.enabled(E.self) {
            // SiLU on a CPU with AVX-512: the same lanes 16 at a time in C
            // (SiLUWide.swift, SiLUAVX512.h; the same bits), the last
            // columns % 16 in masked lanes. (Rows start aligned whenever S streams.)
            nk_silu512_columns(src, dst, rows, columns, stride, pivot, scale, shift, code, S.streams ? 1 : 0)
            return
        }
        if BFloat16Pairs.enabled(E.self), BFloat16Hardware.available, let code = A.hardwareCode,
           columns >= 16, columns % 16 == 0 {
            // BFloat16 on a CPU with AVX-512 BF16: the same loop in C, rounded by
            // `vcvtne2ps2bf16` (BFloat16Hardware.h; the same bits). Whole rows of
            // 16-column chunks only, so every row is written in one go.
            func words<T>(_ p: UnsafePointer<T>) -> UnsafePointer<UInt16> {
                UnsafeRawPointer(p).assumingMemoryBound(to: UInt16.self)
            }
            nk_bf16_hw_columns(words(src), UnsafeMutableRawPointer(dst).assumingMemoryBound(to: UInt16.self),
                               rows, columns, stride, pivot, scale, shift,
                               res.start?.assumingMemoryBound(to: UInt16.self), code, S.streams ? 1 : 0)
            return
        }
        if BFloat16Pairs.enabled(E.self) && columns >= 16 {
            // BFloat16: the whole 16-column chunks in pairs (BFloat16Pairs.swift), with
            // the coefficients deinterleaved once per call.
            let width = columns / 16 * 16
            withScratch(of: Float.self, capacity: 3 * width) { buffer in
                let q = buffer.baseAddress!
                BFloat16Pairs.deinterleave(pivot, into: q, width: width)
                BFloat16Pairs.deinterleave(scale, into: q + width, width: width)
                BFloat16Pairs.deinterleave(shift, into: q + 2 * width, width: width)
                let pairs = PairCoefficients(pivot: q, scale: q + width, shift: q + 2 * width, width: width)
                if columns >= stripColumns {
                    strips(src, dst, rows, columns, stride, pivot, scale, shift, res, pairs, S.self, A.self)
                    return
                }
                for r in 0..<rows {
                    row(src, dst, r, from: 0, columns, stride, pivot, scale, shift, res, pairs, S.self, A.self)
                }
            }
            return
        }
        if columns >= stripColumns {
            strips(src, dst, rows, columns, stride, pivot, scale, shift, res, nil, S.self, A.self)
            return
        }
        for r in 0..<rows { row(src, dst, r, from: 0, columns, stride, pivot, scale, shift, res, nil, S.self, A.self) }
    }

    /// The coefficient tables of a BFloat16 pair loop, deinterleaved per
    /// 16-column chunk (`BFloat16Pairs.deinterleave`) for columns 0 ..< width.
    struct PairCoefficients {
        let pivot: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>
        let width: Int
    }

    /// Row r of `columns(…)` from column `start` on.
    @inline(__always)
    private static func row<E: NormElement, R: ResidualInput, S: VectorStore, A: FusedActivation>(
        _ src: UnsafePointer<E>, _ dst: UnsafeMutablePointer<E>, _ r: Int, from start: Int,
        _ columns: Int, _ stride: Int,
        _ pivot: UnsafePointer<Float>, _ scale: UnsafePointer<Float>, _ shift: UnsafePointer<Float>,
        _ res: R, _ pairs: PairCoefficients?, _: S.Type, _: A.Type
    ) {
        let x = src + r &* stride, y = dst + r &* stride, e = res.advanced(by: r &* stride)
        @inline(__always) func scalar(_ c: Int) {
            y[c] = E.narrow(A.apply(e.add(muladd(E.widen(x[c]) - pivot[c], scale[c], shift[c]), c)))
        }
        var c = start
        let head = start + S.prologue(y + start, columns - start)
        while c < head { scalar(c); c &+= 1 }
        if let pairs, c & 15 == 0 {
            // Whole 16-column chunks as even and odd lanes, the same math per value.
            while c &+ 16 <= pairs.width {
                let (xe, xo) = BFloat16Pairs.load(x + c)
                let ve = muladd(xe - load8(pairs.pivot + c), load8(pairs.scale + c), load8(pairs.shift + c))
                let vo = muladd(xo - load8(pairs.pivot + c + 8), load8(pairs.scale + c + 8), load8(pairs.shift + c + 8))
                let (oe, oo) = e.addPairs(ve, vo, c)
                S.storePairs(A.apply(oe), A.apply(oo), y + c)
                c &+= 16
            }
        }
        while c &+ 8 <= columns {
            // scalar math: y[c] = act((x[c] − p[c])·s[c] + t[c] (+ residual))
            S.store(A.apply(e.add(muladd(E.load8(x + c) - load8(pivot + c), load8(scale + c), load8(shift + c)), c)), y + c)
            c &+= 8
        }
        while c < columns { scalar(c); c &+= 1 }
    }

    /// Wide rows in strips of `rowsPerStrip` rows: each 16-column tile loads its
    /// coefficients once and runs down the strip, so 8 values cost one load and
    /// one store instead of four loads and a store. Same arithmetic per value.
    /// (Rows start aligned to 8 values whenever S streams: `columns(…)` checks.) Out of
    /// line, so that the row loop of narrower rows keeps its registers.
    @inline(never)
    private static func strips<E: NormElement, R: ResidualInput, S: VectorStore, A: FusedActivation>(
        _ src: UnsafePointer<E>, _ dst: UnsafeMutablePointer<E>,
        _ rows: Int, _ columns: Int, _ stride: Int,
        _ pivot: UnsafePointer<Float>, _ scale: UnsafePointer<Float>, _ shift: UnsafePointer<Float>,
        _ res: R, _ pairs: PairCoefficients?, _: S.Type, _: A.Type
    ) {
        var r = 0
        while r < rows {
            let n = min(rowsPerStrip, rows - r)
            var c = 0
            if let pairs {
                // BFloat16: each tile as even and odd lanes (the tables deinterleaved).
                while c &+ 16 <= pairs.width {
                    let pe = load8(pairs.pivot + c), po = load8(pairs.pivot + c + 8)
                    let se = load8(pairs.scale + c), so = load8(pairs.scale + c + 8)
                    let te = load8(pairs.shift + c), to = load8(pairs.shift + c + 8)
                    var o = r &* stride &+ c
                    for _ in 0..<n {
                        let (xe, xo) = BFloat16Pairs.load(src + o)
                        let (ve, vo) = res.addPairs(muladd(xe - pe, se, te), muladd(xo - po, so, to), o)
                        S.storePairs(A.apply(ve), A.apply(vo), dst + o)
                        o &+= stride
                    }
                    c &+= 16
                }
            }
            while c &+ 16 <= columns {
                let p0 = load8(pivot + c), p1 = load8(pivot + c + 8), s0 = load8(scale + c), s1 = load8(scale + c + 8)
                let t0 = load8(shift + c), t1 = load8(shift + c + 8)
                var o = r &* stride &+ c
                for _ in 0..<n {
                    S.store(A.apply(res.add(muladd(E.load8(src + o) - p0, s0, t0), o)), dst + o)
                    S.store(A.apply(res.add(muladd(E.load8(src + o + 8) - p1, s1, t1), o + 8)), dst + o + 8)
                    o &+= stride
                }
                c &+= 16
            }
            if c < columns {
                for i in r..<(r + n) {
                    row(src, dst, i, from: c, columns, stride, pivot, scale, shift, res, nil, S.self, A.self)
                }
            }
            r &+= n
        }
    }

    /// Rows per strip of the output pass over columns, from `stripColumns` columns
    /// on (as the backward's column sums, `BlockGradients.stripColumns`). From 256
    /// columns on, BatchNorm/GroupNorm/InstanceNorm NHWC forwards at 256–640
    /// channels ran 0.55–0.8× (four alternating rounds); from 1024, 1.2–1.7×.
    static let rowsPerStrip = 8
    static let stripColumns = 1024
}
