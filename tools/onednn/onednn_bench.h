// Shared declarations of onednn_bench (see onednn_bench.c for what it measures).
#ifndef ONEDNN_BENCH_H
#define ONEDNN_BENCH_H

enum { OP_BATCHNORM, OP_LAYERNORM, OP_INSTANCENORM };
enum { DIR_TRAIN, DIR_INFER, DIR_BACKWARD };
// Element type of x, dy, y, dx (normbench's --dtype); scale, shift and the
// statistics stay Float32, as in the library's kernels.
enum { DT_F32, DT_BF16, DT_F16 };

// One case of normbench's grid: logical shape [N, C, H, W]; layernorm rows
// are N of C·H·W values.
struct nb_case {
    int op, direction, nhwc;
    long n, c, h, w;
    int threads;
    int dtype;
};

struct nb_run;   // buffers and primitives of one case (onednn_ops.c)

struct nb_run *nb_setup(const struct nb_case *c);   // NULL when oneDNN rejects it
int nb_last_unimplemented(void);                     // the last NULL was dnnl_unimplemented (unsupported case)
double nb_tolerance(const struct nb_case *c);        // largest error nb_check accepts
void nb_execute(struct nb_run *run);                 // one repetition
double nb_check(const struct nb_run *run);           // max error of the last output (reference.c)
const char *nb_impl(const struct nb_run *run);       // oneDNN's implementation name
void nb_free(struct nb_run *run);
const char *nb_version(void);
int nb_selftest(void);                               // small cases of every op, direction, layout

// Float64 reference (reference.c). 16-bit x, dy, out are passed widened to
// Float32 (exactly), so the reference sees the very inputs oneDNN read. Logical tensors: gamma, beta per channel
// (layernorm: per C·H·W feature), running mean/var per channel; x, dy, out in
// the case's memory order. dgamma/dbeta: NULL to skip, else as gamma.
double nb_reference_error(const struct nb_case *c, const float *x, const float *dy, const float *gamma,
                          const float *beta, const float *running_mean, const float *running_var,
                          const float *out, const float *dgamma, const float *dbeta);
#endif
