// F16C conversions for baseline x86-64 builds; see include/HalfPrecision.h.
// Each function carries its own target attribute, so this file needs no
// -march flag and the rest of the library stays baseline x86-64.

#include "HalfPrecision.h"

int nk_f16c_flag = -1;

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>

int nk_f16c_detect(void) {
    unsigned a, b, c, d;
    int ok = 0;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
        if (osxsave && avx && f16c) {
            unsigned lo, hi;
            __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            ok = (lo & 6) == 6;  // the OS saves XMM and YMM state
        }
    }
    __atomic_store_n(&nk_f16c_flag, ok, __ATOMIC_RELAXED);
    return ok;
}

__attribute__((constructor)) static void nk_f16c_init(void) { (void)nk_f16c_detect(); }

__attribute__((target("avx,f16c")))
void nk_f16c_widen8(const void *src, float *dst) {
    _mm256_storeu_ps(dst, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)src)));
}

__attribute__((target("avx,f16c")))
void nk_f16c_narrow8(nk_float4 low, nk_float4 high, void *dst) {
    __m256 v = _mm256_set_m128((__m128)high, (__m128)low);
    _mm_storeu_si128((__m128i *)dst, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}

__attribute__((target("avx,f16c")))
void nk_f16c_narrow8_stream(nk_float4 low, nk_float4 high, void *dst) {
    __m256 v = _mm256_set_m128((__m128)high, (__m128)low);
    _mm_stream_si128((__m128i *)dst, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}

__attribute__((target("avx,f16c")))
void nk_f16c_widen(const void *src, float *dst, size_t count) {
    const uint16_t *s = (const uint16_t *)src;
    size_t i = 0;
    for (; i + 8 <= count; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
    for (; i < count; i++)
        dst[i] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(s[i])));
}

__attribute__((target("avx,f16c")))
void nk_f16c_narrow(const float *src, void *dst, size_t count) {
    uint16_t *d = (uint16_t *)dst;
    size_t i = 0;
    for (; i + 8 <= count; i += 8)
        _mm_storeu_si128((__m128i *)(d + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < count; i++)
        d[i] = (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(src[i]), _MM_FROUND_TO_NEAREST_INT), 0);
}

#else

int nk_f16c_detect(void) {
    __atomic_store_n(&nk_f16c_flag, 0, __ATOMIC_RELAXED);
    return 0;
}
void nk_f16c_widen8(const void *src, float *dst) { (void)src; (void)dst; }
void nk_f16c_narrow8(nk_float4 low, nk_float4 high, void *dst) { (void)low; (void)high; (void)dst; }
void nk_f16c_narrow8_stream(nk_float4 low, nk_float4 high, void *dst) { (void)low; (void)high; (void)dst; }
void nk_f16c_widen(const void *src, float *dst, size_t count) { (void)src; (void)dst; (void)count; }
void nk_f16c_narrow(const float *src, void *dst, size_t count) { (void)src; (void)dst; (void)count; }

#endif
