#ifndef CNORMSUPPORT_WELFORD_AVX512_H
#define CNORMSUPPORT_WELFORD_AVX512_H

#include <stddef.h>
#include <stdint.h>

#include "CPUFeatures.h"

// The gradient sums of the backward's 16-bit runs far apart
// (`BlockGradients.segmentedFloat32` without mask, γ or store: BatchNorm,
// InstanceNorm and GroupNorm NCHW backward) in AVX-512 registers, chosen at
// run time on a CPU with AVX-512 F, VL, BW and DQ, in builds that target AVX2,
// FMA and F16C (`-Xcc -march=x86-64-v3`). (The file's name is from its first
// loop, the forward's Welford lanes, removed in `s16`.)
//
// Why (issue 20): BatchNorm NCHW backward on 16-bit tensors waits on its
// loads. What helped is where the prefetches go: this loop prefetches along
// the channel's runs as `PrefetchAhead` does, but into L2 (`prefetcht1`); the
// channel order then reads at 16–19 GB/s on one Zen 4 core instead of 10–11
// (docs/data/2026-12-07-chan16/summary.md). Since the Swift loops prefetch
// into L2 too (`pf2`), the gradient sums here are still 1.08–1.19× faster
// than the Swift loop, but the forward's Welford lanes were not (0.95–1.00:
// docs/data/2026-12-07-welford-ab-zen4/summary.md) and went back to Swift.
//
// Bits: each lane runs the Swift lane's operations in the same order with the
// same roundings, so the lanes come back bit for bit as the Swift loop leaves
// them, for every length, stride and segment count:
//     x̂ = fma(x − p, s, t);  g += dy;  h = fma(dy, x̂, h)
// Values widen exactly (Float16: `vcvtph2ps`; BFloat16: the bits shifted up).
// The Swift `muladd` is one fused operation only in a build with FMA, so only
// a build where nk_build_has_fma() is 1 may call these (the file is compiled
// with `#pragma STDC FP_CONTRACT OFF`: nothing else is fused). The prefetches
// are at `PrefetchAhead`'s places (8 KiB ahead along the block's runs, then
// into the next block `following` values on), to L2: hints that never change
// a value.

/// 1 when the CPU has AVX-512 F, VL, BW and DQ, the OS saves the AVX-512 state
/// and `NORMKERNELS_AVX512_WELFORD` is not `never`; 0 when not; -1 before the
/// first check. Set when the program loads.
extern int nk_avx512_welford_flag;

/// Runs the check (and reads the environment switch), stores the result in
/// nk_avx512_welford_flag and returns it.
int nk_avx512_welford_detect(void);

/// Tests: 0 turns these loops off, 1 runs the check again. Returns the new
/// flag. Either way every result has the same bits.
int nk_avx512_welford_set(int enable);

/// Whether nk_welford512_* may be called: one load and a predictable branch.
static inline __attribute__((always_inline)) int nk_cpu_runs_avx512_welford(void) {
    int flag = __atomic_load_n(&nk_avx512_welford_flag, __ATOMIC_RELAXED);
    return flag >= 0 ? flag : nk_avx512_welford_detect();
}

/// Calls of nk_welford512_* on this thread (tests check that the loops ran).
uint64_t nk_welford512_thread_calls(void);

/// The 32 gradient-sum lanes of `BlockGradients.segmentedFloat32` without mask,
/// γ or store (BatchNorm, InstanceNorm and GroupNorm NCHW backward) over
/// `segments` runs of `length` 16-bit values of x and dy, `stride` apart: per
/// lane g += dy;  h = fma(dy, fma(x − pivot, scale, shift), h), each run's
/// 32-value steps into lanes 0–31 and its 8-value steps into lanes 0–7, the
/// Swift loop's order; the last length % 8 values of each run are left to the
/// caller. `lanes`: 64 floats, the Swift g0…g3, then h0…h3. `following` ≠ 0:
/// x and dy prefetched as `PrefetchAhead` (runs of ≥ 256 values).
void nk_welford512_gradient_sums_f16(const void *x, const void *dy, size_t length, size_t stride, size_t segments,
                                     float pivot, float scale, float shift, ptrdiff_t following, float *lanes);
void nk_welford512_gradient_sums_bf16(const void *x, const void *dy, size_t length, size_t stride, size_t segments,
                                      float pivot, float scale, float shift, ptrdiff_t following, float *lanes);

#endif
