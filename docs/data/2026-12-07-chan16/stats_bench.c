#pragma STDC FP_CONTRACT OFF
// Stats pass alone over BatchNorm NCHW [128,64,56,56] 16-bit: zmm loop (welford_avx512.c) vs an 8-lane ymm replica
// of the Swift loop (same prefetch), 1 thread, memory order of the kernel (channel by channel, runs of 3136).
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <immintrin.h>
void nk_welford512_lanes32_f16(const void *p, size_t length, size_t stride, size_t segments, float pivot,
                               ptrdiff_t following, const float *weights, float *lanes);
__attribute__((target("avx2,fma,f16c"), noinline))
static void ymm_lanes32(const uint16_t *p, size_t length, ptrdiff_t following, const float *weights, float pivot, float *lanes) {
  __m256 k = _mm256_set1_ps(pivot), m[4], s[4];
  for (int j = 0; j < 4; j++) { m[j] = _mm256_setzero_ps(); s[j] = _mm256_setzero_ps(); }
  size_t step = 0; ptrdiff_t len = length, ahead = length < 4096 ? length : 4096;
  for (size_t c = 0; c < length / 32; c++) {
    ptrdiff_t t = 32 * c + ahead; if (following && length >= 256) __builtin_prefetch(p + (t < len ? t : following + t - len), 0, 3);
    step++; float r = weights[2*step], w = weights[2*step+1];
    __m256 vr = _mm256_set1_ps(r), vq = _mm256_set1_ps(w);
    for (int j = 0; j < 4; j++) {
      __m256 x = _mm256_sub_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 32 * c + 8 * j))), k);
      __m256 d = _mm256_sub_ps(x, m[j]);
      m[j] = _mm256_fmadd_ps(m[j], vq, _mm256_mul_ps(x, vr));
      s[j] = _mm256_fmadd_ps(d, _mm256_sub_ps(x, m[j]), s[j]);
    }
  }
  for (int j = 0; j < 4; j++) { _mm256_storeu_ps(lanes + 8 * j, m[j]); _mm256_storeu_ps(lanes + 32 + 8 * j, s[j]); }
}
static double now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec + ts.tv_nsec * 1e-9; }
int main(void) {
  const size_t N = 128, C = 64, HW = 3136, total = N * C * HW;
  uint16_t *x = aligned_alloc(64, total * 2);
  for (size_t i = 0; i < total; i++) x[i] = _cvtss_sh((float)((i * 2654435761u) % 1000) * 0.001f, 0);
  float table[1024]; for (int k = 1; k < 512; k++) { table[2*k] = 1.0f / k; table[2*k+1] = 1.0f - 1.0f / k; }
  uint16_t *junk = malloc(64 << 20); // flush caches between passes
  float lanes[64]; double sink = 0;
  for (int rep = 0; rep < 6; rep++) {
    for (int which = 0; which < 2; which++) {
      memset(junk, rep, 64 << 20);
      double t0 = now();
      for (size_t c = 0; c < C; c++) for (size_t n = 0; n < N; n++) {
        const uint16_t *p = x + (n * C + c) * HW;
        ptrdiff_t following = n + 1 < N ? (ptrdiff_t)(C * HW) : 0;
        if (which ^ (rep & 1)) nk_welford512_lanes32_f16(p, HW, HW, 1, 0.5f, following, table, lanes);
        else ymm_lanes32(p, HW, following, table, 0.5f, lanes);
        sink += lanes[5];
      }
      double t = now() - t0;
      printf("rep %d %s %.3f ms (%.1f GB/s)\n", rep, (which ^ (rep & 1)) ? "zmm" : "ymm", t * 1e3, total * 2 / t / 1e9);
    }
  }
  return sink == 12345.0;
}
