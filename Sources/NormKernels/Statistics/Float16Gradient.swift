// The Float16 dx loop of `BlockGradients.apply` (x and dy, optional mask, no
// γ) in the AVX-512 C loop of float16_gradient_avx512.c: the Swift lane's
// operations per value in the same order and rounding (Float16GradientAVX512.h
// states the rule), 32 values a step. Why: BatchNorm NCHW backward on Float16 ran at
// 0.68–0.81 of its Float32 time and its dx loop held about half of the
// samples (docs/data/2026-12-07-f16dx/summary.md).

import CNormSupport

enum Float16Gradient {
    /// Whether the C loop may run for values of `E`: Float16, a build that
    /// fuses `muladd` (a compile-time constant) and a CPU with AVX-512
    /// F/VL/BW/DQ (`NORMKERNELS_F16_DX=never` turns it off).
    @inline(__always)
    static func runs<E: NormElement>(_: E.Type) -> Bool {
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        return E.self == Float16.self && nk_build_has_fma() != 0 && nk_cpu_runs_f16_dx512() != 0
        #else
        return false
        #endif
    }
}
