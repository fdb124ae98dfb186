#ifndef CNORMSUPPORT_SILU_AVX512_H
#define CNORMSUPPORT_SILU_AVX512_H

#include <stddef.h>
#include <stdint.h>

#include "CPUFeatures.h"

// The hot SiLU loops of GroupNorm + SiLU (issue 21) in 16 AVX-512 lanes, chosen
// at run time on a CPU with AVX-512 F, VL, BW and DQ, in builds that target
// AVX2 and FMA (`-Xcc -march=x86-64-v3`) but not AVX-512 (silu_avx512.c).
//
// Why: the 8-lane Swift loops (SiLU.swift) are arithmetic-bound: ~20 vector
// operations per 8 values in the forward's output loop, and with 16 ymm
// registers the loop reloads its 8 constants from memory per 8 values. Here 16
// values take the same ~20 operations and the constants stay in 32 zmm
// registers. (On Zen 4 a 512-bit operation runs as two 256-bit halves, so the
// gain there is fewer instructions and no reloads, not wider units.)
//
// Bits: each lane runs the Swift lanes' operations in the same order, with the
// same roundings: (x − p)·s + t as a subtract and one fused multiply-add, the
// e^(−|z|) reduction and polynomial of `expNegative8` with its FMAs, the
// division of σ (vdivps, not a reciprocal estimate), the blends on the same
// compares. The Swift `muladd` is one fused operation only in a build with FMA
// (`nk_muladd8`), so only a build where nk_build_has_fma() is 1 may call these
// (the file is compiled with `#pragma STDC FP_CONTRACT OFF`, so nothing else
// is fused). Loads widen 16-bit values exactly; Float16 stores round with
// `vcvtps2ph` to nearest even (nk_f16c_round8's instruction, so F16C builds
// only), BFloat16 stores with `vcvtneps2bf16` on a CPU with AVX-512 BF16 (the
// formula for a vector holding a Float32 subnormal), else with
// nk_bf16_round8's integer formula and NaN rule: the same bits either way.
//
// `element`: 0 Float32, 1 Float16, 2 BFloat16 (bit patterns).

/// 1 when the CPU has AVX-512 F, VL, BW and DQ, the OS saves the AVX-512 state
/// and `NORMKERNELS_AVX512_SILU` is not `never`; 0 when not; -1 before the
/// first check. Set when the program loads.
extern int nk_avx512_silu_flag;

/// Runs the CPUID/XGETBV check (and reads the environment switch), stores its
/// result in nk_avx512_silu_flag and returns it.
int nk_avx512_silu_detect(void);

/// Tests: 0 turns the AVX-512 loops off, 1 runs the check again (on where the
/// CPU allows). Returns the new flag. Either way every loop gives the same bits.
int nk_avx512_silu_set(int enable);

/// Whether nk_silu512_* may be called on this CPU: one load and a predictable branch.
static inline __attribute__((always_inline)) int nk_cpu_runs_avx512_silu(void) {
    int flag = __atomic_load_n(&nk_avx512_silu_flag, __ATOMIC_RELAXED);
    return flag >= 0 ? flag : nk_avx512_silu_detect();
}

/// Calls into the nk_silu512_* loops made on the calling thread so far (tests:
/// proof that a path ran; a thread-local count, so no shared line in the loops).
uint64_t nk_silu512_thread_calls(void);

/// Of those, the forward output loops (nk_silu512_affine, nk_silu512_columns)
/// that rounded BFloat16 with `vcvtneps2bf16` (a CPU with AVX-512 BF16,
/// nk_cpu_rounds_bf16()); the same bits as the integer formula.
uint64_t nk_silu512_bf16_hardware_thread_calls(void);

/// GroupNorm + SiLU 16-bit backwards that ran unit by unit
/// (`GroupNormalization+SiLUBackwardUnits.swift`) on the calling thread: noted
/// once per call, counted per thread as above (tests).
void nk_silu_units_note(void);
uint64_t nk_silu_units_thread_calls(void);

/// `Apply.affine`'s loop with SiLU: `dst[i] = silu((src[i] − pivot)·scale + shift)`
/// for `count` values (a multiple of 16). `streaming`: non-temporal stores,
/// `dst` aligned to 8 values (32 bytes for Float32, 16 for 16-bit types).
void nk_silu512_affine(const void *src, void *dst, size_t count, float pivot, float scale, float shift,
                       int element, int streaming);

/// `Apply.columns`' loop with SiLU: for `rows` rows of `columns` values (any
/// count; row stride `stride` values), `dst[r, c] = silu((src[r, c] − pivot[c])·
/// scale[c] + shift[c])`; the last columns % 16 in masked lanes. `streaming`:
/// whole 16-column chunks with non-temporal stores (every row start aligned to
/// 8 values), the masked rest through the cache.
void nk_silu512_columns(const void *src, void *dst, size_t rows, size_t columns, size_t stride,
                        const float *pivot, const float *scale, const float *shift, int element, int streaming);

/// `SiLUGradientPass.run`'s two-vector loop over `count` values (a multiple of
/// 16) of one (n, c) run: d = x − p, z = d·s + t, dz = dy·silu′(z); g[i] = dz·m
/// when g is not NULL; when `sums`, acc[0…7] (A lanes) and acc[8…15] (B lanes)
/// updated as the Swift loop does, per 8 values in order:
/// A += dz, B = dz·(d·r + h) + B (fused). `k`: p, s, t, r, h, m.
void nk_silu512_gradient_run(const void *x, const void *dy, float *g, size_t count, const float *k,
                             int element, int sums, float *acc);

/// `SiLUGradientPass.rows`' vector loop: `rows` rows (stride `stride` values) of
/// `columns` channels (a multiple of 8) with per-channel tables (pivot, zScale,
/// zShift, hatScale, hatShift, multiplier, each `columns` long);
/// g[row, j] = dz·m[j] when g is not NULL; when `sums`, a[j] += dz and
/// b[j] = dz·(d·r[j] + h[j]) + b[j], row by row (a, b: `columns` Float32 lanes).
void nk_silu512_gradient_rows(const void *x, const void *dy, float *g, size_t rows, size_t columns, size_t stride,
                              const float *pivot, const float *zScale, const float *zShift, const float *hatScale,
                              const float *hatShift, const float *multiplier, int element, int sums,
                              float *a, float *b);

#endif
