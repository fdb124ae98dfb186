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
    const char *env = getenv("NORMKERNELS_AVX512_COLUMNS");
    int ok = !(env && strcmp(env, "never") == 0) && nk_cpu_has_avx512();
    __atomic_store_n(&nk_avx512_columns_flag, ok, __ATOMIC_RELAXED);
    return ok;
}

__attribute__((constructor)) static void nk_avx512_columns_init(void) { (void)nk_avx512_columns_detect(); }

// avx512bf16 is named so that the BFloat16 dx stores of element code 3
// (below) inline into the loops; it enables no other instruction (AVX-512 BF16
// adds only the bf16 conversions and dot product, which nothing else here asks
// for), and code 3 is chosen only where nk_cpu_rounds_bf16() is 1.
#define NK_COL_TARGET __attribute__((target("avx2,fma,avx512f,avx512vl,avx512bw,avx512dq,avx512bf16")))
#define NK_COL_INLINE static inline __attribute__((always_inline)) NK_COL_TARGET

/// The tensors' element type (x, dy, mask and dx alike), a constant in each
/// loop. NK_C5_BF16_HW: BFloat16 with dx rounded by `vcvtneps2bf16` (a CPU
/// with AVX-512 BF16); loads and sums as NK_C5_BF16.
enum { NK_C5_F32 = 0, NK_C5_F16 = 1, NK_C5_BF16 = 2, NK_C5_BF16_HW = 3 };

/// 16 values at element offset `o`, widened exactly to Float32 as the Swift
/// `load8` widens them:
///     Float16:   vcvtph2ps (what `nk_f16c_load8` is, on 16 lanes; a NaN gets
///                the quiet bit, as every Float16 widening here does)
///     BFloat16:  the 16-bit pattern zero-extended and shifted to the top of
///                its lane (Float(b) = b << 16)
NK_COL_INLINE __m512 nk_c5_load(const void *p, size_t o, const int E) {
    if (E == NK_C5_F32) return _mm512_loadu_ps((const float *)p + o);
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)p + o));
    if (E == NK_C5_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/// 16 Float32 values rounded to BFloat16 by `nk_bf16_round8`'s formula:
/// b = (f + 0x7FFF + bit 16 of f) >> 16, a NaN (f >> 16) | 0x0040 (f: the
/// Float32 bits). The lanes are < 2^16, so `vpmovdw`'s truncation is exact.
NK_COL_INLINE __m256i nk_c5_bf16_formula(__m512 v) {
    __m512i f = _mm512_castps_si512(v);
    __m512i top = _mm512_srli_epi32(f, 16);
    __m512i bit = _mm512_and_si512(top, _mm512_set1_epi32(1));
    __m512i b = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(f, _mm512_set1_epi32(0x7FFF)), bit), 16);
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    b = _mm512_mask_or_epi32(b, nan, top, _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(b);
}

/// 16 Float32 values rounded to nearest, ties to even, to 16-bit patterns, as
/// the Swift `store8` rounds them:
///     Float16:      vcvtps2ph with the rounding mode in the instruction
///                   (`nk_f16c_round8`, on 16 lanes): overflow to ±inf,
///                   subnormal results rounded on their grid, a NaN quieted
///                   with the top of its payload kept
///     BFloat16:     the integer formula (`nk_c5_bf16_formula`)
///     BFloat16 HW:  one `vcvtneps2bf16`, the formula's bits for every input
///                   but Float32 subnormals, which it flushes to ±0: a vector
///                   holding one (one `vfpclassps`) takes the formula. NaNs keep
///                   sign and top payload with the quiet bit set, as the
///                   formula's (include/BFloat16Hardware.h). One instruction
///                   where the formula takes eight (col16's measurement: the
///                   formula only broke even with the hardware-rounded Swift
///                   loop it replaced).
NK_COL_INLINE __m256i nk_c5_round(__m512 v, const int E) {
    if (E == NK_C5_F16) return _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT);
    if (E == NK_C5_BF16_HW && __builtin_expect(_mm512_fpclass_ps_mask(v, 0x20) == 0, 1))
        return (__m256i)_mm512_cvtneps_pbh(v);
    return nk_c5_bf16_formula(v);
}

/// dx's 16 values stored at element offset `o`, non-temporal when `streaming`
/// in 8-value halves (rows start aligned to 8 values, not always 16: 32 bytes
/// for Float32, 16 for the 16-bit types).
NK_COL_INLINE void nk_c5_store(void *p, size_t o, __m512 v, const int E, int streaming) {
    if (E == NK_C5_F32) {
        float *d = (float *)p + o;
        if (streaming) {
            _mm256_stream_ps(d, _mm512_castps512_ps256(v));
            _mm256_stream_ps(d + 8, _mm512_extractf32x8_ps(v, 1));
        } else {
            _mm512_storeu_ps(d, v);
        }
        return;
    }
    __m256i h = nk_c5_round(v, E);
    uint16_t *d = (uint16_t *)p + o;
    if (streaming) {
        _mm_stream_si128((__m128i *)d, _mm256_castsi256_si128(h));
        _mm_stream_si128((__m128i *)(d + 8), _mm256_extracti128_si256(h, 1));
    } else {
        _mm256_storeu_si256((__m256i *)d, h);
    }
}

/// g = dy at o, 0 where mask ≤ 0 (`gradient8`'s `replace(with: 0, where: mask .<= 0)`
/// on the widened mask: a NaN mask keeps dy).
NK_COL_INLINE __m512 nk_c5_gradient(const void *dy, const void *mask, size_t o, int masked, const int E) {
    __m512 d = nk_c5_load(dy, o, E);
    if (!masked) return d;
    __mmask16 off = _mm512_cmp_ps_mask(nk_c5_load(mask, o, E), _mm512_setzero_ps(), _CMP_LE_OQ);
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
            __m512 xhat = _mm512_fmadd_ps(_mm512_sub_ps(nk_c5_load(x, o + 16 * k, E), p[k]), s[k], t[k]);
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
            __m512 v = _mm512_fmadd_ps(vb[k], _mm512_sub_ps(nk_c5_load(x, o + 16 * k, E), p[k]), vc[k]);
            v = _mm512_fmadd_ps(va[k], nk_c5_gradient(dy, mask, o + 16 * k, masked, E), v);
            nk_c5_store(dst, o + 16 * k, v, E, streaming);
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
