// The backward's gradient sums of 16-bit runs far apart in AVX-512 registers,
// chosen at run time; see include/WelfordAVX512.h for why and for the
// bit-for-bit rule. Each function carries its own target attribute, so
// this file needs no -march flag; its loops exist only in builds with FMA and
// F16C (`__FMA__`, `__F16C__`), where the Swift `muladd` they mirror is one
// fused operation.

#include "WelfordAVX512.h"

#include <stdlib.h>
#include <string.h>

// Nothing here is fused unless written as an FMA: the Swift loops never fuse.
#pragma STDC FP_CONTRACT OFF

int nk_avx512_welford_flag = -1;

static _Thread_local uint64_t nk_welford512_calls = 0;

uint64_t nk_welford512_thread_calls(void) { return nk_welford512_calls; }

int nk_avx512_welford_set(int enable) {
    if (enable) return nk_avx512_welford_detect();
    __atomic_store_n(&nk_avx512_welford_flag, 0, __ATOMIC_RELAXED);
    return 0;
}

#if defined(__x86_64__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

int nk_avx512_welford_detect(void) {
    int ok = nk_avx512_allowed("NORMKERNELS_AVX512_WELFORD");
    __atomic_store_n(&nk_avx512_welford_flag, ok, __ATOMIC_RELAXED);
    return ok;
}

__attribute__((constructor)) static void nk_avx512_welford_init(void) { (void)nk_avx512_welford_detect(); }

// The element loads (nk_e5_load: the Swift `load8` bits) and their target.
#include "avx512_elements.h"

/// `PrefetchAhead.bytes`: the distance of a prefetch along the logical stream.
enum { NK_WF_PREFETCH_BYTES = 8192, NK_WF_PREFETCHED_RUN = 256 };

/// The prefetch of these loops: into L2 (`prefetcht1`), where the Swift loops'
/// `nk_prefetch` asks for L1 (`prefetcht0`). Why: the channel order of
/// BatchNorm NCHW [128, 64, 56, 56] in 16 bits (runs of 6 KiB, 392 KiB apart)
/// read at 10–11 GB/s on one Zen 4 core with `prefetcht0` 8 KiB ahead, and at
/// 16–19 GB/s with `prefetcht1` (memory order: 15.5), a plain sum loop and
/// the Welford loop alike (docs/data/2026-12-07-chan16/read_pattern_bench.txt,
/// stats_bench_hint.txt): the stats pass waited on its loads, not on its
/// arithmetic. A hint only: no value changes.
#define NK_WF_PREFETCH(p) __builtin_prefetch((p), 0, 2)

// ---------------------------------------------------------------------------
// The gradient sums of 16-bit runs (`BlockGradients.segmentedFloat32` without
// mask, γ or store: BatchNorm, InstanceNorm and GroupNorm NCHW backward).

/// g and Σg·x̂ of 16 lanes: g += d;  h = fma(d, fma(x − p, s, t), h)   (`step`)
NK_E5_INLINE void nk_gs_step(__m512 x, __m512 d, __m512 *g, __m512 *h, __m512 p, __m512 s, __m512 t) {
    *g = _mm512_add_ps(*g, d);
    *h = _mm512_fmadd_ps(d, _mm512_fmadd_ps(_mm512_sub_ps(x, p), s, t), *h);
}

/// 8 values widened into the low half of a zmm (the high half 0).
NK_E5_INLINE __m512 nk_gs_load8(const void *q, size_t i, const int E) {
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)q + i));
    __m256 v = E == 1 ? _mm256_cvtph_ps(h)
                      : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm512_zextps256_ps512(v);
}

NK_E5_INLINE void nk_gs_sums(const void *x, const void *dy, size_t length, size_t stride, size_t segments,
                             float pivot, float scale, float shift, ptrdiff_t following, float *lanes, const int E) {
    const __m512 p = _mm512_set1_ps(pivot), s = _mm512_set1_ps(scale), t = _mm512_set1_ps(shift);
    // Lanes 0–15: the Swift g0|g1 (h0|h1); 16–31: g2|g3 (h2|h3).
    __m512 ga = _mm512_setzero_ps(), gb = _mm512_setzero_ps(), ha = _mm512_setzero_ps(), hb = _mm512_setzero_ps();
    const int prefetch = following != 0 && length >= NK_WF_PREFETCHED_RUN;
    const ptrdiff_t ahead = (ptrdiff_t)(length < NK_WF_PREFETCH_BYTES / 2 ? length : NK_WF_PREFETCH_BYTES / 2);
    const ptrdiff_t len = (ptrdiff_t)length;
    for (size_t segment = 0; segment < segments; segment++) {
        const uint16_t *xs = (const uint16_t *)x + segment * stride, *ds = (const uint16_t *)dy + segment * stride;
        const ptrdiff_t jump = segment + 1 < segments ? (ptrdiff_t)stride
                                                      : following - (ptrdiff_t)segment * (ptrdiff_t)stride;
        size_t i = 0;
        // scalar math: x̂ = (x − p)·s + t;  Σg += g;  Σgx̂ += g·x̂
        for (; i + 32 <= length; i += 32) {
            if (prefetch) {
                ptrdiff_t o = (ptrdiff_t)i + ahead;
                if (o >= len) o = jump + o - len;
                NK_WF_PREFETCH(xs + o);
                NK_WF_PREFETCH(ds + o);
            }
            nk_gs_step(nk_e5_load(xs, i, E), nk_e5_load(ds, i, E), &ga, &ha, p, s, t);
            nk_gs_step(nk_e5_load(xs, i + 16, E), nk_e5_load(ds, i + 16, E), &gb, &hb, p, s, t);
        }
        // The 8-value steps go to the Swift g0, h0: the low 8 lanes of ga, ha.
        for (; i + 8 <= length; i += 8) {
            __m512 d = nk_gs_load8(ds, i, E);
            __m512 xhat = _mm512_fmadd_ps(_mm512_sub_ps(nk_gs_load8(xs, i, E), p), s, t);
            ga = _mm512_mask_add_ps(ga, 0x00FF, ga, d);
            ha = _mm512_mask3_fmadd_ps(d, xhat, ha, 0x00FF);
        }
    }
    _mm512_storeu_ps(lanes, ga);
    _mm512_storeu_ps(lanes + 16, gb);
    _mm512_storeu_ps(lanes + 32, ha);
    _mm512_storeu_ps(lanes + 48, hb);
}

NK_E5_TARGET void nk_welford512_gradient_sums_f16(const void *x, const void *dy, size_t length, size_t stride,
                                                  size_t segments, float pivot, float scale, float shift,
                                                  ptrdiff_t following, float *lanes) {
    nk_welford512_calls++;
    nk_gs_sums(x, dy, length, stride, segments, pivot, scale, shift, following, lanes, 1);
}

NK_E5_TARGET void nk_welford512_gradient_sums_bf16(const void *x, const void *dy, size_t length, size_t stride,
                                                   size_t segments, float pivot, float scale, float shift,
                                                   ptrdiff_t following, float *lanes) {
    nk_welford512_calls++;
    nk_gs_sums(x, dy, length, stride, segments, pivot, scale, shift, following, lanes, 2);
}

#else

// Builds without FMA and F16C: the Swift multiply-adds are not fused there, so
// these loops would not give their bits; never chosen.
int nk_avx512_welford_detect(void) {
    __atomic_store_n(&nk_avx512_welford_flag, 0, __ATOMIC_RELAXED);
    return 0;
}

void nk_welford512_gradient_sums_f16(const void *x, const void *dy, size_t length, size_t stride, size_t segments,
                                     float pivot, float scale, float shift, ptrdiff_t following, float *lanes) {
    (void)x; (void)dy; (void)length; (void)stride; (void)segments; (void)pivot; (void)scale; (void)shift;
    (void)following; (void)lanes;
}
void nk_welford512_gradient_sums_bf16(const void *x, const void *dy, size_t length, size_t stride, size_t segments,
                                      float pivot, float scale, float shift, ptrdiff_t following, float *lanes) {
    (void)x; (void)dy; (void)length; (void)stride; (void)segments; (void)pivot; (void)scale; (void)shift;
    (void)following; (void)lanes;
}

#endif
