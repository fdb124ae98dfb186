// Mean and variance of one LayerNorm row taken one row at a time
// (`normalizeRowByRow`): shifted sums in one pass, recentred in a second pass
// only when the shift is far from the mean. Used instead of the Welford lanes
// (`BlockMoments.contiguous`) there, because a Welford step costs six vector
// operations per 8 values and chains each lane through a multiply-add, where
// a shifted sum costs three and lets the output of the previous row run in the
// same loop (docs/PERFORMANCE.md, "LayerNorm rows: shifted sums").
//
// The math, for a row x of n values and a shift K (`BlockMoments.blockPivot`,
// the mean of its first 32 values):
// ```
// S = Σ (x − K),   Q = Σ (x − K)²,   m = S/n
// μ = K + m,       σ² = Q/n − m²
// ```
// - x − K is exact for data clustered far from zero (Sterbenz: x and K within
//   a factor of 2), so the sums work on values of the size of the spread, as
//   the Welford lanes do on x − K.
// - Q/n − m² cancels: the relative error of Q/n is multiplied by
//   (σ² + m²)/σ². The mean of 32 values is within ~σ/6 of μ on most rows
//   (factor ≈ 1.03); where m² > σ²/4 (factor > 1.25: a shift more than σ/2
//   from the mean, e.g. a row whose first values are unlike the rest) the row
//   is summed again about p = Float(K + m), which is within rounding of μ, and
//   μ = p + S'/n, σ² = Q'/n − (S'/n)² from the new sums (the corrected
//   two-pass formula: the second term removes what p misses of μ).
// - Lanes: two vectors of Float32 lanes (16 lanes), each adding one value per
//   16-value step; after every block of 256 values the lanes are added into
//   Float64 lanes and restarted, so no Float32 lane sums more than 16 values
//   (a 16 384-value row would otherwise chain 1024 roundings per lane). The
//   Float64 lanes are summed in lane order. The last n mod 16 values: one
//   8-value step straight into the Float64 lanes, then one value at a time in
//   Float64.
// - Non-finite sums (|x − K| beyond ~1e19, infinities, NaN): the row is redone
//   in Float64 Welford (`BlockMoments.columnFloat64`), as the Welford path did.
// The sums depend only on the row's values and length (the same loop whether
// or not another row's output runs in it), so every thread count gives the
// same bits.

import CNormSupport

enum ShiftedRowSums {
    /// Σ (x − K) and Σ (x − K)² of one row, in Float64.
    struct Sums {
        var sum: Double
        var squares: Double
    }

    /// Values per block of Float32 lane sums (16 steps of 16 values).
    static let block = 256

    /// How far ahead of the 16-value step the Swift sweep prefetches, in
    /// bytes: the C loop's `NK_SUMS_PREFETCH_BYTES` (BFloat16Hardware.h).
    static let prefetchBytes = Int(NK_SUMS_PREFETCH_BYTES)

    /// The sums of `p[0 ..< n]` about `pivot`, with `out`'s writes run in the
    /// same loop (`RowSweepOutput`: the previous row's outputs, or nothing):
    /// `out` sees every index exactly once, in 16-, 8- and 1-value pieces.
    @inline(__always)
    static func sweep<E: NormElement, O: RowSweepOutput>(_ p: UnsafePointer<E>, _ n: Int, pivot: Float,
                                                         _ out: O) -> Sums {
        let k = F8(repeating: pivot)
        var sums = D8(), squares = D8()
        var i = 0
        if O.sumsInC {
            // The whole 16-value steps in one C loop with the same operations
            // (`nk_bf16_hw_shifted_sums`); the lanes come back as this loop leaves them.
            i = withUnsafeMutableBytes(of: &sums) { s in
                withUnsafeMutableBytes(of: &squares) { q in
                    out.sumsAndWrite16(UnsafeRawPointer(p), n, pivot: pivot,
                                       sums: s.baseAddress!.assumingMemoryBound(to: Double.self),
                                       squares: q.baseAddress!.assumingMemoryBound(to: Double.self))
                }
            }
        }
        while i + 16 <= n {
            let end = min(i + block, n)
            var s0 = F8(), s1 = F8(), q0 = F8(), q1 = F8()
            repeat {
                // scalar math: d = x − K;  s += d;  q += d²
                let d0 = E.load8(p + i) - k, d1 = E.load8(p + i + 8) - k
                // The prefetch of `nk_hw_shifted_sums`, the same distance and reason
                // (NK_SUMS_PREFETCH_BYTES: the previous row's outputs in this loop fill the
                // out-of-order window, so the hardware prefetcher alone leaves DRAM loads
                // waiting): 16-bit rows (Float16; BFloat16 without AVX-512 BF16) since
                // `rows16`, Float32 rows since Zen 5 showed the same wait (half the
                // samples of LayerNorm `[8192, 1024]` on one thread on the load of the row
                // being summed; docs/PERFORMANCE.md, "LayerNorm rows: a prefetch ahead of
                // the sums"). A hint: no fault past the row, no effect on the values.
                nk_prefetch(UnsafeRawPointer(p + i) + ShiftedRowSums.prefetchBytes)
                s0 += d0
                s1 += d1
                q0 = muladd(d0, d0, q0)
                q1 = muladd(d1, d1, q1)
                out.write16(i)
                i += 16
            } while i + 16 <= end
            sums += widened(s0 + s1)
            squares += widened(q0 + q1)
        }
        if i + 8 <= n {
            let d = widened(E.load8(p + i) - k)
            sums += d
            squares += d * d
            out.write8(i)
            i += 8
        }
        var tail = 0.0, tailSquares = 0.0
        let kd = Double(pivot)
        while i < n {
            let d = Double(E.widen(p[i])) - kd
            tail += d
            tailSquares += d * d
            out.write1(i)
            i += 1
        }
        return Sums(sum: laneSum(sums) + tail, squares: laneSum(squares) + tailSquares)
    }

    /// Lane sum of Float64 lanes, in lane order.
    @inline(__always)
    static func laneSum(_ v: D8) -> Double {
        var s = 0.0
        for l in 0..<8 { s += v[l] }
        return s
    }

    /// The shift of a row (n ≥ 8): the Welford path's block pivot.
    @inline(__always)
    static func pivot<E: NormElement>(_ p: UnsafePointer<E>, _ n: Int) -> Float {
        BlockMoments.blockPivot(p, length: n, stride: n, segments: 1)
    }

    /// Mean and biased variance of `row` from its sums about `pivot` (see the
    /// top of this file): recentred when the shift is far from the mean, in
    /// Float64 when the Float32 sums are not finite.
    @inline(__always)
    static func moments<E: NormElement>(_ row: UnsafePointer<E>, _ n: Int, pivot: Float,
                                        _ sums: Sums) -> (mean: Double, variance: Double) {
        let count = Double(n)
        let m = sums.sum / count
        let variance = sums.squares / count - m * m
        if m.isFinite && variance.isFinite {
            if !(4 * m * m > variance) { return (Double(pivot) + m, max(0, variance)) }
            let p = Float(Double(pivot) + m)
            if p.isFinite {
                let again = sweep(row, n, pivot: p, NoRowOutput())
                let m2 = again.sum / count, v2 = again.squares / count - m2 * m2
                if m2.isFinite && v2.isFinite { return (Double(p) + m2, max(0, v2)) }
            }
        }
        let f = BlockMoments.columnFloat64(row, rows: n, stride: 1)
        return (f.mean, f.biasedVariance)
    }

    /// Mean and biased variance of one row (n ≥ 8), in its own pass.
    @inline(__always)
    static func moments<E: NormElement>(_ row: UnsafePointer<E>, _ n: Int) -> (mean: Double, variance: Double) {
        let k = pivot(row, n)
        return moments(row, n, pivot: k, sweep(row, n, pivot: k, NoRowOutput()))
    }
}

/// What a `ShiftedRowSums.sweep` writes while it sums: index i of another row
/// of the same length, in pieces of 16, 8 or 1 values.
protocol RowSweepOutput {
    func write16(_ i: Int)
    func write8(_ i: Int)
    func write1(_ i: Int)
    /// Whether `sumsAndWrite16` runs the sweep's whole 16-value steps (a C loop).
    static var sumsInC: Bool { get }
    /// The sweep's 16-value steps over the BFloat16 row `p` (sums about `pivot`
    /// into the Float64 lanes `sums`, `squares`) and this output's `write16` at
    /// the same indices, in C; returns the values done. Only where `sumsInC`.
    func sumsAndWrite16(_ p: UnsafeRawPointer, _ n: Int, pivot: Float, sums: UnsafeMutablePointer<Double>,
                        squares: UnsafeMutablePointer<Double>) -> Int
    /// Every output of the row (`n` values) without a sweep.
    func writeRow(_ n: Int)
}

extension RowSweepOutput {
    static var sumsInC: Bool { false }

    func sumsAndWrite16(_ p: UnsafeRawPointer, _ n: Int, pivot: Float, sums: UnsafeMutablePointer<Double>,
                        squares: UnsafeMutablePointer<Double>) -> Int { 0 }

    @inline(__always) func writeRow(_ n: Int) {
        var i = 0
        while i + 16 <= n { write16(i); i += 16 }
        if i + 8 <= n { write8(i); i += 8 }
        while i < n { write1(i); i += 1 }
    }
}

/// A sweep that only sums.
struct NoRowOutput: RowSweepOutput {
    @inline(__always) func write16(_ i: Int) {}
    @inline(__always) func write8(_ i: Int) {}
    @inline(__always) func write1(_ i: Int) {}
}

/// The outputs of a normalized row, `Apply.elementwise`'s arithmetic value for
/// value (the same bits): `y = ((x − p)·r + t)·γ + β` with `A` the γ/β present.
struct RowOutputPass<E: NormElement, A: ElementAffine, S: VectorStore>: RowSweepOutput {
    let src: UnsafePointer<E>
    let dst: UnsafeMutablePointer<E>
    let affine: A
    let c: AffineCoefficients
    let p: F8, s: F8, t: F8

    @inline(__always)
    init(_ src: UnsafePointer<E>, _ dst: UnsafeMutablePointer<E>, _ c: AffineCoefficients, _ affine: A, _: S.Type) {
        self.src = src
        self.dst = dst
        self.affine = affine
        self.c = c
        p = F8(repeating: c.pivot)
        s = F8(repeating: c.scale)
        t = F8(repeating: c.shift)
    }

    @inline(__always) func write8(_ i: Int) {
        S.store(affine.apply(muladd(E.load8(src + i) - p, s, t), i), dst + i)
    }

    @inline(__always) func write16(_ i: Int) {
        if E.self == BFloat16.self {
            // Both vectors rounded in one `nk_bf16_round16` (the bits of two `store8`).
            let v0 = affine.apply(muladd(E.load8(src + i) - p, s, t), i)
            let v1 = affine.apply(muladd(E.load8(src + i + 8) - p, s, t), i + 8)
            S.storeWords(unsafeBitCast(nk_bf16_round16(v0, v1), to: BFloat16Pairs.Words.self),
                         UnsafeMutableRawPointer(dst + i))
            return
        }
        write8(i)
        write8(i + 8)
    }

    @inline(__always) func write1(_ i: Int) {
        dst[i] = E.narrow(affine.apply(muladd(E.widen(src[i]) - c.pivot, c.scale, c.shift), i))
    }
}
