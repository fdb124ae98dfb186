// The SiLU loops of GroupNorm + SiLU in 16 AVX-512 lanes, chosen at run time;
// see include/SiLUAVX512.h for why and for the bit-for-bit rule. Each function
// carries its own target attribute, so this file needs no -march flag; its
// loops exist only in builds with FMA (`__FMA__`, `-Xcc -march=x86-64-v3`),
// where the Swift `muladd` they mirror is one fused operation.
//
// Per lane, as SiLU.swift (`expNegative8`, `sigmoidParts8`, `silu8`,
// `siluGradient8`), for z = (x − p)·s + t:
//
//     v = −|z|;  b = v·(8/ln 2) + (1.5·2²³ + 8·127)                   (fused)
//     N = b − magic;  2^q·2^(k/8) = bits((b << 20) + T[b & 7])
//     t = N·(−ln2/8 hi) + v;  t = N·(ln2/8 lo) + t                    (fused)
//     e = (((c₃·t + c₂)·t² + t)·2^q·2^(k/8)) + 2^q·2^(k/8)           (fused)
//     e = 0 where v < −87.3365;  d = e + 1;  num = z ≥ +0 (sign clear) ? 1 : e
//     silu = (z·num)/d;   dz = (dy·(1/d))·((z·e)·(1/d) + num)         (fused)

#include "SiLUAVX512.h"
#include "BFloat16Hardware.h"

#include <stdlib.h>
#include <string.h>

// Nothing here is fused unless written as an FMA: the Swift loops never fuse.
#pragma STDC FP_CONTRACT OFF

int nk_avx512_silu_flag = -1;

static _Thread_local uint64_t nk_silu512_calls = 0;
static _Thread_local uint64_t nk_silu512_bf16_rounding_calls = 0;

uint64_t nk_silu512_thread_calls(void) { return nk_silu512_calls; }
uint64_t nk_silu512_bf16_hardware_thread_calls(void) { return nk_silu512_bf16_rounding_calls; }

static _Thread_local uint64_t nk_silu_unit_backwards = 0;

void nk_silu_units_note(void) { nk_silu_unit_backwards++; }
uint64_t nk_silu_units_thread_calls(void) { return nk_silu_unit_backwards; }

int nk_avx512_silu_set(int enable) {
    if (enable) return nk_avx512_silu_detect();
    __atomic_store_n(&nk_avx512_silu_flag, 0, __ATOMIC_RELAXED);
    return 0;
}

#if defined(__x86_64__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

int nk_avx512_silu_detect(void) {
    int ok = nk_avx512_allowed("NORMKERNELS_AVX512_SILU");
    __atomic_store_n(&nk_avx512_silu_flag, ok, __ATOMIC_RELAXED);
    return ok;
}

__attribute__((constructor)) static void nk_avx512_silu_init(void) { (void)nk_avx512_silu_detect(); }

// The element loads and stores (nk_e5_load, nk_e5_narrow, nk_e5_store) and
// the target they need: avx512_elements.h.
#include "avx512_elements.h"
#define NK_SILU_TARGET NK_E5_TARGET
#define NK_SILU_INLINE NK_E5_INLINE

/// `nk_e5_load` of the lanes in `m` (0 elsewhere).
NK_SILU_INLINE __m512 nk_s5_load_masked(const void *p, size_t i, int element, __mmask16 m) {
    if (element == 0) return _mm512_maskz_loadu_ps(m, (const float *)p + i);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)p + i);
    if (element == 1) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/// Stores the lanes in `m` at p + i, through the cache.
NK_SILU_INLINE void nk_s5_store_masked(void *p, size_t i, __m512 v, int element, __mmask16 m) {
    if (element == 0) _mm512_mask_storeu_ps((float *)p + i, m, v);
    else _mm256_mask_storeu_epi16((uint16_t *)p + i, m, nk_e5_narrow(v, element));
}

/// e^(−a), a = |z| ≤ 87.3365: `expNegative8` of v = −a, lane for lane. The
/// FMAs take a, not −a: −(a·c) + magic and N·c − a round as (−a)·c + magic and
/// N·c + (−a) do (negation is exact), which is how LLVM compiles the Swift lanes
/// (objdump: `vandps`, `vfnmsub213ps`, `vfmsub213ps`), so a NaN z gives the same
/// NaN (sign clear) in e here as there. The 8-entry table of 2^(k/8) (less
/// 1.0's bits and k << 20) twice, so the 16-entry `vpermd`, which reads the low
/// 4 bits of the index, picks entry (bits & 7) as `vpermps` of 8 entries does.
NK_SILU_INLINE __m512 nk_s5_exp_negative(__m512 a) {
    const __m512 magic = _mm512_set1_ps(0x1.8007F0p23f);
    const __m512i table = _mm512_setr_epi32(0, -289342, -509968, -655657, -719629, -694486, -572163, -343865,
                                            0, -289342, -509968, -655657, -719629, -694486, -572163, -343865);
    __m512 biased = _mm512_fnmadd_ps(a, _mm512_set1_ps(0x1.715476p3f), magic);
    __m512i bits = _mm512_castps_si512(biased);
    __m512 n = _mm512_sub_ps(biased, magic);
    __m512i fraction = _mm512_permutexvar_epi32(bits, table);
    __m512 scale = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_slli_epi32(bits, 20), fraction));
    __m512 t = _mm512_fmsub_ps(n, _mm512_set1_ps(-0x1.63p-4f), a);
    t = _mm512_fmadd_ps(n, _mm512_set1_ps(0x1.bd0106p-16f), t);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(0x1.55565ep-3f), t, _mm512_set1_ps(0x1.0008cap-1f));
    return _mm512_fmadd_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(t, t), t), scale, scale);
}

/// `sigmoidParts8`: e = e^(−|z|) (+0 where −|z| < −87.3365, i.e. |z| > 87.3365;
/// false for NaN either way), d = e + 1, and the numerator of σ (e where z's
/// sign bit is set, else 1).
NK_SILU_INLINE void nk_s5_parts(__m512 z, __m512 *e, __m512 *d, __m512 *numerator) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512i bits = _mm512_castps_si512(z);
    __m512 magnitude = _mm512_castsi512_ps(_mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFFFF)));
    __mmask16 under = _mm512_cmp_ps_mask(magnitude, _mm512_set1_ps(0x1.5D589Ep+6f), _CMP_GT_OQ);
    __m512 ex = _mm512_maskz_mov_ps((__mmask16)~under, nk_s5_exp_negative(magnitude));
    *e = ex;
    *d = _mm512_add_ps(ex, one);
    *numerator = _mm512_mask_mov_ps(ex, _mm512_cmpge_epi32_mask(bits, _mm512_setzero_si512()), one);
}

/// `silu8`: (z·numerator)/d.
NK_SILU_INLINE __m512 nk_s5_silu(__m512 z) {
    __m512 e, d, numerator;
    nk_s5_parts(z, &e, &d, &numerator);
    return _mm512_div_ps(_mm512_mul_ps(z, numerator), d);
}

/// `siluGradient8`: (dy·r)·((z·e)·r + numerator), r = 1/d.
NK_SILU_INLINE __m512 nk_s5_gradient(__m512 z, __m512 dy) {
    __m512 e, d, numerator;
    nk_s5_parts(z, &e, &d, &numerator);
    __m512 r = _mm512_div_ps(_mm512_set1_ps(1.0f), d);
    return _mm512_mul_ps(_mm512_mul_ps(dy, r), _mm512_fmadd_ps(_mm512_mul_ps(z, e), r, numerator));
}

/// 32 BFloat16 results of element code 3 (AVX-512 BF16) stored at p + i:
/// `a` holds values {0–3, 8–11, 16–19, 24–27} of the 32 and `b` values
/// {4–7, 12–15, 20–23, 28–31} (the lanes `vpunpck{l,h}wd` widen, see
/// nk_s5_affine_bf16_pairs). One `vcvtne2ps2bf16` rounds both (a's 16 in the
/// low half, b's in the high half, by 64-bit groups of 4 values: a0 a1 a2 a3
/// b0 b1 b2 b3) and one `vpermq` puts the groups back in memory order (a0 b0
/// a1 b1 …). A vector holding a Float32 subnormal, which the instruction
/// flushes, takes the formula for both halves (nk_e5_bf16_hardware's rule),
/// arranged the same way.
NK_SILU_INLINE void nk_s5_store_bf16_pair(void *p, size_t i, __m512 a, __m512 b, int streaming) {
    const __m512i order = _mm512_setr_epi64(0, 4, 1, 5, 2, 6, 3, 7);
    __m512i packed;
    if (__builtin_expect((_mm512_fpclass_ps_mask(a, 0x20) | _mm512_fpclass_ps_mask(b, 0x20)) != 0, 0)) {
        packed = _mm512_inserti64x4(_mm512_castsi256_si512(nk_e5_bf16(a)), nk_e5_bf16(b), 1);
    } else {
        packed = (__m512i)_mm512_cvtne2ps_pbh(b, a);
    }
    packed = _mm512_permutexvar_epi64(order, packed);
    uint16_t *d = (uint16_t *)p + i;
    if (streaming) {
        // p + i aligned to 8 values, as nk_e5_store's streaming halves.
        _mm_stream_si128((__m128i *)d, _mm512_castsi512_si128(packed));
        _mm_stream_si128((__m128i *)(d + 8), _mm512_extracti32x4_epi32(packed, 1));
        _mm_stream_si128((__m128i *)(d + 16), _mm512_extracti32x4_epi32(packed, 2));
        _mm_stream_si128((__m128i *)(d + 24), _mm512_extracti32x4_epi32(packed, 3));
    } else {
        _mm512_storeu_si512(d, packed);
    }
}

/// One 32-value step of the BFloat16 (code 3) loops: the 32 values at src + o
/// widened by interleaving zero words below each value (`vpunpck{l,h}wd`: the
/// exact widening, a BFloat16 is the top half of its Float32), then
/// y = silu((x − p)·s + t) on both vectors, (pa, sa, ta) for the low lanes and
/// (pb, sb, tb) for the high ones (nk_s5_store_bf16_pair's lane sets), stored.
NK_SILU_INLINE void nk_s5_silu_bf16_step32(const void *src, void *dst, size_t o, __m512 pa, __m512 sa, __m512 ta,
                                           __m512 pb, __m512 sb, __m512 tb, int streaming) {
    const __m512i zero = _mm512_setzero_si512();
    __m512i w = _mm512_loadu_si512((const uint16_t *)src + o);
    __m512 lo = _mm512_castsi512_ps(_mm512_unpacklo_epi16(zero, w));
    __m512 hi = _mm512_castsi512_ps(_mm512_unpackhi_epi16(zero, w));
    __m512 a = nk_s5_silu(_mm512_fmadd_ps(_mm512_sub_ps(lo, pa), sa, ta));
    __m512 b = nk_s5_silu(_mm512_fmadd_ps(_mm512_sub_ps(hi, pb), sb, tb));
    nk_s5_store_bf16_pair(dst, o, a, b, streaming);
}

/// The BFloat16 (code 3) run 32 values per step (nk_s5_silu_bf16_step32: one
/// 64-byte load, the SiLU of both vectors, one rounding for 32). Each value takes the
/// same operations as in the 16-value loop, only in other lanes, so the bits
/// are the same; the steps save the per-16 `vpmovzxwd`, shift, conversion and
/// subnormal test (0.372 → 0.328 ns per value in a 256-value cached run,
/// docs/data/2026-12-06-gnsilu16/bf16-store-variants.c). A last 16 values, if
/// any, go through the 16-value step.
NK_SILU_INLINE void nk_s5_affine_bf16_pairs(const void *src, void *dst, size_t count, float pivot, float scale,
                                            float shift, int streaming) {
    const __m512 p = _mm512_set1_ps(pivot), s = _mm512_set1_ps(scale), t = _mm512_set1_ps(shift);
    size_t i = 0;
    for (; i + 32 <= count; i += 32) {
        // scalar math: y = silu((x − p)·s + t), each lane as in nk_s5_affine
        nk_s5_silu_bf16_step32(src, dst, i, p, s, t, p, s, t, streaming);
    }
    if (i < count) {
        __m512 z = _mm512_fmadd_ps(_mm512_sub_ps(nk_e5_load(src, i, 2), p), s, t);
        nk_e5_store(dst, i, nk_s5_silu(z), 3, streaming);
    }
}

NK_SILU_INLINE void nk_s5_affine(const void *src, void *dst, size_t count, float pivot, float scale, float shift,
                                 int element, int streaming) {
    if (element == 3) {
        nk_s5_affine_bf16_pairs(src, dst, count, pivot, scale, shift, streaming);
        return;
    }
    const __m512 p = _mm512_set1_ps(pivot), s = _mm512_set1_ps(scale), t = _mm512_set1_ps(shift);
    for (size_t i = 0; i < count; i += 16) {
        // scalar math: y = silu((x − p)·s + t)
        __m512 z = _mm512_fmadd_ps(_mm512_sub_ps(nk_e5_load(src, i, element), p), s, t);
        nk_e5_store(dst, i, nk_s5_silu(z), element, streaming);
    }
}

/// The element code of the stores: BFloat16 (2) rounds with `vcvtneps2bf16`
/// (3) on a CPU with AVX-512 BF16 (the same bits; `NORMKERNELS_BF16_HARDWARE=never`
/// and nk_avx512bf16_set(0) keep the formula).
static inline __attribute__((always_inline)) int nk_s5_store_code(int element) {
    if (element == 2 && nk_cpu_rounds_bf16()) {
        nk_silu512_bf16_rounding_calls++;
        return 3;
    }
    return element;
}

NK_SILU_TARGET
void nk_silu512_affine(const void *src, void *dst, size_t count, float pivot, float scale, float shift,
                       int element, int streaming) {
    nk_silu512_calls++;
    // One loop per combination, the flags constant inside each.
    switch (nk_s5_store_code(element) * 2 + (streaming != 0)) {
    case 0: nk_s5_affine(src, dst, count, pivot, scale, shift, 0, 0); break;
    case 1: nk_s5_affine(src, dst, count, pivot, scale, shift, 0, 1); break;
    case 2: nk_s5_affine(src, dst, count, pivot, scale, shift, 1, 0); break;
    case 3: nk_s5_affine(src, dst, count, pivot, scale, shift, 1, 1); break;
    case 4: nk_s5_affine(src, dst, count, pivot, scale, shift, 2, 0); break;
    case 5: nk_s5_affine(src, dst, count, pivot, scale, shift, 2, 1); break;
    case 6: nk_s5_affine(src, dst, count, pivot, scale, shift, 3, 0); break;
    default: nk_s5_affine(src, dst, count, pivot, scale, shift, 3, 1); break;
    }
}

/// Rows per strip: each 16-column tile loads its coefficients once per 8 rows
/// (as `Apply.rowsPerStrip`).
enum { nk_s5_strip = 8 };

/// 32 coefficients at q, as the lanes of nk_s5_affine_bf16_pairs' two
/// vectors: *lo columns {0–3, 8–11, 16–19, 24–27}, *hi {4–7, 12–15, 20–23, 28–31}.
NK_SILU_INLINE void nk_s5_pair_coefficients(const float *q, __m512 *lo, __m512 *hi) {
    const __m512i low = _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27);
    const __m512i high = _mm512_setr_epi32(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    __m512 a = _mm512_loadu_ps(q), b = _mm512_loadu_ps(q + 16);
    *lo = _mm512_permutex2var_ps(a, low, b);
    *hi = _mm512_permutex2var_ps(a, high, b);
}

NK_SILU_INLINE void nk_s5_columns(const void *src, void *dst, size_t rows, size_t columns, size_t stride,
                                  const float *pivot, const float *scale, const float *shift,
                                  int element, int streaming) {
    const size_t full = columns / 16 * 16;
    const __mmask16 tail = (__mmask16)((1u << (columns - full)) - 1);
    // BFloat16 rounded by the instruction (code 3): 32-column tiles as
    // nk_s5_affine_bf16_pairs (the coefficients permuted to its lanes; the same
    // bits), then the 16-column and masked tiles below.
    const size_t pairs = element == 3 ? columns / 32 * 32 : 0;
    for (size_t r0 = 0; r0 < rows; r0 += nk_s5_strip) {
        const size_t end = r0 + nk_s5_strip < rows ? r0 + nk_s5_strip : rows;
        for (size_t c = 0; c < pairs; c += 32) {
            __m512 pa, pb, sa, sb, ta, tb;
            nk_s5_pair_coefficients(pivot + c, &pa, &pb);
            nk_s5_pair_coefficients(scale + c, &sa, &sb);
            nk_s5_pair_coefficients(shift + c, &ta, &tb);
            for (size_t r = r0; r < end; r++)
                nk_s5_silu_bf16_step32(src, dst, r * stride + c, pa, sa, ta, pb, sb, tb, streaming);
        }
        for (size_t c = pairs; c < full; c += 16) {
            const __m512 p = _mm512_loadu_ps(pivot + c), s = _mm512_loadu_ps(scale + c), t = _mm512_loadu_ps(shift + c);
            for (size_t r = r0; r < end; r++) {
                // scalar math: y[r, c] = silu((x[r, c] − p[c])·s[c] + t[c])
                size_t o = r * stride + c;
                __m512 z = _mm512_fmadd_ps(_mm512_sub_ps(nk_e5_load(src, o, element), p), s, t);
                nk_e5_store(dst, o, nk_s5_silu(z), element, streaming);
            }
        }
        if (tail) {
            // The last columns % 16 in masked lanes (0 in the others, never stored).
            const __m512 p = _mm512_maskz_loadu_ps(tail, pivot + full), s = _mm512_maskz_loadu_ps(tail, scale + full);
            const __m512 t = _mm512_maskz_loadu_ps(tail, shift + full);
            for (size_t r = r0; r < end; r++) {
                size_t o = r * stride + full;
                __m512 z = _mm512_fmadd_ps(_mm512_sub_ps(nk_s5_load_masked(src, o, element, tail), p), s, t);
                nk_s5_store_masked(dst, o, nk_s5_silu(z), element, tail);
            }
        }
    }
}

NK_SILU_TARGET
void nk_silu512_columns(const void *src, void *dst, size_t rows, size_t columns, size_t stride,
                        const float *pivot, const float *scale, const float *shift, int element, int streaming) {
    nk_silu512_calls++;
    switch (nk_s5_store_code(element) * 2 + (streaming != 0)) {
    case 0: nk_s5_columns(src, dst, rows, columns, stride, pivot, scale, shift, 0, 0); break;
    case 1: nk_s5_columns(src, dst, rows, columns, stride, pivot, scale, shift, 0, 1); break;
    case 2: nk_s5_columns(src, dst, rows, columns, stride, pivot, scale, shift, 1, 0); break;
    case 3: nk_s5_columns(src, dst, rows, columns, stride, pivot, scale, shift, 1, 1); break;
    case 4: nk_s5_columns(src, dst, rows, columns, stride, pivot, scale, shift, 2, 0); break;
    case 5: nk_s5_columns(src, dst, rows, columns, stride, pivot, scale, shift, 2, 1); break;
    case 6: nk_s5_columns(src, dst, rows, columns, stride, pivot, scale, shift, 3, 0); break;
    default: nk_s5_columns(src, dst, rows, columns, stride, pivot, scale, shift, 3, 1); break;
    }
}

NK_SILU_INLINE void nk_s5_gradient_run(const void *x, const void *dy, float *g, size_t count, const float *k,
                                       int element, int sums, float *acc) {
    const __m512 p = _mm512_set1_ps(k[0]), s = _mm512_set1_ps(k[1]), t = _mm512_set1_ps(k[2]);
    const __m512 r = _mm512_set1_ps(k[3]), h = _mm512_set1_ps(k[4]), m = _mm512_set1_ps(k[5]);
    __m256 a = _mm256_loadu_ps(acc), b = _mm256_loadu_ps(acc + 8);
    for (size_t i = 0; i < count; i += 16) {
        // scalar math: z = (x − p)·s + t, dz = dy·silu′(z), g = dz·m, A += dz, B += dz·((x − p)·r + h)
        __m512 d = _mm512_sub_ps(nk_e5_load(x, i, element), p);
        __m512 dz = nk_s5_gradient(_mm512_fmadd_ps(d, s, t), nk_e5_load(dy, i, element));
        if (sums) {
            // The Swift loop's order: the first 8 values into A and B, then the next 8.
            __m512 hat = _mm512_fmadd_ps(d, r, h);
            __m256 dz0 = _mm512_castps512_ps256(dz), dz1 = _mm512_extractf32x8_ps(dz, 1);
            __m256 hat0 = _mm512_castps512_ps256(hat), hat1 = _mm512_extractf32x8_ps(hat, 1);
            a = _mm256_add_ps(a, dz0);
            b = _mm256_fmadd_ps(dz0, hat0, b);
            a = _mm256_add_ps(a, dz1);
            b = _mm256_fmadd_ps(dz1, hat1, b);
        }
        if (g) _mm512_storeu_ps(g + i, _mm512_mul_ps(dz, m));
    }
    _mm256_storeu_ps(acc, a);
    _mm256_storeu_ps(acc + 8, b);
}

NK_SILU_TARGET
void nk_silu512_gradient_run(const void *x, const void *dy, float *g, size_t count, const float *k,
                             int element, int sums, float *acc) {
    nk_silu512_calls++;
    switch (element) {
    case 0: nk_s5_gradient_run(x, dy, g, count, k, 0, sums, acc); break;
    case 1: nk_s5_gradient_run(x, dy, g, count, k, 1, sums, acc); break;
    default: nk_s5_gradient_run(x, dy, g, count, k, 2, sums, acc); break;
    }
}

/// One chunk of 16 channels (j … j + 15) of row offset o, lanes `mask` only
/// (`whole`: all 16, plain loads and stores).
NK_SILU_INLINE void nk_s5_gradient_chunk(const void *x, const void *dy, float *g, size_t o, size_t j,
                                         const float *pivot, const float *zScale, const float *zShift,
                                         const float *hatScale, const float *hatShift, const float *multiplier,
                                         int element, int sums, float *a, float *b, int whole, __mmask16 mask) {
#define NK_S5_LOADF(p) (whole ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(mask, p))
#define NK_S5_STOREF(p, v) (whole ? _mm512_storeu_ps(p, v) : _mm512_mask_storeu_ps(p, mask, v))
    __m512 xs = whole ? nk_e5_load(x, o + j, element) : nk_s5_load_masked(x, o + j, element, mask);
    __m512 ds = whole ? nk_e5_load(dy, o + j, element) : nk_s5_load_masked(dy, o + j, element, mask);
    __m512 d = _mm512_sub_ps(xs, NK_S5_LOADF(pivot + j));
    __m512 dz = nk_s5_gradient(_mm512_fmadd_ps(d, NK_S5_LOADF(zScale + j), NK_S5_LOADF(zShift + j)), ds);
    if (g) NK_S5_STOREF(g + o + j, _mm512_mul_ps(dz, NK_S5_LOADF(multiplier + j)));
    if (sums) {
        NK_S5_STOREF(a + j, _mm512_add_ps(NK_S5_LOADF(a + j), dz));
        __m512 hat = _mm512_fmadd_ps(d, NK_S5_LOADF(hatScale + j), NK_S5_LOADF(hatShift + j));
        NK_S5_STOREF(b + j, _mm512_fmadd_ps(dz, hat, NK_S5_LOADF(b + j)));
    }
#undef NK_S5_LOADF
#undef NK_S5_STOREF
}

NK_SILU_INLINE void nk_s5_gradient_rows(const void *x, const void *dy, float *g, size_t rows, size_t columns,
                                        size_t stride, const float *pivot, const float *zScale, const float *zShift,
                                        const float *hatScale, const float *hatShift, const float *multiplier,
                                        int element, int sums, float *a, float *b) {
    const size_t full = columns / 16 * 16;
    const __mmask16 rest = (__mmask16)((1u << (columns - full)) - 1);
    for (size_t row = 0; row < rows; row++) {
        // scalar math: as nk_s5_gradient_run, per channel j: a[j] += dz, b[j] += dz·x̂ (fused)
        size_t o = row * stride;
        for (size_t j = 0; j < full; j += 16) {
            nk_s5_gradient_chunk(x, dy, g, o, j, pivot, zScale, zShift, hatScale, hatShift, multiplier,
                                 element, sums, a, b, 1, 0xFFFF);
        }
        if (rest) {
            nk_s5_gradient_chunk(x, dy, g, o, full, pivot, zScale, zShift, hatScale, hatShift, multiplier,
                                 element, sums, a, b, 0, rest);
        }
    }
}

NK_SILU_TARGET
void nk_silu512_gradient_rows(const void *x, const void *dy, float *g, size_t rows, size_t columns, size_t stride,
                              const float *pivot, const float *zScale, const float *zShift, const float *hatScale,
                              const float *hatShift, const float *multiplier, int element, int sums,
                              float *a, float *b) {
    nk_silu512_calls++;
    switch (element) {
    case 0:
        nk_s5_gradient_rows(x, dy, g, rows, columns, stride, pivot, zScale, zShift, hatScale, hatShift, multiplier,
                            0, sums, a, b);
        break;
    case 1:
        nk_s5_gradient_rows(x, dy, g, rows, columns, stride, pivot, zScale, zShift, hatScale, hatShift, multiplier,
                            1, sums, a, b);
        break;
    default:
        nk_s5_gradient_rows(x, dy, g, rows, columns, stride, pivot, zScale, zShift, hatScale, hatShift, multiplier,
                            2, sums, a, b);
        break;
    }
}

#else

// Builds without FMA (or F16C): the Swift loops' multiply-adds are not fused
// there, so these loops would not give their bits; never chosen.
int nk_avx512_silu_detect(void) {
    __atomic_store_n(&nk_avx512_silu_flag, 0, __ATOMIC_RELAXED);
    return 0;
}

void nk_silu512_affine(const void *src, void *dst, size_t count, float pivot, float scale, float shift,
                       int element, int streaming) {
    (void)src; (void)dst; (void)count; (void)pivot; (void)scale; (void)shift; (void)element; (void)streaming;
}

void nk_silu512_columns(const void *src, void *dst, size_t rows, size_t columns, size_t stride,
                        const float *pivot, const float *scale, const float *shift, int element, int streaming) {
    (void)src; (void)dst; (void)rows; (void)columns; (void)stride; (void)pivot; (void)scale; (void)shift;
    (void)element; (void)streaming;
}

void nk_silu512_gradient_run(const void *x, const void *dy, float *g, size_t count, const float *k,
                             int element, int sums, float *acc) {
    (void)x; (void)dy; (void)g; (void)count; (void)k; (void)element; (void)sums; (void)acc;
}

void nk_silu512_gradient_rows(const void *x, const void *dy, float *g, size_t rows, size_t columns, size_t stride,
                              const float *pivot, const float *zScale, const float *zShift, const float *hatScale,
                              const float *hatShift, const float *multiplier, int element, int sums,
                              float *a, float *b) {
    (void)x; (void)dy; (void)g; (void)rows; (void)columns; (void)stride; (void)pivot; (void)zScale; (void)zShift;
    (void)hatScale; (void)hatShift; (void)multiplier; (void)element; (void)sums; (void)a; (void)b;
}

#endif
