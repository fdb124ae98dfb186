// Two loops of the rows geometry for Float16 and BFloat16 runs far apart (the
// blocks that prefetch along `RowBlock.following`: BatchNorm NCHW) in the
// AVX-512 C loops of welford_avx512.c:
// - stage 1 of the block moments (`BlockMoments.welfordLanes32`): the same 32
//   Welford lanes, held as 2 zmm vectors instead of 4 ymm;
// - the backward's gradient sums without mask, γ or store
//   (`BlockGradients.segmentedFloat32`): the same 32 lanes of Σg and Σg·x̂.
// Each lane runs the Swift lane's operations in the same order and rounding,
// so the lanes, and every statistic and gradient built from them, have the
// Swift loops' bits on every thread count (include/WelfordAVX512.h states the
// rule); only the instruction count changes.
//
// Why (issue 20): BatchNorm NCHW training on 16-bit tensors ran at 0.61–0.89
// of its Float32 time where the target is 0.55; its statistics pass and the
// backward's gradient sums wait on their 16-bit loads. The C loops prefetch at
// the Swift loops' places but into L2 (`prefetcht1`, not `nk_prefetch`'s
// `prefetcht0`): the channel order read at 16–19 GB/s instead of 10–11 on one
// Zen 4 core, and 16-bit ÷ Float32 fell to 0.54–0.59 forward and 0.42–0.64
// backward (docs/data/2026-12-07-chan16/summary.md; the 512-bit width alone
// measured no faster). Float32 runs keep the Swift loops and their bits.

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

    /// `welfordLanes32`'s lanes of the same block (prefetching along
    /// `following` when ≠ 0, as `PrefetchAhead`); only where `runs` is true.
    @inline(__always)
    static func lanes32<E: NormElement>(_ p: UnsafePointer<E>, length: Int, stride: Int, segments: Int,
                                        pivot: Float, following: Int) -> BlockMoments.Lanes {
        // m0…m3, s0…s3 as the C loop writes them (a homogeneous tuple: contiguous, in order).
        let z = F8()
        var out = (z, z, z, z, z, z, z, z)
        withUnsafeMutableBytes(of: &out) { bytes in
            let o = bytes.baseAddress!.assumingMemoryBound(to: Float.self)
            let w = WelfordWeights.table, x = UnsafeRawPointer(p)
            switch kind(E.self) {
            case .f16?: nk_welford512_lanes32_f16(x, length, stride, segments, pivot, following, w, o)
            case .bf16?: nk_welford512_lanes32_bf16(x, length, stride, segments, pivot, following, w, o)
            case nil: break
            }
        }
        return BlockMoments.Lanes(m0: out.0, m1: out.1, m2: out.2, m3: out.3,
                                  s0: out.4, s1: out.5, s2: out.6, s3: out.7)
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
