// The AVX-512 BF16 loops of Sources/CNormSupport/bfloat16_hardware.c against
// the integer rounding formula (BFloat16.swift), value by value: random bit
// patterns with NaN, ±∞ and subnormal inputs, coefficients spread over
// 2⁻³⁰…2³⁰ (so outputs include Float32 subnormals), ReLU, residual, mask and
// streaming variants; prints the number of differing outputs (0 expected).
// Needs a CPU with AVX-512 BF16 (prints flag 0 and checks nothing useful
// otherwise). docs/PERFORMANCE.md, "BFloat16 output loops: hardware rounding".
//
//   clang -O2 -ISources/CNormSupport/include tools/bf16_hardware_check.c \
//       Sources/CNormSupport/bfloat16_hardware.c -o /tmp/bf16check -lm && /tmp/bf16check
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <stdint.h>
#include "BFloat16Hardware.h"
static uint16_t rnd16(uint32_t f) {
    if ((f & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)((f >> 16) | 0x40);
    return (uint16_t)((f + 0x7FFF + ((f >> 16) & 1)) >> 16);
}
static float wid(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static uint64_t st = 88172645463325252ull;
static uint64_t xr(void) { st ^= st << 13; st ^= st >> 7; st ^= st << 17; return st; }
int main(void) {
    printf("flag %d\n", nk_cpu_rounds_bf16());
    enum { N = 4096 };
    static uint16_t x[N], r[N], y[N] __attribute__((aligned(32)));
    long bad = 0, subs = 0, nans = 0;
    for (int it = 0; it < 20000; it++) {
        for (int i = 0; i < N; i++) {
            uint64_t z = xr();
            x[i] = (uint16_t)z; r[i] = (uint16_t)(z >> 16);
            if ((z >> 40) % 64 == 0) x[i] = (uint16_t)(0x7F80 | ((z>>50)&0x7F) | ((z>>48)&1)<<15);  // inf/NaN
            if ((z >> 40) % 64 == 1) x[i] = (uint16_t)((z >> 32) & 0x807F); // subnormal/zero
        }
        float p = wid((uint16_t)xr()), s, t;
        uint32_t sb = (uint32_t)xr(); memcpy(&s, &sb, 4);
        uint32_t tb = (uint32_t)xr(); memcpy(&t, &tb, 4);
        int mode = it % 8;
        if (mode < 4) { p = 0; s = ldexpf(1.0f + (float)(xr() % 1000) / 1000.0f, (int)(xr() % 40) - 20); t = (it & 1) ? 0 : wid((uint16_t)xr()) ; }
        if (it % 3 == 0) { s = 1.0f + ldexpf((float)(xr()%1024), -20); }
        int act = (it >> 1) & 1, useres = (it >> 2) & 1, stream = (it >> 3) & 1;
        nk_bf16_hw_affine(x, y, N, p, s, t, useres ? r : NULL, act, stream);
        for (int i = 0; i < N; i++) {
            float v = fmaf(wid(x[i]) - p, s, t);
            if (useres) v = v + wid(r[i]);
            if (act && v < 0) v = 0;
            uint16_t want = rnd16(bits(v));
            if ((bits(v) & 0x7F800000) == 0 && (bits(v) & 0x7FFFFF)) subs++;
            if (v != v) nans++;
            if (want != y[i]) { if (bad < 10) printf("bad %d: x %04x v %08x want %04x got %04x\n", i, x[i], bits(v), want, y[i]); bad++; }
        }
    }
    static uint16_t m[N];
    for (int it = 0; it < 8000; it++) {
        for (int i = 0; i < N; i++) {
            uint64_t z = xr();
            x[i] = (uint16_t)z; r[i] = (uint16_t)(z >> 16); m[i] = (uint16_t)(z >> 32);
            if ((z >> 48) % 64 == 0) x[i] = (uint16_t)(0x7F80 | ((z>>50)&0x7F));
            if ((z >> 48) % 64 == 1) r[i] = (uint16_t)((z >> 20) & 0x807F);
            if ((z >> 48) % 64 == 2) m[i] = 0x7FC1;
        }
        float p = wid((uint16_t)xr()), a, b, c;
        a = ldexpf(1.0f + (float)(xr() % 1000) / 1000.0f, (int)(xr() % 60) - 30);
        b = ldexpf(1.0f + (float)(xr() % 1000) / 1000.0f, (int)(xr() % 60) - 30);
        c = ldexpf(1.0f + (float)(xr() % 1000) / 1000.0f, (int)(xr() % 60) - 30) * ((it & 4) ? -1 : 1);
        int usem = it & 1, stream = (it >> 1) & 1;
        nk_bf16_hw_gradient(x, r, usem ? m : NULL, y, N, p, a, b, c, stream);
        for (int i = 0; i < N; i++) {
            float g = wid(r[i]);
            if (usem && wid(m[i]) <= 0) g = 0;
            float v = fmaf(a, g, fmaf(b, wid(x[i]) - p, c));
            uint16_t want = rnd16(bits(v));
            if ((bits(v) & 0x7F800000) == 0 && (bits(v) & 0x7FFFFF)) subs++;
            if (v != v) nans++;
            if (want != y[i]) { if (bad < 20) printf("gbad %d: v %08x want %04x got %04x\n", i, bits(v), want, y[i]); bad++; }
        }
    }
    {
        enum { R = 64, C = 64, S = 80 };
        static uint16_t cx[R*S], cr[R*S], cm[R*S], cy[R*S] __attribute__((aligned(32)));
        static float pv[C], sc[C], sh[C], aa[C], bb[C], cc[C];
        for (int it = 0; it < 3000; it++) {
            for (int i = 0; i < R*S; i++) { uint64_t z = xr(); cx[i] = (uint16_t)z; cr[i] = (uint16_t)(z>>16); cm[i] = (uint16_t)(z>>32); cy[i] = 0xABCD; }
            for (int j = 0; j < C; j++) {
                pv[j] = wid((uint16_t)xr()); sc[j] = ldexpf(1.0f + (float)(xr()%1000)/1000.0f, (int)(xr()%60)-30);
                sh[j] = ldexpf(1.0f + (float)(xr()%1000)/1000.0f, (int)(xr()%60)-30) * ((xr()&1) ? -1 : 1);
                aa[j] = ldexpf(1.0f, (int)(xr()%40)-20); bb[j] = sc[j]; cc[j] = sh[j];
            }
            int act = it & 1, useres = (it >> 1) & 1, stream = (it >> 2) & 1, grad = (it >> 3) & 1, usem = (it >> 4) & 1;
            if (grad) nk_bf16_hw_gradient_columns(cx, cr, usem ? cm : NULL, cy, R, C, S, pv, aa, bb, cc, stream);
            else nk_bf16_hw_columns(cx, cy, R, C, S, pv, sc, sh, useres ? cr : NULL, act, stream);
            for (int r0 = 0; r0 < R; r0++) for (int j = 0; j < S; j++) {
                int i = r0 * S + j; uint16_t want;
                if (j >= C) want = 0xABCD;
                else if (grad) {
                    float g = wid(cr[i]); if (usem && wid(cm[i]) <= 0) g = 0;
                    want = rnd16(bits(fmaf(aa[j], g, fmaf(bb[j], wid(cx[i]) - pv[j], cc[j]))));
                } else {
                    float v = fmaf(wid(cx[i]) - pv[j], sc[j], sh[j]);
                    if (useres) v = v + wid(cr[i]);
                    if (act && v < 0) v = 0;
                    want = rnd16(bits(v));
                }
                if (want != cy[i]) { if (bad < 30) printf("cbad %d %d g%d: want %04x got %04x\n", r0, j, grad, want, cy[i]); bad++; }
            }
        }
    }
    printf("bad %ld subnormal outputs %ld nans %ld\n", bad, subs, nans);
    return bad != 0;
}
