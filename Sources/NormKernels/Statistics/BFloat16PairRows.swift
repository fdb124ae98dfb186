// BFloat16 row statistics and LayerNorm row outputs in pairs (docs/PERFORMANCE.md,
// "BFloat16 rows: pair order"; `BFloat16Pairs` has the loads and stores).
// The row loops are bound by their vector operations (3 ports for ~50 per 16
// values, perf annotate of the LayerNorm row loop); pairs take widening from
// two operations per 8 values to one and rounding's pack and permute to one blend.
//
// The arithmetic per value is unchanged, so the bits are too:
// - outputs are elementwise: value 2j of a group meets γ[2j] and β[2j] when γ
//   and β are read in the same order (`BFloat16Pairs.deinterleave`, once per call);
// - the row sums keep their lanes: the Float32 kernel's lane l of its first
//   vector sums values 16k + l, of its second 16k + 8 + l, and joins the two
//   lane by lane at the end of a block. In pairs, lane j of `even` sums
//   values 16k + 2j and of `odd` 16k + 2j + 1, the same additions in the same
//   order; the join `s0 + s1` is lane 2j: even[j] + even[j + 4], lane 2j + 1:
//   odd[j] + odd[j + 4] (`joinedLanes`), the same Float32 additions, and a
//   single memory-order vector is `nk_interleave4` of the halves.

import CNormSupport

extension BFloat16Pairs {
    /// `s0 + s1` of the memory-order lanes, from lanes kept in pairs:
    /// lane 2j is even[j] + even[j + 4], lane 2j + 1 odd[j] + odd[j + 4].
    @inline(__always)
    static func joinedLanes(_ even: F8, _ odd: F8) -> F8 {
        nk_interleave4(even.lowHalf + even.highHalf, odd.lowHalf + odd.highHalf)
    }
}

/// The outputs of a normalized BFloat16 row (`RowOutputPass`'s arithmetic, the
/// same bits), sixteen values at a time in pairs: `pairs` reads γ and β
/// deinterleaved by `BFloat16Pairs.deinterleave`, `natural` writes the last
/// n mod 16 values in memory order.
struct BFloat16PairOutput<A: ElementAffine, S: VectorStore>: RowSweepOutput {
    let natural: RowOutputPass<BFloat16, A, S>
    let pairs: A

    @inline(__always) func write16(_ i: Int) {
        let x = BFloat16Pairs.load(natural.src + i)
        let even = pairs.apply(muladd(x.even - natural.p, natural.s, natural.t), i)
        let odd = pairs.apply(muladd(x.odd - natural.p, natural.s, natural.t), i + 8)
        S.storePairs(even, odd, natural.dst + i)
    }

    @inline(__always) func write8(_ i: Int) { natural.write8(i) }
    @inline(__always) func write1(_ i: Int) { natural.write1(i) }
}
