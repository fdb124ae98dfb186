// Shared declarations of onednn_bench (see onednn_bench.c for what it measures).
#ifndef ONEDNN_BENCH_H
#define ONEDNN_BENCH_H

enum { OP_BATCHNORM, OP_LAYERNORM, OP_INSTANCENORM };
enum { DIR_TRAIN, DIR_INFER, DIR_BACKWARD };

// One case of normbench's grid: logical shape [N, C, H, W]; layernorm rows
// are N of C·H·W values.
struct nb_case {
    int op, direction, nhwc;
    long n, c, h, w;
    int threads;
};

struct nb_run;   // buffers and primitives of one case (onednn_ops.c)

struct nb_run *nb_setup(const struct nb_case *c);   // NULL when oneDNN rejects it
void nb_execute(struct nb_run *run);                 // one repetition
double nb_check(const struct nb_run *run);           // max error of the last output (reference.c)
const char *nb_impl(const struct nb_run *run);       // oneDNN's implementation name
void nb_free(struct nb_run *run);
const char *nb_version(void);
int nb_selftest(void);                               // small cases of every op, direction, layout

// Float64 reference (reference.c). Logical tensors: gamma, beta per channel
// (layernorm: per C·H·W feature), running mean/var per channel; x, dy, out in
// the case's memory order. dgamma/dbeta: NULL to skip, else as gamma.
double nb_reference_error(const struct nb_case *c, const float *x, const float *dy, const float *gamma,
                          const float *beta, const float *running_mean, const float *running_var,
                          const float *out, const float *dgamma, const float *dbeta);
#endif
