/// Many short contiguous units — InstanceNorm NCHW on small maps, where unit
/// (n, c) is the H·W ≤ `TinyUnits.maxLength` values of one channel — with SIMD
/// lanes across units instead of along them.
///
/// The rows geometry gives every unit its own reduce, merge, finalize and output
/// call: ~80–190 ns of fixed work, against ~1 ns of arithmetic for 4 values
/// (InstanceNorm `[64, 1024, 2, 2]`: 6.2 ms, PyTorch 1.1 ms). Here 8 consecutive
/// units form the 8 lanes of a vector: step i loads value i of each (a gather
/// done with scalar loads; the 8 units are 8·H·W contiguous values, in L1), so
/// one Welford chain of H·W steps yields 8 units' moments.
///
/// Results depend only on a unit's own values (lanes never mix), so they are the
/// same for any thread count and any position of the unit in its group of 8:
/// the last units % 8 units run through the same lane code with the lanes of
/// missing units fed a copy of the last unit's values and then ignored.
enum TinyUnits {
    /// Longest unit taken (measured: docs/PERFORMANCE.md).
    static let maxLength = 64

    /// Units per parallel work item: a fixed partition, independent of the thread count.
    static let chunk = 512

    static func chunks(_ units: Int) -> Int { (units + chunk - 1) / chunk }

    /// Parallel-threshold cost of a chunk: its values plus ~8 values' worth of
    /// fixed work per unit (coefficients, the scalar ends of each unit's loops).
    static func chunkCost(valuesPerUnit: Int) -> Int { chunk * (valuesPerUnit + 8) }

    /// `body(units)` for every chunk of `units` units, chunks spread over the workers.
    static func forEachChunk(units: Int, valuesPerUnit: Int, threading: Threading, _ body: (Range<Int>) -> Void) {
        Parallel.forEach(count: chunks(units), elementsPerItem: chunkCost(valuesPerUnit: valuesPerUnit),
                         threading: threading) { range in
            for i in range { body((i * chunk)..<min(units, (i + 1) * chunk)) }
        }
    }

    /// Lane j = value i of unit `first + j` (units `first + j` past `last` repeat `last`).
    @inline(__always)
    private static func gather(_ p: UnsafePointer<Float>, _ first: Int, _ last: Int, _ i: Int, _ length: Int) -> F8 {
        @inline(__always) func v(_ j: Int) -> Float { p[min(first + j, last) * length + i] }
        return F8(v(0), v(1), v(2), v(3), v(4), v(5), v(6), v(7))
    }

    /// Moments of units `first ..< first + 8` (clamped to `last`), unit u at p + u·length:
    /// Welford in 8 lanes on x − K with K = each unit's first value (the
    /// shifted form the block kernels use); non-finite lanes are redone in Float64.
    @inline(__always)
    static func moments8(_ p: UnsafePointer<Float>, first: Int, last: Int, length: Int,
                         into out: UnsafeMutablePointer<Moments>) {
        let k = gather(p, first, last, 0, length)
        var m = F8(), s = F8()
        let weights = WelfordWeights.table
        for i in 0..<length {
            let (r, q) = WelfordWeights.step(i + 1, weights)
            welfordStep(gather(p, first, last, i, length) - k, &m, &s, r: r, q: q)
        }
        let count = Double(length)
        for j in 0..<min(8, last - first + 1) {
            let result = Moments(count: count, mean: Double(k[j]) + Double(m[j]), m2: Double(s[j]))
            out[j] = result.mean.isFinite && result.m2.isFinite
                ? result : BlockMoments.contiguousFloat64(p + (first + j) * length, length)
        }
    }

    /// Σdy and Σdy·x̂ of units `first ..< first + 8` (clamped to `last`), with
    /// x̂ = (x − pivot)·scale + shift from `xhat` at slot `first + j`; Float32
    /// lanes (≤ `maxLength` values each), non-finite lanes redone by `BlockGradients`.
    @inline(__always)
    static func gradientSums8(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, first: Int, last: Int,
                              length: Int, xhat: CoefficientTable, into out: UnsafeMutablePointer<GradientSums>) {
        @inline(__always) func coefficient(_ table: UnsafeMutablePointer<Float>) -> F8 {
            @inline(__always) func v(_ j: Int) -> Float { table[min(first + j, last)] }
            return F8(v(0), v(1), v(2), v(3), v(4), v(5), v(6), v(7))
        }
        let p = coefficient(xhat.pivot), s = coefficient(xhat.scale), t = coefficient(xhat.shift)
        var g = F8(), h = F8()
        for i in 0..<length {
            let d = gather(dy, first, last, i, length)
            g += d
            // scalar math: Σdy·x̂ with x̂ = (x − p)·s + t
            h = muladd(d, muladd(gather(x, first, last, i, length) - p, s, t), h)
        }
        for j in 0..<min(8, last - first + 1) {
            let sums = GradientSums(dy: Double(g[j]), dyXhat: Double(h[j]))
            let u = first + j
            out[j] = sums.isFinite ? sums
                : BlockGradients.contiguous(x + u * length, dy + u * length, length, xhat[u], mask: nil, gamma: nil)
        }
    }

    /// `dst[i] = (src[i] − pivot)·scale + shift` for one unit: a vector per 8
    /// values, then scalars (the same rounding either way).
    @inline(__always)
    static func normalize(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int,
                          _ k: AffineCoefficients) {
        let p = F8(repeating: k.pivot), s = F8(repeating: k.scale), t = F8(repeating: k.shift)
        var i = 0
        while i + 8 <= n { store8(muladd(load8(src + i) - p, s, t), dst + i); i += 8 }
        while i < n { dst[i] = muladd(src[i] - k.pivot, k.scale, k.shift); i += 1 }
    }

    /// `dx[i] = a·dy[i] + (b·(x[i] − pivot) + c)` for one unit.
    @inline(__always)
    static func gradient(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                         _ n: Int, _ k: GradientCoefficients) {
        let a = F8(repeating: k.a), b = F8(repeating: k.b), c = F8(repeating: k.c), q = F8(repeating: k.pivot)
        var i = 0
        while i + 8 <= n { store8(muladd(a, load8(dy + i), muladd(b, load8(x + i) - q, c)), dx + i); i += 8 }
        while i < n { dx[i] = muladd(k.a, dy[i], muladd(k.b, x[i] - k.pivot, k.c)); i += 1 }
    }
}
