#ifndef CNORMSUPPORT_WELFORD_AVX512_H
#define CNORMSUPPORT_WELFORD_AVX512_H

#include <stddef.h>
#include <stdint.h>

#include "CPUFeatures.h"

// Stage 1 of the rows geometry's block moments (`BlockMoments.welfordLanes32`,
// RowMoments.swift: BatchNorm, InstanceNorm and GroupNorm NCHW, whose blocks
// are runs of ≥ 64 values) for Float16 and BFloat16 blocks, in AVX-512
// registers, chosen at run time on a CPU with AVX-512 F, VL, BW and DQ, in
// builds that target AVX2, FMA and F16C (`-Xcc -march=x86-64-v3`).
//
// Why (issue 20): BatchNorm NCHW on 16-bit tensors ran at 0.61–0.89 of its
// Float32 time (target 0.55); the statistics pass (and the backward's
// gradient sums) is over half of each kernel's samples and waits on its loads.
// What helped is where the prefetches go: these loops prefetch along the
// channel's runs as `PrefetchAhead` does, but into L2 (`prefetcht1`), where the
// Swift loops' `nk_prefetch` asks for L1; the channel order then reads at
// 16–19 GB/s on one Zen 4 core instead of 10–11, and BatchNorm NCHW 16-bit ÷
// Float32 fell to 0.54–0.59 forward and 0.42–0.64 backward
// (docs/data/2026-12-07-chan16/summary.md). The 512-bit width alone (2 zmm
// instead of 4 ymm, with `prefetcht0`) measured no faster: the pass is not
// bound by its instruction count. (Zen 4 runs a 512-bit operation as two
// 256-bit halves.)
//
// Bits: each lane runs the Swift lane's operations in the same order with the
// same roundings, so the lanes come back bit for bit as the Swift loop leaves
// them, for every length, stride and segment count:
//     x = widen(v) − K;  d = x − m;  m = fma(m, q, x·r);  s = fma(d, x − m, s)
// with (r, q) = (1/k, 1 − 1/k) of step k from the same table (`weights`, pairs
// at index 2k for k < 512) or computed as the Swift `WelfordWeights.step` does
// past it (r = 1/(float)k, q = 1 − r). Values widen exactly (Float16:
// `vcvtph2ps`; BFloat16: the bits shifted up). The Swift `muladd` is one fused
// operation only in a build with FMA, so only a build where nk_build_has_fma()
// is 1 may call these (the file is compiled with `#pragma STDC FP_CONTRACT
// OFF`: nothing else is fused). The prefetches are at `PrefetchAhead`'s
// places (8 KiB ahead along the block's runs, then into the next block
// `following` values on), to L2: hints that never change a value.
//
// Output `lanes`: 64 floats, the Swift `Lanes` in order m0, m1, m2, m3 (means
// of lanes 0–7, 8–15, 16–23, 24–31), then s0…s3 (their M2).

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

/// The 32 Welford lanes of `segments` runs of `length` 16-bit values (Float16:
/// `_f16`, BFloat16: `_bf16`), `stride` values apart from `p`, each run's
/// length / 32 whole 32-value chunks, about `pivot`; `weights`: the Swift
/// `WelfordWeights.table`. `following` ≠ 0: prefetch along the runs and then
/// `following` values past `p` (the next block), as `PrefetchAhead`.
void nk_welford512_lanes32_f16(const void *p, size_t length, size_t stride, size_t segments, float pivot,
                               ptrdiff_t following, const float *weights, float *lanes);
void nk_welford512_lanes32_bf16(const void *p, size_t length, size_t stride, size_t segments, float pivot,
                                ptrdiff_t following, const float *weights, float *lanes);

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
