#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include <immintrin.h>
#include "RowGradientSums16.h"

static uint64_t st = 12345;
static uint64_t rnd(void) { st += 0x9E3779B97F4A7C15ull; uint64_t z = st; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull; z = (z ^ (z >> 27)) * 0x94D049BB133111EBull; return z ^ (z >> 31); }
static float w1(uint16_t v, int kind) { if (kind == 1) return _cvtsh_ss(v); uint32_t w = (uint32_t)v << 16; float f; memcpy(&f, &w, 4); return f; }
static uint16_t n1(float f, int kind) { if (kind == 1) return _cvtss_sh(f, 0); uint32_t w; memcpy(&w, &f, 4); return (uint16_t)((w + 0x7FFF + ((w >> 16) & 1)) >> 16); }

// reference: Swift order, one row at a time, lane by lane
static void ref(const uint16_t *x, const uint16_t *dy, size_t D, size_t rows, const float *gamma, const float *k,
                float *accG, float *accH, float *lanes, float *tails, int kind) {
    size_t ve = D / 8 * 8;
    memset(lanes, 0, 128 * 4); memset(tails, 0, 64);
    for (size_t i = 0; i < rows; i++) {
        const uint16_t *xr = x + i * D, *dr = dy + i * D;
        float p = k[i], s = k[8 + i], t = k[16 + i];
        for (int l = 0; l < 8; l++) {
            float g = 0, h = 0;
            for (size_t j = l; j < ve; j += 8) {
                float d = w1(dr[j], kind);
                float xh = fmaf(w1(xr[j], kind) - p, s, t);
                float gg = gamma ? d * gamma[j] : d;
                g = g + gg; h = fmaf(gg, xh, h);
                if (accG) { accG[j] = accG[j] + d; accH[j] = fmaf(d, xh, accH[j]); }
            }
            lanes[8 * i + l] = g; lanes[64 + 8 * i + l] = h;
        }
        float gt = 0, ht = 0;
        for (size_t j = ve; j < D; j++) {
            float d = w1(dr[j], kind);
            float xh = fmaf(w1(xr[j], kind) - p, s, t);
            float gg = gamma ? d * gamma[j] : d;
            gt += gg; ht = fmaf(gg, xh, ht);
            if (accG) { accG[j] += d; accH[j] = fmaf(d, xh, accH[j]); }
        }
        tails[i] = gt; tails[8 + i] = ht;
    }
}
static int same(float a, float b) { uint32_t x, y; memcpy(&x, &a, 4); memcpy(&y, &b, 4); return x == y || (isnan(a) && isnan(b)); }

int main(int argc, char **argv) {
    printf("flag %d\n", nk_cpu_row_sums16());
    size_t Ds[] = {1, 7, 8, 9, 15, 31, 32, 33, 63, 100, 768, 771, 1000, 1024, 1030, 4095, 4096};
    int bad = 0, cases = 0;
    for (int kind = 1; kind <= 2; kind++)
    for (size_t di = 0; di < sizeof Ds / sizeof *Ds; di++)
    for (size_t rows = 1; rows <= 8; rows++)
    for (int hg = 0; hg < 2; hg++) for (int fu = 0; fu < 2; fu++) for (int hard = 0; hard < 2; hard++) {
        size_t D = Ds[di];
        uint16_t *x = malloc(8 * D * 2 + 64), *dy = malloc(8 * D * 2 + 64);
        float *gm = malloc(D * 4), *aG1 = malloc(D * 4), *aH1 = malloc(D * 4), *aG2 = malloc(D * 4), *aH2 = malloc(D * 4);
        for (size_t i = 0; i < 8 * D; i++) {
            if (hard) { x[i] = (uint16_t)rnd(); dy[i] = (uint16_t)rnd(); }
            else { x[i] = n1((float)((int)(rnd() % 2001) - 1000) / 300.0f, kind); dy[i] = n1((float)((int)(rnd() % 2001) - 1000) / 1700.0f, kind); }
        }
        for (size_t j = 0; j < D; j++) { gm[j] = 0.5f + (float)(rnd() % 1000) / 1000.0f; aG1[j] = aG2[j] = (float)(rnd() % 100) / 7.0f; aH1[j] = aH2[j] = (float)(rnd() % 100) / 11.0f; }
        float k[32]; for (int i = 0; i < 8; i++) { k[i] = (float)((int)(rnd() % 200) - 100) / 97.0f; k[8 + i] = 0.3f + (float)(rnd() % 100) / 57.0f; k[16 + i] = (float)((int)(rnd() % 200) - 100) / 1e5f; }
        float l1[128], l2[128], t1[16], t2[16];
        memset(l2, 0x55, sizeof l2); memset(t2, 0x55, sizeof t2);
        ref(x, dy, D, rows, hg ? gm : NULL, k, fu ? aG1 : NULL, fu ? aH1 : NULL, l1, t1, kind);
        nk_row_sums16(x, dy, D, rows, hg ? gm : NULL, k, fu ? aG2 : NULL, fu ? aH2 : NULL, l2, t2, kind);
        int b = 0;
        for (int i = 0; i < 128; i++) b += !same(l1[i], l2[i]);
        for (int i = 0; i < 16; i++) b += !same(t1[i], t2[i]);
        for (size_t j = 0; j < D; j++) b += !same(aG1[j], aG2[j]) + !same(aH1[j], aH2[j]);
        if (b) { bad++; if (bad < 10) printf("BAD kind %d D %zu rows %zu g %d f %d hard %d: %d\n", kind, D, rows, hg, fu, hard, b); }
        cases++;
        free(x); free(dy); free(gm); free(aG1); free(aH1); free(aG2); free(aH2);
    }
    printf("%d cases, %d bad, calls %llu\n", cases, bad, (unsigned long long)nk_row_sums16_thread_calls());
    if (argc > 1) {
        // timing: sweep 1 only, [rows, D] bf16/f16, fused, gamma
        size_t R = strtoul(argv[1], 0, 10), D = strtoul(argv[2], 0, 10); int kind = atoi(argv[3]);
        size_t xo = argc > 4 ? strtoul(argv[4], 0, 10) : 0, ao = argc > 5 ? strtoul(argv[5], 0, 10) : 0, yo = argc > 6 ? strtoul(argv[6], 0, 10) : 0;
        uint16_t *x = (uint16_t *)((char *)aligned_alloc(4096, R * D * 2 + 8192) + xo), *dy = (uint16_t *)((char *)aligned_alloc(4096, R * D * 2 + 8192) + yo);
        for (size_t i = 0; i < R * D; i++) { x[i] = n1((float)(i % 97) / 50.0f, kind); dy[i] = n1((float)(i % 89) / 70.0f, kind); }
        float *gm = malloc(D * 4); char *pool = aligned_alloc(4096, 65536); float *aG = (float *)(pool + ao), *aH = (float *)(pool + 16384 + ao);
        for (size_t j = 0; j < D; j++) gm[j] = 1.0f;
        float k[32] = {0}; for (int i = 0; i < 8; i++) k[8 + i] = 1;
        float l[128], t[16];
        double best = 1e9; float sink = 0;
        for (int rep = 0; rep < 15; rep++) {
            struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a);
            for (size_t i0 = 0; i0 < R; i0 += 8) {
                if (i0 % 128 == 0) { memset(aG, 0, D * 4); memset(aH, 0, D * 4); }
                nk_row_sums16(x + i0 * D, dy + i0 * D, D, 8, gm, k, aG, aH, l, t, kind);
                sink += l[0];
            }
            clock_gettime(CLOCK_MONOTONIC, &b);
            double ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6; if (ms < best) best = ms;
        }
        printf("xo %zu ao %zu yo %zu sweep1 [%zu,%zu] kind %d:", xo, ao, yo); printf(" %.3f ms (%.1f GB/s) %g\n", R, D, kind, best, R * D * 4 / best / 1e6, sink);
    }
    return bad != 0;
}
