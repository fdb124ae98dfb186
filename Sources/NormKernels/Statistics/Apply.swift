// The normalization pass: one fused multiply-add per element with coefficients
// folded per channel (or per element for LayerNorm/RMSNorm).
//
// The mean is split in two: a Float32 pivot p = Float(mean) subtracted first,
// and the rest folded into the shift. For data with mean 1e4 and std 1e-2,
// x − p is exact (Sterbenz) and small, so the output keeps full precision where
// the usual y = x·s + (β − mean·s) would lose ~6 digits to rounding x·s ≈ 1e6.

/// Per-channel coefficients of `y = (x − pivot) · scale + shift`.
struct AffineCoefficients {
    var pivot: Float
    var scale: Float
    var shift: Float

    /// Folds mean, 1/σ, γ and β:
    /// ```
    /// scale = γ · invStd
    /// shift = β − (mean − pivot) · scale          (pivot = Float(mean))
    /// ```
    @inline(__always)
    init(mean: Double, invStd: Double, gamma: Double = 1, beta: Double = 0) {
        let p = Float(mean)
        let s = gamma * invStd
        pivot = p
        scale = Float(s)
        shift = Float(beta - (mean - Double(p)) * s)
    }

    init(pivot: Float, scale: Float, shift: Float) {
        self.pivot = pivot
        self.scale = scale
        self.shift = shift
    }
}

enum Apply {
    /// `dst[i] = (src[i] − c.pivot) · c.scale + c.shift`, then max(·, 0) when `relu`
    /// (NaN stays NaN, as in PyTorch). `dst` may equal `src`.
    static func affine(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int,
        _ c: AffineCoefficients, relu: Bool
    ) {
        if relu { affine(src, dst, n, c, clamp: F8(repeating: 0)) } else { affine(src, dst, n, c, clamp: F8(repeating: -.infinity)) }
    }

    @inline(__always)
    private static func affine(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int,
        _ c: AffineCoefficients, clamp: F8
    ) {
        let p = F8(repeating: c.pivot), s = F8(repeating: c.scale), t = F8(repeating: c.shift)
        var i = 0
        while i + 16 <= n {
            var y0 = (load8(src + i) - p) * s + t
            var y1 = (load8(src + i + 8) - p) * s + t
            y0.replace(with: clamp, where: y0 .< clamp)
            y1.replace(with: clamp, where: y1 .< clamp)
            store8(y0, dst + i)
            store8(y1, dst + i + 8)
            i += 16
        }
        let floor = clamp[0]
        while i < n {
            let y = (src[i] - c.pivot) * c.scale + c.shift
            dst[i] = y < floor ? floor : y
            i += 1
        }
    }

    /// LayerNorm/RMSNorm: `dst[i] = ((src[i] − pivot) · invStd + shift) · γ[i] + β[i]`,
    /// with γ = 1 and β = 0 where absent.
    static func elementwise(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int,
        pivot: Float, invStd: Float, shift: Float,
        gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?
    ) {
        guard let gamma else {
            if let beta {
                // y = x̂ + β[i]
                let p = F8(repeating: pivot), s = F8(repeating: invStd), t = F8(repeating: shift)
                var i = 0
                while i + 8 <= n {
                    store8((load8(src + i) - p) * s + t + load8(beta + i), dst + i)
                    i += 8
                }
                while i < n { dst[i] = (src[i] - pivot) * invStd + shift + beta[i]; i += 1 }
            } else {
                affine(src, dst, n, AffineCoefficients(pivot: pivot, scale: invStd, shift: shift), relu: false)
            }
            return
        }
        let p = F8(repeating: pivot), s = F8(repeating: invStd), t = F8(repeating: shift)
        var i = 0
        if let beta {
            while i + 8 <= n {
                store8(((load8(src + i) - p) * s + t) * load8(gamma + i) + load8(beta + i), dst + i)
                i += 8
            }
            while i < n { dst[i] = ((src[i] - pivot) * invStd + shift) * gamma[i] + beta[i]; i += 1 }
        } else {
            while i + 8 <= n {
                store8(((load8(src + i) - p) * s + t) * load8(gamma + i), dst + i)
                i += 8
            }
            while i < n { dst[i] = ((src[i] - pivot) * invStd + shift) * gamma[i]; i += 1 }
        }
    }

    /// Strided columns: for each of `rows` rows of `columns` values (row stride
    /// `stride`), `dst[r, c] = (src[r, c] − pivot[c]) · scale[c] + shift[c]`.
    static func columns(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
        rows: Int, columns: Int, stride: Int,
        pivot: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
        relu: Bool
    ) {
        let clamp: Float = relu ? 0 : -.infinity
        let clamp8 = F8(repeating: clamp)
        for r in 0..<rows {
            let x = src + r * stride, y = dst + r * stride
            var c = 0
            while c + 8 <= columns {
                var v = (load8(x + c) - load8(pivot + c)) * load8(scale + c) + load8(shift + c)
                v.replace(with: clamp8, where: v .< clamp8)
                store8(v, y + c)
                c += 8
            }
            while c < columns {
                let v = (x[c] - pivot[c]) * scale[c] + shift[c]
                y[c] = v < clamp ? clamp : v
                c += 1
            }
        }
    }
}
