#pragma STDC FP_CONTRACT OFF
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <immintrin.h>
int nk_cpu_has_avx512(void);
void nk_welford512_lanes32_f16(const void *p, size_t length, size_t stride, size_t segments, float pivot,
                               ptrdiff_t following, const float *weights, float *lanes);
void nk_welford512_lanes32_bf16(const void *p, size_t length, size_t stride, size_t segments, float pivot,
                                ptrdiff_t following, const float *weights, float *lanes);
void nk_welford512_gradient_sums_f16(const void *x, const void *dy, size_t length, size_t stride, size_t segments,
                                     float pivot, float scale, float shift, ptrdiff_t following, float *lanes);
void nk_welford512_gradient_sums_bf16(const void *x, const void *dy, size_t length, size_t stride, size_t segments,
                                      float pivot, float scale, float shift, ptrdiff_t following, float *lanes);
static float widen(uint16_t v, int E) {
  if (E == 1) return _cvtsh_ss(v);
  uint32_t b = (uint32_t)v << 16; float f; memcpy(&f, &b, 4); return f;
}
static uint16_t narrow(float f, int E) {
  if (E == 1) return _cvtss_sh(f, 0);
  uint32_t b; memcpy(&b, &f, 4); return (uint16_t)((b + 0x7FFF + ((b >> 16) & 1)) >> 16);
}
static uint64_t st = 12345;
static double rnd(void) { st = st * 6364136223846793005ULL + 1442695040888963407ULL; return (double)(st >> 11) * 0x1p-53; }
static double nrm(void) { double u = rnd() + 1e-300, v = rnd(); return sqrt(-2 * log(u)) * cos(6.283185307179586 * v); }
int main(void) {
  float table[1024]; table[0] = table[1] = 0;
  for (int k = 1; k < 512; k++) { table[2*k] = 1.0f / (float)k; table[2*k+1] = 1.0f - 1.0f / (float)k; }
  int bad = 0, cases = 0;
  size_t lens[] = {64, 96, 100, 255, 256, 576, 3136, 5000, 17000, 77};
  size_t segs[] = {1, 3, 40, 2};
  for (int E = 1; E <= 2; E++)
  for (int li = 0; li < 10; li++) for (int si = 0; si < 4; si++) for (int kind = 0; kind < 3; kind++) {
    size_t n = lens[li], S = segs[si], stride = n + 40; ptrdiff_t following = (ptrdiff_t)(S * stride + 24);
    size_t total = (size_t)following + S * stride + 64;
    uint16_t *x = malloc(total * 2), *dy = malloc(total * 2);
    for (size_t i = 0; i < total; i++) {
      double v = kind == 0 ? nrm() : kind == 1 ? 1000 + 0.1 * nrm() : 60000 + 4000 * nrm();
      x[i] = narrow((float)v, E); dy[i] = narrow((float)nrm(), E);
    }
    float pivot = widen(x[3], E);
    // reference Welford lanes (per lane scalar)
    float m[32] = {0}, s[32] = {0};
    size_t step = 0;
    for (size_t g = 0; g < S; g++) for (size_t c = 0; c < n / 32; c++) {
      step++; float r, w;
      if (step < 512) { r = table[2*step]; w = table[2*step+1]; } else { r = 1.0f / (float)step; w = 1.0f - r; }
      for (int l = 0; l < 32; l++) {
        float xv = widen(x[g * stride + 32 * c + l], E) - pivot;
        float d = xv - m[l]; m[l] = fmaf(m[l], w, xv * r); s[l] = fmaf(d, xv - m[l], s[l]);
      }
    }
    float lanes[64];
    for (int pf = 0; pf < 2; pf++) {
      (E == 1 ? nk_welford512_lanes32_f16 : nk_welford512_lanes32_bf16)(x, n, stride, S, pivot, pf ? following : 0, table, lanes);
      cases++;
      if (memcmp(lanes, m, 128) || memcmp(lanes + 32, s, 128)) { bad++; printf("welford mismatch E%d n%zu S%zu kind%d\n", E, n, S, kind); }
    }
    // reference gradient lanes
    float gl[32] = {0}, hl[32] = {0}; float P = pivot, SC = 0.37f, T = -0.01f;
    for (size_t g = 0; g < S; g++) {
      size_t i = 0;
      for (; i + 32 <= n; i += 32) for (int l = 0; l < 32; l++) {
        float d = widen(dy[g*stride + i + l], E), xv = widen(x[g*stride + i + l], E);
        gl[l] = gl[l] + d; hl[l] = fmaf(d, fmaf(xv - P, SC, T), hl[l]);
      }
      for (; i + 8 <= n; i += 8) for (int l = 0; l < 8; l++) {
        float d = widen(dy[g*stride + i + l], E), xv = widen(x[g*stride + i + l], E);
        gl[l] = gl[l] + d; hl[l] = fmaf(d, fmaf(xv - P, SC, T), hl[l]);
      }
    }
    for (int pf = 0; pf < 2; pf++) {
      (E == 1 ? nk_welford512_gradient_sums_f16 : nk_welford512_gradient_sums_bf16)(x, dy, n, stride, S, P, SC, T, pf ? following : 0, lanes);
      cases++;
      if (memcmp(lanes, gl, 128) || memcmp(lanes + 32, hl, 128)) { bad++; printf("grad mismatch E%d n%zu S%zu kind%d\n", E, n, S, kind); }
    }
    free(x); free(dy);
  }
  printf("%d cases, %d mismatches\n", cases, bad);
  return bad != 0;
}
