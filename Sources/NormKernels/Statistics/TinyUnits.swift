/// Many short contiguous units with SIMD lanes across units instead of along
/// them: InstanceNorm NCHW on small maps (unit (n, c) is the H·W ≤ `maxLength`
/// values of one channel), and short rows — LayerNorm and RMSNorm with
/// D ≤ `maxRowLength`, GroupNorm whose (n, g) groups are ≤ `maxRowLength` contiguous
/// values (feature vectors, NCHW small maps).
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
    /// Longest unit taken (measured: docs/PERFORMANCE-HISTORY.md).
    static let maxLength = 64

    /// Longest row taken by the row kernels (LayerNorm, RMSNorm, GroupNorm groups
    /// of contiguous values), forward, 1 thread, against the rows geometry
    /// (docs/PERFORMANCE-HISTORY.md): moments 1.4–3.7× faster up to 128 values, level at
    /// 192, slower at 256; mean squares (RMSNorm, whose block kernel has no lane
    /// merge to save) 1.3–1.6× faster up to 48, level at 64, slower from 96.
    static func maxRowLength(_ statistic: RowStatistic) -> Int {
        statistic == .moments ? 128 : 64
    }

    /// Longest segment whose backward row sums (Σg, Σg·x̂) go 8 slots per vector.
    /// Shorter than the forward's limit: the sweep writing dx stays per row, the
    /// lanes gather both x and dy, and GroupNorm gathers γ per lane as well. 1
    /// thread, interleaved runs: GroupNorm `[N, C]` groups of 1–8 values 2.1–2.7×
    /// faster, 16 level or faster, 32 slower (1024×1024, G = 32: 2.7–3.4 ms vs
    /// 2.0–2.3); LayerNorm rows of 64 and 128 values 0.6–0.9×.
    static let maxBackwardRowLength = 16

    /// Lane j = value i of unit `first + j` (units `first + j` past `last` repeat
    /// `last`), widened to Float32 (`E.widen`, exact).
    @inline(__always)
    private static func gather<E: NormElement>(_ p: UnsafePointer<E>, _ first: Int, _ last: Int, _ i: Int,
                                               _ length: Int) -> F8 {
        @inline(__always) func v(_ j: Int) -> Float { E.widen(p[min(first + j, last) * length + i]) }
        return F8(v(0), v(1), v(2), v(3), v(4), v(5), v(6), v(7))
    }

    /// Moments of units `first ..< first + 8` (clamped to `last`), unit u at p + u·length:
    /// Welford in 8 lanes on x − K with K = each unit's first value (the
    /// shifted form the block kernels use); non-finite lanes are redone in Float64.
    @inline(__always)
    static func moments8<E: NormElement>(_ p: UnsafePointer<E>, first: Int, last: Int, length: Int,
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
                ? result : BlockMoments.columnFloat64(p + (first + j) * length, rows: length, stride: 1)
        }
    }

    /// Mean squares of units `first ..< first + 8` (clamped to `last`) as
    /// Moments(count: length, mean: Σx²/length, m2: 0), as `BlockMoments.meanSquare`
    /// gives them: Float32 lanes, and a Float64 redo of lanes whose Float32 sum
    /// overflowed or fell where squares lose bits (below ~1e-19 per value).
    @inline(__always)
    static func meanSquare8<E: NormElement>(_ p: UnsafePointer<E>, first: Int, last: Int, length: Int,
                                            into out: UnsafeMutablePointer<Moments>) {
        var a = F8()
        for i in 0..<length {
            let x = gather(p, first, last, i, length)
            a = muladd(x, x, a)
        }
        let count = Double(length)
        for j in 0..<min(8, last - first + 1) {
            var sum = Double(a[j])
            if !sum.isFinite || sum < count * 0x1p-100 {
                sum = 0
                let q = p + (first + j) * length
                for i in 0..<length { sum += Double(E.widen(q[i])) * Double(E.widen(q[i])) }
            }
            out[j] = Moments(count: count, mean: sum / count, m2: 0)
        }
    }

    /// Σg and Σg·x̂ of units `first ..< first + 8` (clamped to `last`), with
    /// x̂ = (x − pivot)·scale + shift from `xhat` at slot `first + j` and
    /// g = dy·γ[(u % groups)·length + i] for value i of unit u (g = dy without γ:
    /// InstanceNorm, whose γ is per unit and applied by the caller). Float32 lanes
    /// (≤ `maxRowLength` values each), non-finite lanes redone by `BlockGradients`.
    @inline(__always)
    static func gradientSums8<E: NormElement>(_ x: UnsafePointer<E>, _ dy: UnsafePointer<E>, first: Int, last: Int,
                                              length: Int, xhat: CoefficientTable, gamma: UnsafePointer<Float>? = nil,
                                              groups: Int = 1, into out: UnsafeMutablePointer<GradientSums>) {
        @inline(__always) func coefficient(_ table: UnsafeMutablePointer<Float>) -> F8 {
            @inline(__always) func v(_ j: Int) -> Float { table[min(first + j, last)] }
            return F8(v(0), v(1), v(2), v(3), v(4), v(5), v(6), v(7))
        }
        let p = coefficient(xhat.pivot), s = coefficient(xhat.scale), t = coefficient(xhat.shift)
        var g = F8(), h = F8()
        // scalar math: Σg and Σg·x̂ with x̂ = (x − p)·s + t
        @inline(__always) func step(_ i: Int, _ d: F8) {
            g += d
            h = muladd(d, muladd(gather(x, first, last, i, length) - p, s, t), h)
        }
        if let gamma, groups > 1 {
            // Each lane's group has its own γ run.
            @inline(__always) func o(_ j: Int) -> UnsafePointer<Float> { gamma + (min(first + j, last) % groups) * length }
            let o0 = o(0), o1 = o(1), o2 = o(2), o3 = o(3), o4 = o(4), o5 = o(5), o6 = o(6), o7 = o(7)
            for i in 0..<length {
                step(i, gather(dy, first, last, i, length) * F8(o0[i], o1[i], o2[i], o3[i], o4[i], o5[i], o6[i], o7[i]))
            }
        } else if let gamma {
            for i in 0..<length { step(i, gather(dy, first, last, i, length) * F8(repeating: gamma[i])) }
        } else {
            for i in 0..<length { step(i, gather(dy, first, last, i, length)) }
        }
        for j in 0..<min(8, last - first + 1) {
            let sums = GradientSums(dy: Double(g[j]), dyXhat: Double(h[j]))
            let u = first + j
            out[j] = sums.isFinite ? sums
                : BlockGradients.contiguous(x + u * length, dy + u * length, length, xhat[u], mask: nil,
                                            gamma: gamma.map { $0 + (u % groups) * length })
        }
    }

    /// `dst[i] = (src[i] − pivot)·scale + shift` for one unit: a vector per 8
    /// values, then scalars (the same rounding either way).
    @inline(__always)
    static func normalize<E: NormElement>(_ src: UnsafePointer<E>, _ dst: UnsafeMutablePointer<E>, _ n: Int,
                                          _ k: AffineCoefficients) {
        let p = F8(repeating: k.pivot), s = F8(repeating: k.scale), t = F8(repeating: k.shift)
        var i = 0
        while i + 8 <= n { E.store8(muladd(E.load8(src + i) - p, s, t), dst + i); i += 8 }
        while i < n { dst[i] = E.narrow(muladd(E.widen(src[i]) - k.pivot, k.scale, k.shift)); i += 1 }
    }

    /// `dx[i] = a·dy[i] + (b·(x[i] − pivot) + c)` for one unit.
    @inline(__always)
    static func gradient<E: NormElement>(_ x: UnsafePointer<E>, _ dy: UnsafePointer<E>, _ dx: UnsafeMutablePointer<E>,
                                         _ n: Int, _ k: GradientCoefficients) {
        let a = F8(repeating: k.a), b = F8(repeating: k.b), c = F8(repeating: k.c), q = F8(repeating: k.pivot)
        var i = 0
        while i + 8 <= n { E.store8(muladd(a, E.load8(dy + i), muladd(b, E.load8(x + i) - q, c)), dx + i); i += 8 }
        while i < n {
            dx[i] = E.narrow(muladd(k.a, E.widen(dy[i]), muladd(k.b, E.widen(x[i]) - k.pivot, k.c)))
            i += 1
        }
    }
}
