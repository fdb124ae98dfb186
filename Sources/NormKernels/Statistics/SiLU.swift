// SiLU as an output epilogue (GroupNorm + SiLU, issue 21):
//
//     silu(z) = z·σ(z),   σ(z) = 1 / (1 + e^(−z))
//     silu′(z) = σ(z)·(1 + z·(1 − σ(z)))
//
// e^v is evaluated in 8 Float32 lanes (Cephes `expf`: v = k·ln 2 + r with
// |r| ≤ ln 2 / 2, a degree-6 polynomial in r, 2^k put in the exponent bits),
// ~1 ulp. Large |z| is safe without a branch per element: for −z > 88 the
// exponential is set to +∞, so σ = 1/(1 + ∞) = 0 and silu = z·0 = −0 (silu′ = 0);
// for −z < −87 it is clamped to e^(−87) ≈ 1.6e−38, so σ = 1 exactly. NaN stays
// NaN (the clamps compare false on NaN). Scalar values (heads and tails of
// loops) go through the same lanes, so a value's result does not depend on
// where in a loop it falls.

import CNormSupport

/// e^v in 8 lanes (see the file comment); +∞ for v > 88, NaN for NaN.
/// `@_transparent` here and below: with `@inline(__always)` the backward's
/// NHWC loop still called `siluGradient8` out of line (objdump).
@_transparent
func exp8(_ v: F8) -> F8 {
    let hi = F8(repeating: 88), lo = F8(repeating: -87)
    var x = v.replacing(with: hi, where: v .> hi)
    x.replace(with: lo, where: x .< lo)
    // k = round(x / ln 2) by the 1.5·2²³ trick: the sum's low mantissa bits hold k.
    let magic = F8(repeating: 12_582_912)
    let shifted = muladd(x, F8(repeating: 1.44269504088896341), magic)
    let k = shifted - magic
    // r = x − k·ln 2 in two parts (Cody–Waite), exact for |k| ≤ 128.
    var r = muladd(k, F8(repeating: -0.693359375), x)
    r = muladd(k, F8(repeating: 2.12194440e-4), r)
    var p = F8(repeating: 1.9875691500e-4)
    p = muladd(p, r, F8(repeating: 1.3981999507e-3))
    p = muladd(p, r, F8(repeating: 8.3334519073e-3))
    p = muladd(p, r, F8(repeating: 4.1665795894e-2))
    p = muladd(p, r, F8(repeating: 1.6666665459e-1))
    p = muladd(p, r, F8(repeating: 5.0000001201e-1))
    p = muladd(p, r * r, r) + F8(repeating: 1)
    // 2^k: k + 127 in the exponent field (k ∈ [−126, 127] after the clamps).
    let bits = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
    let twoK = unsafeBitCast((bits &+ 127) &<< 23, to: F8.self)
    return (p * twoK).replacing(with: .infinity, where: v .> hi)
}

/// σ(z) in 8 lanes: 0 for z < −88, 1 for z > 87 (see the file comment).
@_transparent
func sigmoid8(_ z: F8) -> F8 { F8(repeating: 1) / (F8(repeating: 1) + exp8(-z)) }

/// silu′(z)·dy in 8 lanes.
@_transparent
func siluGradient8(_ z: F8, _ dy: F8) -> F8 {
    let s = sigmoid8(z)
    return dy * (s * muladd(z, F8(repeating: 1) - s, F8(repeating: 1)))
}

/// The SiLU output epilogue (`FusedActivation`): `z·σ(z)`.
enum SiLUActivation: FusedActivation {
    @inline(__always) static func apply(_ v: F8) -> F8 { v * sigmoid8(v) }
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
        if m == 1 && t == 0 {
            // No modulation: silu(v) itself (v·1 + 0 would turn −0 into +0).
            while i + 8 <= n { E.store8(SiLUActivation.apply(load8(src + i)), dst + i); i += 8 }
            while i < n { dst[i] = E.narrow(SiLUActivation.apply(src[i])); i += 1 }
            return
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
