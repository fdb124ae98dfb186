// Mean squares of contiguous blocks: the statistic of RMSNorm and weight
// normalization (no mean to subtract, so no Welford and no pivot).

extension BlockMoments {
    /// Mean of squares of `p[0..<n]` as Moments(count: n, mean: Σx²/n, m2: 0),
    /// for RMSNorm and weight normalization. Merging with Chan's formula then
    /// gives the mean square of the union (its m2 is meaningless and unused).
    static func meanSquare<E: NormElement>(_ p: UnsafePointer<E>, _ n: Int) -> Moments {
        // scalar math: s += x · x
        var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8()
        var q = p
        let steps = n / 32
        for _ in 0..<steps {
            let x0 = E.load8(q), x1 = E.load8(q + 8), x2 = E.load8(q + 16), x3 = E.load8(q + 24)
            a0 += x0 * x0; a1 += x1 * x1; a2 += x2 * x2; a3 += x3 * x3
            q += 32
        }
        var sum = Double(((a0 + a1) + (a2 + a3)).sum())
        for i in (steps * 32)..<n { sum += Double(E.widen(p[i])) * Double(E.widen(p[i])) }
        let count = Double(n)
        if !sum.isFinite || sum < count * 0x1p-100 {
            // Float32 squares overflow beyond ~1.8e19 and lose bits below ~1e-19
            // (they reach the subnormal range): redo such blocks in Float64.
            sum = 0
            for i in 0..<n { sum += Double(E.widen(p[i])) * Double(E.widen(p[i])) }
        }
        return Moments(count: count, mean: sum / count, m2: 0)
    }
}
