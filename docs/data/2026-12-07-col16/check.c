// Standalone check: nk_col512_*_f16/_bf16 against 8-lane loops written with the
// same helpers the Swift loops use in a v3 build (nk_f16c_load8/round8,
// nk_bf16_load8/round8, fused muladd), on random bit patterns and spread values.
#include "ColumnGradientsAVX512.h"
#include "HalfPrecision.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#pragma STDC FP_CONTRACT OFF
typedef float f8 __attribute__((ext_vector_type(8)));
static uint64_t st = 88172645463325252ull;
static uint64_t rnd(void) { st ^= st << 13; st ^= st >> 7; st ^= st << 17; return st; }
static f8 load8(int E, const uint16_t *p) { return E == 1 ? (f8)nk_f16c_load8(p) : (f8)nk_bf16_load8(p); }
static void store8(int E, f8 v, uint16_t *p) {
    nk_half8 h = E == 1 ? nk_f16c_round8((nk_float8h)v) : nk_bf16_round8((nk_float8h)v);
    memcpy(p, &h, 16);
}
static f8 fma8(f8 a, f8 b, f8 c) { return __builtin_elementwise_fma(a, b, c); }
static f8 grad8(int E, const uint16_t *dy, const uint16_t *m, size_t o) {
    f8 d = load8(E, dy + o);
    if (m) { f8 mv = load8(E, m + o); for (int l = 0; l < 8; l++) if (mv[l] <= 0) d[l] = 0; }
    return d;
}
static float spreadf(int lo, int hi) {
    float s = (rnd() & 1) ? 1 : -1;
    int k = lo + (int)(rnd() % (uint64_t)(hi - lo + 1));
    return s * (1.0f + (float)(rnd() >> 40) * 0x1p-24f) * ldexpf(1, k);
}
static uint16_t narrow(int E, float f) { f8 v = (f8)f; uint16_t h[8]; store8(E, v, h); return h[0]; }
int main(void) {
    long bad = 0, total = 0, calls0 = nk_col512_thread_calls();
    if (!nk_cpu_runs_avx512_columns()) { printf("no avx512\n"); return 1; }
    for (int E = 1; E <= 2; E++)
    for (int cols = 16; cols <= 128; cols += 16)
    for (int extra = 0; extra <= 24; extra += 24)
    for (int masked = 0; masked < 2; masked++)
    for (int streaming = 0; streaming < 2; streaming++)
    for (int kind = 0; kind < 2; kind++) {
        size_t rows = 77, stride = cols + extra, n = rows * stride;
        uint16_t *x = aligned_alloc(64, 2 * n + 64), *dy = aligned_alloc(64, 2 * n + 64), *mk = aligned_alloc(64, 2 * n + 64);
        uint16_t *d1 = aligned_alloc(64, 2 * n + 64), *d2 = aligned_alloc(64, 2 * n + 64);
        int lo = E == 1 ? -24 : -133, hi = E == 1 ? 15 : 127;
        for (size_t i = 0; i < n; i++) {
            if (kind == 0) { x[i] = rnd(); dy[i] = rnd(); }
            else { x[i] = narrow(E, spreadf(lo, hi)); dy[i] = narrow(E, spreadf(lo, hi)); }
            mk[i] = rnd();
        }
        float p[128], a[128], b[128], c[128], s[128], t[128];
        for (int j = 0; j < cols; j++) { p[j] = spreadf(-8, 8); a[j] = spreadf(-60, 60); b[j] = spreadf(-60, 60); c[j] = spreadf(-60, 60);
            s[j] = spreadf(-40, 40); t[j] = spreadf(-40, 40); }
        memset(d1, 0x55, 2 * n); memset(d2, 0x55, 2 * n);
        const uint16_t *m = masked ? mk : NULL;
        if (E == 1) nk_col512_gradient_apply_f16(x, dy, m, d1, rows, cols, stride, p, a, b, c, streaming);
        else nk_col512_gradient_apply_bf16(x, dy, m, d1, rows, cols, stride, p, a, b, c, streaming);
        for (size_t r = 0; r < rows; r++) for (int j = 0; j < cols; j += 8) {
            size_t o = r * stride + j;
            f8 v = fma8(*(f8 *)&b[j] , load8(E, x + o) - *(f8 *)&p[j], *(f8 *)&c[j]);
            v = fma8(*(f8 *)&a[j], grad8(E, dy, m, o), v);
            store8(E, v, d2 + o);
        }
        for (size_t i = 0; i < n; i++) { total++; if (d1[i] != d2[i]) { if (bad < 5) printf("apply E%d cols %d i %zu: %04x vs %04x\n", E, cols, i, d1[i], d2[i]); bad++; } }
        // sums
        float g1[128] = {0}, h1[128] = {0}, g2[128] = {0}, h2[128] = {0};
        for (int j = 0; j < cols; j++) { g1[j] = g2[j] = spreadf(-5, 5); h1[j] = h2[j] = spreadf(-5, 5); }
        if (E == 1) nk_col512_gradient_sums_f16(x, dy, m, rows, cols, stride, p, s, t, g1, h1);
        else nk_col512_gradient_sums_bf16(x, dy, m, rows, cols, stride, p, s, t, g1, h1);
        for (size_t r = 0; r < rows; r++) for (int j = 0; j < cols; j += 8) {
            size_t o = r * stride + j;
            f8 d = grad8(E, dy, m, o);
            f8 xh = fma8(load8(E, x + o) - *(f8 *)&p[j], *(f8 *)&s[j], *(f8 *)&t[j]);
            *(f8 *)&g2[j] = *(f8 *)&g2[j] + d;
            *(f8 *)&h2[j] = fma8(d, xh, *(f8 *)&h2[j]);
        }
        total += 2 * cols;
        int sd = 0, nans = 0;
        for (int j = 0; j < cols; j++) {
            if (isnan(g1[j]) && isnan(g2[j])) nans++; else sd |= memcmp(&g1[j], &g2[j], 4) != 0;
            if (isnan(h1[j]) && isnan(h2[j])) nans++; else sd |= memcmp(&h1[j], &h2[j], 4) != 0;
        }
        if (sd) { bad++; printf("sums E%d cols %d masked %d kind %d differ\n", E, cols, masked, kind); }
        free(x); free(dy); free(mk); free(d1); free(d2);
    }
    printf("checked %ld, mismatches %ld, calls %lu\n", total, bad, (unsigned long)(nk_col512_thread_calls() - calls0));
    return bad != 0;
}
