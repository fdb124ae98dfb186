// BatchNorm NHWC backward's column passes (also InstanceNorm and GroupNorm
// NHWC backward: the columns geometry) in 16 AVX-512 lanes with the
// per-column state in registers, chosen at run time, for Float32, Float16 and
// BFloat16 tensors; see include/ColumnGradientsAVX512.h for why and for the
// bit-for-bit rule. Each function carries its own target attribute, so this
// file needs no -march flag; its loops exist only in builds with FMA
// (`__FMA__`), where the Swift `muladd` they mirror is one fused operation.
//
// Each pass is written once per tile width K = columns / 16 (1...8) and
// element type with both constant, so the compiler unrolls the column loop
// and keeps the K-vector arrays in zmm registers down all the rows of a call
// (K = 4, 64 columns: 8 accumulators + 12 coefficient vectors in the sums, 16
// coefficient vectors in dx; wider tiles keep what fits and read the rest from
// L1).
//
// 16-bit tensors: only the loads and the dx store differ. Values are widened
// exactly (every Float16 and BFloat16 is a Float32) and all arithmetic is the
// Float32 loop's; dx is rounded once from its Float32 value as the Swift
// `store8` rounds it (Float16: `vcvtps2ph`; BFloat16: `vcvtneps2bf16` on a CPU
// with AVX-512 BF16, else the integer formula: the same bits).

#include "ColumnGradientsAVX512.h"
#include "BFloat16Hardware.h"

#include <stdlib.h>
#include <string.h>

// Nothing here is fused unless written as an FMA: the Swift loops never fuse otherwise.
#pragma STDC FP_CONTRACT OFF

int nk_avx512_columns_flag = -1;

static _Thread_local uint64_t nk_col512_calls = 0;
static _Thread_local uint64_t nk_col512_bf16_hardware_calls = 0;

uint64_t nk_col512_thread_calls(void) { return nk_col512_calls; }
uint64_t nk_col512_bf16_hardware_thread_calls(void) { return nk_col512_bf16_hardware_calls; }

int nk_avx512_columns_set(int enable) {
    if (enable) return nk_avx512_columns_detect();
    __atomic_store_n(&nk_avx512_columns_flag, 0, __ATOMIC_RELAXED);
    return 0;
}

#if defined(__x86_64__) && defined(__FMA__)
#include <immintrin.h>

int nk_avx512_columns_detect(void) {
    int ok = nk_avx512_allowed("NORMKERNELS_AVX512_COLUMNS");
    __atomic_store_n(&nk_avx512_columns_flag, ok, __ATOMIC_RELAXED);
    return ok;
}

__attribute__((constructor)) static void nk_avx512_columns_init(void) { (void)nk_avx512_columns_detect(); }

// The element loads and stores (nk_e5_load, nk_e5_store: the Swift `load8` /
// `store8` bits) and the target they need: avx512_elements.h, shared with
// silu_avx512.c.
#include "avx512_elements.h"
#define NK_COL_TARGET NK_E5_TARGET
#define NK_COL_INLINE NK_E5_INLINE

/// The tensors' element type (x, dy, mask and dx alike), a constant in each
/// loop: avx512_elements.h's element codes. NK_C5_BF16_HW: BFloat16 with dx
/// rounded by `vcvtneps2bf16` (a CPU with AVX-512 BF16); loads and sums as
/// NK_C5_BF16.
enum { NK_C5_F32 = 0, NK_C5_F16 = 1, NK_C5_BF16 = 2, NK_C5_BF16_HW = 3 };

/// g = dy at o, 0 where mask ≤ 0 (`gradient8`'s `replace(with: 0, where: mask .<= 0)`
/// on the widened mask: a NaN mask keeps dy).
NK_COL_INLINE __m512 nk_c5_gradient(const void *dy, const void *mask, size_t o, int masked, const int E) {
    __m512 d = nk_e5_load(dy, o, E);
    if (!masked) return d;
    __mmask16 off = _mm512_cmp_ps_mask(nk_e5_load(mask, o, E), _mm512_setzero_ps(), _CMP_LE_OQ);
    return _mm512_maskz_mov_ps((__mmask16)~off, d);
}

/// The sums of `rows` rows for K 16-column vectors, K and E constants after inlining.
/// scalar math per column: x̂ = (x − p)·s + t;  Σg += g;  Σgx̂ += g·x̂
NK_COL_INLINE void nk_c5_sums(const void *x, const void *dy, const void *mask, size_t rows, size_t stride,
                              const float *pivot, const float *scale, const float *shift,
                              float *accG, float *accH, const int K, const int E, int masked) {
    __m512 p[8], s[8], t[8], g[8], h[8];
    for (int k = 0; k < K; k++) {
        p[k] = _mm512_loadu_ps(pivot + 16 * k); s[k] = _mm512_loadu_ps(scale + 16 * k);
        t[k] = _mm512_loadu_ps(shift + 16 * k);
        g[k] = _mm512_loadu_ps(accG + 16 * k); h[k] = _mm512_loadu_ps(accH + 16 * k);
    }
    size_t o = 0;
    for (size_t r = 0; r < rows; r++, o += stride) {
        for (int k = 0; k < K; k++) {
            __m512 d = nk_c5_gradient(dy, mask, o + 16 * k, masked, E);
            __m512 xhat = _mm512_fmadd_ps(_mm512_sub_ps(nk_e5_load(x, o + 16 * k, E), p[k]), s[k], t[k]);
            g[k] = _mm512_add_ps(g[k], d);
            h[k] = _mm512_fmadd_ps(d, xhat, h[k]);
        }
    }
    for (int k = 0; k < K; k++) {
        _mm512_storeu_ps(accG + 16 * k, g[k]); _mm512_storeu_ps(accH + 16 * k, h[k]);
    }
}

#define NK_C5_SUMS(K, T, E)                                                                                   \
    static NK_COL_TARGET void nk_c5_sums##K##T(const void *x, const void *dy, const void *mask, size_t rows,   \
                                               size_t stride, const float *p, const float *s, const float *t, \
                                               float *g, float *h) {                                          \
        if (mask) nk_c5_sums(x, dy, mask, rows, stride, p, s, t, g, h, K, E, 1);                              \
        else nk_c5_sums(x, dy, NULL, rows, stride, p, s, t, g, h, K, E, 0);                                   \
    }
#define NK_C5_SUMS_ALL(T, E)                                                                                   \
    NK_C5_SUMS(1, T, E) NK_C5_SUMS(2, T, E) NK_C5_SUMS(3, T, E) NK_C5_SUMS(4, T, E)                          \
    NK_C5_SUMS(5, T, E) NK_C5_SUMS(6, T, E) NK_C5_SUMS(7, T, E) NK_C5_SUMS(8, T, E)                          \
    void nk_col512_gradient_sums_##T(const void *x, const void *dy, const void *mask, size_t rows,            \
                                     size_t columns, size_t stride, const float *pivot, const float *scale,  \
                                     const float *shift, float *accG, float *accH) {                         \
        nk_col512_calls++;                                                                                    \
        switch (columns / 16) {                                                                               \
        case 1: nk_c5_sums1##T(x, dy, mask, rows, stride, pivot, scale, shift, accG, accH); break;            \
        case 2: nk_c5_sums2##T(x, dy, mask, rows, stride, pivot, scale, shift, accG, accH); break;            \
        case 3: nk_c5_sums3##T(x, dy, mask, rows, stride, pivot, scale, shift, accG, accH); break;            \
        case 4: nk_c5_sums4##T(x, dy, mask, rows, stride, pivot, scale, shift, accG, accH); break;            \
        case 5: nk_c5_sums5##T(x, dy, mask, rows, stride, pivot, scale, shift, accG, accH); break;            \
        case 6: nk_c5_sums6##T(x, dy, mask, rows, stride, pivot, scale, shift, accG, accH); break;            \
        case 7: nk_c5_sums7##T(x, dy, mask, rows, stride, pivot, scale, shift, accG, accH); break;            \
        case 8: nk_c5_sums8##T(x, dy, mask, rows, stride, pivot, scale, shift, accG, accH); break;            \
        default: break;                                                                                       \
        }                                                                                                     \
    }
NK_C5_SUMS_ALL(f32, NK_C5_F32)
NK_C5_SUMS_ALL(f16, NK_C5_F16)
NK_C5_SUMS_ALL(bf16, NK_C5_BF16)

/// dx of `rows` rows for K 16-column vectors, K and E constants after inlining.
/// scalar math per column: dx = a·g + (b·(x − p) + c), rounded once to E
NK_COL_INLINE void nk_c5_apply(const void *x, const void *dy, const void *mask, void *dst, size_t rows,
                               size_t stride, const float *pivot, const float *a, const float *b, const float *c,
                               const int K, const int E, int masked, int streaming) {
    __m512 p[8], va[8], vb[8], vc[8];
    for (int k = 0; k < K; k++) {
        p[k] = _mm512_loadu_ps(pivot + 16 * k); va[k] = _mm512_loadu_ps(a + 16 * k);
        vb[k] = _mm512_loadu_ps(b + 16 * k); vc[k] = _mm512_loadu_ps(c + 16 * k);
    }
    size_t o = 0;
    for (size_t r = 0; r < rows; r++, o += stride) {
        for (int k = 0; k < K; k++) {
            __m512 v = _mm512_fmadd_ps(vb[k], _mm512_sub_ps(nk_e5_load(x, o + 16 * k, E), p[k]), vc[k]);
            v = _mm512_fmadd_ps(va[k], nk_c5_gradient(dy, mask, o + 16 * k, masked, E), v);
            nk_e5_store(dst, o + 16 * k, v, E, streaming);
        }
    }
    if (streaming) _mm_sfence();
}

#define NK_C5_APPLY(K, T, E)                                                                                     \
    static NK_COL_TARGET void nk_c5_apply##K##T(const void *x, const void *dy, const void *mask, void *dst,      \
                                                size_t rows, size_t stride, const float *p, const float *a,     \
                                                const float *b, const float *c, int streaming) {                \
        if (mask) {                                                                                              \
            if (streaming) nk_c5_apply(x, dy, mask, dst, rows, stride, p, a, b, c, K, E, 1, 1);                 \
            else nk_c5_apply(x, dy, mask, dst, rows, stride, p, a, b, c, K, E, 1, 0);                           \
        } else {                                                                                                 \
            if (streaming) nk_c5_apply(x, dy, NULL, dst, rows, stride, p, a, b, c, K, E, 0, 1);                 \
            else nk_c5_apply(x, dy, NULL, dst, rows, stride, p, a, b, c, K, E, 0, 0);                           \
        }                                                                                                        \
    }
#define NK_C5_APPLY_ALL(T, E)                                                                                     \
    NK_C5_APPLY(1, T, E) NK_C5_APPLY(2, T, E) NK_C5_APPLY(3, T, E) NK_C5_APPLY(4, T, E)                         \
    NK_C5_APPLY(5, T, E) NK_C5_APPLY(6, T, E) NK_C5_APPLY(7, T, E) NK_C5_APPLY(8, T, E)                         \
    static NK_COL_TARGET void nk_c5_apply_##T(const void *x, const void *dy, const void *mask, void *dst,        \
                                              size_t rows, size_t columns, size_t stride, const float *pivot,   \
                                              const float *a, const float *b, const float *c, int streaming) {  \
        switch (columns / 16) {                                                                                  \
        case 1: nk_c5_apply1##T(x, dy, mask, dst, rows, stride, pivot, a, b, c, streaming); break;              \
        case 2: nk_c5_apply2##T(x, dy, mask, dst, rows, stride, pivot, a, b, c, streaming); break;              \
        case 3: nk_c5_apply3##T(x, dy, mask, dst, rows, stride, pivot, a, b, c, streaming); break;              \
        case 4: nk_c5_apply4##T(x, dy, mask, dst, rows, stride, pivot, a, b, c, streaming); break;              \
        case 5: nk_c5_apply5##T(x, dy, mask, dst, rows, stride, pivot, a, b, c, streaming); break;              \
        case 6: nk_c5_apply6##T(x, dy, mask, dst, rows, stride, pivot, a, b, c, streaming); break;              \
        case 7: nk_c5_apply7##T(x, dy, mask, dst, rows, stride, pivot, a, b, c, streaming); break;              \
        case 8: nk_c5_apply8##T(x, dy, mask, dst, rows, stride, pivot, a, b, c, streaming); break;              \
        default: break;                                                                                          \
        }                                                                                                        \
    }
NK_C5_APPLY_ALL(f32, NK_C5_F32)
NK_C5_APPLY_ALL(f16, NK_C5_F16)
NK_C5_APPLY_ALL(bf16, NK_C5_BF16)
NK_C5_APPLY_ALL(bf16hw, NK_C5_BF16_HW)

void nk_col512_gradient_apply_f32(const void *x, const void *dy, const void *mask, void *dst, size_t rows,
                                  size_t columns, size_t stride, const float *pivot, const float *a,
                                  const float *b, const float *c, int streaming) {
    nk_col512_calls++;
    nk_c5_apply_f32(x, dy, mask, dst, rows, columns, stride, pivot, a, b, c, streaming);
}

void nk_col512_gradient_apply_f16(const void *x, const void *dy, const void *mask, void *dst, size_t rows,
                                  size_t columns, size_t stride, const float *pivot, const float *a,
                                  const float *b, const float *c, int streaming) {
    nk_col512_calls++;
    nk_c5_apply_f16(x, dy, mask, dst, rows, columns, stride, pivot, a, b, c, streaming);
}

void nk_col512_gradient_apply_bf16(const void *x, const void *dy, const void *mask, void *dst, size_t rows,
                                   size_t columns, size_t stride, const float *pivot, const float *a,
                                   const float *b, const float *c, int streaming) {
    nk_col512_calls++;
    if (nk_cpu_rounds_bf16()) {
        nk_col512_bf16_hardware_calls++;
        nk_c5_apply_bf16hw(x, dy, mask, dst, rows, columns, stride, pivot, a, b, c, streaming);
    } else {
        nk_c5_apply_bf16(x, dy, mask, dst, rows, columns, stride, pivot, a, b, c, streaming);
    }
}

#else

// Builds without FMA: the Swift loops' multiply-adds are not fused there, so
// these loops would not give their bits; never chosen.
int nk_avx512_columns_detect(void) {
    __atomic_store_n(&nk_avx512_columns_flag, 0, __ATOMIC_RELAXED);
    return 0;
}

#define NK_C5_NONE(T)                                                                                          \
    void nk_col512_gradient_sums_##T(const void *x, const void *dy, const void *mask, size_t rows,             \
                                     size_t columns, size_t stride, const float *pivot, const float *scale,   \
                                     const float *shift, float *accG, float *accH) {                          \
        (void)x; (void)dy; (void)mask; (void)rows; (void)columns; (void)stride; (void)pivot; (void)scale;      \
        (void)shift; (void)accG; (void)accH;                                                                   \
    }                                                                                                          \
    void nk_col512_gradient_apply_##T(const void *x, const void *dy, const void *mask, void *dst, size_t rows, \
                                      size_t columns, size_t stride, const float *pivot, const float *a,      \
                                      const float *b, const float *c, int streaming) {                        \
        (void)x; (void)dy; (void)mask; (void)dst; (void)rows; (void)columns; (void)stride; (void)pivot;        \
        (void)a; (void)b; (void)c; (void)streaming;                                                            \
    }
NK_C5_NONE(f32)
NK_C5_NONE(f16)
NK_C5_NONE(bf16)

#endif
