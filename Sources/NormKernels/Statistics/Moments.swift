/// Count, mean and sum of squared deviations (M2) of a set of values, in Float64.
///
/// Partial moments merge exactly with Chan's formula:
/// ```
/// n  = nA + nB
/// δ  = meanB − meanA
/// mean = meanA + δ·nB/n
/// M2 = M2A + M2B + δ²·nA·nB/n
/// ```
/// The biased variance is M2/n (used to normalize); the unbiased one is M2/(n − 1)
/// (stored in running statistics, as PyTorch does).
public struct Moments: Sendable, Hashable {
    public var count: Double
    public var mean: Double
    public var m2: Double

    @inlinable
    public init(count: Double, mean: Double, m2: Double) {
        self.count = count
        self.mean = mean
        self.m2 = m2
    }

    public static let empty = Moments(count: 0, mean: 0, m2: 0)

    /// M2/n, the variance used to normalize.
    public var biasedVariance: Double { count > 0 ? m2 / count : .nan }
    /// M2/(n − 1), Bessel-corrected.
    public var unbiasedVariance: Double { count > 1 ? m2 / (count - 1) : .nan }

    /// Chan's exact merge of two disjoint sets' moments.
    @inlinable
    public func merged(with other: Moments) -> Moments {
        if other.count == 0 { return self }
        if count == 0 { return other }
        let n = count + other.count
        let delta = other.mean - mean
        let fraction = other.count / n
        return Moments(
            count: n,
            mean: mean + delta * fraction,
            m2: m2 + other.m2 + delta * delta * count * fraction)
    }

    /// Moments of the union of `k` parts that all have the same count n (the
    /// columns of one row block): Chan's merge of k parts at once,
    /// ```
    /// mean = (Σ meanᵢ) / k        M2 = Σ M2ᵢ + n · Σ (meanᵢ − mean)²
    /// ```
    /// summed in part order (two passes over the k means, no division per part).
    @inline(__always)
    static func equalCounts(_ parts: UnsafePointer<Moments>, _ k: Int) -> Moments {
        if k == 1 { return parts[0] }
        var sum = 0.0, m2 = 0.0
        for i in 0..<k { sum += parts[i].mean; m2 += parts[i].m2 }
        let mean = sum / Double(k)
        var spread = 0.0
        for i in 0..<k {
            let d = parts[i].mean - mean
            spread += d * d
        }
        let n = parts[0].count
        return Moments(count: n * Double(k), mean: mean, m2: m2 + n * spread)
    }

    /// Merges `parts` pairwise in a fixed tree: ((0,1),(2,3)),… The shape of the
    /// tree depends only on `parts.count`, so the result is reproducible, and
    /// pairwise merging keeps rounding error growing with log(count).
    static func treeMerge(_ parts: UnsafeBufferPointer<Moments>) -> Moments {
        treeMerge(count: parts.count) { parts[$0] }
    }

    /// Tree merge of `count` moments read through `element` (e.g. a strided view).
    @inline(__always)
    static func treeMerge(count: Int, _ element: (Int) -> Moments) -> Moments {
        func merge(_ lo: Int, _ hi: Int) -> Moments {
            switch hi - lo {
            case 0: return .empty
            case 1: return element(lo)
            case 2: return element(lo).merged(with: element(lo + 1))
            default:
                let mid = lo + (hi - lo) / 2
                return merge(lo, mid).merged(with: merge(mid, hi))
            }
        }
        return merge(0, count)
    }
}
