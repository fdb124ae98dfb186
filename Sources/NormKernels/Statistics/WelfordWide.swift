// Stage 1 of the block moments (`BlockMoments.welfordLanes32`) for Float16 and
// BFloat16 blocks in the AVX-512 C loop of welford_avx512.c: the same 32
// Welford lanes, held as 2 zmm vectors instead of 4 ymm, each lane running the
// Swift lane's operations in the same order and rounding, so the lanes, and
// every statistic built from them, have the Swift loop's bits on every thread
// count (include/WelfordAVX512.h states the rule).
//
// Why (issue 20): BatchNorm NCHW training on 16-bit tensors ran at 0.60–0.80
// of its Float32 time where the target is 0.55; its statistics pass (this
// loop, over the channel's runs) waits on its 16-bit loads behind 6 vector
// operations per 8 values, and half the instructions per 64-byte line let the
// core keep more lines in flight (docs/data/2026-12-07-chan16/summary.md for
// the profile and the measurements). Float32 blocks keep the Swift loop.

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
}
