import CNormSupport
import Foundation

// The normalization pass: one fused multiply-add per element with coefficients
// folded per channel (or per element for LayerNorm/RMSNorm).
//
// The mean is split in two: a Float32 pivot p = Float(mean) subtracted first,
// and the rest folded into the shift. For data with mean 1e4 and std 1e-2,
// x − p is exact (Sterbenz) and small, so the output keeps full precision where
// the usual y = x·s + (β − mean·s) would lose ~6 digits to rounding x·s ≈ 1e6.
//
// Stores: when the tensors a call touches are larger than the last-level cache,
// the output is written with non-temporal stores (`nk_stream8`, a static inline
// C function that compiles into these Swift loops). A normal store first reads
// the destination line into cache (write-allocate), so streaming saves one of
// the three memory transfers per output element and keeps `x` in cache.

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

/// The activation fused into an output loop, as a type so that each loop is
/// compiled without the ReLU's compare and blend when there is none.
protocol FusedActivation {
    static func apply(_ v: F8) -> F8
    static func apply(_ v: Float) -> Float
    /// The activation's code in the C loops of `BFloat16Hardware.h` (0 none,
    /// 1 ReLU), nil where they have none (those loops stay in Swift).
    static var hardwareCode: Int32? { get }
}

extension FusedActivation {
    static var hardwareCode: Int32? { nil }
}

enum NoActivation: FusedActivation {
    @inline(__always) static func apply(_ v: F8) -> F8 { v }
    @inline(__always) static func apply(_ v: Float) -> Float { v }
    static var hardwareCode: Int32? { 0 }
}

/// max(v, 0), with NaN passed through as PyTorch's ReLU does.
enum ReLUActivation: FusedActivation {
    @inline(__always) static func apply(_ v: F8) -> F8 { v.replacing(with: 0, where: v .< 0) }
    @inline(__always) static func apply(_ v: Float) -> Float { v < 0 ? 0 : v }
    static var hardwareCode: Int32? { 1 }
}

/// The residual input of a fused add (BatchNorm + add + ReLU), as a type so
/// that loops without one compile without the extra load and add. `o` is the
/// element's offset from the loop's `src` (the residual has the input's layout).
protocol ResidualInput {
    func add(_ v: F8, _ o: Int) -> F8
    func add(_ v: Float, _ o: Int) -> Float
    /// `add` for the 16 values at `o` of a BFloat16 pair loop (BFloat16Pairs.swift):
    /// even- and odd-indexed values.
    func addPairs(_ even: F8, _ odd: F8, _ o: Int) -> (F8, F8)
    /// The residual of a sub-block starting `o` values further on.
    func advanced(by o: Int) -> Self
    /// Where the residual's values start (offset 0), nil without one: for the C
    /// loops of `BFloat16Hardware.h`.
    var start: UnsafeRawPointer? { get }
}

struct NoResidual: ResidualInput {
    var start: UnsafeRawPointer? { nil }
    @inline(__always) func add(_ v: F8, _ o: Int) -> F8 { v }
    @inline(__always) func add(_ v: Float, _ o: Int) -> Float { v }
    @inline(__always) func addPairs(_ even: F8, _ odd: F8, _ o: Int) -> (F8, F8) { (even, odd) }
    @inline(__always) func advanced(by o: Int) -> NoResidual { self }
}

/// v + r[o]: one Float32 add of the rounded normalized value, so the fused
/// output equals BatchNorm's output plus r, rounded once more, bit for bit.
/// r has the tensors' element type, widened exactly.
struct Residual<E: NormElement>: ResidualInput {
    let base: UnsafePointer<E>
    var start: UnsafeRawPointer? { UnsafeRawPointer(base) }
    @inline(__always) func add(_ v: F8, _ o: Int) -> F8 { v + E.load8(base + o) }
    @inline(__always) func add(_ v: Float, _ o: Int) -> Float { v + E.widen(base[o]) }
    @inline(__always) func addPairs(_ even: F8, _ odd: F8, _ o: Int) -> (F8, F8) {
        let (re, ro) = BFloat16Pairs.load(base + o)
        return (even + re, odd + ro)
    }
    @inline(__always) func advanced(by o: Int) -> Residual { Residual(base: base + o) }
}

enum Apply {
    /// `dst[i] = (src[i] − c.pivot) · c.scale + c.shift`, then max(·, 0) when `relu`
    /// (NaN stays NaN, as in PyTorch). `dst` may equal `src`.
    /// With `residual` (BatchNorm + add + ReLU), `residual[i]` is added to the
    /// rounded affine result before the activation: `act(((src[i] − p)·s + t) + r[i])`.
    /// `dst` may also equal `residual`.
    static func affine<E: NormElement>(
        _ src: UnsafePointer<E>, _ dst: UnsafeMutablePointer<E>, _ n: Int,
        _ c: AffineCoefficients, relu: Bool, streaming: Bool = false, residual: UnsafePointer<E>? = nil
    ) {
        if let residual {
            affine(src, dst, n, c, relu: relu, streaming: streaming, Residual(base: residual))
        } else {
            affine(src, dst, n, c, relu: relu, streaming: streaming, NoResidual())
        }
    }

    @inline(__always)
    private static func affine<E: NormElement, R: ResidualInput>(
        _ src: UnsafePointer<E>, _ dst: UnsafeMutablePointer<E>, _ n: Int,
        _ c: AffineCoefficients, relu: Bool, streaming: Bool, _ r: R
    ) {
        switch (streaming, relu) {
        case (true, true): affine(src, dst, n, c, r, StreamingStore.self, ReLUActivation.self)
        case (true, false): affine(src, dst, n, c, r, StreamingStore.self, NoActivation.self)
        case (false, true): affine(src, dst, n, c, r, CachedStore.self, ReLUActivation.self)
        case (false, false): affine(src, dst, n, c, r, CachedStore.self, NoActivation.self)
        }
    }

    @inline(__always)
    static func affine<E: NormElement, R: ResidualInput, S: VectorStore, A: FusedActivation>(
        _ src: UnsafePointer<E>, _ dst: UnsafeMutablePointer<E>, _ n: Int,
        _ c: AffineCoefficients, _ r: R, _: S.Type, _: A.Type
    ) {
        @inline(__always) func scalar(_ i: Int) {
            dst[i] = E.narrow(A.apply(r.add(muladd(E.widen(src[i]) - c.pivot, c.scale, c.shift), i)))
        }
        let p = F8(repeating: c.pivot), s = F8(repeating: c.scale), t = F8(repeating: c.shift)
        var i = 0
        let head = S.prologue(dst, n)
        while i < head { scalar(i); i += 1 }
        if A.self == SiLUActivation.self, R.self == NoResidual.self, n - i >= 16, let code = SiLUWide.enabled(E.self) {
            // SiLU on a CPU with AVX-512: the same lanes 16 at a time in C
            // (SiLUWide.swift, SiLUAVX512.h; the same bits), whole 16-value steps.
            let count = (n - i) / 16 * 16
            nk_silu512_affine(src + i, dst + i, count, c.pivot, c.scale, c.shift, code, S.streams ? 1 : 0)
            i += count
        }
        if BFloat16Pairs.enabled(E.self), BFloat16Hardware.available, let code = A.hardwareCode, n - i >= 16 {
            // BFloat16 on a CPU with AVX-512 BF16: the same loop in C, rounded by
            // `vcvtne2ps2bf16` (BFloat16Hardware.h; the same bits).
            let count = (n - i) / 16 * 16
            nk_bf16_hw_affine(UnsafeRawPointer(src + i).assumingMemoryBound(to: UInt16.self),
                              UnsafeMutableRawPointer(dst + i).assumingMemoryBound(to: UInt16.self), count,
                              c.pivot, c.scale, c.shift,
                              r.start.map { ($0 + i * MemoryLayout<E>.stride).assumingMemoryBound(to: UInt16.self) },
                              code, S.streams ? 1 : 0)
            i += count
        }
        if BFloat16Pairs.enabled(E.self) {
            // BFloat16: 16 values as even and odd lanes (BFloat16Pairs.swift), the same math per value.
            while i + 16 <= n {
                let (xe, xo) = BFloat16Pairs.load(src + i)
                let (ve, vo) = r.addPairs(muladd(xe - p, s, t), muladd(xo - p, s, t), i)
                S.storePairs(A.apply(ve), A.apply(vo), dst + i)
                i += 16
            }
        }
        while i + 16 <= n {
            // scalar math: y = act((x − p)·s + t (+ r))
            S.store(A.apply(r.add(muladd(E.load8(src + i) - p, s, t), i)), dst + i)
            S.store(A.apply(r.add(muladd(E.load8(src + i + 8) - p, s, t), i + 8)), dst + i + 8)
            i += 16
        }
        while i + 8 <= n {
            S.store(A.apply(r.add(muladd(E.load8(src + i) - p, s, t), i)), dst + i)
            i += 8
        }
        while i < n { scalar(i); i += 1 }
    }

    /// LayerNorm/RMSNorm: `dst[i] = ((src[i] − pivot) · invStd + shift) · γ[i] + β[i]`,
    /// with γ = 1 and β = 0 where absent. With `segments` > 1 the same for each of
    /// `segments` runs of `n` values, `stride` apart, all with the same γ[0 ..< n]
    /// (GroupNorm NHWC unit (n, g): one run per position, γ of the group's channels).
    static func elementwise<E: NormElement>(
        _ src: UnsafePointer<E>, _ dst: UnsafeMutablePointer<E>, _ n: Int,
        pivot: Float, invStd: Float, shift: Float,
        gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, streaming: Bool = false,
        segments: Int = 1, stride: Int = 0
    ) {
        let unit = AffineCoefficients(pivot: pivot, scale: invStd, shift: shift)
        switch (gamma, beta) {
        case (nil, nil):
            for k in 0..<segments {
                affine(src + k * stride, dst + k * stride, n, unit, relu: false, streaming: streaming)
            }
        case let (g?, b?):
            elementwise(src, dst, n, unit, GammaBeta(gamma: g, beta: b), segments, stride, streaming)
        case let (g?, nil):
            elementwise(src, dst, n, unit, GammaOnly(gamma: g), segments, stride, streaming)
        case let (nil, b?):
            elementwise(src, dst, n, unit, BetaOnly(beta: b), segments, stride, streaming)
        }
    }

    private static func elementwise<E: NormElement, A: ElementAffine>(
        _ src: UnsafePointer<E>, _ dst: UnsafeMutablePointer<E>, _ n: Int,
        _ c: AffineCoefficients, _ a: A, _ segments: Int, _ stride: Int, _ streaming: Bool
    ) {
        if streaming {
            for k in 0..<segments { elementwise(src + k * stride, dst + k * stride, n, c, a, StreamingStore.self) }
        } else {
            for k in 0..<segments { elementwise(src + k * stride, dst + k * stride, n, c, a, CachedStore.self) }
        }
    }

    /// One loop per combination of γ and β present (`ElementAffine`): a
    /// `γ != nil ? load : 1` inside the loop was not hoisted and cost a
    /// test-and-branch per vector (perf annotate, GroupNorm `[32, 512, 4, 4]`).
    @inline(__always)
    private static func elementwise<E: NormElement, A: ElementAffine, S: VectorStore>(
        _ src: UnsafePointer<E>, _ dst: UnsafeMutablePointer<E>, _ n: Int,
        _ c: AffineCoefficients, _ a: A, _: S.Type
    ) {
        let p = F8(repeating: c.pivot), s = F8(repeating: c.scale), t = F8(repeating: c.shift)
        var i = 0
        let head = S.prologue(dst, n)
        while i < head { dst[i] = E.narrow(a.apply(muladd(E.widen(src[i]) - c.pivot, c.scale, c.shift), i)); i += 1 }
        if BFloat16Pairs.enabled(E.self), BFloat16Hardware.available, n - i >= 16 {
            // BFloat16 on a CPU with AVX-512 BF16: the same loop in C, rounded by
            // `vcvtne2ps2bf16` (BFloat16Hardware.h; the same bits).
            let count = (n - i) / 16 * 16
            nk_bf16_hw_elementwise(UnsafeRawPointer(src + i).assumingMemoryBound(to: UInt16.self),
                                   UnsafeMutableRawPointer(dst + i).assumingMemoryBound(to: UInt16.self), count,
                                   c.pivot, c.scale, c.shift, a.gammaOperand.map { $0 + i },
                                   a.betaOperand.map { $0 + i }, S.streams ? 1 : 0)
            i += count
        }
        if E.self == BFloat16.self {
            // Sixteen values rounded at once (`nk_bf16_round16`: the bits of two
            // `store8`, one NaN test and one pack where two calls take two).
            while i + 16 <= n {
                let v0 = a.apply(muladd(E.load8(src + i) - p, s, t), i)
                let v1 = a.apply(muladd(E.load8(src + i + 8) - p, s, t), i + 8)
                S.storeWords(unsafeBitCast(nk_bf16_round16(v0, v1), to: BFloat16Pairs.Words.self),
                             UnsafeMutableRawPointer(dst + i))
                i += 16
            }
        }
        while i + 8 <= n {
            // scalar math: y = ((x − p)·r + t)·γ + β
            S.store(a.apply(muladd(E.load8(src + i) - p, s, t), i), dst + i)
            i += 8
        }
        while i < n { dst[i] = E.narrow(a.apply(muladd(E.widen(src[i]) - c.pivot, c.scale, c.shift), i)); i += 1 }
    }
}

/// The elementwise affine after normalization: `v·γ[i] + β[i]`, `v·γ[i]` or
/// `v + β[i]`, as types so each combination compiles to its own loop.
protocol ElementAffine {
    func apply(_ v: F8, _ i: Int) -> F8
    func apply(_ v: Float, _ i: Int) -> Float
    /// γ and β for the C loops of `BFloat16Hardware.h` (nil where absent), which
    /// apply them as `apply` does.
    var gammaOperand: UnsafePointer<Float>? { get }
    var betaOperand: UnsafePointer<Float>? { get }
}

struct GammaBeta: ElementAffine {
    let gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>
    var gammaOperand: UnsafePointer<Float>? { gamma }
    var betaOperand: UnsafePointer<Float>? { beta }
    @inline(__always) func apply(_ v: F8, _ i: Int) -> F8 { muladd(v, load8(gamma + i), load8(beta + i)) }
    @inline(__always) func apply(_ v: Float, _ i: Int) -> Float { muladd(v, gamma[i], beta[i]) }
}

struct GammaOnly: ElementAffine {
    let gamma: UnsafePointer<Float>
    var gammaOperand: UnsafePointer<Float>? { gamma }
    var betaOperand: UnsafePointer<Float>? { nil }
    @inline(__always) func apply(_ v: F8, _ i: Int) -> F8 { v * load8(gamma + i) }
    @inline(__always) func apply(_ v: Float, _ i: Int) -> Float { v * gamma[i] }
}

struct BetaOnly: ElementAffine {
    let beta: UnsafePointer<Float>
    var gammaOperand: UnsafePointer<Float>? { nil }
    var betaOperand: UnsafePointer<Float>? { beta }
    @inline(__always) func apply(_ v: F8, _ i: Int) -> F8 { v + load8(beta + i) }
    @inline(__always) func apply(_ v: Float, _ i: Int) -> Float { v + beta[i] }
}
