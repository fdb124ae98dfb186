// SiLU as an output epilogue (GroupNorm + SiLU, issue 21):
//
//     silu(z) = z·σ(z),   σ(z) = 1 / (1 + e^(−z))
//     silu′(z) = σ(z)·(1 + z·(1 − σ(z))) = σ(z) + z·e/(1 + e)²
//
// σ is evaluated in 8 Float32 lanes from e = e^(−|z|) ∈ (0, 1] only (the
// XNNPACK `f32-vsigmoid` scheme): σ(z) = e/(1 + e) for z < 0 and 1/(1 + e)
// for z ≥ 0, so one division (numerator e or 1, blended on z's sign bit) and
// no 1 − σ cancellation. e^v, −87.3365 ≤ v ≤ 0, is 2^q·2^(k/8)·e^t
// (`expNegative8`, XNNPACK's "lut8" reduction): N = 8q + k = round(8v/ln 2)
// (the 1.5·2²³ + 8·127 magic bias leaves N + 1016 in the low mantissa bits:
// its low 3 bits pick 2^(k/8) from an 8-entry table with one `vpermps`
// (`nk_lookup8`), and shifted left by 20 the rest lands in the exponent
// field), t = v − N·ln 2/8 in two parts (Cody–Waite, |t| ≤ ln 2/16) and
// e^t = 1 + t + t²·(c₂ + c₃t), a degree-3 minimax fit (relative error 2.8e−8
// = 0.47·2^−24 on [−1.02, 1.02]·ln 2/16). That is 11 vector operations for e,
// 8 of them on the FMA ports, against 13 and 12 for the degree-7
// 2^n·(1 + t + t²·p(t)) with |t| ≤ ln 2/2 it replaced (Cephes `expf`'s p; it
// stays in `exp8`): the SiLU lanes are port-bound on the FMA units (AVX2 has
// two), not on the division.
//
// Measured against Float64 (a C transcription of these lanes, every 97th
// Float32 bit pattern with |z| ≤ 200, 23 million values: the sweep of
// `SiLUAccuracyTests`, which holds these lanes to the bounds 4, 5 and 7):
// σ within 2.6 ulp and silu within 3.6 ulp (2.3 and 3.1 for the degree-7 form),
// silu′ within 4.9·2^−24·(σ + |z·σ(1 − σ)|) with FMA and 5.4 without (4.6 and
// 5.2), the size of its two terms, in the -march=x86-64-v3 and the default build,
// where z ≥ −87.3365; below that e^(−|z|) is under 2^−126 and is set to 0, so
// σ = 0 and silu = −0 exactly (absolute error < 1.1e−36). exp8 (clamped, any
// v) within 0.94 ulp on [−87, 88] (exp8's test grid, with and without FMA).
// The kernels' tests against the Float64 composed op allow 3e−5·(1 + |z|).
// ±∞: σ(+∞) = 1, σ(−∞) = 0, silu(+∞) = +∞, silu(−∞) = NaN (−∞·0, as
// z/(1 + e^(−z)) in PyTorch); NaN stays NaN (its compares are false, so its e
// stays NaN). Subnormal and zero z give σ = 1/2. Scalar values (heads and
// tails of loops) go through the same lanes, so a value's result does not
// depend on where in a loop it falls.

import CNormSupport

/// e^v, v ≤ 0.01, in 8 lanes without clamps, for `exp8`: 2^n·(1 + t + t²·p(t))
/// with n = round(v·log₂e) (the 1.5·2²³ + 127 magic bias leaves n + 127 in the
/// low mantissa bits, shifted into the exponent field as 2^n), t = v − n·ln 2
/// in two parts (|t| ≤ ln 2/2) and p Cephes `expf`'s degree-5 polynomial.
/// Valid for v ≥ −87.3365 (n ≥ −126); below that the exponent bits wrap.
/// `@_transparent` here and below: with `@inline(__always)` the backward's
/// NHWC loop still called `siluGradient8` out of line (objdump).
@_transparent
func expCore8(_ v: F8) -> F8 {
    let magic = F8(repeating: 0x1.8000FEp23)
    let biased = muladd(v, F8(repeating: 0x1.715476p0), magic)
    let twoN = unsafeBitCast(unsafeBitCast(biased, to: SIMD8<Int32>.self) &<< 23, to: F8.self)
    let n = biased - magic
    var t = muladd(n, F8(repeating: -0.693359375), v)
    t = muladd(n, F8(repeating: 2.12194440e-4), t)
    var p = F8(repeating: 1.9875691500e-4)
    p = muladd(p, t, F8(repeating: 1.3981999507e-3))
    p = muladd(p, t, F8(repeating: 8.3334519073e-3))
    p = muladd(p, t, F8(repeating: 4.1665795894e-2))
    p = muladd(p, t, F8(repeating: 1.6666665459e-1))
    p = muladd(p, t, F8(repeating: 5.0000001201e-1))
    // e^t − 1 = t + t²·p(t); 2^n·e^t = 2^n + 2^n·(e^t − 1).
    return muladd(muladd(p, t * t, t), twoN, twoN)
}

/// The smallest v whose e^v is a normal Float32 (XNNPACK's denormal cutoff).
@inline(__always) var expNormalCutoff: Float { -0x1.5D589Ep+6 }

/// e^v in 8 lanes for any v: clamped to [−87.34, 88], then +∞ for v > 88;
/// NaN for NaN. Within 2 ulp on [−87, 88] (file comment).
@_transparent
func exp8(_ v: F8) -> F8 {
    let hi = F8(repeating: 88), lo = F8(repeating: expNormalCutoff)
    var x = v.replacing(with: hi, where: v .> hi)
    x.replace(with: lo, where: x .< lo)
    return expCore8(x).replacing(with: .infinity, where: v .> hi)
}

/// 2^(k/8), k = 0 … 7, for `expNegative8`: the bits of Float(2^(k/8)) less
/// those of 1.0 and less k << 20, so that (integer) adding (N + 1016) << 20,
/// N = 8q + k, gives the bits of 2^q·2^(k/8) (file comment).
@inline(__always) var exp2EighthsTable: F8 {
    unsafeBitCast(SIMD8<Int32>(0, -289_342, -509_968, -655_657, -719_629, -694_486, -572_163, -343_865),
                  to: F8.self)
}

/// e^v for −87.3365 ≤ v ≤ 0 in 8 lanes: 2^q·2^(k/8)·e^t with N = 8q + k =
/// round(8v/ln 2), t = v − N·ln 2/8 (two parts, |t| ≤ ln 2/16) and
/// e^t = 1 + t + t²·(c₂ + c₃t) (file comment). Below −87.3365 the exponent bits wrap.
@_transparent
func expNegative8(_ v: F8) -> F8 {
    // The magic bias 1.5·2²³ + 8·127 leaves N + 1016 ∈ [8, 1016] in the low
    // mantissa bits: its low 3 bits are k (the table index, `nk_lookup8` masks
    // them), and shifted left by 20 it is (q + 127) << 23 + k << 20.
    let magic = F8(repeating: 0x1.8007F0p23)
    let biased = muladd(v, F8(repeating: 0x1.715476p3), magic)
    let bits = unsafeBitCast(biased, to: SIMD8<Int32>.self)
    let n = biased - magic
    let fraction = unsafeBitCast(nk_lookup8(exp2EighthsTable, bits), to: SIMD8<Int32>.self)
    let scale = unsafeBitCast((bits &<< 20) &+ fraction, to: F8.self)
    var t = muladd(n, F8(repeating: -0x1.63p-4), v)
    t = muladd(n, F8(repeating: 0x1.bd0106p-16), t)
    let p = muladd(F8(repeating: 0x1.55565ep-3), t, F8(repeating: 0x1.0008cap-1))
    // e^t − 1 = t + t²·p; 2^q·2^(k/8)·e^t = scale + scale·(e^t − 1).
    return muladd(muladd(p, t * t, t), scale, scale)
}

/// e = e^(−|z|) (0 where −|z| < −87.34), d = 1 + e, and the numerator of σ:
/// e where z's sign bit is set, else 1, so σ(z) = numerator/d.
@_transparent
func sigmoidParts8(_ z: F8) -> (e: F8, d: F8, numerator: F8) {
    // Vector operands only: the SIMD operators taking a scalar (`bits | Int32`,
    // `.>= 0`, `replacing(with: 1, …)`) ran lane by lane, 90× slower (59 against
    // 0.65 ns per value in a standalone -O loop).
    let bits = unsafeBitCast(z, to: SIMD8<Int32>.self), one = F8(repeating: 1)
    let negativeMagnitude = unsafeBitCast(bits | SIMD8<Int32>(repeating: Int32.min), to: F8.self)
    let e = expNegative8(negativeMagnitude).replacing(with: F8(), where: negativeMagnitude .< F8(repeating: expNormalCutoff))
    return (e, e + one, e.replacing(with: one, where: bits .>= SIMD8<Int32>()))
}

/// σ(z) in 8 lanes: 0 for z < −87.34, 1 for z > 87.34 (see the file comment).
@_transparent
func sigmoid8(_ z: F8) -> F8 {
    let q = sigmoidParts8(z)
    return q.numerator / q.d
}

/// silu(z) = z·σ(z) = (z·numerator)/d in 8 lanes.
@_transparent
func silu8(_ z: F8) -> F8 {
    let q = sigmoidParts8(z)
    return (z * q.numerator) / q.d
}

/// silu′(z)·dy in 8 lanes: σ + z·e/d² = (numerator + z·e·r)·r with r = 1/d
/// (one division), times dy: four multiplies or FMAs after the division.
@_transparent
func siluGradient8(_ z: F8, _ dy: F8) -> F8 {
    let q = sigmoidParts8(z), r = F8(repeating: 1) / q.d
    return (dy * r) * muladd(z * q.e, r, q.numerator)
}

/// The SiLU output epilogue (`FusedActivation`): `z·σ(z)`.
enum SiLUActivation: FusedActivation {
    @inline(__always) static func apply(_ v: F8) -> F8 { silu8(v) }
    @inline(__always) static func apply(_ v: Float) -> Float { apply(F8(repeating: v))[0] }
}

extension Apply {
    /// `dst[i] = A(((src[i] − c.pivot)·c.scale + c.shift))` over a contiguous run,
    /// through the cache or streaming (`Apply.affine`'s loop with activation `A`);
    /// src widened exactly, each output rounded once to `E`.
    @inline(__always)
    static func affine<E: NormElement, A: FusedActivation>(
        _ src: UnsafePointer<E>, _ dst: UnsafeMutablePointer<E>, _ n: Int,
        _ c: AffineCoefficients, streaming: Bool, activation: A.Type
    ) {
        if streaming {
            affine(src, dst, n, c, NoResidual(), StreamingStore.self, A.self)
        } else {
            affine(src, dst, n, c, NoResidual(), CachedStore.self, A.self)
        }
    }

    /// `Apply.columns` with activation `A`: rows of `columns` values, `stride`
    /// apart, per-column coefficients. Streams only when every row starts aligned
    /// for `StreamingStore` (32 bytes for Float, 16 for 16-bit types; see `Apply.columns`).
    static func columns<E: NormElement, A: FusedActivation>(
        _ src: UnsafePointer<E>, _ dst: UnsafeMutablePointer<E>,
        rows: Int, columns: Int, stride: Int,
        pivot: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
        streaming: Bool, activation: A.Type
    ) {
        let aligned = stride % 8 == 0 && StreamingStore.isAligned(dst)
        if streaming && aligned {
            self.columns(src, dst, rows, columns, stride, pivot, scale, shift, NoResidual(), StreamingStore.self, A.self)
        } else {
            self.columns(src, dst, rows, columns, stride, pivot, scale, shift, NoResidual(), CachedStore.self, A.self)
        }
    }

    /// `dst[i] = silu(src[i]·m + t)` over a contiguous run (the epilogue pass of
    /// GroupNorm + SiLU on the row-engine paths; m = 1 + scale, t = shift of the
    /// run's (n, c), or 1 and 0). `src` holds GroupNorm's Float32 output; each
    /// result is rounded once to `E`. For `Float`, `dst` may be `src` (in place).
    static func silu<E: NormElement>(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<E>, _ n: Int,
                                     multiplier m: Float, shift t: Float) {
        let mv = F8(repeating: m), tv = F8(repeating: t)
        var i = 0
        // Two vectors per step: their independent divisions and polynomials overlap.
        if m == 1 && t == 0 {
            // No modulation: silu(v) itself (v·1 + 0 would turn −0 into +0).
            while i + 16 <= n {
                E.store8(silu8(load8(src + i)), dst + i)
                E.store8(silu8(load8(src + i + 8)), dst + i + 8)
                i += 16
            }
            while i + 8 <= n { E.store8(SiLUActivation.apply(load8(src + i)), dst + i); i += 8 }
            while i < n { dst[i] = E.narrow(SiLUActivation.apply(src[i])); i += 1 }
            return
        }
        while i + 16 <= n {
            E.store8(silu8(muladd(load8(src + i), mv, tv)), dst + i)
            E.store8(silu8(muladd(load8(src + i + 8), mv, tv)), dst + i + 8)
            i += 16
        }
        while i + 8 <= n {
            E.store8(SiLUActivation.apply(muladd(load8(src + i), mv, tv)), dst + i)
            i += 8
        }
        while i < n { dst[i] = E.narrow(SiLUActivation.apply(muladd(src[i], m, t))); i += 1 }
    }
}

extension CoefficientTable {
    /// `applyRuns` (NCHW channel runs) with activation `A`.
    func applyRuns<E: NormElement, A: FusedActivation>(_ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>,
                                                       _ block: RowBlock, run: Int, runsPerSegment: Int,
                                                       activation: A.Type) {
        let slotBase = block.unit * runsPerSegment
        var position = block.start, offset = block.offset
        let end = block.start + block.count
        while position < end {
            let r = position / run
            let n = min((r + 1) * run, end) - position
            Apply.affine(x + offset, y + offset, n, self[slotBase + r], streaming: streaming, activation: A.self)
            position += n
            offset += n
        }
    }

    /// `applyColumns` (NHWC rows of matrix m) with activation `A`.
    func applyColumns<E: NormElement, A: FusedActivation>(_ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>,
                                                          matrix m: Int, geometry g: ColumnsGeometry, first: Int,
                                                          rows: Int, activation: A.Type) {
        let offset = m * g.matrixElements + first * g.columns, slot = m * g.columns
        Apply.columns(x + offset, y + offset, rows: rows, columns: g.columns, stride: g.columns,
                      pivot: pivot + slot, scale: scale + slot, shift: shift + slot, streaming: streaming,
                      activation: A.self)
    }
}
