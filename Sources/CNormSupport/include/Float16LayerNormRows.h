#ifndef CNORMSUPPORT_FLOAT16_LAYERNORM_ROWS_H
#define CNORMSUPPORT_FLOAT16_LAYERNORM_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "BFloat16Hardware.h"
#include "CPUFeatures.h"

// The pipelined LayerNorm forward of Float16 rows, one C call per work item (issue 20):
// the BFloat16 item loop of `nk_bf16_hw_layernorm_rows` (bfloat16_hardware.c) with
// Float16 loads and rounding, the same code with the element kind a constant.
//
// Why: the Swift Float16 loop (`pipelinedRows` of RowNormalization+Pipelined.swift)
// spends part of each row between loops (the pivot, the Float64 lane sums, the finish's
// division, √ and division, ~100 cycles that block retirement while the next loop
// fills the reorder buffer); in C each row's finish runs in short stages inside the
// next row's loop, as for BFloat16 (docs/PERFORMANCE.md, "BFloat16 LayerNorm rows: one
// C call per work item").
//
// The same operations in the same order as the Swift loop, value for value: two
// 8-lane vectors per 16-value step (values in memory order), `vcvtph2ps` to widen
// (exact), `(x − p)·s + t` as one subtract and one fused multiply-add, γ/β as
// `ElementAffine.apply`, `vcvtps2ph` to nearest even to narrow (the Swift loop's F16C
// `store8` / `stream8`), the sums, pivot and finish of `ShiftedRowSums`. So only a build
// whose `muladd` is fused and whose Float16 conversions are F16C (nk_build_has_fma(),
// nk_build_has_f16c()) may call it: the bits are that build's Swift loop's.

/// 1 when the CPU has AVX-512 F, DQ, BW and VL and the OS saves the AVX-512 state; 0
/// when not; -1 before the first check. Set when the program loads. Why AVX-512 for an
/// 8-lane loop: it is the BFloat16 loop's code, compiled for that loop's target
/// (AVX-512 with BF16; the compiler may use EVEX encodings and ymm16–31 anywhere in
/// it), and its Float16 copy holds no BFloat16 instruction (the kind is a constant).
/// An AVX2 + F16C CPU without AVX-512 keeps the Swift loop (the same bits).
extern int nk_f16_rows_flag;

/// Runs the check again (`NORMKERNELS_F16_ROWS=never`: 0), stores it in
/// nk_f16_rows_flag and returns it.
int nk_f16_rows_detect(void);

/// Tests: 0 takes the Swift loop, 1 runs the check again. Returns the new flag.
/// Either way the same bits.
int nk_f16_rows_set(int enable);

/// Whether nk_f16_hw_layernorm_rows may be called (with the build checks above).
static inline __attribute__((always_inline)) int nk_cpu_f16_rows(void) {
    int flag = __atomic_load_n(&nk_f16_rows_flag, __ATOMIC_RELAXED);
    return flag >= 0 ? flag : nk_f16_rows_detect();
}

/// `nk_bf16_hw_layernorm_rows` for Float16 x and y (bit patterns): LayerNorm forward of
/// rows `first ..< end` (n a multiple of 16, n ≥ 16, γ/β shared by every row, either
/// NULL), y, mean[r] and inv_std[r] written; rows that need recentring or the Float64
/// fallback get their moments from `moments(context, ...)`. `streaming`: non-temporal
/// stores, every row of y aligned to 16 bytes. Only when nk_cpu_f16_rows(),
/// nk_build_has_fma() and nk_build_has_f16c() are 1.
void nk_f16_hw_layernorm_rows(const uint16_t *x, uint16_t *y, size_t n, size_t first, size_t end, float epsilon,
                              const float *gamma, const float *beta, double *mean, double *inv_std, int streaming,
                              nk_row_moments_fn moments, const void *context);

/// Calls of nk_f16_hw_layernorm_rows made on the calling thread so far (tests check the loop ran).
uint64_t nk_f16_hw_layernorm_rows_thread_calls(void);

#endif
