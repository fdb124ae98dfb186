// BatchNorm NHWC backward's Float32 passes in 16 AVX-512 lanes with the
// per-column state in registers, chosen at run time; see
// include/ColumnGradientsAVX512.h for why and for the bit-for-bit rule. Each
// function carries its own target attribute, so this file needs no -march
// flag; its loops exist only in builds with FMA (`__FMA__`), where the Swift
// `muladd` they mirror is one fused operation.
//
// Each pass is written once per tile width K = columns / 16 (1...8) with K a
// constant, so the compiler unrolls the column loop and keeps the K-vector
// arrays in zmm registers down all the rows of a call (K = 4, 64 columns:
// 8 accumulators + 12 coefficient vectors in the sums, 16 coefficient vectors
// in dx; wider tiles keep what fits and read the rest from L1).

#include "ColumnGradientsAVX512.h"

#include <stdlib.h>
#include <string.h>

// Nothing here is fused unless written as an FMA: the Swift loops never fuse otherwise.
#pragma STDC FP_CONTRACT OFF

int nk_avx512_columns_flag = -1;

static _Thread_local uint64_t nk_col512_calls = 0;

uint64_t nk_col512_thread_calls(void) { return nk_col512_calls; }

int nk_avx512_columns_set(int enable) {
    if (enable) return nk_avx512_columns_detect();
    __atomic_store_n(&nk_avx512_columns_flag, 0, __ATOMIC_RELAXED);
    return 0;
}

#if defined(__x86_64__) && defined(__FMA__)
#include <immintrin.h>

int nk_avx512_columns_detect(void) {
    const char *env = getenv("NORMKERNELS_AVX512_COLUMNS");
    int ok = !(env && strcmp(env, "never") == 0) && nk_cpu_has_avx512();
    __atomic_store_n(&nk_avx512_columns_flag, ok, __ATOMIC_RELAXED);
    return ok;
}

__attribute__((constructor)) static void nk_avx512_columns_init(void) { (void)nk_avx512_columns_detect(); }

#define NK_COL_TARGET __attribute__((target("avx2,fma,avx512f,avx512vl,avx512bw,avx512dq")))
#define NK_COL_INLINE static inline __attribute__((always_inline)) NK_COL_TARGET

/// g = dy at p, 0 where mask ≤ 0 (`gradient8`'s `replace(with: 0, where: mask .<= 0)`:
/// a NaN mask keeps dy).
NK_COL_INLINE __m512 nk_c5_gradient(const float *dy, const float *mask, size_t o, int masked) {
    __m512 d = _mm512_loadu_ps(dy + o);
    if (!masked) return d;
    __mmask16 off = _mm512_cmp_ps_mask(_mm512_loadu_ps(mask + o), _mm512_setzero_ps(), _CMP_LE_OQ);
    return _mm512_maskz_mov_ps((__mmask16)~off, d);
}

/// The sums of `rows` rows for K 16-column vectors, K a constant after inlining.
/// scalar math per column: x̂ = (x − p)·s + t;  Σg += g;  Σgx̂ += g·x̂
NK_COL_INLINE void nk_c5_sums(const float *x, const float *dy, const float *mask, size_t rows, size_t stride,
                              const float *pivot, const float *scale, const float *shift,
                              float *accG, float *accH, const int K, int masked) {
    __m512 p[8], s[8], t[8], g[8], h[8];
    for (int k = 0; k < K; k++) {
        p[k] = _mm512_loadu_ps(pivot + 16 * k); s[k] = _mm512_loadu_ps(scale + 16 * k);
        t[k] = _mm512_loadu_ps(shift + 16 * k);
        g[k] = _mm512_loadu_ps(accG + 16 * k); h[k] = _mm512_loadu_ps(accH + 16 * k);
    }
    size_t o = 0;
    for (size_t r = 0; r < rows; r++, o += stride) {
        for (int k = 0; k < K; k++) {
            __m512 d = nk_c5_gradient(dy, mask, o + 16 * k, masked);
            __m512 xhat = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_loadu_ps(x + o + 16 * k), p[k]), s[k], t[k]);
            g[k] = _mm512_add_ps(g[k], d);
            h[k] = _mm512_fmadd_ps(d, xhat, h[k]);
        }
    }
    for (int k = 0; k < K; k++) {
        _mm512_storeu_ps(accG + 16 * k, g[k]); _mm512_storeu_ps(accH + 16 * k, h[k]);
    }
}

#define NK_C5_SUMS(K)                                                                                       \
    static NK_COL_TARGET void nk_c5_sums##K(const float *x, const float *dy, const float *mask, size_t rows,  \
                                            size_t stride, const float *p, const float *s, const float *t,   \
                                            float *g, float *h) {                                            \
        if (mask) nk_c5_sums(x, dy, mask, rows, stride, p, s, t, g, h, K, 1);                                \
        else nk_c5_sums(x, dy, NULL, rows, stride, p, s, t, g, h, K, 0);                                     \
    }
NK_C5_SUMS(1) NK_C5_SUMS(2) NK_C5_SUMS(3) NK_C5_SUMS(4) NK_C5_SUMS(5) NK_C5_SUMS(6) NK_C5_SUMS(7) NK_C5_SUMS(8)

void nk_col512_gradient_sums_f32(const float *x, const float *dy, const float *mask, size_t rows,
                                 size_t columns, size_t stride, const float *pivot, const float *scale,
                                 const float *shift, float *accG, float *accH) {
    nk_col512_calls++;
    switch (columns / 16) {
    case 1: nk_c5_sums1(x, dy, mask, rows, stride, pivot, scale, shift, accG, accH); break;
    case 2: nk_c5_sums2(x, dy, mask, rows, stride, pivot, scale, shift, accG, accH); break;
    case 3: nk_c5_sums3(x, dy, mask, rows, stride, pivot, scale, shift, accG, accH); break;
    case 4: nk_c5_sums4(x, dy, mask, rows, stride, pivot, scale, shift, accG, accH); break;
    case 5: nk_c5_sums5(x, dy, mask, rows, stride, pivot, scale, shift, accG, accH); break;
    case 6: nk_c5_sums6(x, dy, mask, rows, stride, pivot, scale, shift, accG, accH); break;
    case 7: nk_c5_sums7(x, dy, mask, rows, stride, pivot, scale, shift, accG, accH); break;
    case 8: nk_c5_sums8(x, dy, mask, rows, stride, pivot, scale, shift, accG, accH); break;
    default: break;
    }
}

/// dx of `rows` rows for K 16-column vectors, K a constant after inlining.
/// scalar math per column: dx = a·g + (b·(x − p) + c)
NK_COL_INLINE void nk_c5_apply(const float *x, const float *dy, const float *mask, float *dst, size_t rows,
                               size_t stride, const float *pivot, const float *a, const float *b, const float *c,
                               const int K, int masked, int streaming) {
    __m512 p[8], va[8], vb[8], vc[8];
    for (int k = 0; k < K; k++) {
        p[k] = _mm512_loadu_ps(pivot + 16 * k); va[k] = _mm512_loadu_ps(a + 16 * k);
        vb[k] = _mm512_loadu_ps(b + 16 * k); vc[k] = _mm512_loadu_ps(c + 16 * k);
    }
    size_t o = 0;
    for (size_t r = 0; r < rows; r++, o += stride) {
        for (int k = 0; k < K; k++) {
            __m512 v = _mm512_fmadd_ps(vb[k], _mm512_sub_ps(_mm512_loadu_ps(x + o + 16 * k), p[k]), vc[k]);
            v = _mm512_fmadd_ps(va[k], nk_c5_gradient(dy, mask, o + 16 * k, masked), v);
            float *d = dst + o + 16 * k;
            if (streaming) {
                // 8-value halves: rows start aligned to 8 values (32 bytes), not always 16.
                _mm256_stream_ps(d, _mm512_castps512_ps256(v));
                _mm256_stream_ps(d + 8, _mm512_extractf32x8_ps(v, 1));
            } else {
                _mm512_storeu_ps(d, v);
            }
        }
    }
    if (streaming) _mm_sfence();
}

#define NK_C5_APPLY(K)                                                                                          \
    static NK_COL_TARGET void nk_c5_apply##K(const float *x, const float *dy, const float *mask, float *dst,     \
                                             size_t rows, size_t stride, const float *p, const float *a,        \
                                             const float *b, const float *c, int streaming) {                   \
        if (mask) {                                                                                             \
            if (streaming) nk_c5_apply(x, dy, mask, dst, rows, stride, p, a, b, c, K, 1, 1);                   \
            else nk_c5_apply(x, dy, mask, dst, rows, stride, p, a, b, c, K, 1, 0);                             \
        } else {                                                                                                \
            if (streaming) nk_c5_apply(x, dy, NULL, dst, rows, stride, p, a, b, c, K, 0, 1);                   \
            else nk_c5_apply(x, dy, NULL, dst, rows, stride, p, a, b, c, K, 0, 0);                             \
        }                                                                                                       \
    }
NK_C5_APPLY(1) NK_C5_APPLY(2) NK_C5_APPLY(3) NK_C5_APPLY(4)
NK_C5_APPLY(5) NK_C5_APPLY(6) NK_C5_APPLY(7) NK_C5_APPLY(8)

void nk_col512_gradient_apply_f32(const float *x, const float *dy, const float *mask, float *dst,
                                  size_t rows, size_t columns, size_t stride, const float *pivot,
                                  const float *a, const float *b, const float *c, int streaming) {
    nk_col512_calls++;
    switch (columns / 16) {
    case 1: nk_c5_apply1(x, dy, mask, dst, rows, stride, pivot, a, b, c, streaming); break;
    case 2: nk_c5_apply2(x, dy, mask, dst, rows, stride, pivot, a, b, c, streaming); break;
    case 3: nk_c5_apply3(x, dy, mask, dst, rows, stride, pivot, a, b, c, streaming); break;
    case 4: nk_c5_apply4(x, dy, mask, dst, rows, stride, pivot, a, b, c, streaming); break;
    case 5: nk_c5_apply5(x, dy, mask, dst, rows, stride, pivot, a, b, c, streaming); break;
    case 6: nk_c5_apply6(x, dy, mask, dst, rows, stride, pivot, a, b, c, streaming); break;
    case 7: nk_c5_apply7(x, dy, mask, dst, rows, stride, pivot, a, b, c, streaming); break;
    case 8: nk_c5_apply8(x, dy, mask, dst, rows, stride, pivot, a, b, c, streaming); break;
    default: break;
    }
}

#else

// Builds without FMA: the Swift loops' multiply-adds are not fused there, so
// these loops would not give their bits; never chosen.
int nk_avx512_columns_detect(void) {
    __atomic_store_n(&nk_avx512_columns_flag, 0, __ATOMIC_RELAXED);
    return 0;
}

void nk_col512_gradient_sums_f32(const float *x, const float *dy, const float *mask, size_t rows,
                                 size_t columns, size_t stride, const float *pivot, const float *scale,
                                 const float *shift, float *accG, float *accH) {
    (void)x; (void)dy; (void)mask; (void)rows; (void)columns; (void)stride; (void)pivot; (void)scale;
    (void)shift; (void)accG; (void)accH;
}

void nk_col512_gradient_apply_f32(const float *x, const float *dy, const float *mask, float *dst,
                                  size_t rows, size_t columns, size_t stride, const float *pivot,
                                  const float *a, const float *b, const float *c, int streaming) {
    (void)x; (void)dy; (void)mask; (void)dst; (void)rows; (void)columns; (void)stride; (void)pivot;
    (void)a; (void)b; (void)c; (void)streaming;
}

#endif
