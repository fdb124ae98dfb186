#ifndef CNORMSUPPORT_COLUMN_GRADIENTS_AVX512_H
#define CNORMSUPPORT_COLUMN_GRADIENTS_AVX512_H

#include <stddef.h>
#include <stdint.h>

#include "CPUFeatures.h"

// The two passes of BatchNorm NHWC backward (the columns geometry,
// ColumnGradientSums.swift and ApplyGradient.swift; InstanceNorm and GroupNorm
// NHWC backward use them too) for 16–128 columns in multiples of 16, in 16
// AVX-512 lanes with the per-column state in registers for a whole call,
// chosen at run time on a CPU with AVX-512 F, VL, BW and DQ, in builds that
// target AVX2 and FMA (`-Xcc -march=x86-64-v3`). Float32 (`_f32`), Float16
// (`_f16`) and BFloat16 (`_bf16`) tensors: x, dy, mask and dx all of that type.
//
// Why: the Swift row loop keeps its per-column accumulators in stack memory
// (64 columns = 16 ymm accumulators, all 16 ymm registers of AVX2) and costs 7
// loads and 2 stores per 8 values; the dx loop reloads 4 coefficient vectors
// per 8 values. Here 64 columns hold Σg and Σg·x̂ in 8 zmm and the
// coefficients in 12 (sums) or 16 (dx) more, as oneDNN's JIT kernel does, so
// each 16 values cost the x and dy loads (and the dx store).
//
// Bits: each lane runs the Swift lanes' operations in the same order: per row,
//     sums:  d = dy (0 where mask ≤ 0);  Σg += d;  Σgx̂ = fma(d, fma(x − p, s, t), Σgx̂)
//     dx:    v = fma(b, x − p, c);  v = fma(a, g, v)
// on values widened exactly (16-bit types), dx rounded once as the Swift
// `store8` rounds it (Float16: vcvtps2ph, to nearest even; BFloat16:
// `vcvtneps2bf16` on a CPU with AVX-512 BF16, a vector holding a Float32
// subnormal and every other CPU the integer formula of `nk_bf16_round8`, NaNs
// quieted: the same bits).
// The Swift `muladd` is fused only in a build with FMA, so only a build where
// nk_build_has_fma() is 1 may call these (the file is compiled with
// `#pragma STDC FP_CONTRACT OFF`: nothing else is fused).

/// 1 when the CPU has AVX-512 F, VL, BW and DQ, the OS saves the AVX-512 state
/// and `NORMKERNELS_AVX512_COLUMNS` is not `never`; 0 when not; -1 before the
/// first check. Set when the program loads.
extern int nk_avx512_columns_flag;

/// Runs the check (and reads the environment switch), stores the result in
/// nk_avx512_columns_flag and returns it.
int nk_avx512_columns_detect(void);

/// Tests: 0 turns these loops off, 1 runs the check again. Returns the new
/// flag. Either way every result has the same bits.
int nk_avx512_columns_set(int enable);

/// Whether nk_col512_* may be called: one load and a predictable branch.
static inline __attribute__((always_inline)) int nk_cpu_runs_avx512_columns(void) {
    int flag = __atomic_load_n(&nk_avx512_columns_flag, __ATOMIC_RELAXED);
    return flag >= 0 ? flag : nk_avx512_columns_detect();
}

/// Calls of nk_col512_* on this thread (tests check that the loops ran).
uint64_t nk_col512_thread_calls(void);

/// Of those, the BFloat16 dx calls that rounded with `vcvtneps2bf16` (a CPU
/// with AVX-512 BF16, nk_cpu_rounds_bf16()); the same bits as the formula.
uint64_t nk_col512_bf16_hardware_thread_calls(void);

/// Adds `rows` rows (row stride `stride`, in elements) of a `columns`-wide
/// tile into the per-column Float32 accumulators `accG` (Σg) and `accH`
/// (Σg·x̂), rows in order; `mask` (may be NULL) zeroes g where mask ≤ 0.
/// `columns` is a multiple of 16 in 16...128. x, dy and mask are Float32
/// (`_f32`), Float16 (`_f16`) or BFloat16 bit patterns (`_bf16`).
void nk_col512_gradient_sums_f32(const void *x, const void *dy, const void *mask, size_t rows,
                                 size_t columns, size_t stride, const float *pivot, const float *scale,
                                 const float *shift, float *accG, float *accH);
void nk_col512_gradient_sums_f16(const void *x, const void *dy, const void *mask, size_t rows,
                                 size_t columns, size_t stride, const float *pivot, const float *scale,
                                 const float *shift, float *accG, float *accH);
void nk_col512_gradient_sums_bf16(const void *x, const void *dy, const void *mask, size_t rows,
                                  size_t columns, size_t stride, const float *pivot, const float *scale,
                                  const float *shift, float *accG, float *accH);

/// dst[r·stride + j] = fma(a[j], g, fma(b[j], x − pivot[j], c[j])) for `rows`
/// rows of `columns` (a multiple of 16 in 16...128), g = dy (0 where mask ≤ 0;
/// `mask` may be NULL), rounded once to the element type. `streaming`:
/// non-temporal stores (dst and stride aligned to 8 values), then a store
/// fence. Element types as for the sums; dst has x's.
void nk_col512_gradient_apply_f32(const void *x, const void *dy, const void *mask, void *dst,
                                  size_t rows, size_t columns, size_t stride, const float *pivot,
                                  const float *a, const float *b, const float *c, int streaming);
void nk_col512_gradient_apply_f16(const void *x, const void *dy, const void *mask, void *dst,
                                  size_t rows, size_t columns, size_t stride, const float *pivot,
                                  const float *a, const float *b, const float *c, int streaming);
void nk_col512_gradient_apply_bf16(const void *x, const void *dy, const void *mask, void *dst,
                                   size_t rows, size_t columns, size_t stride, const float *pivot,
                                   const float *a, const float *b, const float *c, int streaming);

#endif
