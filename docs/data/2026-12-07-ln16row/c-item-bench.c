#include "BFloat16Hardware.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static int slow_calls = 0;
static void moments(const void *c, size_t row, float k, double s, double q, double *out) { (void)c; (void)row; (void)k; (void)s; (void)q; slow_calls++; out[0] = 0; out[1] = 1; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static uint16_t bf(float f) { uint32_t u; memcpy(&u, &f, 4); return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16); }
int main(int argc, char **argv) {
    size_t rows = atol(argv[1]), n = atol(argv[2]), chunk = atol(argv[3]); int reps = atoi(argv[4]);
    uint16_t *x = aligned_alloc(64, rows * n * 2), *y = aligned_alloc(64, rows * n * 2);
    float *g = malloc(n * 4), *b = malloc(n * 4);
    double *mean = malloc(rows * 8), *inv = malloc(rows * 8);
    unsigned long long r = 12345;
    for (size_t i = 0; i < rows * n; i++) { r = r * 6364136223846793005ULL + 1442695040888963407ULL; float u = (float)((r >> 40) & 0xFFFFFF) / 16777216.0f; x[i] = bf(((i / n) % 3 == 2 ? 1e4f : 3.0f) + 8 * u - 4); }
    for (size_t i = 0; i < n; i++) { g[i] = 0.5f + (float)i / n; b[i] = -1 + 2.0f * i / n; }
    double best = 1e9, times[64];
    for (int k = 0; k < reps; k++) {
        double t0 = now();
        for (size_t f = 0; f < rows; f += chunk) nk_bf16_hw_layernorm_rows(x, y, n, f, f + chunk < rows ? f + chunk : rows, 1e-5f, g, b, mean, inv, rows * n * 2 > (32u << 20), moments, NULL);
        times[k] = now() - t0; if (times[k] < best) best = times[k];
    }
    // median
    for (int i = 0; i < reps; i++) for (int j = i + 1; j < reps; j++) if (times[j] < times[i]) { double t = times[i]; times[i] = times[j]; times[j] = t; }
    printf("%s rows %zu n %zu: median %.3f ms min %.3f ms slow %d\n", argv[5], rows, n, times[reps / 2] * 1e3, best * 1e3, slow_calls);
    FILE *o = fopen(argv[6], "wb"); fwrite(y, 2, rows * n, o); fwrite(mean, 8, rows, o); fwrite(inv, 8, rows, o); fclose(o);
    return 0;
}
