// Standalone check of nk_f16_hw_layernorm_rows: outputs against a Float64 LayerNorm within
// Float16 rounding (the bit-for-bit check against the Swift loop is the Swift test), and
// in-cache timing of f16 vs bf16 item loops.
#include "BFloat16Hardware.h"
#include "Float16LayerNormRows.h"
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static int slow_calls = 0;
static void moments(const void *c, size_t row, float k, double s, double q, double *out) { (void)c; (void)row; (void)k; (void)s; (void)q; slow_calls++; out[0] = 0; out[1] = 1; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
int main(int argc, char **argv) {
    size_t rows = atol(argv[1]), n = atol(argv[2]), chunk = atol(argv[3]); int reps = atoi(argv[4]);
    uint16_t *x = aligned_alloc(64, rows * n * 2), *y = aligned_alloc(64, rows * n * 2);
    float *g = malloc(n * 4), *b = malloc(n * 4);
    double *mean = malloc(rows * 8), *inv = malloc(rows * 8);
    unsigned long long r = 12345;
    for (size_t i = 0; i < rows * n; i++) { r = r * 6364136223846793005ULL + 1442695040888963407ULL; float u = (float)((r >> 40) & 0xFFFFFF) / 16777216.0f; x[i] = _cvtss_sh(((i / n) % 3 == 2 ? 1e3f : 3.0f) + 8 * u - 4, 0); }
    for (size_t i = 0; i < n; i++) { g[i] = 0.5f + (float)i / n; b[i] = -1 + 2.0f * i / n; }
    int kind = argv[5][0] == 'f';
    double best = 1e9, times[64];
    for (int k = 0; k < reps; k++) {
        double t0 = now();
        for (size_t f = 0; f < rows; f += chunk) {
            size_t e = f + chunk < rows ? f + chunk : rows;
            if (kind) nk_f16_hw_layernorm_rows(x, y, n, f, e, 1e-5f, g, b, mean, inv, 0, moments, NULL);
            else nk_bf16_hw_layernorm_rows(x, y, n, f, e, 1e-5f, g, b, mean, inv, 0, moments, NULL);
        }
        times[k] = now() - t0; if (times[k] < best) best = times[k];
    }
    for (int i = 0; i < reps; i++) for (int j = i + 1; j < reps; j++) if (times[j] < times[i]) { double t = times[i]; times[i] = times[j]; times[j] = t; }
    printf("%s rows %zu n %zu: median %.4f ms min %.4f ms slow %d flag %d\n", argv[5], rows, n, times[reps / 2] * 1e3, best * 1e3, slow_calls, nk_cpu_f16_rows());
    if (kind) {
        double worst = 0, worstMean = 0;
        for (size_t row = 0; row < rows; row++) {
            double s = 0, q = 0;
            for (size_t i = 0; i < n; i++) s += _cvtsh_ss(x[row * n + i]);
            double mu = s / n;
            for (size_t i = 0; i < n; i++) { double d = _cvtsh_ss(x[row * n + i]) - mu; q += d * d; }
            double rs = 1 / sqrt(q / n + 1e-5);
            if (fabs(mean[row] - mu) / (1 + fabs(mu)) > worstMean) worstMean = fabs(mean[row] - mu) / (1 + fabs(mu));
            for (size_t i = 0; i < n; i++) {
                double ref = (_cvtsh_ss(x[row * n + i]) - mu) * rs * g[i] + b[i];
                double got = _cvtsh_ss(y[row * n + i]);
                double err = fabs(got - ref) / (fabs(ref) > 6e-5 ? fabs(ref) : 6e-5);
                if (err > worst) worst = err;
            }
        }
        printf("worst relative error %.3g (Float16 half ulp %.3g), mean rel err %.3g\n", worst, 1.0 / 2048, worstMean);
    }
    return 0;
}
