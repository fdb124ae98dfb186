#ifndef CNORMSUPPORT_HALF_PRECISION_H
#define CNORMSUPPORT_HALF_PRECISION_H

#include <stddef.h>
#include <stdint.h>

// Float16 ⇄ Float32 conversions for the `Float16` element type (issue 20).
//
// Swift converts SIMD vectors of Float16 with one instruction where the build's
// target features allow it (F16C on x86-64 via `-Xcc -march=x86-64-v3`, always on
// AArch64), and with a library call per element otherwise. A baseline x86-64
// build can still use F16C when the CPU has it: the functions below are compiled
// for F16C by a target attribute (no build flag, no unsafeFlags) and called only
// after a CPUID check. Measured on the Xeon of NOTES-SWIFT-PERFORMANCE.md, per
// element: library call 2.7 ns (widen) / 3.2 ns (narrow); one call of
// nk_f16c_widen8 / nk_f16c_narrow8 per 8 values 0.12 / 0.17 ns; branch-free SSE2
// formulas (HalfBits.swift) 0.58 / 0.85 ns; inline F16C 0.05 / 0.05 ns.

/// 1 when this build converts Float16 vectors in hardware (F16C enabled by the
/// C flags, or AArch64), else 0. A compile-time constant the Swift optimizer
/// folds, so the choice leaves no branch in the kernel loops.
static inline __attribute__((always_inline)) int nk_build_converts_half(void) {
#if defined(__F16C__) || defined(__aarch64__)
    return 1;
#else
    return 0;
#endif
}

/// 1 when the CPU has F16C and the OS saves AVX state, 0 when not, -1 before
/// the first check. Set by a constructor when the program loads.
extern int nk_f16c_flag;

/// Runs the CPUID/XGETBV check, stores its result in nk_f16c_flag and returns it.
int nk_f16c_detect(void);

/// Whether nk_f16c_* may be called on this CPU: one load and a predictable branch.
static inline __attribute__((always_inline)) int nk_cpu_has_f16c(void) {
    int flag = __atomic_load_n(&nk_f16c_flag, __ATOMIC_RELAXED);
    return flag >= 0 ? flag : nk_f16c_detect();
}

/// Widens 8 binary16 values at `src` (any alignment) to 8 floats at `dst`
/// (vcvtph2ps). Only when nk_cpu_has_f16c() is 1.
void nk_f16c_widen8(const void *src, float *dst);

/// Four floats; Swift imports this type as SIMD4<Float>.
typedef float nk_float4 __attribute__((ext_vector_type(4)));

/// Rounds the 8 floats `low`, `high` to nearest, ties to even, and stores 8
/// binary16 values at `dst` (vcvtps2ph). Only when nk_cpu_has_f16c() is 1.
/// The halves come in two XMM registers: a Swift SIMD8 written to the stack as
/// two 16-byte halves and reloaded as one 32-byte vector misses store-to-load
/// forwarding (measured 1.0 against 0.17 ns per element).
void nk_f16c_narrow8(nk_float4 low, nk_float4 high, void *dst);

/// nk_f16c_widen8 over `count` values (any count): one call for a whole block,
/// for kernels that widen a block into an L1 scratch buffer.
void nk_f16c_widen(const void *src, float *dst, size_t count);

/// nk_f16c_narrow8 over `count` values (any count).
void nk_f16c_narrow(const float *src, void *dst, size_t count);

#endif
