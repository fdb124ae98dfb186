// LayerNorm row outputs of BFloat16 in pairs (docs/PERFORMANCE.md,
// "BFloat16 rows: pair order"; `BFloat16Pairs` has the loads and stores).
// The row loop is bound by its vector operations (3 ports for ~50 per 16
// values, perf annotate of the LayerNorm row loop); pairs take the output's
// widening from two operations per 8 values to one and the rounding's pack
// and permute to one blend. Each value goes through the same operations as
// in `RowOutputPass` and meets γ and β of its own column (deinterleaved once
// per call, `BFloat16Pairs.deinterleave`), so the outputs are the same bits.
//
// The row sums stay in memory order (`E.load8`): in pairs their lanes would
// have to be joined back at the end of each block, and LLVM moved that join
// into the loop (a lane shuffle of each accumulator per step, slower than the
// widening it saved; perf annotate).

import CNormSupport

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
