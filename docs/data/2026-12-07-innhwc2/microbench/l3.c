// Re-read test: read S bytes (sum), then read them again; time each pass; walk across a 512 MB buffer so first reads come from DRAM.
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
__attribute__((noinline)) static float rd(const float *p, size_t n) {
    __m512 a = _mm512_setzero_ps(), b = a, c = a, d = a;
    for (size_t i = 0; i < n; i += 64) { a = _mm512_add_ps(a, _mm512_load_ps(p+i)); b = _mm512_add_ps(b, _mm512_load_ps(p+i+16));
        c = _mm512_add_ps(c, _mm512_load_ps(p+i+32)); d = _mm512_add_ps(d, _mm512_load_ps(p+i+48)); }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d)));
}
int main(void) {
    size_t total = 512ull << 20; float *buf = aligned_alloc(64, total);
    for (size_t i = 0; i < total / 4; i++) buf[i] = 1;
    size_t sizes[] = {256<<10, 512<<10, 768<<10, 1<<20, 1536<<10, 2<<20, 4<<20, 8<<20, 16<<20};
    volatile float sink = 0;
    for (int si = 0; si < 9; si++) {
        size_t S = sizes[si], n = S / 4; double t1 = 0, t2 = 0; size_t off = 0; int reps = 0;
        for (int r = 0; r < 200 && reps < 100; r++) {
            if ((off + S) > total) off = 0;
            const float *p = buf + off / 4;
            double a = now(); sink += rd(p, n); double b = now(); sink += rd(p, n); double c = now();
            t1 += b - a; t2 += c - b; off += S; reps++;
        }
        printf("S %6zu KiB: first %.1f GB/s, second %.1f GB/s\n", S >> 10, reps * S / t1 / 1e9, reps * S / t2 / 1e9);
    }
    return 0;
}
