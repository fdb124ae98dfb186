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

/// Whether a call whose input and output hold `elements` values each should
/// stream its output past the cache: true when both together fill at least 3/4
/// of the last-level cache (L3, or 4× the L2 when hwloc reports no L3).
/// Measured on the 32 MiB-L3 machine (docs/PERFORMANCE-HISTORY.md): at 12–21 MB
/// streaming cost up to 3× (the output no longer stays in L3 for the next
/// call); at 32 MB it gained 1.6× (BatchNorm [4096, 1024] inference).
/// `NORMKERNELS_STREAMING=never|always` overrides the rule (for measurements).
///
/// Never in place (`output` is one of `inputs`): the output's lines were just
/// read, so an ordinary store only dirties a cached line, while a streaming
/// store of one half of a line evicts the other half before it is read.
func prefersStreamingStores(elements: Int, output: UnsafeMutablePointer<Float>, inputs: UnsafePointer<Float>?...) -> Bool {
    if inputs.contains(where: { $0 == UnsafePointer(output) }) { return false }
    return prefersStreamingStores(elements: elements)
}

func prefersStreamingStores(elements: Int) -> Bool {
    switch streamingOverride {
    case .some(true): return true
    case .some(false): return false
    case .none: break
    }
    return 4 * 2 * 4 * elements >= 3 * lastLevelCacheBytes
}

/// `prefersStreamingStores` for a single pass (inference: `x` read once, `y`
/// written once) on more than one thread: streaming only from 1.5× the
/// last-level cache of `x` and `y` together, unless the output is written as
/// `wideRows` (rows of ≥ `Apply.stripColumns` per-channel coefficients: NHWC, or
/// NCHW with H·W = 1).
///
/// Streaming stores are bound by the memory's write bandwidth; two cores writing
/// y through the cache keep most of an L3-sized x + y there instead. Measured
/// (BatchNorm and InstanceNorm inference, NCHW and NHWC, 2 threads, five
/// alternating rounds; docs/PERFORMANCE-HISTORY.md, "Ninth pass"): cached stores 1.47–1.57×
/// faster with x + y = 1.0× the L3, 1.2–1.34× at 1.25×, 1.07× at 1.5×, 0.92× at
/// 2×. On one thread streaming wins from 3/4 (cached 0.7–0.84×), and so it does
/// for rows of 1024 channels (BatchNorm [4096, 1024], NCHW and NHWC: cached
/// 0.93× on 2 threads, 0.52–0.57× on one), so both keep the general rule.
func prefersStreamingStores(singlePass elements: Int, threads: Int, wideRows: Bool,
                            output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>) -> Bool {
    guard prefersStreamingStores(elements: elements, output: output, inputs: input) else { return false }
    if streamingOverride != nil || threads < 2 || wideRows { return true }
    return 2 * 2 * 4 * elements >= 3 * lastLevelCacheBytes
}

private var lastLevelCacheBytes: Int {
    let topology = Topology.current
    return topology.l3CacheBytes > 0 ? topology.l3CacheBytes : 4 * topology.l2CacheBytes
}

private let streamingOverride: Bool? = {
    switch ProcessInfo.processInfo.environment["NORMKERNELS_STREAMING"] {
    case "always": return true
    case "never": return false
    default: return nil
    }
}()

/// The activation fused into an output loop, as a type so that each loop is
/// compiled without the ReLU's compare and blend when there is none.
protocol FusedActivation {
    static func apply(_ v: F8) -> F8
    static func apply(_ v: Float) -> Float
}

enum NoActivation: FusedActivation {
    @inline(__always) static func apply(_ v: F8) -> F8 { v }
    @inline(__always) static func apply(_ v: Float) -> Float { v }
}

/// max(v, 0), with NaN passed through as PyTorch's ReLU does.
enum ReLUActivation: FusedActivation {
    @inline(__always) static func apply(_ v: F8) -> F8 { v.replacing(with: 0, where: v .< 0) }
    @inline(__always) static func apply(_ v: Float) -> Float { v < 0 ? 0 : v }
}

enum Apply {
    /// `dst[i] = (src[i] − c.pivot) · c.scale + c.shift`, then max(·, 0) when `relu`
    /// (NaN stays NaN, as in PyTorch). `dst` may equal `src`.
    static func affine(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int,
        _ c: AffineCoefficients, relu: Bool, streaming: Bool = false
    ) {
        switch (streaming, relu) {
        case (true, true): affine(src, dst, n, c, StreamingStore.self, ReLUActivation.self)
        case (true, false): affine(src, dst, n, c, StreamingStore.self, NoActivation.self)
        case (false, true): affine(src, dst, n, c, CachedStore.self, ReLUActivation.self)
        case (false, false): affine(src, dst, n, c, CachedStore.self, NoActivation.self)
        }
    }

    @inline(__always)
    private static func affine<S: VectorStore, A: FusedActivation>(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int,
        _ c: AffineCoefficients, _: S.Type, _: A.Type
    ) {
        @inline(__always) func scalar(_ i: Int) {
            dst[i] = A.apply(muladd(src[i] - c.pivot, c.scale, c.shift))
        }
        let p = F8(repeating: c.pivot), s = F8(repeating: c.scale), t = F8(repeating: c.shift)
        var i = 0
        let head = S.prologue(dst, n)
        while i < head { scalar(i); i += 1 }
        while i + 16 <= n {
            // scalar math: y = act((x − p)·s + t)
            S.store(A.apply(muladd(load8(src + i) - p, s, t)), dst + i)
            S.store(A.apply(muladd(load8(src + i + 8) - p, s, t)), dst + i + 8)
            i += 16
        }
        while i + 8 <= n {
            S.store(A.apply(muladd(load8(src + i) - p, s, t)), dst + i)
            i += 8
        }
        while i < n { scalar(i); i += 1 }
    }

    /// LayerNorm/RMSNorm: `dst[i] = ((src[i] − pivot) · invStd + shift) · γ[i] + β[i]`,
    /// with γ = 1 and β = 0 where absent. With `segments` > 1 the same for each of
    /// `segments` runs of `n` values, `stride` apart, all with the same γ[0 ..< n]
    /// (GroupNorm NHWC unit (n, g): one run per position, γ of the group's channels).
    static func elementwise(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int,
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

    private static func elementwise<A: ElementAffine>(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int,
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
    private static func elementwise<A: ElementAffine, S: VectorStore>(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int,
        _ c: AffineCoefficients, _ a: A, _: S.Type
    ) {
        let p = F8(repeating: c.pivot), s = F8(repeating: c.scale), t = F8(repeating: c.shift)
        var i = 0
        let head = S.prologue(dst, n)
        while i < head { dst[i] = a.apply(muladd(src[i] - c.pivot, c.scale, c.shift), i); i += 1 }
        while i + 8 <= n {
            // scalar math: y = ((x − p)·r + t)·γ + β
            S.store(a.apply(muladd(load8(src + i) - p, s, t), i), dst + i)
            i += 8
        }
        while i < n { dst[i] = a.apply(muladd(src[i] - c.pivot, c.scale, c.shift), i); i += 1 }
    }
}

/// The elementwise affine after normalization: `v·γ[i] + β[i]`, `v·γ[i]` or
/// `v + β[i]`, as types so each combination compiles to its own loop.
protocol ElementAffine {
    func apply(_ v: F8, _ i: Int) -> F8
    func apply(_ v: Float, _ i: Int) -> Float
}

struct GammaBeta: ElementAffine {
    let gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>
    @inline(__always) func apply(_ v: F8, _ i: Int) -> F8 { muladd(v, load8(gamma + i), load8(beta + i)) }
    @inline(__always) func apply(_ v: Float, _ i: Int) -> Float { muladd(v, gamma[i], beta[i]) }
}

struct GammaOnly: ElementAffine {
    let gamma: UnsafePointer<Float>
    @inline(__always) func apply(_ v: F8, _ i: Int) -> F8 { v * load8(gamma + i) }
    @inline(__always) func apply(_ v: Float, _ i: Int) -> Float { v * gamma[i] }
}

struct BetaOnly: ElementAffine {
    let beta: UnsafePointer<Float>
    @inline(__always) func apply(_ v: F8, _ i: Int) -> F8 { v + load8(beta + i) }
    @inline(__always) func apply(_ v: Float, _ i: Int) -> Float { v + beta[i] }
}
