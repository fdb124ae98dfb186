#ifndef CNORMSUPPORT_FLOAT16_GRADIENT_AVX512_H
#define CNORMSUPPORT_FLOAT16_GRADIENT_AVX512_H

#include <stddef.h>
#include <stdint.h>

#include "CPUFeatures.h"

// The Float16 dx loop of `BlockGradients.apply` (x and dy, optional ReLU mask,
// no γ: BatchNorm, InstanceNorm and GroupNorm backward) in AVX-512 registers,
// chosen at run time on a CPU with AVX-512 F/VL/BW/DQ, in builds that target
// AVX2, FMA and F16C (`-Xcc -march=x86-64-v3`); the BFloat16 twin is
// `nk_bf16_hw_gradient` (BFloat16Hardware.h).
//
// Why (issue 20): BatchNorm NCHW backward on Float16 ran at 0.68–0.81 of its
// Float32 time (target 0.55) and the Swift dx loop (8 values per step, two
// `vcvtph2ps`, one `vcvtps2ph`) held about half of its samples
// (docs/data/2026-12-07-f16dx/summary.md). Here 32 values per step, two
// `vcvtph2ps` zmm and one `vcvtps2ph` zmm per 16 values. (An L2 prefetch of
// the channel's next run measured no faster and was removed: `f16dx` and
// `s16` in docs/data/2026-12-07-*.)
//
// Bits: each value runs the Swift lane's operations in the same order and
// rounding: g = widen(dy) (0 where widen(mask) ≤ 0, a NaN mask keeps dy);
// v = fma(b, widen(x) − pivot, c); dx = round16(fma(a, g, v)), widen =
// `vcvtph2ps` (exact), round16 = `vcvtps2ph` to nearest even (as
// nk_f16c_round8; NaNs quieted, sign and payload top kept). The Swift
// `muladd` is one fused operation only in a build with FMA, so only a build
// where nk_build_has_fma() is 1 may call this (the file is compiled with
// `#pragma STDC FP_CONTRACT OFF`).

/// 1 when the CPU has AVX-512 F, VL, BW and DQ, the OS saves the AVX-512 state
/// and `NORMKERNELS_F16_DX` is not `never`; 0 when not; -1 before the first
/// check. Set when the program loads.
extern int nk_f16_dx512_flag;

/// Runs the check (and reads the environment switch), stores the result in
/// nk_f16_dx512_flag and returns it.
int nk_f16_dx512_detect(void);

/// Tests: 0 turns the loop off, 1 runs the check again. Returns the new flag.
/// Either way every result has the same bits.
int nk_f16_dx512_set(int enable);

/// Whether nk_f16_dx512_gradient may be called: one load and a predictable branch.
static inline __attribute__((always_inline)) int nk_cpu_runs_f16_dx512(void) {
    int flag = __atomic_load_n(&nk_f16_dx512_flag, __ATOMIC_RELAXED);
    return flag >= 0 ? flag : nk_f16_dx512_detect();
}

/// Calls of nk_f16_dx512_gradient on this thread (tests check that the loop ran).
uint64_t nk_f16_dx512_thread_calls(void);

/// `dst[i] = a·g + (b·(x[i] − pivot) + c)` rounded to Float16, g = dy[i] (0
/// where mask[i] ≤ 0; `mask` may be NULL), for `count` values (a multiple of
/// 16). `streaming`: non-temporal stores, `dst` aligned to 16 bytes. `dst` may
/// be `x` or `dy` (each value is read before it is written). Only when
/// nk_cpu_runs_f16_dx512() and nk_build_has_fma() are 1.
void nk_f16_dx512_gradient(const uint16_t *x, const uint16_t *dy, const uint16_t *mask, uint16_t *dst, size_t count,
                           float pivot, float a, float b, float c, int streaming);

#endif
