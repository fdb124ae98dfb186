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

    /// Strided columns: for each of `rows` rows of `columns` values (row stride
    /// `stride`), `dst[r, c] = (src[r, c] − pivot[c]) · scale[c] + shift[c]`.
    static func columns(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
        rows: Int, columns: Int, stride: Int,
        pivot: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
        relu: Bool, streaming: Bool = false
    ) {
        if columns < 8 && stride == columns {
            // Narrow rows (NHWC with C < 8): k rows at a time as one row of k·C
            // values with the coefficients repeated k times, as the statistics do.
            let k = BlockMoments.foldedRows(columns: columns), width = k * columns
            let superRows = rows / k
            if superRows > 0 {
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 3 * width) { wide in
                    let p = wide.baseAddress!, s = p + width, t = p + 2 * width
                    for j in 0..<width { p[j] = pivot[j % columns]; s[j] = scale[j % columns]; t[j] = shift[j % columns] }
                    self.columns(src, dst, rows: superRows, columns: width, stride: width,
                                 pivot: p, scale: s, shift: t, relu: relu, streaming: streaming)
                }
            }
            let done = superRows * k
            if done < rows {
                rowByRow(src + done * columns, dst + done * columns, rows - done, columns, stride,
                         pivot, scale, shift, relu: relu, streaming: false)
            }
            return
        }
        // Stream only when every row starts 32-byte aligned: a scalar store into
        // a line that non-temporal stores are filling forces that line through
        // the cache and costs far more than streaming saves (measured 10× slower
        // on 64-channel NHWC rows with a 16-byte-aligned base).
        let aligned = stride % 8 == 0 && Int(bitPattern: UInt(bitPattern: dst)) & 31 == 0
        rowByRow(src, dst, rows, columns, stride, pivot, scale, shift, relu: relu, streaming: streaming && aligned)
    }

    /// Picks the specialization of the row loop.
    private static func rowByRow(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
        _ rows: Int, _ columns: Int, _ stride: Int,
        _ pivot: UnsafePointer<Float>, _ scale: UnsafePointer<Float>, _ shift: UnsafePointer<Float>,
        relu: Bool, streaming: Bool
    ) {
        switch (streaming, relu) {
        case (true, true):
            self.columns(src, dst, rows, columns, stride, pivot, scale, shift, StreamingStore.self, ReLUActivation.self)
        case (true, false):
            self.columns(src, dst, rows, columns, stride, pivot, scale, shift, StreamingStore.self, NoActivation.self)
        case (false, true):
            self.columns(src, dst, rows, columns, stride, pivot, scale, shift, CachedStore.self, ReLUActivation.self)
        case (false, false):
            self.columns(src, dst, rows, columns, stride, pivot, scale, shift, CachedStore.self, NoActivation.self)
        }
    }

    /// Out of line: inlined into the kernels' closures, the vector loop kept its
    /// coefficient pointers on the stack and ran at a third of its speed here
    /// (InstanceNorm NHWC training spent twice as long writing y as inference).
    @inline(never)
    private static func columns<S: VectorStore, A: FusedActivation>(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
        _ rows: Int, _ columns: Int, _ stride: Int,
        _ pivot: UnsafePointer<Float>, _ scale: UnsafePointer<Float>, _ shift: UnsafePointer<Float>,
        _: S.Type, _: A.Type
    ) {
        if columns >= stripColumns {
            strips(src, dst, rows, columns, stride, pivot, scale, shift, S.self, A.self)
            return
        }
        for r in 0..<rows { row(src, dst, r, from: 0, columns, stride, pivot, scale, shift, S.self, A.self) }
    }

    /// Row r of `columns(…)` from column `start` on.
    @inline(__always)
    private static func row<S: VectorStore, A: FusedActivation>(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ r: Int, from start: Int,
        _ columns: Int, _ stride: Int,
        _ pivot: UnsafePointer<Float>, _ scale: UnsafePointer<Float>, _ shift: UnsafePointer<Float>,
        _: S.Type, _: A.Type
    ) {
        let x = src + r &* stride, y = dst + r &* stride
        @inline(__always) func scalar(_ c: Int) {
            y[c] = A.apply(muladd(x[c] - pivot[c], scale[c], shift[c]))
        }
        var c = start
        let head = start + S.prologue(y + start, columns - start)
        while c < head { scalar(c); c &+= 1 }
        while c &+ 8 <= columns {
            // scalar math: y[c] = act((x[c] − p[c])·s[c] + t[c])
            S.store(A.apply(muladd(load8(x + c) - load8(pivot + c), load8(scale + c), load8(shift + c))), y + c)
            c &+= 8
        }
        while c < columns { scalar(c); c &+= 1 }
    }

    /// Wide rows in strips of `rowsPerStrip` rows: each 16-column tile loads its
    /// coefficients once and runs down the strip, so 8 values cost one load and
    /// one store instead of four loads and a store. Same arithmetic per value.
    /// (Rows start 32-byte aligned whenever S streams: `columns(…)` checks.) Out of
    /// line, so that the row loop of narrower rows keeps its registers.
    @inline(never)
    private static func strips<S: VectorStore, A: FusedActivation>(
        _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
        _ rows: Int, _ columns: Int, _ stride: Int,
        _ pivot: UnsafePointer<Float>, _ scale: UnsafePointer<Float>, _ shift: UnsafePointer<Float>,
        _: S.Type, _: A.Type
    ) {
        var r = 0
        while r < rows {
            let n = min(rowsPerStrip, rows - r)
            var c = 0
            while c &+ 16 <= columns {
                let p0 = load8(pivot + c), p1 = load8(pivot + c + 8), s0 = load8(scale + c), s1 = load8(scale + c + 8)
                let t0 = load8(shift + c), t1 = load8(shift + c + 8)
                var o = r &* stride &+ c
                for _ in 0..<n {
                    S.store(A.apply(muladd(load8(src + o) - p0, s0, t0)), dst + o)
                    S.store(A.apply(muladd(load8(src + o + 8) - p1, s1, t1)), dst + o + 8)
                    o &+= stride
                }
                c &+= 16
            }
            if c < columns {
                for i in r..<(r + n) { row(src, dst, i, from: c, columns, stride, pivot, scale, shift, S.self, A.self) }
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
