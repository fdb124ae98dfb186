// The dx pass of every backward kernel: dx = a·g + (b·(x − pivot) + c) with
// coefficients per block (`apply`) or per column (`applyColumns`), g = dy
// masked by the fused ReLU and/or scaled by γ; without x (a·g) or without dy
// (AdaIN's style gradient) where the kernel says so. The pivot is subtracted
// first, as in the forward output (Apply.swift), so dx keeps its precision for
// data far from zero.
// Generic over the tensors' element type (`NormElement`): x and dy are widened
// exactly on load, outputs rounded once from the Float32 value; everything else
// is Float32/Float64 (docs/ARCHITECTURE.md, "Adding an element type").

import CNormSupport

extension BlockGradients {
    /// `dst[i] = a·g + (b·(x[i] − pivot) + c)` over `n` contiguous values, with
    /// g = dy (· γ[i]) (0 where mask ≤ 0). `x` nil drops the x term (dst = a·g:
    /// inference); `dy` nil drops the g term (dst = b·(x − pivot) + c: AdaIN's style).
    /// `dst` may equal `x` or `dy` (each element is read before it is written).
    /// `streaming` writes with non-temporal stores (callers pass
    /// `StorePolicy.streaming(output:reading:)`, which is false in place).
    /// dy and the mask may have an element type `D` of their own (widened
    /// exactly on load; see `contiguous`).
    static func apply<E: NormElement, D: NormElement>(
        x: UnsafePointer<E>?, dy: UnsafePointer<D>?, mask: UnsafePointer<D>?,
        gamma: UnsafePointer<Float>?, _ dst: UnsafeMutablePointer<E>, _ n: Int, _ k: GradientCoefficients,
        streaming: Bool = false
    ) {
        if streaming {
            apply(x, dy, mask, gamma, dst, n, k, StreamingStore.self)
        } else {
            apply(x, dy, mask, gamma, dst, n, k, CachedStore.self)
        }
    }

    @inline(__always)
    private static func apply<E: NormElement, D: NormElement, S: VectorStore>(
        _ x: UnsafePointer<E>?, _ dy: UnsafePointer<D>?, _ mask: UnsafePointer<D>?,
        _ gamma: UnsafePointer<Float>?, _ dst: UnsafeMutablePointer<E>, _ n: Int, _ k: GradientCoefficients,
        _: S.Type
    ) {
        guard let dy else {
            if let x { applyCore(x, dy, nil, nil, dst, n, k, useX: true, useDy: false, S.self) }
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
    private static func applyCore<E: NormElement, D: NormElement, S: VectorStore>(
        _ x: UnsafePointer<E>?, _ dy: UnsafePointer<D>?, _ mask: UnsafePointer<D>?,
        _ gamma: UnsafePointer<Float>?, _ dst: UnsafeMutablePointer<E>, _ n: Int, _ k: GradientCoefficients,
        useX: Bool, useDy: Bool, _: S.Type
    ) {
        @inline(__always) func scalar(_ i: Int) {
            var v: Float = 0
            if useX { v = muladd(k.b, E.widen(x![i]) - k.pivot, k.c) }
            if useDy { v = useX ? muladd(k.a, gradient1(dy!, mask, gamma, i), v) : k.a * gradient1(dy!, mask, gamma, i) }
            dst[i] = E.narrow(v)
        }
        let p = F8(repeating: k.pivot), a = F8(repeating: k.a), b = F8(repeating: k.b), c = F8(repeating: k.c)
        var i = 0
        let head = S.prologue(dst, n)
        while i < head { scalar(i); i += 1 }
        func words<T>(_ p: UnsafePointer<T>?) -> UnsafePointer<UInt16>? {
            p.map { UnsafeRawPointer($0 + i).assumingMemoryBound(to: UInt16.self) }
        }
        if BFloat16Pairs.enabled(E.self) && D.self == E.self && gamma == nil && useX && useDy
            && BFloat16Hardware.available && n - i >= 16 {
            // BFloat16 on a CPU with AVX-512 BF16: the same loop in C, rounded by
            // `vcvtne2ps2bf16` (BFloat16Hardware.h; the same bits).
            let count = (n - i) / 16 * 16
            nk_bf16_hw_gradient(words(x), words(dy), words(mask),
                                UnsafeMutableRawPointer(dst + i).assumingMemoryBound(to: UInt16.self), count,
                                k.pivot, k.a, k.b, k.c, S.streams ? 1 : 0)
            i += count
        }
        if Float16Gradient.runs(E.self) && D.self == E.self && gamma == nil && useX && useDy && n - i >= 16 {
            // Float16 on a CPU with AVX-512: the same operations per value in C,
            // 32 values a step (Float16GradientAVX512.h; the same bits).
            let count = (n - i) / 16 * 16
            nk_f16_dx512_gradient(words(x), words(dy), words(mask),
                                  UnsafeMutableRawPointer(dst + i).assumingMemoryBound(to: UInt16.self), count,
                                  k.pivot, k.a, k.b, k.c, S.streams ? 1 : 0)
            i += count
        }
        if BFloat16Pairs.enabled(E.self) && D.self == Float.self && mask == nil && gamma == nil && useX && useDy
            && BFloat16Hardware.available && n - i >= 16 {
            // BFloat16 x and dx with a Float32 dy (GroupNorm + SiLU's g) on a CPU
            // with AVX-512 BF16: the 8-lane loop below in C, rounded by
            // `vcvtne2ps2bf16` (BFloat16Hardware.h; the same bits).
            let count = (n - i) / 16 * 16
            nk_bf16_hw_gradient_f32(UnsafeRawPointer(x! + i).assumingMemoryBound(to: UInt16.self),
                                    UnsafeRawPointer(dy! + i).assumingMemoryBound(to: Float.self),
                                    UnsafeMutableRawPointer(dst + i).assumingMemoryBound(to: UInt16.self), count,
                                    k.pivot, k.a, k.b, k.c, S.streams ? 1 : 0)
            i += count
        }
        if BFloat16Pairs.enabled(E.self) && D.self == E.self && gamma == nil {
            // BFloat16: 16 values as even and odd lanes (BFloat16Pairs.swift), the same math per value.
            while i + 16 <= n {
                var ve = F8(), vo = F8()
                if useX {
                    let (xe, xo) = BFloat16Pairs.load(x! + i)
                    ve = muladd(b, xe - p, c)
                    vo = muladd(b, xo - p, c)
                }
                if useDy {
                    let (ge, go) = BFloat16Pairs.gradient(dy!, mask, i)
                    ve = useX ? muladd(a, ge, ve) : a * ge
                    vo = useX ? muladd(a, go, vo) : a * go
                }
                S.storePairs(ve, vo, dst + i)
                i += 16
            }
        }
        // scalar math: dx = a·g + (b·(x − p) + c)
        while i + 8 <= n {
            var v = F8()
            if useX { v = muladd(b, E.load8(x! + i) - p, c) }
            if useDy { v = useX ? muladd(a, gradient8(dy!, mask, gamma, i), v) : a * gradient8(dy!, mask, gamma, i) }
            S.store(v, dst + i)
            i += 8
        }
        while i < n { scalar(i); i += 1 }
    }

    /// Strided columns: for `rows` rows of `columns` values (row stride `stride`),
    /// `dst[r, j] = a[j]·g + (b[j]·(x[r, j] − pivot[j]) + c[j])` with the table's
    /// slots `slot ..< slot + columns`; `x` nil or `dy` nil as in `apply`.
    static func applyColumns<E: NormElement, D: NormElement>(
        x: UnsafePointer<E>?, dy: UnsafePointer<D>?, mask: UnsafePointer<D>?,
        _ dst: UnsafeMutablePointer<E>, rows: Int, columns: Int, stride: Int,
        table: GradientTable, slot: Int, streaming: Bool = false
    ) {
        let pivot = table.pivot + slot, a = table.a + slot, b = table.b + slot, c = table.c + slot
        if columns < 8 && stride == columns && rows * columns >= 8 * periodVectors(columns) {
            periodicApply(x: x, dy: dy, mask: mask, dst, total: rows * columns, columns: columns,
                          pivot: pivot, a: a, b: b, c: c)
            return
        }
        // Stream only when every row starts aligned to 8 values (see `Apply.columns`).
        let stream = streaming && stride % 8 == 0 && StreamingStore.isAligned(dst)
        if let x, let dy, ColumnGradientsWide.runs(E.self, D.self, columns: columns) {
            // AVX-512, the coefficients in registers (ColumnGradientsWide.swift): same bits.
            ColumnGradientsWide.apply(x, dy, mask, dst, rows: rows, columns: columns, stride: stride,
                                      pivot: pivot, a: a, b: b, c: c, streaming: stream)
            return
        }
        @inline(__always) func run(_ pairs: PairGradients?) {
            if stream {
                applyColumns(x, dy, mask, dst, rows, columns, stride, pivot, a, b, c, pairs, StreamingStore.self)
            } else {
                applyColumns(x, dy, mask, dst, rows, columns, stride, pivot, a, b, c, pairs, CachedStore.self)
            }
        }
        if BFloat16Pairs.enabled(E.self) && D.self == E.self && BFloat16Hardware.available,
           let x, let dy, columns >= 16, columns % 16 == 0 {
            // BFloat16 on a CPU with AVX-512 BF16: the same loop in C, rounded by
            // `vcvtne2ps2bf16` (BFloat16Hardware.h; the same bits), whole rows.
            func words<T>(_ p: UnsafePointer<T>) -> UnsafePointer<UInt16> {
                UnsafeRawPointer(p).assumingMemoryBound(to: UInt16.self)
            }
            nk_bf16_hw_gradient_columns(words(x), words(dy), mask.map(words),
                                        UnsafeMutableRawPointer(dst).assumingMemoryBound(to: UInt16.self),
                                        rows, columns, stride, pivot, a, b, c, stream ? 1 : 0)
            return
        }
        if BFloat16Pairs.enabled(E.self) && D.self == Float.self && mask == nil && BFloat16Hardware.available,
           let x, let dy, columns >= 16, columns % 16 == 0 {
            // BFloat16 x and dx with a Float32 dy (GroupNorm + SiLU's g) on a CPU
            // with AVX-512 BF16: the same loop in C, rounded by `vcvtne2ps2bf16`
            // (BFloat16Hardware.h; the same bits), whole rows.
            nk_bf16_hw_gradient_columns_f32(UnsafeRawPointer(x).assumingMemoryBound(to: UInt16.self),
                                            UnsafeRawPointer(dy).assumingMemoryBound(to: Float.self),
                                            UnsafeMutableRawPointer(dst).assumingMemoryBound(to: UInt16.self),
                                            rows, columns, stride, pivot, a, b, c, stream ? 1 : 0)
            return
        }
        guard BFloat16Pairs.enabled(E.self) && D.self == E.self && columns >= 16 else { return run(nil) }
        // BFloat16: the whole 16-column chunks in pairs (BFloat16Pairs.swift), with
        // the coefficients deinterleaved once per call.
        let width = columns / 16 * 16
        withScratch(of: Float.self, capacity: 4 * width) { buffer in
            let q = buffer.baseAddress!
            BFloat16Pairs.deinterleave(pivot, into: q, width: width)
            BFloat16Pairs.deinterleave(a, into: q + width, width: width)
            BFloat16Pairs.deinterleave(b, into: q + 2 * width, width: width)
            BFloat16Pairs.deinterleave(c, into: q + 3 * width, width: width)
            run(PairGradients(pivot: q, a: q + width, b: q + 2 * width, c: q + 3 * width, width: width))
        }
    }

    /// The coefficient tables of a BFloat16 pair loop, deinterleaved per
    /// 16-column chunk (`BFloat16Pairs.deinterleave`) for columns 0 ..< width.
    struct PairGradients {
        let pivot: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafePointer<Float>
        let width: Int

        /// `applyRow`'s value for the 16 columns at j (even and odd lanes), x and dy at `o`.
        @inline(__always)
        func value<E: NormElement, D: NormElement>(
            _ x: UnsafePointer<E>?, _ dy: UnsafePointer<D>?, _ mask: UnsafePointer<D>?,
            _ o: Int, _ j: Int, useX: Bool, useDy: Bool
        ) -> (F8, F8) {
            var ve = F8(), vo = F8()
            if useX {
                let (xe, xo) = BFloat16Pairs.load(x! + o)
                ve = muladd(load8(b + j), xe - load8(pivot + j), load8(c + j))
                vo = muladd(load8(b + j + 8), xo - load8(pivot + j + 8), load8(c + j + 8))
            }
            if useDy {
                let (ge, go) = BFloat16Pairs.gradient(dy!, mask, o)
                ve = useX ? muladd(load8(a + j), ge, ve) : load8(a + j) * ge
                vo = useX ? muladd(load8(a + j + 8), go, vo) : load8(a + j + 8) * go
            }
            return (ve, vo)
        }
    }

    @inline(__always)
    private static func applyColumns<E: NormElement, D: NormElement, S: VectorStore>(
        _ x: UnsafePointer<E>?, _ dy: UnsafePointer<D>?, _ mask: UnsafePointer<D>?,
        _ dst: UnsafeMutablePointer<E>, _ rows: Int, _ columns: Int, _ stride: Int,
        _ pivot: UnsafePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>,
        _ pairs: PairGradients?, _: S.Type
    ) {
        // One specialized row loop per case (the case is decided once, not per row).
        @inline(__always)
        func sweep(_ x: UnsafePointer<E>?, _ dy: UnsafePointer<D>?, _ mask: UnsafePointer<D>?,
                  useX: Bool, useDy: Bool) {
            for r in 0..<rows {
                let o = r * stride
                applyRow(x.map { $0 + o }, dy.map { $0 + o }, mask.map { $0 + o }, dst + o, columns,
                         pivot, a, b, c, pairs, useX: useX, useDy: useDy, S.self)
            }
        }
        if columns >= stripColumns {
            applyStrips(x, dy, mask, dst, rows, columns, stride, pivot, a, b, c, pairs, S.self)
            return
        }
        withOperandCase(x, dy, mask, sweep)
    }

    /// Calls `body` once with the operands of the case at hand and the case's
    /// flags as constants (x and dy, either with or without the ReLU mask; dy
    /// alone; x alone), so each inlined `body` is compiled for its case: the case
    /// is decided once per call, not per row or value.
    @inline(__always)
    private static func withOperandCase<E: NormElement, D: NormElement>(
        _ x: UnsafePointer<E>?, _ dy: UnsafePointer<D>?, _ mask: UnsafePointer<D>?,
        _ body: (UnsafePointer<E>?, UnsafePointer<D>?, UnsafePointer<D>?, _ useX: Bool, _ useDy: Bool) -> Void
    ) {
        switch (x, dy, mask) {
        case let (x?, dy?, nil): body(x, dy, nil, true, true)
        case let (x?, dy?, mask?): body(x, dy, mask, true, true)
        case let (nil, dy?, nil): body(nil, dy, nil, false, true)
        case let (nil, dy?, mask?): body(nil, dy, mask, false, true)
        case let (x?, nil, _): body(x, nil, nil, true, false)
        case (nil, nil, _): return
        }
    }

    /// `applyColumns` for rows of at least `stripColumns` columns, in strips of
    /// `rowsPerStrip` rows (see `applyStrip`). Out of line for the same reason as
    /// `accumulateStrips`.
    @inline(never)
    private static func applyStrips<E: NormElement, D: NormElement, S: VectorStore>(
        _ x: UnsafePointer<E>?, _ dy: UnsafePointer<D>?, _ mask: UnsafePointer<D>?,
        _ dst: UnsafeMutablePointer<E>, _ rows: Int, _ columns: Int, _ stride: Int,
        _ pivot: UnsafePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>,
        _ pairs: PairGradients?, _: S.Type
    ) {
        @inline(__always)
        func sweep(_ x: UnsafePointer<E>?, _ dy: UnsafePointer<D>?, _ mask: UnsafePointer<D>?,
                   useX: Bool, useDy: Bool) {
            var r = 0
            while r < rows {
                let n = min(rowsPerStrip, rows - r), o = r * stride
                applyStrip(x.map { $0 + o }, dy.map { $0 + o }, mask.map { $0 + o }, dst + o, rows: n, columns, stride,
                           pivot, a, b, c, pairs, useX: useX, useDy: useDy, S.self)
                r += n
            }
        }
        withOperandCase(x, dy, mask, sweep)
    }

    /// `rows` rows of `applyColumns` (every row start aligned for `S`, as
    /// `applyColumns` ensures): each 16-column tile loads its four coefficient pairs
    /// once and runs down the strip, so 8 values cost the x and dy loads and the
    /// store instead of four more coefficient loads. Same arithmetic per value.
    @inline(__always)
    private static func applyStrip<E: NormElement, D: NormElement, S: VectorStore>(
        _ x: UnsafePointer<E>?, _ dy: UnsafePointer<D>?, _ mask: UnsafePointer<D>?,
        _ dst: UnsafeMutablePointer<E>, rows: Int, _ columns: Int, _ stride: Int,
        _ pivot: UnsafePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>,
        _ pairs: PairGradients?, useX: Bool, useDy: Bool, _: S.Type
    ) {
        @inline(__always) func value(_ o: Int, _ p: F8, _ a: F8, _ b: F8, _ c: F8) -> F8 {
            var v = F8()
            if useX { v = muladd(b, E.load8(x! + o) - p, c) }
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
        let aheadBy = rows * stride
        var aheadX = x.map { UnsafeRawPointer($0 + aheadBy) } ?? UnsafeRawPointer(dy! + aheadBy)
        var aheadDy = dy.map { UnsafeRawPointer($0 + aheadBy) } ?? UnsafeRawPointer(x! + aheadBy)
        if let pairs {
            // BFloat16: each tile as even and odd lanes (the tables deinterleaved), prefetching as below.
            while j + 16 <= pairs.width {
                var o = j
                for _ in 0..<rows {
                    if useX { nk_prefetch(aheadX); aheadX += 64 }
                    if useDy { nk_prefetch(aheadDy); aheadDy += 64 }
                    let (ve, vo) = pairs.value(x, dy, mask, o, j, useX: useX, useDy: useDy)
                    S.storePairs(ve, vo, dst + o)
                    o += stride
                }
                j += 16
            }
        }
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
                     pivot + j, a + j, b + j, c + j, nil, useX: useX, useDy: useDy, S.self)
        }
    }

    /// `applyColumns` for < 8 contiguous columns: the rows as one stream with
    /// per-lane coefficient patterns of period lcm(C, 8) (see `periodicColumns`).
    private static func periodicApply<E: NormElement, D: NormElement>(
        x: UnsafePointer<E>?, dy: UnsafePointer<D>?, mask: UnsafePointer<D>?,
        _ dst: UnsafeMutablePointer<E>, total: Int, columns: Int,
        pivot: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafePointer<Float>
    ) {
        let vectors = periodVectors(columns), period = 8 * vectors
        withScratch(of: Float.self, capacity: 4 * period) { buffer in
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
                    applyRow(x + i, dy + i, nil, dst + i, period, pp, pa, pb, pc, nil, useX: true, useDy: true, CachedStore.self)
                case let (x?, dy?, mask?):
                    applyRow(x + i, dy + i, mask + i, dst + i, period, pp, pa, pb, pc, nil, useX: true, useDy: true, CachedStore.self)
                case let (nil, dy?, nil):
                    applyRow(nil, dy + i, nil, dst + i, period, pp, pa, pb, pc, nil, useX: false, useDy: true, CachedStore.self)
                case let (nil, dy?, mask?):
                    applyRow(nil, dy + i, mask + i, dst + i, period, pp, pa, pb, pc, nil, useX: false, useDy: true, CachedStore.self)
                case let (x?, nil, _):
                    applyRow(x + i, dy, nil, dst + i, period, pp, pa, pb, pc, nil, useX: true, useDy: false, CachedStore.self)
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

    private static func applyColumnsScalarRest<E: NormElement, D: NormElement>(
        x: UnsafePointer<E>?, dy: UnsafePointer<D>?, mask: UnsafePointer<D>?,
        _ dst: UnsafeMutablePointer<E>, count: Int,
        pattern: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>)
    ) {
        let (pp, pa, pb, pc) = pattern
        for k in 0..<count {
            var v: Float = 0
            if let x { v = muladd(pb[k], E.widen(x[k]) - pp[k], pc[k]) }
            if let dy {
                let g = gradient1(dy, mask, nil, k)
                v = x != nil ? muladd(pa[k], g, v) : pa[k] * g
            }
            dst[k] = E.narrow(v)
        }
    }

    @inline(__always)
    private static func applyRow<E: NormElement, D: NormElement, S: VectorStore>(
        _ x: UnsafePointer<E>?, _ dy: UnsafePointer<D>?, _ mask: UnsafePointer<D>?,
        _ dst: UnsafeMutablePointer<E>, _ columns: Int,
        _ pivot: UnsafePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>,
        _ pairs: PairGradients?, useX: Bool, useDy: Bool, _: S.Type
    ) {
        @inline(__always) func scalar(_ j: Int) {
            var v: Float = 0
            if useX { v = muladd(b[j], E.widen(x![j]) - pivot[j], c[j]) }
            if useDy {
                let g = gradient1(dy!, mask, nil, j)
                v = useX ? muladd(a[j], g, v) : a[j] * g
            }
            dst[j] = E.narrow(v)
        }
        var j = 0
        let head = S.prologue(dst, columns)
        while j < head { scalar(j); j += 1 }
        if let pairs, j & 15 == 0 {
            // BFloat16: whole 16-column chunks as even and odd lanes, the same math per value.
            while j + 16 <= pairs.width {
                let (ve, vo) = pairs.value(x, dy, mask, j, j, useX: useX, useDy: useDy)
                S.storePairs(ve, vo, dst + j)
                j += 16
            }
        }
        while j + 8 <= columns {
            var v = F8()
            if useX { v = muladd(load8(b + j), E.load8(x! + j) - load8(pivot + j), load8(c + j)) }
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
