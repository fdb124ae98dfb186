// The SiLU epilogues of GroupNorm + SiLU's row-engine paths on 16-bit tensors
// (`GroupNormalization+SiLU.swift`): the fused row engine (`normalizeRowsFused`,
// x read in 16 bits and widened on load) hands each output's Float32 GroupNorm
// value v and its tensor offset o to the epilogue, which returns
//
//     y = silu(v·m + t),   m = 1 + scale[n, c],  t = shift[n, c]
//
// before the one rounding to the element type. Each epilogue is the arithmetic
// of `GroupNormalization.siluSweep` for its layout (the Float32 kernel's second
// sweep over v), lane for lane, so y16 == E.narrow(y32) bit for bit:
// - no modulation: silu(v);
// - runs of one (n, c) (NCHW maps, and H·W = 1 in either layout: `Apply.silu`
//   per run): silu(v) where m = 1 and t = 0 (v·1 + 0 would turn −0 into +0),
//   else silu(v·m + t);
// - NHWC maps: silu(v·m + t), m and t per channel along the row.
// m and t are Float32 tables of N·C values, n-major.

/// No modulation: `silu(v)`.
struct SiLUEpilogue: FusedRowEpilogue {
    @inline(__always) func apply(_ v: F8, _ o: Int) -> F8 { silu8(v) }
    @inline(__always) func apply(_ v: Float, _ o: Int) -> Float { SiLUActivation.apply(v) }
}

/// NCHW (and H·W = 1): offset o is in the run of (n, c) slot k = o / (H·W). A
/// vector's lanes may straddle runs on maps whose H·W is not a multiple of 8,
/// so the lanes' m and t are gathered (H·W = 1: loaded, k = o).
struct ChannelRunSiLUEpilogue: FusedRowEpilogue {
    let multiplier: UnsafePointer<Float>
    let shift: UnsafePointer<Float>
    let spatial: Int

    @inline(__always) func apply(_ v: F8, _ o: Int) -> F8 {
        var m = F8(), t = F8()
        if spatial == 1 {
            m = load8(multiplier + o)
            t = load8(shift + o)
        } else {
            var k = o / spatial, s = o - k * spatial
            for l in 0..<8 {
                m[l] = multiplier[k]
                t[l] = shift[k]
                s += 1
                if s == spatial { s = 0; k += 1 }
            }
        }
        var z = muladd(v, m, t)
        z.replace(with: v, where: (m .== F8(repeating: 1)) .& (t .== F8()))
        return silu8(z)
    }

    @inline(__always) func apply(_ v: Float, _ o: Int) -> Float {
        let k = o / spatial, m = multiplier[k], t = shift[k]
        return SiLUActivation.apply(m == 1 && t == 0 ? v : muladd(v, m, t))
    }
}

/// NHWC maps: offset o is channel c = o mod C of sample n = o / (H·W·C). The
/// engine's runs are one group's C/G ≥ 8 channels of one position
/// (`GroupNormPlan.groupSegments`), so a vector's lanes are 8 consecutive
/// channels of one row.
struct ChannelsLastSiLUEpilogue: FusedRowEpilogue {
    let multiplier: UnsafePointer<Float>
    let shift: UnsafePointer<Float>
    let channels: Int
    let sampleElements: Int

    @inline(__always) private func slot(_ o: Int) -> Int {
        let n = o / sampleElements, row = o / channels
        return n * channels + (o - row * channels)
    }

    @inline(__always) func apply(_ v: F8, _ o: Int) -> F8 {
        let k = slot(o)
        return silu8(muladd(v, load8(multiplier + k), load8(shift + k)))
    }

    @inline(__always) func apply(_ v: Float, _ o: Int) -> Float {
        let k = slot(o)
        return SiLUActivation.apply(muladd(v, multiplier[k], shift[k]))
    }
}
