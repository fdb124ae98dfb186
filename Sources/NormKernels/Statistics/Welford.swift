// Shifted Welford in Float32 SIMD lanes: the update step, its weights, the
// pairwise merge of lanes, and the one Float64 fallback. Every moments
// microkernel (row moments, column moments, wide-column moments, tiny units)
// is built from these.
//
// Why shifted Welford in SIMD lanes:
// - Welford's update never forms E[x²] − E[x]², so there is no cancellation.
// - Subtracting a pivot K close to the mean (`blockPivot`, `columnPivot`) first
//   makes x − K exact for data clustered far from zero (mean 1e4, std 1e-2): the
//   lanes then work on values of the size of the spread, and Float32 keeps ~7
//   digits of *them*. The lanes' mean of x − K rounds in proportion to |μ − K|,
//   so K is a mean of a few values, not the first one, and column lanes move K to
//   their running mean every `pivotGroup` rows (issue 19, AccuracyTests).
// - Every lane sees the same number of values, so the 1/k of the update is one
//   scalar per vector step shared by all 32 lanes (no per-element division).
// - Lanes are combined with Chan's formula: their means pairwise in Float32
//   (`mergeLanesPairwise`), their M2 partly in Float32 and then in Float64;
//   blocks merge in Float64 (`Moments.merged`).
// If Float32 overflows (|x − K| beyond ~1e19, e.g. values near 1e30) the block
// is recomputed in Float64 (`columnFloat64`), so huge inputs give finite,
// correct statistics.


/// One Welford step of 8 lanes that have each seen k − 1 values, with
/// r = 1/k and q = 1 − 1/k broadcast:
/// ```
/// d  = x − m
/// m' = m·q + x·r          (= m + d/k, written so that m' depends on m through one multiply-add)
/// s' = s + d·(x − m')
/// ```
/// The textbook m + (x − m)/k chains a subtract and a multiply-add through m
/// (7 cycles per step on Zen 4); here the chain is one multiply-add (4 cycles),
/// so 4 vectors of lanes keep the floating-point pipes busy instead of waiting.
@inline(__always)
func welfordStep(_ x: F8, _ m: inout F8, _ s: inout F8, r: F8, q: F8) {
    let d = x - m
    m = muladd(m, q, x * r)
    s = muladd(d, x - m, s)
}

/// The weights (r, q) = (1/k, 1 − 1/k) of Welford step k, from a table for the
/// first `count` steps: a scalar division per step (vdivss) costs more than the
/// whole vector update of 32 lanes (measured: 4096 values in L1, 0.46 µs with
/// the division, 0.32 µs with the table).
enum WelfordWeights {
    static let count = 512
    /// Pairs (1/k, 1 − 1/k) at index 2k, for k in 1..<count (index 0 unused).
    static var table: UnsafePointer<Float> { shared.value }

    /// Written once, when first used, and only read after (see `UncheckedSendable`).
    private static let shared = UncheckedSendable<UnsafePointer<Float>>({
        let t = UnsafeMutablePointer<Float>.allocate(capacity: 2 * count)
        t[0] = 0; t[1] = 0
        for k in 1..<count { t[2 * k] = 1 / Float(k); t[2 * k + 1] = 1 - 1 / Float(k) }
        return UnsafePointer(t)
    }())

    @inline(__always)
    static func step(_ k: Int, _ table: UnsafePointer<Float>) -> (r: F8, q: F8) {
        if k < count { return (F8(repeating: table[2 * k]), F8(repeating: table[2 * k + 1])) }
        let r = 1 / Float(k)
        return (F8(repeating: r), F8(repeating: 1 - r))
    }

    @inline(__always)
    static func scalar(_ k: Int, _ table: UnsafePointer<Float>) -> Float {
        k < count ? table[2 * k] : 1 / Float(k)
    }
}

extension Moments {
    /// One Welford step in Float64 with the next value `x` (already shifted by
    /// the caller's pivot):
    /// ```
    /// n += 1;  d = x − mean;  mean += d/n;  M2 += d·(x − mean)
    /// ```
    @inline(__always)
    mutating func welfordAdd(_ x: Double) {
        count += 1
        let d = x - mean
        mean += d / count
        m2 += d * (x - mean)
    }
}

extension BlockMoments {
    /// Welford in Float64 of `count` values `stride` apart from `p`, each minus
    /// `pivot`, added to `m` (the caller adds the pivot back to the mean).
    @inline(__always)
    static func welfordFloat64<E: NormElement>(_ p: UnsafePointer<E>, count: Int, stride: Int, pivot: Double,
                                               into m: inout Moments) {
        var q = p
        for _ in 0..<count {
            m.welfordAdd(Double(E.widen(q.pointee)) - pivot)
            q += stride
        }
    }

    /// The Float64 fallback: Welford on x − K (K = the first value) of `rows` values
    /// `stride` apart (stride 1: a contiguous run). Redoes blocks and columns whose
    /// Float32 lanes overflowed, and the remainder columns of the column kernels.
    static func columnFloat64<E: NormElement>(_ p: UnsafePointer<E>, rows: Int, stride: Int) -> Moments {
        let kd = Double(E.widen(p[0]))
        var m = Moments.empty
        welfordFloat64(p, count: rows, stride: stride, pivot: kd, into: &m)
        m.mean += kd
        return m
    }

    /// Chan's merge of two parts with the same count n per lane, lane by lane:
    /// mean = (a + b)/2,  M2 = M2_a + M2_b + (n/2)·(a − b)².
    /// In Float32: every term of M2 is positive (no cancellation), and the means
    /// are of x − K (K = the block's pivot), so each merge level adds a
    /// rounding of ~6e-8 relative; the Float64 merge it replaced cost a third of
    /// LayerNorm's forward on 200-value rows (docs/PERFORMANCE-HISTORY.md,
    /// "Welford lanes merge in Float32").
    /// Stage 1 passes zero M2s here and sums its lanes' M2 in Float64 instead:
    /// five Float32 levels left LayerNorm [256, 1000]'s 1/σ 1.5 ulp off.
    @inline(__always)
    static func mergePair<V: SIMD>(_ a: (V, V), _ b: (V, V), count n: Float) -> (V, V) where V.Scalar == Float {
        let d = a.0 - b.0
        return ((a.0 + b.0) * 0.5, a.1 + b.1 + d * d * (0.5 * n))
    }

    /// The 8 lanes of (mean, M2), each of `count` values, merged into one
    /// `Moments` of 8·count values: halves pairwise (8 → 4 → 2 → 1) with `mergePair`.
    @inline(__always)
    static func mergeLanesPairwise(_ m: F8, _ s: F8, count c: Float) -> Moments {
        let (m4, s4) = mergePair((m.lowHalf, s.lowHalf), (m.highHalf, s.highHalf), count: c)
        let (m2, s2) = mergePair((m4.lowHalf, s4.lowHalf), (m4.highHalf, s4.highHalf), count: 2 * c)
        let d = m2[0] - m2[1]
        return Moments(count: 8 * Double(c), mean: Double((m2[0] + m2[1]) * 0.5),
                       m2: Double(s2[0] + s2[1] + d * d * (2 * c)))
    }
}
