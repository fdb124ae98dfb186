// The 16-lane AVX-512 twins of the SiLU loops (`SiLUAVX512.h`, in C because
// Swift's SIMD types cannot target AVX-512 without a build flag): the forward
// output loops `Apply.affine` and `Apply.columns` with `SiLUActivation`, and the
// vector loops of `SiLUGradientPass` (NCHW runs, NHWC rows). Each lane runs the
// 8-lane Swift code's operations in the same order and rounding, so results are
// bit for bit those of the Swift loops; heads and tails of the contiguous loops
// stay in Swift, the NHWC rows' last columns % 16 run in masked lanes.
//
// Why: the Swift SiLU lanes are arithmetic-bound (~20 vector operations per 8
// values; with 16 ymm registers the loop also reloads its constants), which
// made GroupNorm + SiLU cost 1.4–1.8× plain GroupNorm on an AVX-512 Xeon in an
// `-Xcc -march=x86-64-v3` build (docs/PERFORMANCE.md, "GroupNorm + SiLU").

import CNormSupport

enum SiLUWide {
    /// Whether the C loops may run: this build fuses `muladd` and converts
    /// Float16 with F16C (the C loops' arithmetic and rounding are the Swift
    /// lanes' only then: compile-time constants), and the CPU has AVX-512
    /// F/VL/BW/DQ (`NORMKERNELS_AVX512_SILU=never` turns them off).
    @inline(__always)
    static var available: Bool {
        nk_build_has_fma() != 0 && nk_build_has_f16c() != 0 && nk_cpu_runs_avx512_silu() != 0
    }

    /// The C loops' element code: 0 Float, 1 Float16, 2 BFloat16; nil for any other type.
    @inline(__always)
    static func code<E: NormElement>(_: E.Type) -> Int32? {
        if E.self == Float.self { return 0 }
        if E.self == BFloat16.self { return 2 }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self { return 1 }
        #endif
        return nil
    }

    /// The element code when the C loops may run for `E` now, else nil.
    @inline(__always)
    static func enabled<E: NormElement>(_: E.Type) -> Int32? {
        available ? code(E.self) : nil
    }
}
