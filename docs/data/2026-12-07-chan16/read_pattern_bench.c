// The channel-order read pattern of BatchNorm NCHW [128,64,56,56] 16-bit stats, 1 thread: a plain sum loop
// (no Welford) with software prefetch distance D bytes (0 = none), and hint T0 vs T1 (L2).
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <immintrin.h>
static double now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec + ts.tv_nsec * 1e-9; }
__attribute__((target("avx2"), noinline))
static __m256i pass(const uint16_t *x, size_t N, size_t C, size_t HW, ptrdiff_t D, int l2) {
  __m256i acc = _mm256_setzero_si256(), acc2 = _mm256_setzero_si256();
  ptrdiff_t d = D / 2;
  for (size_t c = 0; c < C; c++) for (size_t n = 0; n < N; n++) {
    const uint16_t *p = x + (n * C + c) * HW;
    ptrdiff_t following = n + 1 < N ? (ptrdiff_t)(C * HW) : (ptrdiff_t)HW - (ptrdiff_t)(N - 1) * C * HW; // next channel
    for (size_t i = 0; i < HW; i += 32) {
      if (D) { ptrdiff_t t = i + d; const uint16_t *q = p + (t < (ptrdiff_t)HW ? t : following + t - (ptrdiff_t)HW);
               if (l2) _mm_prefetch((const char *)q, _MM_HINT_T1); else _mm_prefetch((const char *)q, _MM_HINT_T0); }
      acc = _mm256_add_epi16(acc, _mm256_loadu_si256((const __m256i *)(p + i)));
      acc2 = _mm256_add_epi16(acc2, _mm256_loadu_si256((const __m256i *)(p + i + 16)));
    }
  }
  return _mm256_add_epi16(acc, acc2);
}
int main(void) {
  const size_t N = 128, C = 64, HW = 3136, total = N * C * HW;
  uint16_t *x = aligned_alloc(64, total * 2); memset(x, 1, total * 2);
  char *junk = malloc(64 << 20);
  ptrdiff_t Ds[] = {0, 8192, 16384, 32768};
  long sink = 0;
  for (int rep = 0; rep < 3; rep++) for (int k = 0; k < 4; k++) for (int l2 = 0; l2 < 2; l2++) {
    if (Ds[k] == 0 && l2) continue;
    memset(junk, rep, 64 << 20);
    double t0 = now();
    __m256i a = pass(x, N, C, HW, Ds[k], l2);
    double t = now() - t0; sink += _mm256_extract_epi16(a, 3);
    printf("rep %d D %5td %s %.3f ms (%.1f GB/s)\n", rep, Ds[k], l2 ? "T1" : "T0", t * 1e3, total * 2 / t / 1e9);
  }
  // memory order for reference
  for (int rep = 0; rep < 2; rep++) { memset(junk, rep, 64 << 20); double t0 = now();
    __m256i a = pass(x, 1, 1, total, 0, 0); double t = now() - t0; sink += _mm256_extract_epi16(a, 1);
    printf("memory order %.3f ms (%.1f GB/s)\n", t * 1e3, total * 2 / t / 1e9); }
  return sink == 7;
}
