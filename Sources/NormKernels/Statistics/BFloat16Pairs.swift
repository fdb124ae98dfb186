// BFloat16 rows sixteen values at a time in "pair order" (docs/PERFORMANCE.md,
// "BFloat16 rows: pair order"). A BFloat16 value is the top half of a Float32,
// so sixteen of them loaded as eight 32-bit words w (little endian) are:
// ```
// even = w << 16           values 0, 2, …, 14 as Float32 (exact)
// odd  = w & 0xFFFF0000    values 1, 3, …, 15 as Float32 (exact)
// ```
// one vector operation per 8 values, where widening in memory order costs a
// zero-extension and a shift (`BFloat16.load8`), and the row loops are bound by
// their vector operations (3 ports for ~50 per 16 values, perf annotate of the
// LayerNorm row loop). Rounding goes back in one blend (`nk_bf16_round_pairs`)
// instead of a pack and a lane permute (or two packs and extracts).
//
// The arithmetic per value is unchanged, so the bits are too:
// - outputs are elementwise: value 2j of a group meets γ[2j] and β[2j] when γ
//   and β are read in the same order (`pairOrder`, once per call);
// - the row sums keep their lanes: the Float32 kernel's lane l of its first
//   vector sums values 16k + l, of its second 16k + 8 + l, and joins the two
//   lane by lane at the end of a block. In pair order, lane j of `even` sums
//   values 16k + 2j and of `odd` 16k + 2j + 1, the same additions in the same
//   order; the join `s0 + s1` is lane 2j: even[j] + even[j + 4], lane 2j + 1:
//   odd[j] + odd[j + 4] (`joinedLanes`), the same Float32 additions.

import CNormSupport

enum BFloat16Pairs {
    /// Values 16k … 16k + 15 widened in pair order (see the file comment).
    @inline(__always)
    static func load16(_ p: UnsafePointer<BFloat16>) -> (even: F8, odd: F8) {
        let w = UnsafeRawPointer(p).loadUnaligned(as: SIMD8<UInt32>.self)
        return (unsafeBitCast(w &<< 16, to: F8.self), unsafeBitCast(w & 0xFFFF_0000, to: F8.self))
    }

    /// `s0 + s1` of the memory-order lanes, from lanes kept in pair order:
    /// lane 2j is even[j] + even[j + 4], lane 2j + 1 odd[j] + odd[j + 4].
    @inline(__always)
    static func joinedLanes(_ even: F8, _ odd: F8) -> F8 {
        nk_interleave4(even.lowHalf + even.highHalf, odd.lowHalf + odd.highHalf)
    }

    /// `src[0 ..< count]` (count a multiple of 16) in pair order: within each
    /// group of 16, values 0, 2, …, 14, then 1, 3, …, 15.
    static func pairOrder(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, count: Int) {
        var g = 0
        while g + 16 <= count {
            for j in 0..<8 {
                dst[g + j] = src[g + 2 * j]
                dst[g + 8 + j] = src[g + 2 * j + 1]
            }
            g += 16
        }
    }
}

/// The outputs of a normalized BFloat16 row (`RowOutputPass`'s arithmetic, the
/// same bits), sixteen values at a time in pair order: `pairs` reads γ and β
/// rearranged by `BFloat16Pairs.pairOrder`, `natural` writes the last n mod 16
/// values in memory order.
struct BFloat16PairOutput<A: ElementAffine, S: VectorStore>: RowSweepOutput {
    let natural: RowOutputPass<BFloat16, A, S>
    let pairs: A

    @inline(__always) func write16(_ i: Int) {
        let x = BFloat16Pairs.load16(natural.src + i)
        let even = pairs.apply(muladd(x.even - natural.p, natural.s, natural.t), i)
        let odd = pairs.apply(muladd(x.odd - natural.p, natural.s, natural.t), i + 8)
        S.store16(nk_bf16_round_pairs(even, odd), UnsafeMutableRawPointer(natural.dst + i))
    }

    @inline(__always) func write8(_ i: Int) { natural.write8(i) }
    @inline(__always) func write1(_ i: Int) { natural.write1(i) }
}
