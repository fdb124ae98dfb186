// 16 values of a tensor's element type in one zmm register, loaded and stored
// exactly as the Swift `load8` / `store8` do (the bit-for-bit rule of the C
// loops that mirror them): shared by silu_avx512.c and
// column_gradients_avx512.c. Private to CNormSupport (not under include/);
// include it inside the `#if defined(__x86_64__) && defined(__FMA__)` part of
// a file, after <immintrin.h>.
//
// `element`: 0 Float32, 1 Float16, 2 BFloat16 rounded by the integer formula,
// 3 BFloat16 rounded by `vcvtneps2bf16` (chosen only where
// nk_cpu_rounds_bf16() is 1); loads treat 2 and 3 alike.
//
// avx512bf16 is named so that code 3's conversion inlines into the loops; it
// enables no other instruction (AVX-512 BF16 adds only the bf16 conversions
// and dot product, which nothing else asks for).

#ifndef CNORMSUPPORT_AVX512_ELEMENTS_H
#define CNORMSUPPORT_AVX512_ELEMENTS_H

#define NK_E5_TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512dq,avx512bf16")))
#define NK_E5_INLINE static inline __attribute__((always_inline)) NK_E5_TARGET

/// 16 values of `element` at p + i widened exactly (Float16: `vcvtph2ps`, as
/// nk_f16c_load8; BFloat16: the bits shifted to the top of each lane).
NK_E5_INLINE __m512 nk_e5_load(const void *p, size_t i, int element) {
    if (element == 0) return _mm512_loadu_ps((const float *)p + i);
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i));
    if (element == 1) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/// 16 floats rounded to BFloat16 by nk_bf16_round8's formula:
/// (f + 0x7FFF + bit 16 of f) >> 16, a NaN (f >> 16) | 0x40.
NK_E5_INLINE __m256i nk_e5_bf16(__m512 v) {
    __m512i f = _mm512_castps_si512(v);
    __m512i bit = _mm512_and_si512(_mm512_srli_epi32(f, 16), _mm512_set1_epi32(1));
    __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(f, _mm512_set1_epi32(0x7FFF)), bit), 16);
    __m512i nan = _mm512_or_si512(_mm512_srli_epi32(f, 16), _mm512_set1_epi32(0x40));
    __mmask16 isNaN = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    return _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(rounded, isNaN, nan));
}

/// 16 floats rounded to BFloat16 by `vcvtneps2bf16` (element code 3, on a CPU
/// with AVX-512 BF16): the formula's bits for every input but Float32
/// subnormals, which the instruction flushes to ±0, so a vector holding one
/// (one `vfpclassps`; rare in both users: silu(z) is subnormal only where
/// |z| < 2^−125, dx only where its terms cancel to below 2^−126) takes the
/// formula; NaNs keep their sign and top payload with the quiet bit set, as the
/// formula's (f >> 16) | 0x40 (include/BFloat16Hardware.h). One conversion per
/// 16 values where the formula takes ten integer operations.
NK_E5_INLINE __m256i nk_e5_bf16_hardware(__m512 v) {
    if (__builtin_expect(_mm512_fpclass_ps_mask(v, 0x20) != 0, 0)) return nk_e5_bf16(v);
    return (__m256i)_mm512_cvtneps_pbh(v);
}

/// 16 floats rounded to `element` (Float16: `vcvtps2ph` to nearest even, as
/// nk_f16c_round8; BFloat16: the formula (2) or the instruction (3)), as
/// 16-bit patterns.
NK_E5_INLINE __m256i nk_e5_narrow(__m512 v, int element) {
    if (element == 1) return _mm512_cvtps_ph(v, 0);
    return element == 3 ? nk_e5_bf16_hardware(v) : nk_e5_bf16(v);
}

/// Stores 16 values at p + i; `streaming`: non-temporal, in 8-value halves
/// (p + i aligned to 8 values, as the Swift loops' `stream8`).
NK_E5_INLINE void nk_e5_store(void *p, size_t i, __m512 v, int element, int streaming) {
    if (element == 0) {
        float *d = (float *)p + i;
        if (streaming) {
            _mm256_stream_ps(d, _mm512_castps512_ps256(v));
            _mm256_stream_ps(d + 8, _mm512_extractf32x8_ps(v, 1));
        } else {
            _mm512_storeu_ps(d, v);
        }
        return;
    }
    __m256i h = nk_e5_narrow(v, element);
    uint16_t *d = (uint16_t *)p + i;
    if (streaming) {
        _mm_stream_si128((__m128i *)d, _mm256_castsi256_si128(h));
        _mm_stream_si128((__m128i *)(d + 8), _mm256_extracti128_si256(h, 1));
    } else {
        _mm256_storeu_si256((__m256i *)d, h);
    }
}

#endif
