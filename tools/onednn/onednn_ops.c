// Buffers and oneDNN primitives of one case (mapping: onednn_bench.c header).
// 16-bit cases (bf16, f16) keep x, dy, y, dx in that type and scale, shift,
// mean and variance in Float32 (oneDNN 2.6's normalization primitives take
// Float32 parameters and statistics for every data type); the Float32 copies
// of x and dy hold the rounded values, so the reference reads what oneDNN read.
#include "onednn_bench.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPS 1e-5f
#define MAX_ARGS 10

struct nb_run {
    struct nb_case c;
    float *x, *dy, *out, *y_fwd;              // memory order of the case
    float *gamma, *beta, *rmean, *rvar;       // logical (per channel / feature)
    float *scale, *shift;                     // as oneDNN reads them (instancenorm nchw: repeated N times)
    float *mean, *var, *dscale, *dshift;      // as oneDNN writes them
    uint16_t *x16, *dy16, *out16, *y16;       // 16-bit cases: what oneDNN reads and writes (else NULL)
    dnnl_primitive_t prim;
    dnnl_primitive_desc_t pd;
    int execs, nargs;                         // instancenorm nhwc: one execution per sample
    dnnl_exec_arg_t *args;                    // execs × MAX_ARGS
    dnnl_memory_t *mems;
    int n_mems;
};

static dnnl_engine_t engine;
static dnnl_stream_t stream;
static dnnl_status_t last_status;   // of the last failed CHECK

// dnnl_unimplemented: oneDNN has no implementation of this case on this CPU
// (quietly: the caller prints "unsupported"); any other status is an error.
#define CHECK(call)                                                                        \
    do {                                                                                   \
        dnnl_status_t s_ = (call);                                                         \
        if (s_ != dnnl_success) {                                                          \
            last_status = s_;                                                              \
            if (s_ != dnnl_unimplemented)                                                  \
                fprintf(stderr, "onednn_bench: %s failed (status %d)\n", #call, (int)s_); \
            return NULL;                                                                   \
        }                                                                                  \
    } while (0)

int nb_last_unimplemented(void) { return last_status == dnnl_unimplemented; }

static const dnnl_data_type_t data_types[] = {dnnl_f32, dnnl_bf16, dnnl_f16};

// Round to nearest even; NaN stays a quiet NaN. Widening is exact.
static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}
static float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
// IEEE binary16 through GCC's _Float16 (round to nearest even; untimed setup).
static uint16_t to_f16(float f) {
    _Float16 h = (_Float16)f;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}
static float from_f16(uint16_t u) {
    _Float16 h;
    memcpy(&h, &u, 2);
    return (float)h;
}
static uint16_t narrow(int dtype, float f) { return dtype == DT_BF16 ? to_bf16(f) : to_f16(f); }
static float widen(int dtype, uint16_t h) { return dtype == DT_BF16 ? from_bf16(h) : from_f16(h); }

// Forward: the Float64 result rounded once to the type is within half an ulp,
// 2^-9 (bf16) or 2^-12 (f16) of its magnitude; allow 4 half-ulps of rounding in
// oneDNN's own arithmetic, 8 for backward (dx from 16-bit x and dy).
double nb_tolerance(const struct nb_case *c) {
    double unit = c->dtype == DT_BF16 ? 0x1p-9 : c->dtype == DT_F16 ? 0x1p-12 : 0;
    if (c->direction == DIR_BACKWARD) return unit ? 8 * unit : 5e-5;
    return unit ? 4 * unit : 2e-5;
}

const char *nb_version(void) {
    static char text[64];
    const dnnl_version_t *v = dnnl_version();
    snprintf(text, sizeof text, "%d.%d.%d", v->major, v->minor, v->patch);
    return text;
}

// SplitMix64 of (seed, index) to a uniform value in [-1, 1): each value depends
// only on its index, like normbench's generator (not the same values).
static float uniform(uint64_t seed, uint64_t i) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 0x632BE59BD9B4E019ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)((z >> 40) * (1.0 / (1 << 23)) - 1.0);
}

static float *buffer(long count) {
    float *p = aligned_alloc(64, ((count * sizeof(float) + 63) / 64) * 64);
    memset(p, 0, count * sizeof(float));
    return p;
}

static uint16_t *buffer16(long count) {
    uint16_t *p = aligned_alloc(64, ((count * sizeof(uint16_t) + 63) / 64) * 64);
    memset(p, 0, count * sizeof(uint16_t));
    return p;
}

static dnnl_memory_t memory(struct nb_run *r, int ndims, const dnnl_dim_t *dims, dnnl_format_tag_t tag,
                            dnnl_data_type_t dt, void *p) {
    dnnl_memory_desc_t md;
    dnnl_memory_t m;
    if (dnnl_memory_desc_init_by_tag(&md, ndims, dims, dt, tag) != dnnl_success) return NULL;
    if (dnnl_memory_create(&m, &md, engine, p) != dnnl_success) return NULL;
    r->mems[r->n_mems++] = m;
    return m;
}

struct nb_run *nb_setup(const struct nb_case *c) {
    if (!engine) {
        CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
        CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    }
    omp_set_num_threads(c->threads);
    struct nb_run *r = calloc(1, sizeof *r);
    r->c = *c;
    long total = c->n * c->c * c->h * c->w, hw = c->h * c->w, features = c->c * hw;
    int ln = c->op == OP_LAYERNORM, in = c->op == OP_INSTANCENORM;
    long params = ln ? features : c->c;                  // logical γ, β
    long onednn_params = in && !c->nhwc ? c->n * c->c : params;
    long stats = ln ? c->n : in ? c->n * c->c : c->c;
    r->execs = in && c->nhwc ? (int)c->n : 1;

    r->x = buffer(total); r->dy = buffer(total); r->out = buffer(total); r->y_fwd = buffer(total);
    r->gamma = buffer(params); r->beta = buffer(params); r->rmean = buffer(c->c); r->rvar = buffer(c->c);
    r->scale = buffer(onednn_params); r->shift = buffer(onednn_params);
    r->mean = buffer(stats); r->var = buffer(stats);
    r->dscale = buffer(in ? c->n * c->c : onednn_params); r->dshift = buffer(in ? c->n * c->c : onednn_params);
    // x = offset(c) + spread(c)·u, as normbench and tools/torch_compare.py.
    for (long n = 0; n < c->n; n++)
        for (long ch = 0; ch < c->c; ch++)
            for (long s = 0; s < hw; s++) {
                long logical = (n * c->c + ch) * hw + s;
                long at = c->nhwc ? (n * hw + s) * c->c + ch : logical;
                float u = uniform(1, logical);
                r->x[at] = (float)((ch % 7) - 3) * 0.5f + (1.0f + (ch % 3) * 0.25f) * u;
                r->dy[at] = uniform(2, logical);
            }
    for (long p = 0; p < params; p++) {
        r->gamma[p] = 1.0f + 0.25f * uniform(3, p);
        r->beta[p] = 0.25f * uniform(4, p);
    }
    for (long ch = 0; ch < c->c; ch++) {
        r->rmean[ch] = (float)((ch % 7) - 3) * 0.5f;
        r->rvar[ch] = 1.0f + 0.1f * (ch % 5);
    }
    for (long p = 0; p < onednn_params; p++) {
        r->scale[p] = r->gamma[p % params];
        r->shift[p] = r->beta[p % params];
    }
    if (c->direction == DIR_INFER)   // global statistics: running ones, per (n, c) for instancenorm
        for (long s = 0; s < stats; s++) {
            r->mean[s] = r->rmean[s % c->c];
            r->var[s] = r->rvar[s % c->c];
        }
    int wide = c->dtype == DT_F32;
    if (!wide) {   // round x, dy once; the Float32 copies keep the rounded values
        r->x16 = buffer16(total); r->dy16 = buffer16(total); r->out16 = buffer16(total); r->y16 = buffer16(total);
        for (long i = 0; i < total; i++) {
            r->x16[i] = narrow(c->dtype, r->x[i]);
            r->x[i] = widen(c->dtype, r->x16[i]);
            r->dy16[i] = narrow(c->dtype, r->dy[i]);
            r->dy[i] = widen(c->dtype, r->dy16[i]);
        }
    }
    dnnl_data_type_t dt = data_types[c->dtype];

    // Descriptors: data [N, C, H, W] (instancenorm [1, N·C, H, W] or [1, C, H, W]), or [N, D].
    dnnl_dims_t data_dims = {c->n, c->c, c->h, c->w}, stat_dims = {stats / r->execs};
    dnnl_dims_t param_dims = {onednn_params};
    int ndims = ln ? 2 : 4;
    if (ln) { data_dims[1] = features; }
    if (in) { data_dims[0] = 1; data_dims[1] = c->nhwc ? c->c : c->n * c->c; }
    dnnl_format_tag_t tag = ln ? dnnl_ab : c->nhwc ? dnnl_nhwc : dnnl_nchw;
    dnnl_memory_desc_t data_md, stat_md;
    CHECK(dnnl_memory_desc_init_by_tag(&data_md, ndims, data_dims, dt, tag));
    CHECK(dnnl_memory_desc_init_by_tag(&stat_md, 1, stat_dims, dnnl_f32, dnnl_a));
    unsigned flags = dnnl_use_scale | dnnl_use_shift | (c->direction == DIR_INFER ? dnnl_use_global_stats : 0);
    dnnl_prop_kind_t fwd_kind = c->direction == DIR_INFER ? dnnl_forward_inference : dnnl_forward_training;
    dnnl_primitive_desc_t fwd_pd;
    dnnl_primitive_t fwd = NULL;
    if (ln) {
        dnnl_layer_normalization_desc_t d;
        CHECK(dnnl_layer_normalization_forward_desc_init(&d, fwd_kind, &data_md, &stat_md, EPS, flags));
        CHECK(dnnl_primitive_desc_create(&fwd_pd, &d, NULL, engine, NULL));
    } else {
        dnnl_batch_normalization_desc_t d;
        CHECK(dnnl_batch_normalization_forward_desc_init(&d, fwd_kind, &data_md, EPS, flags));
        CHECK(dnnl_primitive_desc_create(&fwd_pd, &d, NULL, engine, NULL));
    }
    CHECK(dnnl_primitive_create(&fwd, fwd_pd));
    if (c->direction == DIR_BACKWARD) {
        if (ln) {
            dnnl_layer_normalization_desc_t d;
            CHECK(dnnl_layer_normalization_backward_desc_init(&d, dnnl_backward, &data_md, &data_md, &stat_md, EPS,
                                                              flags));
            CHECK(dnnl_primitive_desc_create(&r->pd, &d, NULL, engine, fwd_pd));
        } else {
            dnnl_batch_normalization_desc_t d;
            CHECK(dnnl_batch_normalization_backward_desc_init(&d, dnnl_backward, &data_md, &data_md, EPS, flags));
            CHECK(dnnl_primitive_desc_create(&r->pd, &d, NULL, engine, fwd_pd));
        }
        CHECK(dnnl_primitive_create(&r->prim, r->pd));
    } else {
        r->pd = fwd_pd;
        r->prim = fwd;
    }

    // Memory objects and arguments, one set per execution.
    r->args = calloc((size_t)r->execs * MAX_ARGS, sizeof(dnnl_exec_arg_t));
    r->mems = calloc((size_t)r->execs * MAX_ARGS + 8, sizeof(dnnl_memory_t));
    dnnl_exec_arg_t *fwd_args = calloc((size_t)r->execs * MAX_ARGS, sizeof(dnnl_exec_arg_t));
    long step = total / r->execs, stat_step = stats / r->execs, param_step = in && c->nhwc ? c->c : 0;
    for (int e = 0; e < r->execs; e++) {
        // Data tensors at the case's type (16-bit buffers when narrow), the rest Float32.
#define DATA(f32, b16) (wide ? (void *)((f32) + e * step) : (void *)((b16) + e * step))
        dnnl_memory_t x = memory(r, ndims, data_dims, tag, dt, DATA(r->x, r->x16));
        dnnl_memory_t out = memory(r, ndims, data_dims, tag, dt, DATA(r->out, r->out16));
        dnnl_memory_t mean = memory(r, 1, stat_dims, dnnl_a, dnnl_f32, r->mean + e * stat_step);
        dnnl_memory_t var = memory(r, 1, stat_dims, dnnl_a, dnnl_f32, r->var + e * stat_step);
        dnnl_dims_t pd1 = {param_dims[0]};
        dnnl_memory_t scale = memory(r, 1, pd1, dnnl_a, dnnl_f32, r->scale);
        dnnl_memory_t shift = memory(r, 1, pd1, dnnl_a, dnnl_f32, r->shift);
        dnnl_exec_arg_t *a = r->args + e * MAX_ARGS;
        if (c->direction != DIR_BACKWARD) {
            dnnl_exec_arg_t list[] = {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, out}, {DNNL_ARG_MEAN, mean},
                                      {DNNL_ARG_VARIANCE, var}, {DNNL_ARG_SCALE, scale}, {DNNL_ARG_SHIFT, shift}};
            memcpy(a, list, sizeof list);
            r->nargs = 6;
        } else {
            dnnl_memory_t dy = memory(r, ndims, data_dims, tag, dt, DATA(r->dy, r->dy16));
            dnnl_memory_t y = memory(r, ndims, data_dims, tag, dt, DATA(r->y_fwd, r->y16));
            dnnl_memory_t dscale = memory(r, 1, pd1, dnnl_a, dnnl_f32, r->dscale + e * param_step);
            dnnl_memory_t dshift = memory(r, 1, pd1, dnnl_a, dnnl_f32, r->dshift + e * param_step);
            dnnl_exec_arg_t list[] = {{DNNL_ARG_SRC, x},           {DNNL_ARG_DIFF_DST, dy},
                                      {DNNL_ARG_MEAN, mean},       {DNNL_ARG_VARIANCE, var},
                                      {DNNL_ARG_SCALE, scale},     {DNNL_ARG_DIFF_SRC, out},
                                      {DNNL_ARG_DIFF_SCALE, dscale}, {DNNL_ARG_DIFF_SHIFT, dshift},
                                      {DNNL_ARG_SHIFT, shift}};
            memcpy(a, list, sizeof list);
            r->nargs = 9;
            dnnl_exec_arg_t flist[] = {{DNNL_ARG_SRC, x},       {DNNL_ARG_DST, y},         {DNNL_ARG_MEAN, mean},
                                       {DNNL_ARG_VARIANCE, var}, {DNNL_ARG_SCALE, scale}, {DNNL_ARG_SHIFT, shift}};
            memcpy(fwd_args + e * MAX_ARGS, flist, sizeof flist);
        }
#undef DATA
    }
    if (c->direction == DIR_BACKWARD) {   // the saved statistics, untimed (as normbench)
        for (int e = 0; e < r->execs; e++)
            CHECK(dnnl_primitive_execute(fwd, stream, 6, fwd_args + e * MAX_ARGS));
        CHECK(dnnl_stream_wait(stream));
        dnnl_primitive_destroy(fwd);
        dnnl_primitive_desc_destroy(fwd_pd);
    }
    free(fwd_args);
    return r;
}

void nb_execute(struct nb_run *r) {
    for (int e = 0; e < r->execs; e++) {
        dnnl_status_t s = dnnl_primitive_execute(r->prim, stream, r->nargs, r->args + e * MAX_ARGS);
        if (s != dnnl_success) {
            fprintf(stderr, "onednn_bench: execute failed (status %d)\n", (int)s);
            exit(2);
        }
    }
    dnnl_stream_wait(stream);
}

const char *nb_impl(const struct nb_run *r) {
    const char *name = "?";
    dnnl_primitive_desc_query(r->pd, dnnl_query_impl_info_str, 0, &name);
    return name;
}

double nb_check(const struct nb_run *r) {
    const struct nb_case *c = &r->c;
    // Instancenorm's dγ, dβ are per (n, c) here: not compared (see the mapping).
    int grads = c->direction == DIR_BACKWARD && c->op != OP_INSTANCENORM;
    if (r->out16) {   // widen the 16-bit output (exactly) for the reference
        long total = c->n * c->c * c->h * c->w;
        for (long i = 0; i < total; i++) r->out[i] = widen(c->dtype, r->out16[i]);
    }
    return nb_reference_error(c, r->x, r->dy, r->gamma, r->beta, r->rmean, r->rvar, r->out,
                              grads ? r->dscale : NULL, grads ? r->dshift : NULL);
}

void nb_free(struct nb_run *r) {
    for (int i = 0; i < r->n_mems; i++) dnnl_memory_destroy(r->mems[i]);
    dnnl_primitive_destroy(r->prim);
    dnnl_primitive_desc_destroy(r->pd);
    float *bufs[] = {r->x, r->dy, r->out, r->y_fwd, r->gamma, r->beta, r->rmean, r->rvar,
                     r->scale, r->shift, r->mean, r->var, r->dscale, r->dshift};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(r->x16); free(r->dy16); free(r->out16); free(r->y16);
    free(r->args);
    free(r->mems);
    free(r);
}
