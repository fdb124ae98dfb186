// The Float16 dx loop of `BlockGradients.apply` in AVX-512 registers, chosen
// at run time; see include/Float16GradientAVX512.h for why and for the
// bit-for-bit rule. The function carries its own target attribute, so this
// file needs no -march flag; its loop exists only in builds with FMA and F16C
// (`__FMA__`, `__F16C__`), where the Swift `muladd` it mirrors is one fused
// operation.

#include "Float16GradientAVX512.h"

// Nothing here is fused unless written as an FMA: the Swift loops never fuse.
#pragma STDC FP_CONTRACT OFF

int nk_f16_dx512_flag = -1;

static _Thread_local uint64_t nk_f16_dx512_calls = 0;

uint64_t nk_f16_dx512_thread_calls(void) { return nk_f16_dx512_calls; }

int nk_f16_dx512_set(int enable) {
    if (enable) return nk_f16_dx512_detect();
    __atomic_store_n(&nk_f16_dx512_flag, 0, __ATOMIC_RELAXED);
    return 0;
}

#if defined(__x86_64__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

int nk_f16_dx512_detect(void) {
    int ok = nk_avx512_allowed("NORMKERNELS_F16_DX");
    __atomic_store_n(&nk_f16_dx512_flag, ok, __ATOMIC_RELAXED);
    return ok;
}

__attribute__((constructor)) static void nk_f16_dx512_init(void) { (void)nk_f16_dx512_detect(); }

// The element loads and roundings (nk_e5_load / nk_e5_narrow: the Swift
// `load8` / `store8` bits) and their target.
#include "avx512_elements.h"

/// 16 values of dx at i. scalar math: g = dy (0 where mask ≤ 0);  dx = fma(a, g, fma(b, x − p, c))
NK_E5_INLINE __m256i nk_dx16(const uint16_t *x, const uint16_t *dy, const uint16_t *mask, size_t i, __m512 p,
                             __m512 va, __m512 vb, __m512 vc) {
    __m512 g = nk_e5_load(dy, i, 1);
    if (mask) {
        // g = 0 where mask ≤ 0 (ordered compare: a NaN mask keeps dy), as `replace(with: 0, where: m .<= 0)`.
        __mmask16 off = _mm512_cmp_ps_mask(nk_e5_load(mask, i, 1), _mm512_setzero_ps(), _CMP_LE_OQ);
        g = _mm512_maskz_mov_ps((__mmask16)~off, g);
    }
    __m512 v = _mm512_fmadd_ps(vb, _mm512_sub_ps(nk_e5_load(x, i, 1), p), vc);
    return nk_e5_narrow(_mm512_fmadd_ps(va, g, v), 1);
}

/// 16 rounded values stored at `dst` (two 16-byte non-temporal stores when streaming).
NK_E5_INLINE void nk_dx_store16(uint16_t *dst, __m256i r, int streaming) {
    if (streaming) {
        _mm_stream_si128((__m128i *)dst, _mm256_castsi256_si128(r));
        _mm_stream_si128((__m128i *)(dst + 8), _mm256_extracti128_si256(r, 1));
    } else {
        _mm256_storeu_si256((__m256i *)dst, r);
    }
}

NK_E5_INLINE void nk_dx_loop(const uint16_t *x, const uint16_t *dy, const uint16_t *mask, uint16_t *dst,
                             size_t count, float pivot, float a, float b, float c, int streaming) {
    const __m512 p = _mm512_set1_ps(pivot), va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b), vc = _mm512_set1_ps(c);
    size_t i = 0;
    for (; i + 32 <= count; i += 32) {
        __m256i r0 = nk_dx16(x, dy, mask, i, p, va, vb, vc);
        __m256i r1 = nk_dx16(x, dy, mask, i + 16, p, va, vb, vc);
        nk_dx_store16(dst + i, r0, streaming);
        nk_dx_store16(dst + i + 16, r1, streaming);
    }
    if (i < count) nk_dx_store16(dst + i, nk_dx16(x, dy, mask, i, p, va, vb, vc), streaming);
}

NK_E5_TARGET void nk_f16_dx512_gradient(const uint16_t *x, const uint16_t *dy, const uint16_t *mask, uint16_t *dst,
                                        size_t count, float pivot, float a, float b, float c, int streaming) {
    nk_f16_dx512_calls++;
    // One loop per combination, the flags constant inside each.
#define NK_DX(M, S) nk_dx_loop(x, dy, M, dst, count, pivot, a, b, c, S)
    if (streaming) { if (mask) NK_DX(mask, 1); else NK_DX(NULL, 1); }
    else { if (mask) NK_DX(mask, 0); else NK_DX(NULL, 0); }
#undef NK_DX
}

#else

int nk_f16_dx512_detect(void) {
    __atomic_store_n(&nk_f16_dx512_flag, 0, __ATOMIC_RELAXED);
    return 0;
}

void nk_f16_dx512_gradient(const uint16_t *x, const uint16_t *dy, const uint16_t *mask, uint16_t *dst, size_t count,
                           float pivot, float a, float b, float c, int streaming) {
    (void)x; (void)dy; (void)mask; (void)dst; (void)count; (void)pivot; (void)a; (void)b; (void)c; (void)streaming;
}

#endif
