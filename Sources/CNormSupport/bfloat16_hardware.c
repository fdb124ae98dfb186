// BFloat16 output loops rounded by AVX-512 BF16, chosen at run time; see
// include/BFloat16Hardware.h. The LayerNorm item loop serves Float16 rows too
// (include/Float16LayerNormRows.h): one loop with the element kind a constant
// argument. Each function carries its own target attribute, so this file needs
// no -march flag.

#include "BFloat16Hardware.h"
#include "Float16LayerNormRows.h"

#include <stdlib.h>
#include <string.h>

int nk_avx512bf16_flag = -1;

static _Thread_local uint64_t nk_bf16_layernorm_rows_calls = 0;

uint64_t nk_bf16_hw_layernorm_rows_thread_calls(void) { return nk_bf16_layernorm_rows_calls; }

int nk_f16_rows_flag = -1;

static _Thread_local uint64_t nk_f16_layernorm_rows_calls = 0;

uint64_t nk_f16_hw_layernorm_rows_thread_calls(void) { return nk_f16_layernorm_rows_calls; }

int nk_f16_rows_set(int enable) {
    if (enable) return nk_f16_rows_detect();
    __atomic_store_n(&nk_f16_rows_flag, 0, __ATOMIC_RELAXED);
    return 0;
}

int nk_avx512bf16_set(int enable) {
    if (enable) return nk_avx512bf16_detect();
    __atomic_store_n(&nk_avx512bf16_flag, 0, __ATOMIC_RELAXED);
    return 0;
}

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

int nk_avx512bf16_detect(void) {
    int ok = nk_avx512_allowed("NORMKERNELS_BF16_HARDWARE");
    if (ok) {
        unsigned a, b, c, d;   // AVX-512 BF16: CPUID leaf 7, subleaf 1, EAX bit 5.
        ok = __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 5) & 1);
    }
    __atomic_store_n(&nk_avx512bf16_flag, ok, __ATOMIC_RELAXED);
    return ok;
}

__attribute__((constructor)) static void nk_avx512bf16_init(void) { (void)nk_avx512bf16_detect(); }

int nk_f16_rows_detect(void) {
    // The item loop is compiled for AVX-512 F/VL/BW/DQ (and BF16, which its Float16 copy never
    // uses: the kind is a constant, so no BFloat16 conversion is left in it).
    int ok = nk_avx512_allowed("NORMKERNELS_F16_ROWS");
    __atomic_store_n(&nk_f16_rows_flag, ok, __ATOMIC_RELAXED);
    return ok;
}

__attribute__((constructor)) static void nk_f16_rows_init(void) { (void)nk_f16_rows_detect(); }

// f16c: implied by avx512f (named for the Float16 conversions of the row loops).
#define NK_BF16_TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512dq,avx512bf16")))

/// Eight BFloat16 values widened exactly: the 16 bytes in both halves
/// (`vbroadcasti128`, a load), each value moved to the top of a 32-bit lane
/// (one `vpshufb`).
static inline __attribute__((always_inline)) NK_BF16_TARGET __m256 nk_hw_widen8(const uint16_t *p) {
    const __m256i order = _mm256_setr_epi8(-128, -128, 0, 1, -128, -128, 2, 3, -128, -128, 4, 5, -128, -128, 6, 7,
                                           -128, -128, 8, 9, -128, -128, 10, 11, -128, -128, 12, 13, -128, -128, 14, 15);
    __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_shuffle_epi8(both, order));
}

/// The element kinds of the row loops below, a constant at every call so that each
/// kind gets its own copy of a loop with no branch on it: BFloat16 (widened by
/// `vpshufb`, rounded by `vcvtne2ps2bf16`) or Float16 (`vcvtph2ps` / `vcvtps2ph` to
/// nearest even: nk_f16c_load8 / nk_f16c_round8 of an F16C build, the same bits).
enum { NK_HW_BF16 = 0, NK_HW_F16 = 1 };

/// Eight values of `kind` at p widened exactly.
static inline __attribute__((always_inline)) NK_BF16_TARGET __m256 nk_hw_load8(const uint16_t *p, int kind) {
    if (kind == NK_HW_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    return nk_hw_widen8(p);
}

/// `lo` then `hi` rounded to 16 BFloat16 values in order: `vcvtne2ps2bf16`,
/// or the integer formula when a lane is a Float32 subnormal (which the
/// instruction would flush to ±0).
static inline __attribute__((always_inline)) NK_BF16_TARGET __m256i nk_hw_round16(__m256 lo, __m256 hi) {
    if (__builtin_expect((_mm256_fpclass_ps_mask(lo, 0x20) | _mm256_fpclass_ps_mask(hi, 0x20)) != 0, 0)) {
        // The formula of `nk_bf16_round8` lane by lane: (f + 0x7FFF + bit 16) >> 16,
        // a NaN (f >> 16) | 0x40; the lanes are < 2^16, so packing them is the truncation.
        __m256i r[2];
        __m256 v[2] = {lo, hi};
        for (int k = 0; k < 2; k++) {
            __m256i f = _mm256_castps_si256(v[k]);
            __m256i bit = _mm256_and_si256(_mm256_srli_epi32(f, 16), _mm256_set1_epi32(1));
            __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(f, _mm256_set1_epi32(0x7FFF)), bit), 16);
            __m256i nan = _mm256_or_si256(_mm256_srli_epi32(f, 16), _mm256_set1_epi32(0x40));
            __m256i isNaN = _mm256_castps_si256(_mm256_cmp_ps(v[k], v[k], _CMP_UNORD_Q));
            r[k] = _mm256_blendv_epi8(rounded, nan, isNaN);
        }
        // packus works within 128-bit halves: quarters 0, 2, 1, 3 back in order.
        return _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), 0xD8);
    }
    return (__m256i)_mm256_cvtne2ps_pbh(hi, lo);
}

static inline __attribute__((always_inline)) NK_BF16_TARGET void
nk_hw_affine(const uint16_t *src, uint16_t *dst, size_t count, float pivot, float scale, float shift,
             const uint16_t *residual, int activation, int streaming) {
    const __m256 p = _mm256_set1_ps(pivot), s = _mm256_set1_ps(scale), t = _mm256_set1_ps(shift);
    const __m256 zero = _mm256_setzero_ps();
    for (size_t i = 0; i < count; i += 16) {
        __m256 a = _mm256_fmadd_ps(_mm256_sub_ps(nk_hw_widen8(src + i), p), s, t);
        __m256 b = _mm256_fmadd_ps(_mm256_sub_ps(nk_hw_widen8(src + i + 8), p), s, t);
        if (residual) {
            a = _mm256_add_ps(a, nk_hw_widen8(residual + i));
            b = _mm256_add_ps(b, nk_hw_widen8(residual + i + 8));
        }
        if (activation == 1) {
            // max(0, v): v when v is NaN (the second operand), 0 where v < 0, v (±0) otherwise.
            a = _mm256_max_ps(zero, a);
            b = _mm256_max_ps(zero, b);
        }
        __m256i r = nk_hw_round16(a, b);
        if (streaming) {
            _mm_stream_si128((__m128i *)(dst + i), _mm256_castsi256_si128(r));
            _mm_stream_si128((__m128i *)(dst + i + 8), _mm256_extracti128_si256(r, 1));
        } else {
            _mm256_storeu_si256((__m256i *)(dst + i), r);
        }
    }
}

NK_BF16_TARGET
void nk_bf16_hw_affine(const uint16_t *src, uint16_t *dst, size_t count, float pivot, float scale, float shift,
                       const uint16_t *residual, int activation, int streaming) {
    // One loop per combination, the flags constant inside each.
    if (streaming) {
        if (residual) {
            if (activation == 1) nk_hw_affine(src, dst, count, pivot, scale, shift, residual, 1, 1);
            else nk_hw_affine(src, dst, count, pivot, scale, shift, residual, 0, 1);
        } else {
            if (activation == 1) nk_hw_affine(src, dst, count, pivot, scale, shift, NULL, 1, 1);
            else nk_hw_affine(src, dst, count, pivot, scale, shift, NULL, 0, 1);
        }
    } else {
        if (residual) {
            if (activation == 1) nk_hw_affine(src, dst, count, pivot, scale, shift, residual, 1, 0);
            else nk_hw_affine(src, dst, count, pivot, scale, shift, residual, 0, 0);
        } else {
            if (activation == 1) nk_hw_affine(src, dst, count, pivot, scale, shift, NULL, 1, 0);
            else nk_hw_affine(src, dst, count, pivot, scale, shift, NULL, 0, 0);
        }
    }
}

static inline __attribute__((always_inline)) NK_BF16_TARGET void
nk_hw_columns(const uint16_t *src, uint16_t *dst, size_t rows, size_t columns, size_t stride,
              const float *pivot, const float *scale, const float *shift, const uint16_t *residual,
              int activation, int streaming) {
    const __m256 zero = _mm256_setzero_ps();
    for (size_t r = 0; r < rows; r++) {
        const uint16_t *x = src + r * stride, *e = residual ? residual + r * stride : NULL;
        uint16_t *y = dst + r * stride;
        for (size_t c = 0; c < columns; c += 16) {
            __m256 a = _mm256_fmadd_ps(_mm256_sub_ps(nk_hw_widen8(x + c), _mm256_loadu_ps(pivot + c)),
                                       _mm256_loadu_ps(scale + c), _mm256_loadu_ps(shift + c));
            __m256 b = _mm256_fmadd_ps(_mm256_sub_ps(nk_hw_widen8(x + c + 8), _mm256_loadu_ps(pivot + c + 8)),
                                       _mm256_loadu_ps(scale + c + 8), _mm256_loadu_ps(shift + c + 8));
            if (residual) {
                a = _mm256_add_ps(a, nk_hw_widen8(e + c));
                b = _mm256_add_ps(b, nk_hw_widen8(e + c + 8));
            }
            if (activation == 1) {
                a = _mm256_max_ps(zero, a);
                b = _mm256_max_ps(zero, b);
            }
            __m256i v = nk_hw_round16(a, b);
            if (streaming) {
                _mm_stream_si128((__m128i *)(y + c), _mm256_castsi256_si128(v));
                _mm_stream_si128((__m128i *)(y + c + 8), _mm256_extracti128_si256(v, 1));
            } else {
                _mm256_storeu_si256((__m256i *)(y + c), v);
            }
        }
    }
}

NK_BF16_TARGET
void nk_bf16_hw_columns(const uint16_t *src, uint16_t *dst, size_t rows, size_t columns, size_t stride,
                        const float *pivot, const float *scale, const float *shift, const uint16_t *residual,
                        int activation, int streaming) {
#define NK_COLUMNS(R, A, S) nk_hw_columns(src, dst, rows, columns, stride, pivot, scale, shift, R, A, S)
    if (streaming) {
        if (residual) { if (activation == 1) NK_COLUMNS(residual, 1, 1); else NK_COLUMNS(residual, 0, 1); }
        else { if (activation == 1) NK_COLUMNS(NULL, 1, 1); else NK_COLUMNS(NULL, 0, 1); }
    } else {
        if (residual) { if (activation == 1) NK_COLUMNS(residual, 1, 0); else NK_COLUMNS(residual, 0, 0); }
        else { if (activation == 1) NK_COLUMNS(NULL, 1, 0); else NK_COLUMNS(NULL, 0, 0); }
    }
#undef NK_COLUMNS
}

static inline __attribute__((always_inline)) NK_BF16_TARGET void
nk_hw_gradient(const uint16_t *x, const uint16_t *dy, const uint16_t *mask, uint16_t *dst, size_t count,
               float pivot, float a, float b, float c, int streaming) {
    const __m256 p = _mm256_set1_ps(pivot), va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b), vc = _mm256_set1_ps(c);
    const __m256 zero = _mm256_setzero_ps();
    for (size_t i = 0; i < count; i += 16) {
        __m256 g0 = nk_hw_widen8(dy + i), g1 = nk_hw_widen8(dy + i + 8);
        if (mask) {
            // g = 0 where mask ≤ 0 (a NaN mask keeps dy).
            g0 = _mm256_andnot_ps(_mm256_cmp_ps(nk_hw_widen8(mask + i), zero, _CMP_LE_OQ), g0);
            g1 = _mm256_andnot_ps(_mm256_cmp_ps(nk_hw_widen8(mask + i + 8), zero, _CMP_LE_OQ), g1);
        }
        __m256 v0 = _mm256_fmadd_ps(vb, _mm256_sub_ps(nk_hw_widen8(x + i), p), vc);
        __m256 v1 = _mm256_fmadd_ps(vb, _mm256_sub_ps(nk_hw_widen8(x + i + 8), p), vc);
        __m256i r = nk_hw_round16(_mm256_fmadd_ps(va, g0, v0), _mm256_fmadd_ps(va, g1, v1));
        if (streaming) {
            _mm_stream_si128((__m128i *)(dst + i), _mm256_castsi256_si128(r));
            _mm_stream_si128((__m128i *)(dst + i + 8), _mm256_extracti128_si256(r, 1));
        } else {
            _mm256_storeu_si256((__m256i *)(dst + i), r);
        }
    }
}

NK_BF16_TARGET
void nk_bf16_hw_gradient(const uint16_t *x, const uint16_t *dy, const uint16_t *mask, uint16_t *dst, size_t count,
                         float pivot, float a, float b, float c, int streaming) {
    if (streaming) {
        if (mask) nk_hw_gradient(x, dy, mask, dst, count, pivot, a, b, c, 1);
        else nk_hw_gradient(x, dy, NULL, dst, count, pivot, a, b, c, 1);
    } else {
        if (mask) nk_hw_gradient(x, dy, mask, dst, count, pivot, a, b, c, 0);
        else nk_hw_gradient(x, dy, NULL, dst, count, pivot, a, b, c, 0);
    }
}

/// 16 rounded values stored at `dst` (two 16-byte non-temporal stores when streaming).
static inline __attribute__((always_inline)) NK_BF16_TARGET void nk_hw_store16(uint16_t *dst, __m256i r,
                                                                                 int streaming) {
    if (streaming) {
        _mm_stream_si128((__m128i *)dst, _mm256_castsi256_si128(r));
        _mm_stream_si128((__m128i *)(dst + 8), _mm256_extracti128_si256(r, 1));
    } else {
        _mm256_storeu_si256((__m256i *)dst, r);
    }
}

/// b[j]·(x[j] − p[j]) + c[j] on 8 lanes from column j of a row (the x-dependent
/// term of the column dx loops).
static inline __attribute__((always_inline)) NK_BF16_TARGET __m256
nk_hw_column_term(const uint16_t *x, const float *pivot, const float *b, const float *c, size_t j) {
    return _mm256_fmadd_ps(_mm256_loadu_ps(b + j), _mm256_sub_ps(nk_hw_widen8(x + j), _mm256_loadu_ps(pivot + j)),
                           _mm256_loadu_ps(c + j));
}

static inline __attribute__((always_inline)) NK_BF16_TARGET void
nk_hw_gradient_columns(const uint16_t *x, const uint16_t *dy, const uint16_t *mask, uint16_t *dst, size_t rows,
                       size_t columns, size_t stride, const float *pivot, const float *a, const float *b,
                       const float *c, int streaming) {
    const __m256 zero = _mm256_setzero_ps();
    for (size_t r = 0; r < rows; r++) {
        size_t o = r * stride;
        for (size_t j = 0; j < columns; j += 16) {
            __m256 g0 = nk_hw_widen8(dy + o + j), g1 = nk_hw_widen8(dy + o + j + 8);
            if (mask) {
                g0 = _mm256_andnot_ps(_mm256_cmp_ps(nk_hw_widen8(mask + o + j), zero, _CMP_LE_OQ), g0);
                g1 = _mm256_andnot_ps(_mm256_cmp_ps(nk_hw_widen8(mask + o + j + 8), zero, _CMP_LE_OQ), g1);
            }
            __m256 v0 = nk_hw_column_term(x + o, pivot, b, c, j), v1 = nk_hw_column_term(x + o, pivot, b, c, j + 8);
            __m256i v = nk_hw_round16(_mm256_fmadd_ps(_mm256_loadu_ps(a + j), g0, v0),
                                      _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 8), g1, v1));
            nk_hw_store16(dst + o + j, v, streaming);
        }
    }
}

NK_BF16_TARGET
void nk_bf16_hw_gradient_columns(const uint16_t *x, const uint16_t *dy, const uint16_t *mask, uint16_t *dst,
                                 size_t rows, size_t columns, size_t stride, const float *pivot, const float *a,
                                 const float *b, const float *c, int streaming) {
#define NK_GRAD(M, S) nk_hw_gradient_columns(x, dy, M, dst, rows, columns, stride, pivot, a, b, c, S)
    if (streaming) { if (mask) NK_GRAD(mask, 1); else NK_GRAD(NULL, 1); }
    else { if (mask) NK_GRAD(mask, 0); else NK_GRAD(NULL, 0); }
#undef NK_GRAD
}


/// `ElementAffine.apply` on 8 lanes: v·γ + β fused (GammaBeta), v·γ, v + β, or v.
static inline __attribute__((always_inline)) NK_BF16_TARGET __m256 nk_hw_element_affine(__m256 v, const float *gamma,
                                                                                          const float *beta) {
    if (gamma && beta) return _mm256_fmadd_ps(v, _mm256_loadu_ps(gamma), _mm256_loadu_ps(beta));
    if (gamma) return _mm256_mul_ps(v, _mm256_loadu_ps(gamma));
    if (beta) return _mm256_add_ps(v, _mm256_loadu_ps(beta));
    return v;
}

/// `lo` then `hi` rounded to 16 values of `kind` and stored at `dst` (Float16: two
/// `vcvtps2ph`, as two `store8` / `stream8` of the Swift loop; non-temporal when
/// streaming, `dst` aligned to 16 bytes).
static inline __attribute__((always_inline)) NK_BF16_TARGET void nk_hw_narrow_store16(uint16_t *dst, __m256 lo,
                                                                                        __m256 hi, int kind,
                                                                                        int streaming) {
    if (kind == NK_HW_F16) {
        __m128i a = _mm256_cvtps_ph(lo, _MM_FROUND_TO_NEAREST_INT), b = _mm256_cvtps_ph(hi, _MM_FROUND_TO_NEAREST_INT);
        if (streaming) {
            _mm_stream_si128((__m128i *)dst, a);
            _mm_stream_si128((__m128i *)(dst + 8), b);
        } else {
            _mm_storeu_si128((__m128i *)dst, a);
            _mm_storeu_si128((__m128i *)(dst + 8), b);
        }
        return;
    }
    nk_hw_store16(dst, nk_hw_round16(lo, hi), streaming);
}

/// The 16 outputs at index i of `nk_bf16_hw_elementwise` (elements of `kind`).
static inline __attribute__((always_inline)) NK_BF16_TARGET void
nk_hw_element16(const uint16_t *src, uint16_t *dst, size_t i, __m256 p, __m256 s, __m256 t, const float *gamma,
                const float *beta, int streaming, int kind) {
    __m256 a = _mm256_fmadd_ps(_mm256_sub_ps(nk_hw_load8(src + i, kind), p), s, t);
    __m256 b = _mm256_fmadd_ps(_mm256_sub_ps(nk_hw_load8(src + i + 8, kind), p), s, t);
    a = nk_hw_element_affine(a, gamma ? gamma + i : NULL, beta ? beta + i : NULL);
    b = nk_hw_element_affine(b, gamma ? gamma + i + 8 : NULL, beta ? beta + i + 8 : NULL);
    nk_hw_narrow_store16(dst + i, a, b, kind, streaming);
}

static inline __attribute__((always_inline)) NK_BF16_TARGET void
nk_hw_elementwise(const uint16_t *src, uint16_t *dst, size_t count, float pivot, float scale, float shift,
                  const float *gamma, const float *beta, int streaming) {
    const __m256 p = _mm256_set1_ps(pivot), s = _mm256_set1_ps(scale), t = _mm256_set1_ps(shift);
    for (size_t i = 0; i < count; i += 16) nk_hw_element16(src, dst, i, p, s, t, gamma, beta, streaming, NK_HW_BF16);
}

/// One copy of a loop per combination of γ, β and store kind (`G`, `B`: the
/// pointer or NULL, `S`: 0 or 1), the flags constant inside each.
#define NK_AFFINE_VARIANTS(CALL)                                                                                       \
    if (streaming) {                                                                                                   \
        if (gamma && beta) CALL(gamma, beta, 1);                                                                       \
        else if (gamma) CALL(gamma, NULL, 1);                                                                          \
        else if (beta) CALL(NULL, beta, 1);                                                                            \
        else CALL(NULL, NULL, 1);                                                                                      \
    } else {                                                                                                           \
        if (gamma && beta) CALL(gamma, beta, 0);                                                                       \
        else if (gamma) CALL(gamma, NULL, 0);                                                                          \
        else if (beta) CALL(NULL, beta, 0);                                                                            \
        else CALL(NULL, NULL, 0);                                                                                      \
    }

NK_BF16_TARGET
void nk_bf16_hw_elementwise(const uint16_t *src, uint16_t *dst, size_t count, float pivot, float scale, float shift,
                            const float *gamma, const float *beta, int streaming) {
#define NK_ELEMENTWISE(G, B, S) nk_hw_elementwise(src, dst, count, pivot, scale, shift, G, B, S)
    NK_AFFINE_VARIANTS(NK_ELEMENTWISE)
#undef NK_ELEMENTWISE
}

// NK_SUMS_PREFETCH_BYTES: include/BFloat16Hardware.h (the Swift sweep of 16-bit rows uses it too).

static inline __attribute__((always_inline)) NK_BF16_TARGET size_t
nk_hw_shifted_sums(const uint16_t *x, size_t n, float k, double *sums, double *squares, const uint16_t *src,
                   uint16_t *dst, float pivot, float scale, float shift, const float *gamma, const float *beta,
                   int streaming) {
    const __m256 vk = _mm256_set1_ps(k);
    const __m256 p = _mm256_set1_ps(pivot), s = _mm256_set1_ps(scale), t = _mm256_set1_ps(shift);
    __m256d sumLo = _mm256_loadu_pd(sums), sumHi = _mm256_loadu_pd(sums + 4);
    __m256d sqLo = _mm256_loadu_pd(squares), sqHi = _mm256_loadu_pd(squares + 4);
    size_t i = 0;
    while (i + 16 <= n) {
        size_t end = i + 256 < n ? i + 256 : n;
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, q0 = s0, q1 = s0;
        do {
            // scalar math: d = x − K;  s += d;  q += d²   (ShiftedRowSums.sweep)
            __m256 d0 = _mm256_sub_ps(nk_hw_widen8(x + i), vk), d1 = _mm256_sub_ps(nk_hw_widen8(x + i + 8), vk);
            _mm_prefetch((const char *)(x + i) + NK_SUMS_PREFETCH_BYTES, _MM_HINT_T0);
            s0 = _mm256_add_ps(s0, d0);
            s1 = _mm256_add_ps(s1, d1);
            q0 = _mm256_fmadd_ps(d0, d0, q0);
            q1 = _mm256_fmadd_ps(d1, d1, q1);
            nk_hw_element16(src, dst, i, p, s, t, gamma, beta, streaming, NK_HW_BF16);
            i += 16;
        } while (i + 16 <= end);
        // sums += widened(s0 + s1): lanes 0–3 and 4–7 converted exactly, added in Float64.
        __m256 sv = _mm256_add_ps(s0, s1), qv = _mm256_add_ps(q0, q1);
        sumLo = _mm256_add_pd(sumLo, _mm256_cvtps_pd(_mm256_castps256_ps128(sv)));
        sumHi = _mm256_add_pd(sumHi, _mm256_cvtps_pd(_mm256_extractf128_ps(sv, 1)));
        sqLo = _mm256_add_pd(sqLo, _mm256_cvtps_pd(_mm256_castps256_ps128(qv)));
        sqHi = _mm256_add_pd(sqHi, _mm256_cvtps_pd(_mm256_extractf128_ps(qv, 1)));
    }
    _mm256_storeu_pd(sums, sumLo);
    _mm256_storeu_pd(sums + 4, sumHi);
    _mm256_storeu_pd(squares, sqLo);
    _mm256_storeu_pd(squares + 4, sqHi);
    return i;
}

NK_BF16_TARGET
size_t nk_bf16_hw_shifted_sums(const uint16_t *p, size_t n, float k, double *sums, double *squares,
                               const uint16_t *src, uint16_t *dst, float pivot, float scale, float shift,
                               const float *gamma, const float *beta, int streaming) {
#define NK_SUMS(G, B, S) return nk_hw_shifted_sums(p, n, k, sums, squares, src, dst, pivot, scale, shift, G, B, S)
    NK_AFFINE_VARIANTS(NK_SUMS)
#undef NK_SUMS
}

// The pipelined LayerNorm rows of one work item in one call (issue 20). Why: on rows of
// 768 values ~15 % of the samples sat in the Swift between the per-row C loops, and ~40 %
// of those right after the Float64 division, √ and division of each row's finish: that
// chain (~100 cycles with the lane sums) sat at the head of the reorder buffer between two
// loops, and the next loop filled the buffer behind it. Here the finish of row u + 1 runs
// in four short stages at the block ends (every 256 values) of the loop that writes row u
// and sums row u + 2, so the next loop's steps retire while each stage's few operations
// complete. The same rows in the same order, and every value, sum and finish by the same
// operations as `pipelinedRows` in RowNormalization+Pipelined.swift, so the same bits.

/// `BlockMoments.blockPivot` of one row of n ≥ 16 values (`segments` 1): the mean
/// of its first 32 values (n ≥ 32) or 8, summed in the Swift tree order, scaled by
/// a power of two; x[0] when that is not finite.
static inline __attribute__((always_inline)) NK_BF16_TARGET float nk_hw_row_pivot(const uint16_t *p, size_t n,
                                                                                     int kind) {
    __m256 v;
    float scale;
    if (n >= 32) {
        v = _mm256_add_ps(_mm256_add_ps(nk_hw_load8(p, kind), nk_hw_load8(p + 8, kind)),
                          _mm256_add_ps(nk_hw_load8(p + 16, kind), nk_hw_load8(p + 24, kind)));
        scale = 0.03125f;
    } else {
        v = nk_hw_load8(p, kind);
        scale = 0.125f;
    }
    // v4 = low half + high half; v2 = lanes 0, 1 + lanes 2, 3; k = (v2[0] + v2[1])·scale.
    __m128 v4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    __m128 v2 = _mm_add_ps(v4, _mm_movehl_ps(v4, v4));
    float k = (_mm_cvtss_f32(v2) + _mm_cvtss_f32(_mm_shuffle_ps(v2, v2, 1))) * scale;
    if (__builtin_isfinite(k)) return k;
    if (kind == NK_HW_F16) return _cvtsh_ss(p[0]);
    uint32_t w = (uint32_t)p[0] << 16;
    float first;
    memcpy(&first, &w, sizeof first);
    return first;
}

/// `ShiftedRowSums.laneSum(v) + 0` (the sweep's empty tail): the Float64 lanes in lane order.
static inline __attribute__((always_inline)) double nk_hw_lane_sum(const double *v) {
    double s = 0.0;
    for (int l = 0; l < 8; l++) s += v[l];
    return s + 0.0;
}

/// Keeps the compiler from moving what uses `v` above this point (no instruction, the
/// value unchanged): each finish stage stays at the block end where it is written.
#define NK_PIN(v) __asm__ volatile("" : "+x"(v))

/// A row's output coefficients (`AffineCoefficients`).
typedef struct { float pivot, scale, shift; } nk_hw_row_coefficients;

/// `finish` of `pipelinedRows` for one row, run in stages (`nk_hw_finish_stage`).
typedef struct {
    const double *lanes;  // the Float64 lanes of the row's sweep: 8 of Σ, then 8 of Σ²
    size_t row, n;
    float k, epsilon;     // the row's pivot; ε
    double sum, squares, m, qn, mu, root, r;
    int stage;            // the next stage, 4 when done
    double *mean, *inv_std;
    nk_row_moments_fn moments;
    const void *context;
    nk_hw_row_coefficients out;
} nk_hw_finish;

static inline __attribute__((always_inline)) nk_hw_finish
nk_hw_finish_start(const double *lanes, size_t row, size_t n, float k, float epsilon, double *mean, double *inv_std,
                   nk_row_moments_fn moments, const void *context) {
    nk_hw_finish f;
    memset(&f, 0, sizeof f);
    f.lanes = lanes;
    f.row = row;
    f.n = n;
    f.k = k;
    f.epsilon = epsilon;
    f.mean = mean;
    f.inv_std = inv_std;
    f.moments = moments;
    f.context = context;
    return f;
}

/// One stage of a row's finish: every operation of `ShiftedRowSums.moments`,
/// `inverseStandardDeviation` and `AffineCoefficients(mean:invStd:)` (γ 1, β 0) in its
/// precision and order. A row whose shift is far from its mean (recentred) or whose
/// sums are not finite gets its moments from `moments` (Swift's own function).
static inline __attribute__((always_inline)) NK_BF16_TARGET void nk_hw_finish_stage(nk_hw_finish *f) {
    // No fused multiply-adds: Swift rounds Q/n − m·m and β − (μ − p)·s twice.
#pragma STDC FP_CONTRACT OFF
    switch (f->stage++) {
    case 0: {
        // S and Q: the lanes in lane order; m = S/n, Q/n.
        double s = nk_hw_lane_sum(f->lanes), q = nk_hw_lane_sum(f->lanes + 8);
        NK_PIN(s);
        NK_PIN(q);
        double count = (double)f->n;
        f->sum = s;
        f->squares = q;
        f->m = s / count;
        f->qn = q / count;
        break;
    }
    case 1: {
        // σ² = Q/n − m²; common case μ = K + m and √(max(0, σ²) + ε).
        double m = f->m, qn = f->qn;
        NK_PIN(m);
        NK_PIN(qn);
        double variance = qn - m * m;
        if (__builtin_isfinite(m) && __builtin_isfinite(variance) && !(4 * m * m > variance)) {
            f->mu = (double)f->k + m;
            double v = variance >= 0 ? variance : 0;  // Swift's max(0, σ²): `y >= x ? y : x`
            // `vsqrtsd` as Swift's squareRoot() (no libm call, no errno).
            f->root = _mm_cvtsd_f64(_mm_sqrt_sd(_mm_setzero_pd(), _mm_set_sd(v + (double)f->epsilon)));
        } else {
            double out[2];
            f->moments(f->context, f->row, f->k, f->sum, f->squares, out);
            f->mu = out[0];
            f->r = out[1];
            f->stage = 3;
        }
        break;
    }
    case 2: {
        double root = f->root;
        NK_PIN(root);
        f->r = 1 / root;  // 1/σ
        break;
    }
    default: {
        // Saved; p = Float(μ), s = 1·r, scale = Float(s), shift = Float(0 − (μ − p)·s).
        double mu = f->mu, r = f->r;
        NK_PIN(mu);
        NK_PIN(r);
        f->mean[f->row] = mu;
        f->inv_std[f->row] = r;
        f->out.pivot = (float)mu;
        double s = 1 * r;
        f->out.scale = (float)s;
        f->out.shift = (float)(0 - (mu - (double)f->out.pivot) * s);
        f->stage = 4;
        break;
    }
    }
}

/// One pass over a row length n (a multiple of 16) of elements of `kind`: when `sum` (a constant), the sums of
/// `x` about `k` into `lanes` (`ShiftedRowSums.sweep`: 8 Float64 lanes of Σ then of Σ²);
/// when `write` (a constant), the outputs of `src` into `dst` with `c`
/// (`nk_hw_element16`); when `f`, one stage of that finish at each block end, the rest
/// after the loop.
static inline __attribute__((always_inline)) NK_BF16_TARGET void
nk_hw_row_pass(const uint16_t *x, size_t n, float k, double *lanes, int sum, const uint16_t *src, uint16_t *dst,
               nk_hw_row_coefficients c, const float *gamma, const float *beta, int streaming, int write,
               nk_hw_finish *f, int kind) {
    const __m256 vk = _mm256_set1_ps(k);
    const __m256 p = _mm256_set1_ps(c.pivot), s = _mm256_set1_ps(c.scale), t = _mm256_set1_ps(c.shift);
    __m256d sumLo = _mm256_setzero_pd(), sumHi = sumLo, sqLo = sumLo, sqHi = sumLo;
    size_t i = 0;
    while (i + 16 <= n) {
        size_t end = i + 256 < n ? i + 256 : n;
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, q0 = s0, q1 = s0;
        do {
            if (sum) {
                // scalar math: d = x − K;  s += d;  q += d²   (ShiftedRowSums.sweep)
                __m256 d0 = _mm256_sub_ps(nk_hw_load8(x + i, kind), vk);
                __m256 d1 = _mm256_sub_ps(nk_hw_load8(x + i + 8, kind), vk);
                _mm_prefetch((const char *)(x + i) + NK_SUMS_PREFETCH_BYTES, _MM_HINT_T0);
                s0 = _mm256_add_ps(s0, d0);
                s1 = _mm256_add_ps(s1, d1);
                q0 = _mm256_fmadd_ps(d0, d0, q0);
                q1 = _mm256_fmadd_ps(d1, d1, q1);
            }
            if (write) nk_hw_element16(src, dst, i, p, s, t, gamma, beta, streaming, kind);
            i += 16;
        } while (i + 16 <= end);
        if (sum) {
            // sums += widened(s0 + s1): lanes 0–3 and 4–7 converted exactly, added in Float64.
            __m256 sv = _mm256_add_ps(s0, s1), qv = _mm256_add_ps(q0, q1);
            sumLo = _mm256_add_pd(sumLo, _mm256_cvtps_pd(_mm256_castps256_ps128(sv)));
            sumHi = _mm256_add_pd(sumHi, _mm256_cvtps_pd(_mm256_extractf128_ps(sv, 1)));
            sqLo = _mm256_add_pd(sqLo, _mm256_cvtps_pd(_mm256_castps256_ps128(qv)));
            sqHi = _mm256_add_pd(sqHi, _mm256_cvtps_pd(_mm256_extractf128_ps(qv, 1)));
        }
        if (f && f->stage < 4) nk_hw_finish_stage(f);
    }
    if (sum) {
        _mm256_storeu_pd(lanes, sumLo);
        _mm256_storeu_pd(lanes + 4, sumHi);
        _mm256_storeu_pd(lanes + 8, sqLo);
        _mm256_storeu_pd(lanes + 12, sqHi);
    }
    if (f) while (f->stage < 4) nk_hw_finish_stage(f);
}

static inline __attribute__((always_inline)) NK_BF16_TARGET void
nk_hw_layernorm_rows(const uint16_t *x, uint16_t *y, size_t n, size_t first, size_t end, float epsilon,
                     const float *gamma, const float *beta, double *mean, double *inv_std, int streaming,
                     nk_row_moments_fn moments, const void *context, int kind) {
    if (first >= end) return;
    const size_t last = end - 1;
    const nk_hw_row_coefficients none = {0, 0, 0};
    double buffers[2][16];
    double *lanes = buffers[0], *spare = buffers[1];  // lanes: row u + 1's sums
    // Row `first` summed alone.
    float k = nk_hw_row_pivot(x + first * n, n, kind);
    nk_hw_row_pass(x + first * n, n, k, lanes, 1, NULL, NULL, none, NULL, NULL, 0, 0, NULL, kind);
    nk_hw_finish f = nk_hw_finish_start(lanes, first, n, k, epsilon, mean, inv_std, moments, context);
    if (first == last) {
        while (f.stage < 4) nk_hw_finish_stage(&f);
        nk_hw_row_pass(NULL, n, 0, NULL, 0, x + first * n, y + first * n, f.out, gamma, beta, streaming, 1, NULL,
                       kind);
        return;
    }
    // Row first + 1 summed alone, with row first's finish.
    k = nk_hw_row_pivot(x + (first + 1) * n, n, kind);
    nk_hw_row_pass(x + (first + 1) * n, n, k, spare, 1, NULL, NULL, none, NULL, NULL, 0, 0, &f, kind);
    nk_hw_row_coefficients current = f.out;
    double *swap = lanes;
    lanes = spare;
    spare = swap;
    for (size_t u = first; u <= last; u++) {
        // `current`: row u's coefficients; k and `lanes`: row u + 1's pivot and sums.
        if (u + 2 <= last) {
            // Row u's outputs, row u + 2's sums and row u + 1's finish in one loop.
            f = nk_hw_finish_start(lanes, u + 1, n, k, epsilon, mean, inv_std, moments, context);
            k = nk_hw_row_pivot(x + (u + 2) * n, n, kind);
            nk_hw_row_pass(x + (u + 2) * n, n, k, spare, 1, x + u * n, y + u * n, current, gamma, beta, streaming, 1,
                           &f, kind);
            current = f.out;
            swap = lanes;
            lanes = spare;
            spare = swap;
        } else if (u < last) {
            // Row last − 1's outputs with row last's finish.
            f = nk_hw_finish_start(lanes, u + 1, n, k, epsilon, mean, inv_std, moments, context);
            nk_hw_row_pass(NULL, n, 0, NULL, 0, x + u * n, y + u * n, current, gamma, beta, streaming, 1, &f, kind);
            current = f.out;
        } else {
            nk_hw_row_pass(NULL, n, 0, NULL, 0, x + u * n, y + u * n, current, gamma, beta, streaming, 1, NULL, kind);
        }
    }
}

#undef NK_PIN

NK_BF16_TARGET
void nk_bf16_hw_layernorm_rows(const uint16_t *x, uint16_t *y, size_t n, size_t first, size_t end, float epsilon,
                               const float *gamma, const float *beta, double *mean, double *inv_std, int streaming,
                               nk_row_moments_fn moments, const void *context) {
    nk_bf16_layernorm_rows_calls++;
#define NK_ROWS(G, B, S)                                                                                               \
    nk_hw_layernorm_rows(x, y, n, first, end, epsilon, G, B, mean, inv_std, S, moments, context, NK_HW_BF16)
    NK_AFFINE_VARIANTS(NK_ROWS)
#undef NK_ROWS
}

// The same item loop for Float16 rows (include/Float16LayerNormRows.h): the Swift Float16
// loop is `pipelinedRows` with `RowOutputPass`, whose lanes are the ones above (two 8-lane
// vectors per 16-value step, the values in memory order), so only the loads and the
// rounding differ: `vcvtph2ps` and `vcvtps2ph` to nearest even, as that loop's F16C
// `load8` / `store8` / `stream8`.
NK_BF16_TARGET
void nk_f16_hw_layernorm_rows(const uint16_t *x, uint16_t *y, size_t n, size_t first, size_t end, float epsilon,
                              const float *gamma, const float *beta, double *mean, double *inv_std, int streaming,
                              nk_row_moments_fn moments, const void *context) {
    nk_f16_layernorm_rows_calls++;
#define NK_ROWS(G, B, S)                                                                                               \
    nk_hw_layernorm_rows(x, y, n, first, end, epsilon, G, B, mean, inv_std, S, moments, context, NK_HW_F16)
    NK_AFFINE_VARIANTS(NK_ROWS)
#undef NK_ROWS
}

static inline __attribute__((always_inline)) NK_BF16_TARGET void
nk_hw_row_gradient(const uint16_t *x, const uint16_t *dy, const float *gamma, uint16_t *dst, size_t count,
                   float pivot, float a, float b, float c, int streaming) {
    const __m256 p = _mm256_set1_ps(pivot), va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b), vc = _mm256_set1_ps(c);
    for (size_t i = 0; i < count; i += 16) {
        // scalar math: dx = a·(dy·γ) + (b·(x − p) + c)
        __m256 g0 = nk_hw_widen8(dy + i), g1 = nk_hw_widen8(dy + i + 8);
        if (gamma) {
            g0 = _mm256_mul_ps(g0, _mm256_loadu_ps(gamma + i));
            g1 = _mm256_mul_ps(g1, _mm256_loadu_ps(gamma + i + 8));
        }
        __m256 v0 = _mm256_fmadd_ps(vb, _mm256_sub_ps(nk_hw_widen8(x + i), p), vc);
        __m256 v1 = _mm256_fmadd_ps(vb, _mm256_sub_ps(nk_hw_widen8(x + i + 8), p), vc);
        nk_hw_store16(dst + i, nk_hw_round16(_mm256_fmadd_ps(va, g0, v0), _mm256_fmadd_ps(va, g1, v1)), streaming);
    }
}

NK_BF16_TARGET
void nk_bf16_hw_row_gradient(const uint16_t *x, const uint16_t *dy, const float *gamma, uint16_t *dst, size_t count,
                             float pivot, float a, float b, float c, int streaming) {
#define NK_ROW_GRADIENT(G, S) nk_hw_row_gradient(x, dy, G, dst, count, pivot, a, b, c, S)
    if (streaming) { if (gamma) NK_ROW_GRADIENT(gamma, 1); else NK_ROW_GRADIENT(NULL, 1); }
    else { if (gamma) NK_ROW_GRADIENT(gamma, 0); else NK_ROW_GRADIENT(NULL, 0); }
#undef NK_ROW_GRADIENT
}

static inline __attribute__((always_inline)) NK_BF16_TARGET void
nk_hw_gradient_f32(const uint16_t *x, const float *g, uint16_t *dst, size_t count, float pivot, float a, float b,
                   float c, int streaming) {
    const __m256 p = _mm256_set1_ps(pivot), va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b), vc = _mm256_set1_ps(c);
    for (size_t i = 0; i < count; i += 16) {
        // scalar math: dx = a·g + (b·(x − p) + c), g Float32
        __m256 v0 = _mm256_fmadd_ps(vb, _mm256_sub_ps(nk_hw_widen8(x + i), p), vc);
        __m256 v1 = _mm256_fmadd_ps(vb, _mm256_sub_ps(nk_hw_widen8(x + i + 8), p), vc);
        __m256i r = nk_hw_round16(_mm256_fmadd_ps(va, _mm256_loadu_ps(g + i), v0),
                                  _mm256_fmadd_ps(va, _mm256_loadu_ps(g + i + 8), v1));
        nk_hw_store16(dst + i, r, streaming);
    }
}

NK_BF16_TARGET
void nk_bf16_hw_gradient_f32(const uint16_t *x, const float *g, uint16_t *dst, size_t count, float pivot, float a,
                             float b, float c, int streaming) {
    if (streaming) nk_hw_gradient_f32(x, g, dst, count, pivot, a, b, c, 1);
    else nk_hw_gradient_f32(x, g, dst, count, pivot, a, b, c, 0);
}

static inline __attribute__((always_inline)) NK_BF16_TARGET void
nk_hw_gradient_columns_f32(const uint16_t *x, const float *g, uint16_t *dst, size_t rows, size_t columns,
                           size_t stride, const float *pivot, const float *a, const float *b, const float *c,
                           int streaming) {
    for (size_t r = 0; r < rows; r++) {
        size_t o = r * stride;
        for (size_t j = 0; j < columns; j += 16) {
            // scalar math: dx[r, j] = a[j]·g + (b[j]·(x − p[j]) + c[j]), g Float32
            __m256 v0 = nk_hw_column_term(x + o, pivot, b, c, j), v1 = nk_hw_column_term(x + o, pivot, b, c, j + 8);
            __m256i v = nk_hw_round16(_mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(g + o + j), v0),
                                      _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 8), _mm256_loadu_ps(g + o + j + 8), v1));
            nk_hw_store16(dst + o + j, v, streaming);
        }
    }
}

NK_BF16_TARGET
void nk_bf16_hw_gradient_columns_f32(const uint16_t *x, const float *g, uint16_t *dst, size_t rows, size_t columns,
                                     size_t stride, const float *pivot, const float *a, const float *b, const float *c,
                                     int streaming) {
    if (streaming) nk_hw_gradient_columns_f32(x, g, dst, rows, columns, stride, pivot, a, b, c, 1);
    else nk_hw_gradient_columns_f32(x, g, dst, rows, columns, stride, pivot, a, b, c, 0);
}

// The fused row engine's output blocks (RowNormalization+Fused.swift): the
// Swift loop leaves each block's Float32 results in an L1 buffer and these
// round it, so the fused kernels round as the plain ones do.
static inline __attribute__((always_inline)) NK_BF16_TARGET void
nk_hw_narrow(const float *src, uint16_t *dst, size_t count, int streaming) {
    for (size_t i = 0; i < count; i += 16) {
        nk_hw_store16(dst + i, nk_hw_round16(_mm256_loadu_ps(src + i), _mm256_loadu_ps(src + i + 8)), streaming);
    }
}

NK_BF16_TARGET
void nk_bf16_hw_narrow(const float *src, uint16_t *dst, size_t count, int streaming) {
    if (streaming) nk_hw_narrow(src, dst, count, 1);
    else nk_hw_narrow(src, dst, count, 0);
}

/// Sixteen rounded values (`nk_hw_round16`'s order) widened back exactly.
static inline __attribute__((always_inline)) NK_BF16_TARGET void nk_hw_widen16(__m256i r, __m256 *lo, __m256 *hi) {
    *lo = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(r)), 16));
    *hi = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(r, 1)), 16));
}

static inline __attribute__((always_inline)) NK_BF16_TARGET void
nk_hw_gate(const float *z, const uint16_t *gate, uint16_t *dst, size_t count, int streaming) {
    for (size_t i = 0; i < count; i += 16) {
        // scalar math: y = bf16(widen(bf16(z))·widen(gate))
        __m256 lo, hi;
        nk_hw_widen16(nk_hw_round16(_mm256_loadu_ps(z + i), _mm256_loadu_ps(z + i + 8)), &lo, &hi);
        __m256i r = nk_hw_round16(_mm256_mul_ps(lo, nk_hw_widen8(gate + i)), _mm256_mul_ps(hi, nk_hw_widen8(gate + i + 8)));
        nk_hw_store16(dst + i, r, streaming);
    }
}

NK_BF16_TARGET
void nk_bf16_hw_gate(const float *z, const uint16_t *gate, uint16_t *dst, size_t count, int streaming) {
    if (streaming) nk_hw_gate(z, gate, dst, count, 1);
    else nk_hw_gate(z, gate, dst, count, 0);
}

static inline __attribute__((always_inline)) NK_BF16_TARGET void
nk_hw_residual_sum(const uint16_t *x, const uint16_t *r, const float *bias, uint16_t *dst, size_t count) {
    for (size_t i = 0; i < count; i += 16) {
        if ((i & 31) == 0) {
            // One prefetch per cache line of each input (ResidualRows.values: the same distance).
            __builtin_prefetch((const char *)(x + i) + NK_SUMS_PREFETCH_BYTES, 0, 3);
            __builtin_prefetch((const char *)(r + i) + NK_SUMS_PREFETCH_BYTES, 0, 3);
        }
        // scalar math: s = bf16((x + r) + b); both inputs read before the store (in place allowed)
        __m256 a = _mm256_add_ps(nk_hw_widen8(x + i), nk_hw_widen8(r + i));
        __m256 b = _mm256_add_ps(nk_hw_widen8(x + i + 8), nk_hw_widen8(r + i + 8));
        if (bias) {
            a = _mm256_add_ps(a, _mm256_loadu_ps(bias + i));
            b = _mm256_add_ps(b, _mm256_loadu_ps(bias + i + 8));
        }
        _mm256_storeu_si256((__m256i *)(dst + i), nk_hw_round16(a, b));
    }
}

NK_BF16_TARGET
void nk_bf16_hw_residual_sum(const uint16_t *x, const uint16_t *r, const float *bias, uint16_t *dst, size_t count) {
    if (bias) nk_hw_residual_sum(x, r, bias, dst, count);
    else nk_hw_residual_sum(x, r, NULL, dst, count);
}

#undef NK_AFFINE_VARIANTS

#else

int nk_avx512bf16_detect(void) {
    __atomic_store_n(&nk_avx512bf16_flag, 0, __ATOMIC_RELAXED);
    return 0;
}

void nk_bf16_hw_affine(const uint16_t *src, uint16_t *dst, size_t count, float pivot, float scale, float shift,
                       const uint16_t *residual, int activation, int streaming) {
    (void)src; (void)dst; (void)count; (void)pivot; (void)scale; (void)shift;
    (void)residual; (void)activation; (void)streaming;
}

void nk_bf16_hw_columns(const uint16_t *src, uint16_t *dst, size_t rows, size_t columns, size_t stride,
                        const float *pivot, const float *scale, const float *shift, const uint16_t *residual,
                        int activation, int streaming) {
    (void)src; (void)dst; (void)rows; (void)columns; (void)stride; (void)pivot; (void)scale; (void)shift;
    (void)residual; (void)activation; (void)streaming;
}

void nk_bf16_hw_gradient_columns(const uint16_t *x, const uint16_t *dy, const uint16_t *mask, uint16_t *dst,
                                 size_t rows, size_t columns, size_t stride, const float *pivot, const float *a,
                                 const float *b, const float *c, int streaming) {
    (void)x; (void)dy; (void)mask; (void)dst; (void)rows; (void)columns; (void)stride;
    (void)pivot; (void)a; (void)b; (void)c; (void)streaming;
}

void nk_bf16_hw_gradient(const uint16_t *x, const uint16_t *dy, const uint16_t *mask, uint16_t *dst, size_t count,
                         float pivot, float a, float b, float c, int streaming) {
    (void)x; (void)dy; (void)mask; (void)dst; (void)count; (void)pivot; (void)a; (void)b; (void)c; (void)streaming;
}

void nk_bf16_hw_elementwise(const uint16_t *src, uint16_t *dst, size_t count, float pivot, float scale, float shift,
                            const float *gamma, const float *beta, int streaming) {
    (void)src; (void)dst; (void)count; (void)pivot; (void)scale; (void)shift; (void)gamma; (void)beta;
    (void)streaming;
}

size_t nk_bf16_hw_shifted_sums(const uint16_t *p, size_t n, float k, double *sums, double *squares,
                               const uint16_t *src, uint16_t *dst, float pivot, float scale, float shift,
                               const float *gamma, const float *beta, int streaming) {
    (void)p; (void)n; (void)k; (void)sums; (void)squares; (void)src; (void)dst; (void)pivot; (void)scale;
    (void)shift; (void)gamma; (void)beta; (void)streaming;
    return 0;
}

void nk_bf16_hw_layernorm_rows(const uint16_t *x, uint16_t *y, size_t n, size_t first, size_t end, float epsilon,
                               const float *gamma, const float *beta, double *mean, double *inv_std, int streaming,
                               nk_row_moments_fn moments, const void *context) {
    (void)x; (void)y; (void)n; (void)first; (void)end; (void)epsilon; (void)gamma; (void)beta; (void)mean;
    (void)inv_std; (void)streaming; (void)moments; (void)context;
}

int nk_f16_rows_detect(void) {
    __atomic_store_n(&nk_f16_rows_flag, 0, __ATOMIC_RELAXED);
    return 0;
}

void nk_f16_hw_layernorm_rows(const uint16_t *x, uint16_t *y, size_t n, size_t first, size_t end, float epsilon,
                              const float *gamma, const float *beta, double *mean, double *inv_std, int streaming,
                              nk_row_moments_fn moments, const void *context) {
    (void)x; (void)y; (void)n; (void)first; (void)end; (void)epsilon; (void)gamma; (void)beta; (void)mean;
    (void)inv_std; (void)streaming; (void)moments; (void)context;
}

void nk_bf16_hw_row_gradient(const uint16_t *x, const uint16_t *dy, const float *gamma, uint16_t *dst, size_t count,
                             float pivot, float a, float b, float c, int streaming) {
    (void)x; (void)dy; (void)gamma; (void)dst; (void)count; (void)pivot; (void)a; (void)b; (void)c; (void)streaming;
}

void nk_bf16_hw_gradient_f32(const uint16_t *x, const float *g, uint16_t *dst, size_t count, float pivot, float a,
                             float b, float c, int streaming) {
    (void)x; (void)g; (void)dst; (void)count; (void)pivot; (void)a; (void)b; (void)c; (void)streaming;
}

void nk_bf16_hw_gradient_columns_f32(const uint16_t *x, const float *g, uint16_t *dst, size_t rows, size_t columns,
                                     size_t stride, const float *pivot, const float *a, const float *b, const float *c,
                                     int streaming) {
    (void)x; (void)g; (void)dst; (void)rows; (void)columns; (void)stride; (void)pivot; (void)a; (void)b; (void)c;
    (void)streaming;
}

void nk_bf16_hw_narrow(const float *src, uint16_t *dst, size_t count, int streaming) {
    (void)src; (void)dst; (void)count; (void)streaming;
}

void nk_bf16_hw_gate(const float *z, const uint16_t *gate, uint16_t *dst, size_t count, int streaming) {
    (void)z; (void)gate; (void)dst; (void)count; (void)streaming;
}

void nk_bf16_hw_residual_sum(const uint16_t *x, const uint16_t *r, const float *bias, uint16_t *dst, size_t count) {
    (void)x; (void)r; (void)bias; (void)dst; (void)count;
}

#endif
