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

/// The same outputs rounded by AVX-512 BF16 (`BFloat16Hardware.h`, taken where
/// `BFloat16Hardware.available`): a sweep's 16-value steps, its sums and this
/// row's outputs, in one C loop (`nk_bf16_hw_shifted_sums`), and a row without
/// a sweep in `nk_bf16_hw_elementwise`; the same operations per value as
/// `RowOutputPass` and `ShiftedRowSums.sweep`, so the same bits. The integer
/// rounding of the pair loop was ~12 of its ~30 vector operations per 16
/// values (docs/PERFORMANCE.md, "16-bit rows: hardware rounding inside the row
/// passes"). The last n mod 16 values go through `pairs`.
struct BFloat16HardwareOutput<A: ElementAffine, S: VectorStore>: RowSweepOutput {
    let pairs: BFloat16PairOutput<A, S>

    private var out: RowOutputPass<BFloat16, A, S> { pairs.natural }
    private var src: UnsafePointer<UInt16> { UnsafeRawPointer(out.src).assumingMemoryBound(to: UInt16.self) }
    private var dst: UnsafeMutablePointer<UInt16> {
        UnsafeMutableRawPointer(out.dst).assumingMemoryBound(to: UInt16.self)
    }

    @inline(__always) func write16(_ i: Int) { pairs.write16(i) }
    @inline(__always) func write8(_ i: Int) { pairs.write8(i) }
    @inline(__always) func write1(_ i: Int) { pairs.write1(i) }

    static var sumsInC: Bool { true }

    @inline(__always)
    func sumsAndWrite16(_ p: UnsafeRawPointer, _ n: Int, pivot: Float, sums: UnsafeMutablePointer<Double>,
                        squares: UnsafeMutablePointer<Double>) -> Int {
        nk_bf16_hw_shifted_sums(p.assumingMemoryBound(to: UInt16.self), n, pivot, sums, squares, src, dst,
                                out.c.pivot, out.c.scale, out.c.shift, out.affine.gammaOperand,
                                out.affine.betaOperand, S.streams ? 1 : 0)
    }

    @inline(__always) func writeRow(_ n: Int) {
        let whole = n / 16 * 16
        if whole > 0 {
            nk_bf16_hw_elementwise(src, dst, whole, out.c.pivot, out.c.scale, out.c.shift, out.affine.gammaOperand,
                                   out.affine.betaOperand, S.streams ? 1 : 0)
        }
        var i = whole
        if i + 8 <= n { write8(i); i += 8 }
        while i < n { write1(i); i += 1 }
    }
}
