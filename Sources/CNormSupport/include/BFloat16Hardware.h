#ifndef CNORMSUPPORT_BFLOAT16_HARDWARE_H
#define CNORMSUPPORT_BFLOAT16_HARDWARE_H

#include <stddef.h>
#include <stdint.h>

#include "CPUFeatures.h"
#include "HalfPrecision.h"

// BFloat16 output loops that round in hardware on a CPU with AVX-512 BF16
// (Sapphire Rapids, Zen 4), in builds that target AVX2 and FMA
// (`-Xcc -march=x86-64-v3`) but not AVX-512: chosen at run time, like the F16C
// helpers of a baseline build (HalfPrecision.h).
//
// Why: with AVX2 the rounding b = (f + 0x7FFF + bit 16 of f) >> 16 and its NaN
// test take ~12 integer operations per 16 values, so the BFloat16 output loops
// cost 1.6x Float16's (one `vcvtps2ph` per 8 values) and ran compute-bound
// (docs/PERFORMANCE.md, "BFloat16 output loops: hardware rounding"). Here one
// `vcvtne2ps2bf16` rounds 16 values. It gives the formula's bits for every
// input except Float32 subnormals, which it flushes to ±0: a 16-value step
// holding one (one `vfpclassps` per 8 values) takes the formula
// (`nk_bf16_round8`). NaNs: the instruction keeps the sign and the top of the
// payload and sets the quiet bit, as the formula does.
//
// The arithmetic is the Swift loop's, value for value: `(x − p)·s + t` as one
// subtract and one fused multiply-add (`nk_muladd8` of an FMA build), the
// residual added after, then the activation. So only a build whose
// `nk_muladd8` is fused (nk_build_has_fma) may call these.

/// 1 when this build's `nk_muladd8` is a fused multiply-add, else 0 (a
/// compile-time constant).
static inline __attribute__((always_inline)) int nk_build_has_fma(void) {
#if defined(__FMA__)
    return 1;
#else
    return 0;
#endif
}

/// 1 when the CPU has AVX-512 F, DQ, BW, VL and BF16 and the OS saves the AVX-512
/// state; 0 when not; -1 before the first check. Set when the program loads.
extern int nk_avx512bf16_flag;

/// Runs the CPUID/XGETBV check, stores its result in nk_avx512bf16_flag and returns it.
int nk_avx512bf16_detect(void);

/// Tests: 0 turns the hardware loops off, 1 runs the check again (on where the
/// CPU allows). Returns the new flag. Either way every loop gives the same bits.
int nk_avx512bf16_set(int enable);

/// Whether nk_bf16_hw_* may be called: one load and a predictable branch.
/// `NORMKERNELS_BF16_HARDWARE=never` turns the hardware loops off (tests run
/// the integer formula that way too).
static inline __attribute__((always_inline)) int nk_cpu_rounds_bf16(void) {
    int flag = __atomic_load_n(&nk_avx512bf16_flag, __ATOMIC_RELAXED);
    return flag >= 0 ? flag : nk_avx512bf16_detect();
}

/// `dst[i] = act(((src[i] − pivot)·scale + shift) (+ residual[i]))` rounded to
/// BFloat16, for `count` values (a multiple of 16): `Apply.affine`'s vector
/// loop. `activation` 0: none, 1: ReLU (max(·, 0), NaN kept). `residual` may be
/// NULL. `streaming`: non-temporal stores, `dst` aligned to 16 bytes.
/// Only when nk_cpu_rounds_bf16() and nk_build_has_fma() are 1.
void nk_bf16_hw_affine(const uint16_t *src, uint16_t *dst, size_t count, float pivot, float scale, float shift,
                       const uint16_t *residual, int activation, int streaming);

/// `Apply.columns`' loop: for `rows` rows of `columns` values (a multiple of
/// 16; row stride `stride` values), `dst[r, c] = act(((src[r, c] − pivot[c])·
/// scale[c] + shift[c]) (+ residual[r, c]))` rounded to BFloat16. `streaming`:
/// non-temporal stores, every row start aligned to 16 bytes. Only when
/// nk_cpu_rounds_bf16() and nk_build_has_fma() are 1.
void nk_bf16_hw_columns(const uint16_t *src, uint16_t *dst, size_t rows, size_t columns, size_t stride,
                        const float *pivot, const float *scale, const float *shift, const uint16_t *residual,
                        int activation, int streaming);

/// `dst[i] = a·g + (b·(x[i] − pivot) + c)` rounded to BFloat16, g = dy[i] (0
/// where mask[i] ≤ 0; `mask` may be NULL), for `count` values (a multiple of
/// 16): `BlockGradients.apply`'s vector loop with x and dy and no γ.
/// `streaming` as in nk_bf16_hw_affine. Only when nk_cpu_rounds_bf16() and
/// nk_build_has_fma() are 1.
void nk_bf16_hw_gradient(const uint16_t *x, const uint16_t *dy, const uint16_t *mask, uint16_t *dst, size_t count,
                         float pivot, float a, float b, float c, int streaming);

/// `nk_bf16_hw_gradient` with g in Float32 and no mask: `dst[i] = a·g[i] +
/// (b·(x[i] − pivot) + c)` rounded to BFloat16, for `count` values (a multiple
/// of 16): `BlockGradients.apply`'s vector loop where dy is GroupNorm + SiLU's
/// Float32 g (`GroupNormalization+SiLUBackwardUnits.swift`). Only when
/// nk_cpu_rounds_bf16() and nk_build_has_fma() are 1.
void nk_bf16_hw_gradient_f32(const uint16_t *x, const float *g, uint16_t *dst, size_t count, float pivot, float a,
                             float b, float c, int streaming);

/// `nk_bf16_hw_gradient_columns` with g in Float32 and no mask (GroupNorm +
/// SiLU's NHWC backward): `dst[r, j] = a[j]·g[r, j] + (b[j]·(x[r, j] − pivot[j])
/// + c[j])` rounded to BFloat16, `columns` a multiple of 16, g with x's layout.
/// Only when nk_cpu_rounds_bf16() and nk_build_has_fma() are 1.
void nk_bf16_hw_gradient_columns_f32(const uint16_t *x, const float *g, uint16_t *dst, size_t rows, size_t columns,
                                     size_t stride, const float *pivot, const float *a, const float *b, const float *c,
                                     int streaming);

/// `BlockGradients.applyColumns`' loop with x and dy: for `rows` rows of
/// `columns` values (a multiple of 16; row stride `stride`), `dst[r, j] =
/// a[j]·g + (b[j]·(x[r, j] − pivot[j]) + c[j])`, g as in nk_bf16_hw_gradient.
/// `streaming`: every row start aligned to 16 bytes. Only when
/// nk_cpu_rounds_bf16() and nk_build_has_fma() are 1.
void nk_bf16_hw_gradient_columns(const uint16_t *x, const uint16_t *dy, const uint16_t *mask, uint16_t *dst,
                                 size_t rows, size_t columns, size_t stride, const float *pivot, const float *a,
                                 const float *b, const float *c, int streaming);

/// The LayerNorm/RMSNorm row loops (issue 20, docs/PERFORMANCE.md "16-bit rows:
/// hardware rounding inside the row passes"): the same operations as the Swift
/// loops they stand for, value for value, so the same bits.

/// `Apply.elementwise`'s vector loop: `dst[i] = aff((src[i] − pivot)·scale +
/// shift)` rounded to BFloat16, aff(v) = v·γ[i] + β[i] (one fused multiply-add),
/// v·γ[i], v + β[i] or v as `gamma` / `beta` are given (either may be NULL),
/// for `count` values (a multiple of 16). `streaming`: non-temporal stores,
/// `dst` aligned to 16 bytes. Only when nk_cpu_rounds_bf16() and
/// nk_build_has_fma() are 1.
void nk_bf16_hw_elementwise(const uint16_t *src, uint16_t *dst, size_t count, float pivot, float scale, float shift,
                            const float *gamma, const float *beta, int streaming);

/// How far ahead of the row being summed `nk_hw_shifted_sums` prefetches x, in bytes: about
/// one DRAM latency of one core's stream (~100–150 ns at 20–30 GB/s ≈ 2–4.5 KiB), so the
/// line arrives as the loop reaches it. Why: this loop also writes the output of the row two
/// before (~20 µops per 16 values), so the out-of-order window holds only ~15 steps of it and
/// the hardware prefetcher alone left the loads of DRAM-sized tensors waiting: measured on
/// Zen 4 (1 MiB L2), BFloat16 LayerNorm forward `[8192, 1024]` 1.18× and `[2048, 4096]` 1.21×
/// faster on one thread with it, cached shapes unchanged (docs/PERFORMANCE.md, "LayerNorm
/// bf16 forward: a prefetch ahead of the sums"). A prefetch never faults, so running past the
/// end of x is harmless.
#define NK_SUMS_PREFETCH_BYTES 4096

/// `ShiftedRowSums.sweep`'s 16-value steps over a row `p` of `n` values about
/// `k`, with the outputs of another row (`nk_bf16_hw_elementwise` of `src`
/// into `dst` at the same indices) in the same loop:
/// ```
/// per block of ≤ 256 values (16 at a time): d = x − k, s0/s1 += d, q0/q1 += d² (fused),
///                                             then sums += (double)(s0 + s1), squares += (double)(q0 + q1)
/// ```
/// `sums` and `squares`: the 8 Float64 lanes, in and out. Returns the values
/// done (n rounded down to 16); the Swift loop does the rest. Only when
/// nk_cpu_rounds_bf16() and nk_build_has_fma() are 1.
size_t nk_bf16_hw_shifted_sums(const uint16_t *p, size_t n, float k, double *sums, double *squares,
                               const uint16_t *src, uint16_t *dst, float pivot, float scale, float shift,
                               const float *gamma, const float *beta, int streaming);

/// The moments of one LayerNorm row that `nk_bf16_hw_layernorm_rows` leaves to Swift
/// (`ShiftedRowSums.moments` then `inverseStandardDeviation`): row `row`, its pivot and
/// the lane sums of its sweep in; `out[0]` = mean, `out[1]` = 1/σ.
typedef void (*nk_row_moments_fn)(const void *context, size_t row, float pivot, double sum, double squares,
                                  double *out);

/// The pipelined LayerNorm forward of rows `first ..< end` of x (rows of `n` values, n a
/// multiple of 16, n ≥ 16), γ and β (either may be NULL) shared by every row, in one call:
/// `pipelinedRows` of RowNormalization+Pipelined.swift with `BFloat16HardwareOutput`, the
/// same rows in the same order and the same operations (the row sums and outputs of
/// `nk_bf16_hw_shifted_sums` / `nk_bf16_hw_elementwise`, the pivot of
/// `BlockMoments.blockPivot`, and the finish's Float64 division, √ and division), so the
/// same bits. Writes y, mean[r] and inv_std[r] of those rows. A row whose shift is far from
/// its mean or whose sums are not finite gets its moments from `moments(context, ...)`.
/// `streaming`: non-temporal stores, every row of y aligned to 16 bytes. Only when
/// nk_cpu_rounds_bf16() and nk_build_has_fma() are 1.
void nk_bf16_hw_layernorm_rows(const uint16_t *x, uint16_t *y, size_t n, size_t first, size_t end, float epsilon,
                               const float *gamma, const float *beta, double *mean, double *inv_std, int streaming,
                               nk_row_moments_fn moments, const void *context);

/// Calls of nk_bf16_hw_layernorm_rows made on the calling thread so far (tests check the loop ran).
uint64_t nk_bf16_hw_layernorm_rows_thread_calls(void);

/// `ShortRowsBackward`'s dx loop: `dst[i] = a·g + (b·(x[i] − pivot) + c)`
/// rounded to BFloat16, g = dy[i]·γ[i] (`gamma` NULL: dy[i]), for `count`
/// values (a multiple of 16). `streaming` as in nk_bf16_hw_affine. Only when
/// nk_cpu_rounds_bf16() and nk_build_has_fma() are 1.
void nk_bf16_hw_row_gradient(const uint16_t *x, const uint16_t *dy, const float *gamma, uint16_t *dst, size_t count,
                             float pivot, float a, float b, float c, int streaming);

/// `dst[i] = src[i]` rounded to BFloat16 for `count` Float32 values (a
/// multiple of 16): the fused row engine's output blocks
/// (RowNormalization+Fused.swift). `streaming` as in nk_bf16_hw_affine. Only
/// when nk_cpu_rounds_bf16() is 1.
void nk_bf16_hw_narrow(const float *src, uint16_t *dst, size_t count, int streaming);

/// RMSNorm × gate's output block: `dst[i] = bf16(widen(bf16(z[i]))·widen(gate[i]))`
/// for `count` values (a multiple of 16), z the RMSNorm output in Float32 as
/// the Swift loop formed it (`GateEpilogue`: z rounded once, as the plain
/// kernel stores it, then the gate). `streaming` as in nk_bf16_hw_affine. Only
/// when nk_cpu_rounds_bf16() is 1.
void nk_bf16_hw_gate(const float *z, const uint16_t *gate, uint16_t *dst, size_t count, int streaming);

/// The fused residual's sum, `dst[i] = bf16((x[i] + r[i]) + bias[i])` (`bias`
/// may be NULL), for `count` values (a multiple of 16): `ResidualRows.values`'
/// loop with the rounding in one instruction, prefetching x and r
/// `NK_SUMS_PREFETCH_BYTES` ahead. Each step reads x and r before it writes,
/// so `dst` may be `x` or `r`. Only when nk_cpu_rounds_bf16() is 1.
void nk_bf16_hw_residual_sum(const uint16_t *x, const uint16_t *r, const float *bias, uint16_t *dst, size_t count);

#endif
