// Float64 reference for onednn_bench, so we know oneDNN computes the op we
// time: LayerNorm with scale and shift, BatchNorm and InstanceNorm with ε = 1e-5,
// training = batch statistics (biased variance), inference = running statistics.
// Error measure as normbench (docs/HARNESS.md, "Checking"):
//   e = |got − expected| / (|expected| + rms of the unit's expected values),
// with dx's scale max(rms(dx), rms(r·g)); dγ, dβ count e / 10 (sums over a whole
// batch in Float32 carry more rounding than one element).
// Backward: dx = r·(g − mean(g) − x̂·mean(g·x̂)), g = dy·γ, x̂ = (x − μ)·r, r = 1/√(σ² + ε).
#include "onednn_bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define EPS 1e-5

// A unit is the set of values sharing one statistic: a channel (batchnorm),
// a row (layernorm), an (n, c) pair (instancenorm).
struct units {
    long count, size, hw, c;
    const struct nb_case *k;
};

static long offset(const struct units *u, long unit, long i, long *param) {
    const struct nb_case *k = u->k;
    long n, ch, s;
    if (k->op == OP_LAYERNORM) { *param = i; return unit * u->size + i; }
    if (k->op == OP_BATCHNORM) { n = i / u->hw; s = i % u->hw; ch = unit; }
    else { n = unit / u->c; ch = unit % u->c; s = i; }
    *param = ch;
    return k->nhwc ? (n * u->hw + s) * u->c + ch : (n * u->c + ch) * u->hw + s;
}

double nb_reference_error(const struct nb_case *k, const float *x, const float *dy, const float *gamma,
                          const float *beta, const float *running_mean, const float *running_var,
                          const float *out, const float *dgamma, const float *dbeta) {
    struct units u = {0, 0, k->h * k->w, k->c, k};
    if (k->op == OP_LAYERNORM) { u.count = k->n; u.size = k->c * u.hw; }
    else if (k->op == OP_BATCHNORM) { u.count = k->c; u.size = k->n * u.hw; }
    else { u.count = k->n * k->c; u.size = u.hw; }
    long params = k->op == OP_LAYERNORM ? k->c * u.hw : k->c;
    double *dg = calloc(params, sizeof(double)), *db = calloc(params, sizeof(double));
    double *expected = malloc(sizeof(double) * u.size), worst = 0;
    for (long unit = 0; unit < u.count; unit++) {
        double mean = 0, var = 0, p0;
        long p;
        if (k->direction == DIR_INFER) {
            offset(&u, unit, 0, &p);
            mean = running_mean[p];
            var = running_var[p];
        } else {
            for (long i = 0; i < u.size; i++) mean += x[offset(&u, unit, i, &p)];
            mean /= u.size;
            for (long i = 0; i < u.size; i++) { p0 = x[offset(&u, unit, i, &p)] - mean; var += p0 * p0; }
            var /= u.size;
        }
        double r = 1 / sqrt(var + EPS), scale = 0;
        if (k->direction != DIR_BACKWARD) {
            for (long i = 0; i < u.size; i++) {
                long at = offset(&u, unit, i, &p);
                expected[i] = (x[at] - mean) * r * gamma[p] + beta[p];
                scale += expected[i] * expected[i];
            }
            scale = sqrt(scale / u.size);
        } else {
            double mg = 0, mgx = 0, rg2 = 0, dx2 = 0;
            for (long i = 0; i < u.size; i++) {
                long at = offset(&u, unit, i, &p);
                double g = (double)dy[at] * gamma[p], xh = (x[at] - mean) * r;
                mg += g; mgx += g * xh; rg2 += r * g * r * g;
                dg[p] += dy[at] * xh; db[p] += dy[at];
            }
            mg /= u.size; mgx /= u.size;
            for (long i = 0; i < u.size; i++) {
                long at = offset(&u, unit, i, &p);
                double g = (double)dy[at] * gamma[p], xh = (x[at] - mean) * r;
                expected[i] = r * (g - mg - xh * mgx);
                dx2 += expected[i] * expected[i];
            }
            scale = fmax(sqrt(dx2 / u.size), sqrt(rg2 / u.size));
        }
        for (long i = 0; i < u.size; i++) {
            long at = offset(&u, unit, i, &p);
            double e = fabs(out[at] - expected[i]) / (fabs(expected[i]) + scale);
            if (!(e <= worst)) worst = e;   // NaN counts as the worst
        }
    }
    if (dgamma && dbeta) {
        double sg = 0, sb = 0;
        for (long p = 0; p < params; p++) { sg += dg[p] * dg[p]; sb += db[p] * db[p]; }
        sg = sqrt(sg / params); sb = sqrt(sb / params);
        for (long p = 0; p < params; p++) {
            double eg = fabs(dgamma[p] - dg[p]) / (fabs(dg[p]) + sg) / 10;
            double eb = fabs(dbeta[p] - db[p]) / (fabs(db[p]) + sb) / 10;
            if (!(eg <= worst)) worst = eg;
            if (!(eb <= worst)) worst = eb;
        }
    }
    free(dg); free(db); free(expected);
    return worst;
}

// Small cases of every op, direction, layout and element type at 1 and 2
// threads, including sizes that are not multiples of a vector (37 features, 5
// channels). A case oneDNN has no implementation for prints "unsupported" and
// does not fail the test: the list shows what this CPU and oneDNN accept.
int nb_selftest(void) {
    static const long shapes[][4] = {{3, 5, 4, 3}, {2, 64, 7, 7}, {6, 37, 1, 1}, {4, 1024, 1, 1}, {8, 16, 1, 1}};
    static const char *ops[] = {"batchnorm", "layernorm", "instancenorm"};
    static const char *dirs[] = {"forward-training", "forward-inference", "backward"};
    static const char *dtypes[] = {"f32", "bf16", "f16"};
    int failures = 0, cases = 0, unsupported = 0;
    for (int dt = 0; dt < 3; dt++)
    for (int op = 0; op < 3; op++)
        for (int dir = 0; dir < 3; dir++)
            for (int nhwc = 0; nhwc < 2; nhwc++)
                for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
                    for (int t = 1; t <= 2; t++) {
                        if (op == OP_LAYERNORM && (dir == DIR_INFER || nhwc)) continue;
                        if (op == OP_INSTANCENORM && shapes[s][2] * shapes[s][3] < 2) continue;
                        struct nb_case c = {op, dir, nhwc, shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], t, dt};
                        struct nb_run *run = nb_setup(&c);
                        double e = 1;
                        if (run) { nb_execute(run); nb_execute(run); e = nb_check(run); }
                        int ok = e <= nb_tolerance(&c), skip = !run && nb_last_unimplemented();
                        failures += !ok && !skip;
                        unsupported += skip;
                        cases++;
                        printf("%-4s %-4s %-12s %-17s %-4s %ldx%ldx%ldx%ld t%d  max error %.2e  %s\n",
                               skip ? "--" : ok ? "ok" : "FAIL", dtypes[dt], ops[op], dirs[dir],
                               op == OP_LAYERNORM ? "-" : nhwc ? "nhwc" : "nchw", c.n, c.c, c.h, c.w, t, e,
                               run ? nb_impl(run) : skip ? "unsupported" : "(setup failed)");
                        if (run) nb_free(run);
                    }
    printf("selftest: %d of %d cases agree with the Float64 reference, %d unsupported (oneDNN %s)\n",
           cases - failures - unsupported, cases - unsupported, unsupported, nb_version());
    return failures ? 1 : 0;
}
