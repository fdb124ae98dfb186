// Microbenchmark of InstanceNorm NHWC backward [32,64,56,56] structure (Float32, 64 columns).
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <omp.h>

#define N 32
#define HW 3136
#define C 64
#define K 4
static size_t IMG = (size_t)HW * C;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

typedef struct { float p[C], s[C], t[C], a[C], b[C], c[C]; } Coef;

__attribute__((noinline)) static void sums(const float *x, const float *dy, size_t rows, const float *p, const float *s,
                                           const float *t, float *accG, float *accH, const float *pf, size_t pfLines) {
    __m512 P[K], S[K], T[K], G[K], H[K];
    for (int k = 0; k < K; k++) { P[k] = _mm512_loadu_ps(p + 16*k); S[k] = _mm512_loadu_ps(s+16*k); T[k] = _mm512_loadu_ps(t+16*k);
        G[k] = _mm512_loadu_ps(accG+16*k); H[k] = _mm512_loadu_ps(accH+16*k); }
    for (size_t r = 0; r < rows; r++) {
        for (int k = 0; k < K; k++) {
            __m512 d = _mm512_loadu_ps(dy + r*C + 16*k);
            __m512 xh = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_loadu_ps(x + r*C + 16*k), P[k]), S[k], T[k]);
            G[k] = _mm512_add_ps(G[k], d); H[k] = _mm512_fmadd_ps(d, xh, H[k]);
        }
    }
    for (int k = 0; k < K; k++) { _mm512_storeu_ps(accG+16*k, G[k]); _mm512_storeu_ps(accH+16*k, H[k]); }
}

// dx rows; pfx/pfd: lines to prefetch (next image) spread over the rows: `per` lines per row of each
__attribute__((noinline)) static void apply(const float *x, const float *dy, float *dx, size_t rows, const Coef *cf, int nt,
                                            const char *pfx, const char *pfd, int per, int hint) {
    __m512 P[K], A[K], B[K], Cc[K];
    for (int k = 0; k < K; k++) { P[k] = _mm512_loadu_ps(cf->p+16*k); A[k] = _mm512_loadu_ps(cf->a+16*k);
        B[k] = _mm512_loadu_ps(cf->b+16*k); Cc[k] = _mm512_loadu_ps(cf->c+16*k); }
    for (size_t r = 0; r < rows; r++) {
        if (pfx) {
            for (int i = 0; i < per; i++) {
                if (hint == 1) { _mm_prefetch(pfx + 64*i, _MM_HINT_T1); _mm_prefetch(pfd + 64*i, _MM_HINT_T1); }
                else if (hint == 2) { _mm_prefetch(pfx + 64*i, _MM_HINT_T2); _mm_prefetch(pfd + 64*i, _MM_HINT_T2); }
                else { _mm_prefetch(pfx + 64*i, _MM_HINT_T0); _mm_prefetch(pfd + 64*i, _MM_HINT_T0); }
            }
            pfx += 64*per; pfd += 64*per;
        }
        for (int k = 0; k < K; k++) {
            __m512 v = _mm512_fmadd_ps(B[k], _mm512_sub_ps(_mm512_loadu_ps(x + r*C + 16*k), P[k]), Cc[k]);
            v = _mm512_fmadd_ps(A[k], _mm512_loadu_ps(dy + r*C+16*k), v);
            if (nt) _mm512_stream_ps(dx + r*C + 16*k, v); else _mm512_storeu_ps(dx + r*C+16*k, v);
        }
    }
    if (nt) _mm_sfence();
}


#define SUMSK(KK) __attribute__((noinline)) static void sums##KK(const float *x, const float *dy, size_t rows, const float *p, const float *s, \
        const float *t, float *accG, float *accH) { \
    __m512 P[KK], S[KK], T[KK], G[KK], H[KK]; \
    for (int k = 0; k < KK; k++) { P[k] = _mm512_loadu_ps(p + 16*k); S[k] = _mm512_loadu_ps(s+16*k); T[k] = _mm512_loadu_ps(t+16*k); \
        G[k] = _mm512_loadu_ps(accG+16*k); H[k] = _mm512_loadu_ps(accH+16*k); } \
    for (size_t r = 0; r < rows; r++) { for (int k = 0; k < KK; k++) { \
            __m512 d = _mm512_loadu_ps(dy + r*C + 16*k); \
            __m512 xh = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_loadu_ps(x + r*C + 16*k), P[k]), S[k], T[k]); \
            G[k] = _mm512_add_ps(G[k], d); H[k] = _mm512_fmadd_ps(d, xh, H[k]); } } \
    for (int k = 0; k < KK; k++) { _mm512_storeu_ps(accG+16*k, G[k]); _mm512_storeu_ps(accH+16*k, H[k]); } }
#define APPLYK(KK) __attribute__((noinline)) static void apply##KK(const float *x, const float *dy, float *dx, size_t rows, const float *p, \
        const float *a, const float *b, const float *c) { \
    __m512 P[KK], A[KK], B[KK], Cc[KK]; \
    for (int k = 0; k < KK; k++) { P[k] = _mm512_loadu_ps(p+16*k); A[k] = _mm512_loadu_ps(a+16*k); \
        B[k] = _mm512_loadu_ps(b+16*k); Cc[k] = _mm512_loadu_ps(c+16*k); } \
    for (size_t r = 0; r < rows; r++) { for (int k = 0; k < KK; k++) { \
            __m512 v = _mm512_fmadd_ps(B[k], _mm512_sub_ps(_mm512_loadu_ps(x + r*C + 16*k), P[k]), Cc[k]); \
            v = _mm512_fmadd_ps(A[k], _mm512_loadu_ps(dy + r*C+16*k), v); \
            _mm512_stream_ps(dx + r*C + 16*k, v); } } \
    _mm_sfence(); }
SUMSK(1) SUMSK(2) APPLYK(1) APPLYK(2)
static int slab = 32; static double pass1, pass2;
static float *X, *DY, *DX; static Coef cf;
static float accG[N][C], accH[N][C];
// mode 0: current (sums block0, block1, apply block1, block0). 1: + prefetch next image during apply (hint)
// 2: one pass NT triad (lower bound)  3: sums only  4: apply only (data from DRAM)
static int block = 2048;
static void image(int m, int mode, int nt, int hint, int per) {
    const float *x = X + m*IMG, *dy = DY + m*IMG; float *dx = DX + m*IMG;
    if (mode == 6) { __m512 z = _mm512_set1_ps(1.0f); for (size_t i = 0; i < IMG; i += 16) _mm512_stream_ps(dx + i, z); _mm_sfence(); return; }
    if (mode == 7) { apply(X, DY, dx, HW, &cf, nt, 0, 0, 0, 0); return; }
    if (mode == 8) { apply(X, DY, DX, HW, &cf, 0, 0, 0, 0, 0); return; }
    if (mode == 9) { float g2[C], h2[C];
        memset(accG[m], 0, sizeof accG[m]); memset(accH[m], 0, sizeof accH[m]); memset(g2, 0, sizeof g2); memset(h2, 0, sizeof h2);
        double t0 = now();
        for (size_t r = 0; r < HW; r += 128) { size_t n = HW - r < 128 ? HW - r : 128; sums(x + r*C, dy + r*C, n, cf.p, cf.s, cf.t, accG[m], accH[m], 0, 0); }
        double t1 = now();
        for (size_t r = 0; r < HW; r += 128) { size_t n = HW - r < 128 ? HW - r : 128; sums(x + r*C, dy + r*C, n, cf.p, cf.s, cf.t, g2, h2, 0, 0); }
        double t2 = now(); pass1 += t1 - t0; pass2 += t2 - t1;
        accG[m][0] += g2[0]; return; }
    if (mode == 11 || mode == 12) { size_t rows = mode == 11 ? HW : HW / 2;
        memset(accG[m], 0, sizeof accG[m]); memset(accH[m], 0, sizeof accH[m]);
        for (int rep = 0; rep < 2; rep++)
        for (size_t r = 0; r < rows; r += 128) { size_t n = rows - r < 128 ? rows - r : 128; sums(X + r*C, DY + r*C, n, cf.p, cf.s, cf.t, accG[m], accH[m], 0, 0); }
        return; }
    if (mode == 13) {
        memset(accG[m], 0, sizeof accG[m]); memset(accH[m], 0, sizeof accH[m]);
        for (size_t r = 0; r < HW; r += 128) { size_t n = HW - r < 128 ? HW - r : 128; sums(x + r*C, dy + r*C, n, cf.p, cf.s, cf.t, accG[m], accH[m], 0, 0); }
        for (long r0 = HW; r0 > 0; r0 -= block) { long first = r0 - block < 0 ? 0 : r0 - block; size_t n = r0 - first;
            apply(x + first*C, dy + first*C, dx + first*C, n, &cf, nt, 0, 0, 0, 0); }
        return; }
    if (mode == 10) {
        memset(accG[m], 0, sizeof accG[m]); memset(accH[m], 0, sizeof accH[m]);
        for (int j = 0; j < C; j += slab) {
            for (size_t r = 0; r < HW; r += 128) { size_t n = HW - r < 128 ? HW - r : 128;
                if (slab == 32) sums2(x + r*C + j, dy + r*C + j, n, cf.p + j, cf.s + j, cf.t + j, accG[m] + j, accH[m] + j);
                else sums1(x + r*C + j, dy + r*C + j, n, cf.p + j, cf.s + j, cf.t + j, accG[m] + j, accH[m] + j); }
            // apply last rows first
            for (long r0 = HW; r0 > 0; r0 -= block) { long first = r0 - block < 0 ? 0 : r0 - block; size_t n = r0 - first;
                if (slab == 32) apply2(x + first*C + j, dy + first*C + j, dx + first*C + j, n, cf.p + j, cf.a + j, cf.b + j, cf.c + j);
                else apply1(x + first*C + j, dy + first*C + j, dx + first*C + j, n, cf.p + j, cf.a + j, cf.b + j, cf.c + j); }
        }
        return; }
    if (mode == 2) { apply(x, dy, dx, HW, &cf, 1, 0, 0, 0, 0); return; }
    double t0 = now();
    if (mode != 4) {
        memset(accG[m], 0, sizeof accG[m]); memset(accH[m], 0, sizeof accH[m]);
        for (size_t r = 0; r < HW; r += 128) {
            size_t n = HW - r < 128 ? HW - r : 128;
            sums(x + r*C, dy + r*C, n, cf.p, cf.s, cf.t, accG[m], accH[m], 0, 0);
        }
    }
    double t1 = now(); pass1 += t1 - t0;
    if (mode == 3) return;
    const char *pfx = 0, *pfd = 0;
    if (mode == 1 && m + 1 < N) { pfx = (const char *)(X + (m+1)*IMG); pfd = (const char *)(DY + (m+1)*IMG); }
    // blocks in reverse
    size_t nb = (HW + block - 1) / block;
    // prefetch in address order of next image: rows in apply order are reversed blocks; just walk forward
    for (long b = nb - 1; b >= 0; b--) {
        size_t first = b * block, rows = HW - first < (size_t)block ? HW - first : block;
        apply(x + first*C, dy + first*C, dx + first*C, rows, &cf, nt, pfx, pfd, per, hint);
        if (pfx) { pfx += 64*per*rows; pfd += 64*per*rows; }
    }
    pass2 += now() - t1;
}

static int gran = 32;
// mode 5: each thread runs its images m0..m1 pipelined: sums(m0); for m: {apply m rows, sums m+1 rows} interleaved by `gran` rows
static void pipelined(int m0, int m1) {
    memset(accG[m0], 0, sizeof accG[m0]); memset(accH[m0], 0, sizeof accH[m0]);
    for (size_t r = 0; r < HW; r += 128) { size_t n = HW - r < 128 ? HW - r : 128;
        sums(X + m0*IMG + r*C, DY + m0*IMG + r*C, n, cf.p, cf.s, cf.t, accG[m0], accH[m0], 0, 0); }
    for (int m = m0; m < m1; m++) {
        const float *x = X + m*IMG, *dy = DY + m*IMG; float *dx = DX + m*IMG;
        int next = m + 1 < m1;
        const float *x1 = X + (m+1)*IMG, *dy1 = DY + (m+1)*IMG;
        if (next) { memset(accG[m+1], 0, sizeof accG[m+1]); memset(accH[m+1], 0, sizeof accH[m+1]); }
        for (size_t r = 0; r < HW; r += gran) {
            size_t n = HW - r < (size_t)gran ? HW - r : gran;
            apply(x + r*C, dy + r*C, dx + r*C, n, &cf, 1, 0, 0, 0, 0);
            if (next) sums(x1 + r*C, dy1 + r*C, n, cf.p, cf.s, cf.t, accG[m+1], accH[m+1], 0, 0);
        }
    }
}

int main(int argc, char **argv) {
    int mode = atoi(argv[1]), nt = atoi(argv[2]), hint = argc > 3 ? atoi(argv[3]) : 0, per = argc > 4 ? atoi(argv[4]) : 4;
    int reps = argc > 5 ? atoi(argv[5]) : 60;
    if (argc > 6) block = atoi(argv[6]);
    if (mode == 5) gran = per;
    if (mode == 10) slab = per;
    size_t total = N * IMG;
    X = aligned_alloc(64, total*4); DY = aligned_alloc(64, total*4); DX = aligned_alloc(64, total*4);
    for (size_t i = 0; i < total; i++) { X[i] = (i % 97) * 0.01f; DY[i] = (i % 89) * 0.01f; DX[i] = 0; }
    for (int j = 0; j < C; j++) { cf.p[j] = 0.5f; cf.s[j] = 1.1f; cf.t[j] = 0; cf.a[j] = 1; cf.b[j] = 0.1f; cf.c[j] = 0.01f; }
    double *ts = malloc(sizeof(double) * reps);
    for (int rep = -3; rep < reps; rep++) {
        double t0 = now();
        if (mode == 5) {
            #pragma omp parallel
            { int t = omp_get_thread_num(), T = omp_get_num_threads(); pipelined(t * N / T, (t + 1) * N / T); }
        } else {
        #pragma omp parallel for schedule(static)
        for (int m = 0; m < N; m++) image(m, mode, nt, hint, per);
        }
        double t = now() - t0;
        if (rep >= 0) ts[rep] = t;
    }
    // median
    for (int i = 0; i < reps; i++) for (int j = i+1; j < reps; j++) if (ts[j] < ts[i]) { double q = ts[i]; ts[i] = ts[j]; ts[j] = q; }
    printf("mode %d nt %d hint %d per %d threads %d: median %.3f ms min %.3f ms (%.1f GB/s on 77 MB)\n", mode, nt, hint, per,
           omp_get_max_threads(), ts[reps/2]*1e3, ts[0]*1e3, 3.0*total*4/ts[reps/2]/1e9);
    if (mode == 9 || mode <= 4) printf("pass1 %.3f ms pass2 %.3f ms per rep\n", pass1 * 1e3 / (reps + 3), pass2 * 1e3 / (reps + 3));
    return 0;
}
