import CNormSupport

/// LayerNorm/RMSNorm backward over short rows (one group, up to `maxLength`
/// values): a row block in one sweep, eight rows at a time.
///
/// ```
/// per row u:  x̂ = (x − p)·s + t          (p, s, t: `AffineCoefficients(mean:invStd:)` of the row)
///             g = dy·γ
///             G = Σ g,  H = Σ g·x̂        Float32 lanes, then one fixed tree per row
///             dx = a·g + b·(x − p) + c    a = r,  b = −r²·H/D,  c = −r·(G/D + t'·H/D)
///                                         t' = −(μ − p)·r  (the pivot's residual; G = 0 for RMSNorm)
/// per column: Σdy, Σdy·x̂                  (dβ, dγ) Float32, into Float64 every `flushRows` rows
///                                         (a partial that is not finite: those rows in Float64)
/// ```
///
/// The general engine reads a row block twice (row sums, then the dx and column
/// sums sweep in `BlockGradients.rowTile`) and pays, per row, two Float64 lane
/// sums, the coefficient arithmetic in scalar Float64 and a table round trip:
/// on 32-value rows that per-row work cost more than the row's data. Here the
/// column sums ride along the row-sum sweep (they do not need the row's
/// coefficients), the eight rows' Float32 lanes are reduced together (three
/// levels of pairwise sums leave row i in lane i), and their coefficients are
/// computed in Float64 vectors, eight rows at once; the dx sweep then reads the
/// rows again from L1.
///
/// Every row's result depends only on its own values (its lanes go down the
/// same tree whichever rows share its vector), and the column sums run in row
/// order with the flushes every `flushRows` rows from the block's start, so a
/// row block gives the same bits in any worker.
enum ShortRowsBackward {
    /// Longest row taken (values). Against the general engine, alternating rounds
    /// (docs/PERFORMANCE-HISTORY.md, "LayerNorm/RMSNorm backward on rows of up to
    /// 512 values: one sweep, 8 rows at a time"): 1.0–1.9× at 4–16 values (it also beats
    /// the 8-rows-per-vector `TinyUnits` sums there), 1.4–1.6× at 32–128, 1.1–1.45×
    /// at 200–300, 1.1–1.15× at 512; at 768 level (Zen 4, L1d 32 KiB). On the Xeon
    /// (L1d 48 KiB, L2 2 MiB) it is also ahead from 768 to 4096 values: one
    /// thread, two alternating rounds, [16384, 768] 1.2–1.3×, [8192, 1024]
    /// 1.15–1.75×, [2048, 4096] 1.4–1.8×, [512, 1024] 1.4–1.6× (commit 3d7ee06; the
    /// figures are in its message only): eight rows of 4096 values and dy are 256 KiB, read again
    /// from L2, where the general engine reads a row block twice from L3.
    static let maxLength = 4096

    /// Rows `firstRow ..< firstRow + rows` of a `rows × length` block at `x`,
    /// `dy`, `dx` (rows contiguous, `length` apart). `mean`/`invStd` are indexed
    /// by absolute row (`mean` nil: RMSNorm, x̂ = x·r and no mean term).
    /// `columnSums` (zeroed by the caller) gets this block's Σdy and Σdy·x̂ per
    /// column; `scratch` holds 2·length Float32 accumulators.
    ///
    /// The fused row backwards' steps (`BlockwiseRowBackward`), in row order and
    /// each row once (block-relative row numbers): `prepare(first, rows)` right
    /// before those rows of x and dy are first read (eight rows, or a whole
    /// `flushRows` chunk when the column sums go in a pass of their own),
    /// `finish(first, rows)` right after their dx is written, while they are in
    /// L1. Neither changes the arithmetic.
    static func rowBlock<E: NormElement>(
        x: UnsafePointer<E>, dy: UnsafePointer<E>, dx: UnsafeMutablePointer<E>,
        gamma: UnsafePointer<Float>?, rows: Int, length: Int, firstRow: Int,
        mean: [Double]?, invStd: [Double],
        columnSums: UnsafeMutablePointer<GradientSums>?, scratch: UnsafeMutablePointer<Float>, streaming: Bool,
        prepare: (_ first: Int, _ rows: Int) -> Void = { _, _ in },
        finish: (_ first: Int, _ rows: Int) -> Void = { _, _ in }
    ) {
        // Streaming stores need every row aligned to 8 values (32 bytes, 16 for 16-bit types).
        if streaming && length % 8 == 0 && StreamingStore.isAligned(dx) {
            rowBlock(x, dy, dx, gamma, rows, length, firstRow, mean, invStd, columnSums, scratch, StreamingStore.self,
                     prepare, finish)
        } else {
            rowBlock(x, dy, dx, gamma, rows, length, firstRow, mean, invStd, columnSums, scratch, CachedStore.self,
                     prepare, finish)
        }
    }

    @inline(__always)
    private static func rowBlock<E: NormElement, S: VectorStore>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<E>, _ dx: UnsafeMutablePointer<E>,
        _ gamma: UnsafePointer<Float>?, _ rows: Int, _ D: Int, _ firstRow: Int,
        _ mean: [Double]?, _ invStd: [Double],
        _ columnSums: UnsafeMutablePointer<GradientSums>?, _ scratch: UnsafeMutablePointer<Float>, _: S.Type,
        _ prepare: (Int, Int) -> Void, _ finish: (Int, Int) -> Void
    ) {
        let vectorEnd = D / 8 * 8
        // BFloat16 on a CPU with AVX-512 BF16: sweep 2's whole 16-value steps in C,
        // rounded by `vcvtne2ps2bf16` (`nk_bf16_hw_row_gradient`, the same
        // operations: the same bits); the integer rounding took ~12 of its ~20
        // vector operations per 16 values (docs/PERFORMANCE.md, "16-bit rows:
        // hardware rounding inside the row passes").
        let hardwareEnd = BFloat16Pairs.enabled(E.self) && BFloat16Hardware.available ? D / 16 * 16 : 0
        let sums = columnSums != nil
        // 16-bit rows: sweep 1 prefetches x and dy into L2 (`prefetcht1`), one
        // 64-byte line per 32 values of each, `PrefetchAhead.bytes` (8 KiB) ahead
        // along the block's contiguous rows. Why: past the cache its first loads of
        // x and dy took most of the kernel's time (perf, Float16 [8192, 1024]: two
        // thirds of the samples in sweep 1, on those loads); the hardware
        // prefetchers alone kept 16-bit rows at ~0.6 of Float32's time. L2, not L1:
        // the rows sweep 2 reads again are in L1 (docs/PERFORMANCE.md, "BatchNorm
        // NCHW reductions: prefetch into L2"). A target past the block (the next
        // block, or past the tensor) costs one line fetch at most; a prefetch
        // never faults. No arithmetic changes: the same bits. Float32 keeps the
        // hardware prefetchers (a prefetch during sweep 2 once slowed it by a quarter).
        // The test and the distance are written in the loop, not held in `let`s here:
        // captured by the row loop's closures they stayed run-time values, and the two
        // extra live values spilled γ, the column sums and the loop bound to the stack
        // in every type's loop (Float32 ran 0.86–0.94× of main's time).
        let accG = scratch, accH = scratch + D
        let invCount = 1 / Double(D)
        @inline(__always) func xhat(_ row: Int) -> AffineCoefficients {
            AffineCoefficients(mean: mean?[firstRow + row] ?? 0, invStd: invStd[firstRow + row])
        }
        /// Adds the chunk's Float32 column partials into `columnSums`; a column whose
        /// partial is not finite (Float32 overflow, or non-finite inputs) gets the
        /// chunk's Float64 sums instead. One test per column and chunk; the chunks
        /// depend only on the block, so the bits do not depend on the thread count.
        func flush(_ chunk: Range<Int>) {
            guard let columnSums else { return }
            for j in 0..<D {
                var part = GradientSums(dy: Double(accG[j]), dyXhat: Double(accH[j]))
                if !part.isFinite {
                    part = BlockGradients.rowsColumnFloat64(x + j, dy + j, rows: chunk, stride: D, xhat: xhat)
                }
                columnSums[j] = columnSums[j] + part
            }
        }
        // dx over x or dy (in place) with column sums: each chunk's column sums are
        // formed (and, where they overflow, redone) before its dx is written, in a
        // pass of their own with the arithmetic of sweep 1: the same bits.
        let split = sums && (UnsafeRawPointer(dx) == UnsafeRawPointer(x) || UnsafeRawPointer(dx) == UnsafeRawPointer(dy))
        let fusedSums = sums && !split
        func columnChunk(_ chunk: Range<Int>) {
            for row in chunk {
                let xr = x + row * D, dr = dy + row * D
                let xc = xhat(row)
                let p = F8(repeating: xc.pivot), s = F8(repeating: xc.scale), t = F8(repeating: xc.shift)
                var j = 0
                // scalar math: x̂ = (x − p)·s + t;  ΣG[j] += dy;  ΣH[j] += dy·x̂
                while j < vectorEnd {
                    let d = E.load8(dr + j)
                    store8(load8(accG + j) + d, accG + j)
                    store8(muladd(d, muladd(E.load8(xr + j) - p, s, t), load8(accH + j)), accH + j)
                    j += 8
                }
                while j < D {
                    let d = E.widen(dr[j])
                    accG[j] += d
                    accH[j] = muladd(d, muladd(E.widen(xr[j]) - xc.pivot, xc.scale, xc.shift), accH[j])
                    j += 1
                }
            }
            flush(chunk)
        }
        withScratch(of: F8.self, capacity: 16) { laneBuffer in
            withScratch(of: Float.self, capacity: 48) { floats in
                let lanes = laneBuffer.baseAddress!
                // tails: the rows' Σ over the last D % 8 values; k: a, b, c, pivot of 8 rows
                let tails = floats.baseAddress!, k = tails + 16
                var i0 = 0, prepared = 0
                while i0 < rows {
                    // The `flushRows` rows (from the block's start) that row i0 is in.
                    let c0 = i0 / BlockGradients.flushRows * BlockGradients.flushRows
                    let chunk = c0..<min(rows, c0 + BlockGradients.flushRows)
                    if sums && i0 % BlockGradients.flushRows == 0 {
                        accG.update(repeating: 0, count: D)
                        accH.update(repeating: 0, count: D)
                        if split {
                            prepare(prepared, chunk.upperBound - prepared)
                            prepared = chunk.upperBound
                            columnChunk(chunk)
                        }
                    }
                    let n = min(8, rows - i0)
                    if i0 + n > prepared {
                        prepare(prepared, i0 + n - prepared)
                        prepared = i0 + n
                    }
                    // Sweep 1: each row's lanes of Σg and Σg·x̂, and the column sums.
                    for i in 0..<8 {
                        guard i < n else {
                            lanes[i] = F8(); lanes[8 + i] = F8(); tails[i] = 0; tails[8 + i] = 0
                            continue
                        }
                        let u = firstRow + i0 + i
                        let xr = x + (i0 + i) * D, dr = dy + (i0 + i) * D
                        let xc = AffineCoefficients(mean: mean?[u] ?? 0, invStd: invStd[u])
                        let p = F8(repeating: xc.pivot), s = F8(repeating: xc.scale), t = F8(repeating: xc.shift)
                        var g = F8(), h = F8()
                        var j = 0
                        // scalar math: x̂ = (x − p)·s + t;  G += dy·γ;  H += dy·γ·x̂;  ΣG[j] += dy;  ΣH[j] += dy·x̂
                        while j < vectorEnd {
                            if MemoryLayout<E>.stride == 2 && j & 31 == 0 {
                                nk_prefetch_l2(UnsafeRawPointer(xr + (j &+ PrefetchAhead.distance(E.self))))
                                nk_prefetch_l2(UnsafeRawPointer(dr + (j &+ PrefetchAhead.distance(E.self))))
                            }
                            let d = E.load8(dr + j)
                            let xh = muladd(E.load8(xr + j) - p, s, t)
                            let gg = gamma.map { d * load8($0 + j) } ?? d
                            g += gg
                            h = muladd(gg, xh, h)
                            if fusedSums {
                                store8(load8(accG + j) + d, accG + j)
                                store8(muladd(d, xh, load8(accH + j)), accH + j)
                            }
                            j += 8
                        }
                        var gt: Float = 0, ht: Float = 0
                        let hp = xc.pivot, hs = xc.scale, hsh = xc.shift
                        while j < D {
                            let d = E.widen(dr[j])
                            let xh = muladd(E.widen(xr[j]) - hp, hs, hsh)
                            let gg = gamma.map { d * $0[j] } ?? d
                            gt += gg
                            ht = muladd(gg, xh, ht)
                            if fusedSums {
                                accG[j] += d
                                accH[j] = muladd(d, xh, accH[j])
                            }
                            j += 1
                        }
                        lanes[i] = g; lanes[8 + i] = h; tails[i] = gt; tails[8 + i] = ht
                    }
                    let G = reduceRows(lanes) + load8(tails), H = reduceRows(lanes + 8) + load8(tails + 8)
                    coefficients(G, H, rows: n, first: firstRow + i0, mean: mean, invStd: invStd,
                                 invCount: invCount, into: k)
                    for i in 0..<n where !(G[i].isFinite && H[i].isFinite) {
                        // Float32 overflow: the row's sums again in Float64 (as the general engine does).
                        let u = firstRow + i0 + i
                        let r = BlockGradients.contiguous(x + (i0 + i) * D, dy + (i0 + i) * D, D,
                                                          AffineCoefficients(mean: mean?[u] ?? 0, invStd: invStd[u]),
                                                          mask: nil, gamma: gamma)
                        let c = GradientCoefficients(mean: mean?[u] ?? 0, invStd: invStd[u], a: invStd[u],
                                                     m1: mean != nil ? r.dy * invCount : 0, m2: r.dyXhat * invCount)
                        k[i] = c.a; k[8 + i] = c.b; k[16 + i] = c.c; k[24 + i] = c.pivot
                    }
                    // Sweep 2: dx, the rows again from L1.
                    for i in 0..<n {
                        let xr = x + (i0 + i) * D, dr = dy + (i0 + i) * D, out = dx + (i0 + i) * D
                        let a = F8(repeating: k[i]), b = F8(repeating: k[8 + i])
                        let c = F8(repeating: k[16 + i]), q = F8(repeating: k[24 + i])
                        var j = 0
                        if hardwareEnd > 0 {
                            nk_bf16_hw_row_gradient(UnsafeRawPointer(xr).assumingMemoryBound(to: UInt16.self),
                                                    UnsafeRawPointer(dr).assumingMemoryBound(to: UInt16.self), gamma,
                                                    UnsafeMutableRawPointer(out).assumingMemoryBound(to: UInt16.self),
                                                    hardwareEnd, k[24 + i], k[i], k[8 + i], k[16 + i],
                                                    S.streams ? 1 : 0)
                            j = hardwareEnd
                        }
                        // scalar math: dx = a·(dy·γ) + (b·(x − q) + c)
                        while j < vectorEnd {
                            let d = E.load8(dr + j)
                            let gg = gamma.map { d * load8($0 + j) } ?? d
                            S.store(muladd(a, gg, muladd(b, E.load8(xr + j) - q, c)), out + j)
                            j += 8
                        }
                        while j < D {
                            let d = E.widen(dr[j])
                            let gg = gamma.map { d * $0[j] } ?? d
                            out[j] = E.narrow(muladd(k[i], gg, muladd(k[8 + i], E.widen(xr[j]) - k[24 + i], k[16 + i])))
                            j += 1
                        }
                    }
                    finish(i0, n)
                    i0 += 8
                    if !split, i0 % BlockGradients.flushRows == 0 || i0 >= rows { flush(chunk) }
                }
            }
        }
    }

    /// Lane i of the result: the sum of the 8 lanes of `v[i]`, in the same
    /// tree for every row: ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
    @inline(__always)
    private static func reduceRows(_ v: UnsafePointer<F8>) -> F8 {
        @inline(__always) func pairs(_ a: F8, _ b: F8) -> F8 {
            F8(lowHalf: a.evenHalf + a.oddHalf, highHalf: b.evenHalf + b.oddHalf)
        }
        let q0 = pairs(v[0], v[1]), q1 = pairs(v[2], v[3]), q2 = pairs(v[4], v[5]), q3 = pairs(v[6], v[7])
        return pairs(pairs(q0, q1), pairs(q2, q3))
    }

    /// a, b, c and the pivot of `rows` (≤ 8) rows from their sums, in Float64
    /// lanes (the arithmetic of `GradientCoefficients(mean:invStd:a:m1:m2:)`, eight
    /// rows at a time), into k[0..<8], k[8..<16], k[16..<24], k[24..<32].
    @inline(__always)
    private static func coefficients(
        _ G: F8, _ H: F8, rows: Int, first: Int, mean: [Double]?, invStd: [Double],
        invCount: Double, into k: UnsafeMutablePointer<Float>
    ) {
        var r = SIMD8<Double>(), mu = SIMD8<Double>()
        for i in 0..<rows {
            r[i] = invStd[first + i]
            mu[i] = mean?[first + i] ?? 0
        }
        let p = SIMD8<Float>(mu)
        let t = -(mu - SIMD8<Double>(p)) * r
        let m2 = SIMD8<Double>(H) * invCount
        let m1 = mean != nil ? SIMD8<Double>(G) * invCount : SIMD8<Double>()
        store8(SIMD8<Float>(r), k)
        store8(SIMD8<Float>(-r * r * m2), k + 8)
        store8(SIMD8<Float>(-r * (m1 + t * m2)), k + 16)
        store8(p, k + 24)
    }
}
