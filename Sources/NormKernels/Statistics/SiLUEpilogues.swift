// The SiLU epilogues of GroupNorm + SiLU's feature-vector path (H·W = 1) on
// 16-bit tensors (`GroupNormalization+SiLU.swift`): the fused row engine
// (`normalizeRowsFused`, x read in 16 bits and widened on load) hands each
// output's Float32 GroupNorm value v and its tensor offset o to the epilogue,
// which returns
//
//     y = silu(v·m + t),   m = 1 + scale[n, c],  t = shift[n, c]
//
// before the one rounding to the element type. Each is the arithmetic of
// `GroupNormalization.siluSweep` (the Float32 kernel's second sweep over v),
// lane for lane, so y16 == E.narrow(y32) bit for bit: silu(v) without
// modulation; with it, per (n, c) slot k = o (H·W = 1), silu(v) where m = 1 and
// t = 0 (`Apply.silu`'s rule: v·1 + 0 would turn −0 into +0), else silu(v·m + t).
// m and t are Float32 tables of N·C values, n-major.

/// No modulation: `silu(v)`.
struct SiLUEpilogue: FusedRowEpilogue {
    @inline(__always) func apply(_ v: F8, _ o: Int) -> F8 { silu8(v) }
    @inline(__always) func apply(_ v: Float, _ o: Int) -> Float { SiLUActivation.apply(v) }
}

/// Feature vectors (H·W = 1): the (n, c) slot of offset o is o itself.
struct FeatureSiLUEpilogue: FusedRowEpilogue {
    let multiplier: UnsafePointer<Float>
    let shift: UnsafePointer<Float>

    @inline(__always) func apply(_ v: F8, _ o: Int) -> F8 {
        let m = load8(multiplier + o), t = load8(shift + o)
        var z = muladd(v, m, t)
        z.replace(with: v, where: (m .== F8(repeating: 1)) .& (t .== F8()))
        return silu8(z)
    }

    @inline(__always) func apply(_ v: Float, _ o: Int) -> Float {
        let m = multiplier[o], t = shift[o]
        return SiLUActivation.apply(m == 1 && t == 0 ? v : muladd(v, m, t))
    }
}
