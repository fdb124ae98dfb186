// The backward's gradient sums of Float16 and BFloat16 runs far apart (the
// blocks that prefetch along `RowBlock.following`: BatchNorm NCHW) in the
// AVX-512 C loop of welford_avx512.c: `BlockGradients.segmentedFloat32`'s 32
// lanes of Σg and Σg·x̂ without mask, γ or store. Each lane runs the Swift
// lane's operations in the same order and rounding, so the sums, and every
// gradient built from them, have the Swift loop's bits on every thread count
// (include/WelfordAVX512.h states the rule); only the instruction count
// changes.
//
// Why (issue 20): the backward's gradient sums wait on their 16-bit loads; the
// C loop prefetches at the Swift loop's places into L2 and, with the Swift
// loops prefetching into L2 too since `pf2`, is still 1.08–1.19× faster
// (docs/data/2026-12-07-welford-ab-zen4/summary.md). The forward's Welford
// lanes had a C loop too; after `pf2` it was level with Swift (BFloat16) or
// 3–5 % slower (Float16), so the forward statistics run the Swift loop
// (`s16`). Float32 runs keep the Swift loops and their bits.

import CNormSupport

enum WelfordWide {
    /// The C loop's element type, or nil for a type it does not take.
    private enum Kind { case f16, bf16 }

    @inline(__always)
    private static func kind<E: NormElement>(_: E.Type) -> Kind? {
        if E.self == BFloat16.self { return .bf16 }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self { return .f16 }
        #endif
        return nil
    }

    /// Whether the C loop may run for blocks of `E`: Float16 or BFloat16, a
    /// build that fuses `muladd` (a compile-time constant) and a CPU with
    /// AVX-512 F/VL/BW/DQ (`NORMKERNELS_AVX512_WELFORD=never` turns it off).
    @inline(__always)
    static func runs<E: NormElement>(_: E.Type) -> Bool {
        kind(E.self) != nil && nk_build_has_fma() != 0 && nk_cpu_runs_avx512_welford() != 0
    }

    /// `BlockGradients.segmentedFloat32`'s sums without mask, γ or store, for
    /// x and dy of one 16-bit type `E`: the 32-value and 8-value steps in the C
    /// loop (`nk_welford512_gradient_sums_*`, the Swift lanes bit for bit),
    /// each run's last n mod 8 values here in Float64 as the Swift loop adds
    /// them, the lanes summed in its order. Only where `runs` is true.
    @inline(__always)
    static func gradientSums<E: NormElement>(_ x: UnsafePointer<E>, _ dy: UnsafePointer<E>, length n: Int,
                                             stride: Int, segments: Int, _ c: AffineCoefficients,
                                             following: Int) -> GradientSums {
        // g0…g3, h0…h3 as the C loop writes them.
        let z = F8()
        var out = (z, z, z, z, z, z, z, z)
        withUnsafeMutableBytes(of: &out) { bytes in
            let o = bytes.baseAddress!.assumingMemoryBound(to: Float.self)
            let xr = UnsafeRawPointer(x), dr = UnsafeRawPointer(dy)
            switch kind(E.self) {
            case .f16?:
                nk_welford512_gradient_sums_f16(xr, dr, n, stride, segments, c.pivot, c.scale, c.shift, following, o)
            case .bf16?:
                nk_welford512_gradient_sums_bf16(xr, dr, n, stride, segments, c.pivot, c.scale, c.shift, following, o)
            case nil: break
            }
        }
        var tail = GradientSums.zero
        let from = n - n % 8
        if from < n {
            for segment in 0..<segments {
                let o = segment * stride
                for i in from..<n {
                    // scalar math: x̂ = (x − p)·s + t;  Σg += g;  Σgx̂ += g·x̂
                    let d = E.widen(dy[o + i]), h = muladd(E.widen(x[o + i]) - c.pivot, c.scale, c.shift)
                    tail.dy += Double(d)
                    tail.dyXhat += Double(d) * Double(h)
                }
            }
        }
        return GradientSums(
            dy: ((laneSum64(out.0) + laneSum64(out.1)) + (laneSum64(out.2) + laneSum64(out.3))) + tail.dy,
            dyXhat: ((laneSum64(out.4) + laneSum64(out.5)) + (laneSum64(out.6) + laneSum64(out.7))) + tail.dyXhat)
    }
}
