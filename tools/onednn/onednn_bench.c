// onednn_bench: times oneDNN's normalization primitives (C API, JIT kernels) on
// normbench's case grid and writes normbench's CSV columns (`checked` =
// "onednn"), so tools/peers.py can put oneDNN next to ours and PyTorch.
//
// A measurement tool only: the library never links oneDNN. Build and flags:
// tools/onednn/build.sh, tools/README.md ("Peers"). ε = 1e-5.
//
// Element types (--dtype f32,bf16,f16, normbench's flag): x, dy, y, dx in that
// type; scale, shift and the statistics in Float32 (as the library's kernels).
// A case oneDNN has no implementation for on this CPU (dnnl_unimplemented, e.g.
// f16 in 2.6's CPU engine) is written as `unsupported`, not as a failure.
//
// What each normbench case maps to (oneDNN 2.6, Debian's libdnnl-dev):
//   layernorm    [N, C·H·W] rows, dnnl_layer_normalization, scale + shift of
//                C·H·W values: forward training (batch statistics, mean and
//                variance written), backward (dnnl_backward: dx, dγ, dβ).
//   batchnorm    [N, C, H, W] nchw or nhwc, dnnl_batch_normalization, scale +
//                shift per channel: forward training (batch statistics written;
//                oneDNN keeps no running statistics), forward inference
//                (dnnl_use_global_stats), backward (dx, dγ, dβ).
//   instancenorm composed from batch normalization the way PyTorch does it:
//                nchw = one call on [1, N·C, H, W] with γ, β repeated N times;
//                nhwc = N calls on [1, C, H, W] (one per sample; nhwc (n, c)
//                pairs are not one strided dimension). Its backward's dγ, dβ
//                are per (n, c), not summed over n (the sum is not timed).
//   groupnorm, rmsnorm, adain, weightnorm: not in oneDNN 2.6 (group and RMS
//                normalization arrived in 3.x), so those cases are skipped.
//
// Timing follows normbench (docs/HARNESS.md, "Measurement"): one first
// repetition (checked against a Float64 reference, below), warm-up for 10 % of
// the budget and at least 2 runs, then samples until the budget is spent and at
// least --min-reps exist (at most 20 000); a repetition under 20 µs is timed k
// at a time. Median and minimum per repetition. Byte counts are normbench's
// Traffic (the same formula as tools/torch_compare.py).
//
// Threads: Debian's build uses OpenMP (libgomp): omp_set_num_threads(t) runs
// before a case's primitives are created, and cases run grouped by thread count.
#include "onednn_bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// normbench's Traffic.bytes: tensors read once plus tensors written once;
// activation tensors at the element size, parameters and statistics at 4 bytes.
static double traffic_bytes(const struct nb_case *c) {
    double t = (double)c->n * c->c * c->h * c->w, features = (double)c->c * c->h * c->w, tensors, params;
    if (c->direction == DIR_TRAIN) {
        tensors = 2 * t;
        params = c->op == OP_BATCHNORM ? 6.0 * c->c : c->op == OP_LAYERNORM ? 2 * features : 2.0 * c->c;
    } else if (c->direction == DIR_INFER) {
        tensors = 2 * t;
        params = 4.0 * c->c;
    } else {
        tensors = 3 * t;
        params = 3 * (c->op == OP_LAYERNORM ? features : (double)c->c);
    }
    return (c->dtype == DT_F32 ? 4 : 2) * tensors + 4 * params;
}

// Warm-up then samples (see the header comment); returns median and min in seconds.
static void measure(struct nb_run *run, double budget, int min_reps, double *median, double *minimum) {
    double start = now(), one = 0;
    int warmups = 0;
    while (warmups < 2 || now() - start < budget * 0.1) {
        double t0 = now();
        nb_execute(run);
        one = now() - t0;
        warmups++;
    }
    int k = one < 20e-6 ? (int)ceil(20e-6 / (one > 1e-9 ? one : 1e-9)) : 1;
    int capacity = 20000, count = 0;
    double *samples = malloc(sizeof(double) * capacity);
    start = now();
    while (count < min_reps || (now() - start < budget && count < capacity)) {
        double t0 = now();
        for (int i = 0; i < k; i++) nb_execute(run);
        samples[count++] = (now() - t0) / k;
    }
    qsort(samples, count, sizeof(double), compare_double);
    *median = count % 2 ? samples[count / 2] : 0.5 * (samples[count / 2 - 1] + samples[count / 2]);
    *minimum = samples[0];
    free(samples);
}

static const char *op_names[] = {"batchnorm", "layernorm", "instancenorm"};
static const char *dir_names[] = {"forward-training", "forward-inference", "backward"};
static const char *dtype_names[] = {"f32", "bf16", "f16"};

static int parse_list(const char *text, char items[][32], int max) {
    int count = 0;
    const char *p = text;
    while (*p && count < max) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0 && len < 32) { memcpy(items[count], p, len); items[count][len] = 0; count++; }
        if (!end) break;
        p = end + 1;
    }
    return count;
}

static void usage(void) {
    fprintf(stderr,
            "usage: onednn_bench --csv FILE [--ops batchnorm,layernorm,instancenorm]\n"
            "  [--directions forward-training,forward-inference,backward] [--layouts nchw,nhwc]\n"
            "  --shapes NxCxHxW,... [--groups G,...] [--threads 1,2] [--budget-ms 150] [--min-reps 5]\n"
            "  [--dtype f32,bf16,f16] [--copy-gbps 1:12.3,2:21] [--selftest]\n");
    exit(64);
}

int main(int argc, char **argv) {
    const char *ops = "batchnorm,layernorm,rmsnorm,instancenorm,groupnorm,adain,weightnorm";
    const char *directions = "forward-training,forward-inference,backward", *layouts = "nchw,nhwc";
    const char *shapes = NULL, *threads = "1,2", *csv = NULL, *copy = NULL, *dtypes = "f32";
    double budget_ms = 150;
    int min_reps = 5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--selftest")) return nb_selftest();
        if (!v) usage();
        if (!strcmp(a, "--ops")) ops = v;
        else if (!strcmp(a, "--directions")) directions = v;
        else if (!strcmp(a, "--layouts")) layouts = v;
        else if (!strcmp(a, "--shapes")) shapes = v;
        else if (!strcmp(a, "--threads")) threads = v;
        else if (!strcmp(a, "--budget-ms")) budget_ms = atof(v);
        else if (!strcmp(a, "--min-reps")) min_reps = atoi(v);
        else if (!strcmp(a, "--csv")) csv = v;
        else if (!strcmp(a, "--dtype")) dtypes = v;
        else if (!strcmp(a, "--copy-gbps")) copy = v;
        else if (!strcmp(a, "--groups")) { /* groupnorm is not in oneDNN 2.6 */ }
        else usage();
        i++;
    }
    if (!csv || !shapes) usage();
    char op_list[8][32], dir_list[3][32], layout_list[2][32], shape_list[64][32], thread_list[16][32], copy_list[16][32];
    char dtype_list[3][32];
    int n_dtypes = parse_list(dtypes, dtype_list, 3), dtype_ids[3];
    for (int k = 0; k < n_dtypes; k++) {
        dtype_ids[k] = -1;
        for (int j = 0; j < 3; j++) if (!strcmp(dtype_list[k], dtype_names[j])) dtype_ids[k] = j;
        if (dtype_ids[k] < 0) usage();
    }
    int n_ops = parse_list(ops, op_list, 8), n_dirs = parse_list(directions, dir_list, 3);
    int n_layouts = parse_list(layouts, layout_list, 2), n_shapes = parse_list(shapes, shape_list, 64);
    int n_threads = parse_list(threads, thread_list, 16), n_copy = copy ? parse_list(copy, copy_list, 16) : 0;

    // The grid in normbench's order (op, dtype, direction, layout, shape,
    // threads), without the ops oneDNN 2.6 lacks.
    static struct nb_case cases[4096];
    int n_cases = 0;
    for (int o = 0; o < n_ops; o++) {
        int op = -1;
        for (int k = 0; k < 3; k++) if (!strcmp(op_list[o], op_names[k])) op = k;
        if (op < 0) { fprintf(stderr, "onednn_bench: skipping %s (not in oneDNN 2.6)\n", op_list[o]); continue; }
        for (int dt = 0; dt < n_dtypes; dt++)
        for (int d = 0; d < n_dirs; d++) {
            int dir = -1;
            for (int k = 0; k < 3; k++) if (!strcmp(dir_list[d], dir_names[k])) dir = k;
            if (dir < 0 || (dir == DIR_INFER && op == OP_LAYERNORM)) continue;
            for (int l = 0; l < (op == OP_LAYERNORM ? 1 : n_layouts); l++) {
                int nhwc = op != OP_LAYERNORM && !strcmp(layout_list[l], "nhwc");
                for (int s = 0; s < n_shapes; s++) {
                    long n, c, h, w;
                    if (sscanf(shape_list[s], "%ldx%ldx%ldx%ld", &n, &c, &h, &w) != 4) usage();
                    if (dir != DIR_INFER && op == OP_BATCHNORM && n * h * w < 2) continue;
                    if (dir != DIR_INFER && op == OP_INSTANCENORM && h * w < 2) continue;
                    for (int t = 0; t < n_threads; t++) {
                        struct nb_case *cs = &cases[n_cases++];
                        *cs = (struct nb_case){op, dir, nhwc, n, c, h, w, atoi(thread_list[t]), dtype_ids[dt]};
                    }
                }
            }
        }
    }
    // Run grouped by thread count (as tools/torch_compare.py), write in grid order.
    double *median = calloc(n_cases, sizeof(double)), *minimum = calloc(n_cases, sizeof(double));
    int *status = calloc(n_cases, sizeof(int));
    int done = 0, failures = 0, unsupported = 0;
    double started = now();
    for (int t = 0; t < n_threads; t++) {
        int threads_now = atoi(thread_list[t]);
        for (int i = 0; i < n_cases; i++) {
            if (cases[i].threads != threads_now) continue;
            struct nb_case *cs = &cases[i];
            struct nb_run *run = nb_setup(cs);
            if (!run) {
                int quiet = nb_last_unimplemented();
                status[i] = quiet ? -3 : -1;
                if (quiet) unsupported++; else failures++;
                fprintf(stderr, "[%d/%d] %s %s %s %s %ldx%ldx%ldx%ld t%d: %s\n", ++done, n_cases, op_names[cs->op],
                        dtype_names[cs->dtype], dir_names[cs->direction],
                        cs->op == OP_LAYERNORM ? "-" : cs->nhwc ? "nhwc" : "nchw", cs->n, cs->c, cs->h, cs->w,
                        cs->threads, quiet ? "unsupported" : "error");
                continue;
            }
            nb_execute(run);   // the first repetition: faults pages in, then checked
            double error = nb_check(run);
            if (!(error <= nb_tolerance(cs))) {
                fprintf(stderr, "onednn_bench: %s %s %s %s %ldx%ldx%ldx%ld t%d: max error %.3g\n", op_names[cs->op],
                        dtype_names[cs->dtype], dir_names[cs->direction], cs->nhwc ? "nhwc" : "nchw", cs->n, cs->c,
                        cs->h, cs->w, cs->threads, error);
                status[i] = -2;
                failures++;
            } else {
                measure(run, budget_ms / 1e3, min_reps, &median[i], &minimum[i]);
            }
            fprintf(stderr, "[%d/%d] %s %s %s %s %ldx%ldx%ldx%ld t%d: %s %.3f ms (%s)\n", ++done, n_cases,
                    op_names[cs->op], dtype_names[cs->dtype], dir_names[cs->direction], cs->op == OP_LAYERNORM ? "-" : cs->nhwc ? "nhwc" : "nchw",
                    cs->n, cs->c, cs->h, cs->w, cs->threads, status[i] ? "FAIL" : "ok", median[i] * 1e3,
                    nb_impl(run));
            nb_free(run);
        }
    }
    FILE *f = fopen(csv, "w");
    if (!f) { perror(csv); return 1; }
    fprintf(f, "op,direction,layout,N,C,H,W,G,threads,affinity,median_ms,min_ms,bytes,gbps,fraction_of_copy,checked,"
               "dtype\n");
    for (int i = 0; i < n_cases; i++) {
        struct nb_case *cs = &cases[i];
        double bytes = traffic_bytes(cs);
        fprintf(f, "%s,%s,%s,%ld,%ld,%ld,%ld,-,%d,none,", op_names[cs->op], dir_names[cs->direction],
                cs->op == OP_LAYERNORM ? "-" : cs->nhwc ? "nhwc" : "nchw", cs->n, cs->c, cs->h, cs->w, cs->threads);
        if (status[i]) {
            fprintf(f, ",,%.0f,,,%s,%s\n", bytes,
                    status[i] == -3 ? "unsupported" : status[i] == -1 ? "error" : "fail", dtype_names[cs->dtype]);
            continue;
        }
        double gbps = bytes / median[i] / 1e9, copy_gbps = 0;
        for (int k = 0; k < n_copy; k++) {
            int th; double g;
            if (sscanf(copy_list[k], "%d:%lf", &th, &g) == 2 && th == cs->threads) copy_gbps = g;
        }
        fprintf(f, "%.6f,%.6f,%.0f,%.3f,", median[i] * 1e3, minimum[i] * 1e3, bytes, gbps);
        if (copy_gbps > 0) fprintf(f, "%.4f", gbps / copy_gbps);
        fprintf(f, ",onednn,%s\n", dtype_names[cs->dtype]);
    }
    fclose(f);
    fprintf(stderr, "%d cases in %.1f s (oneDNN %s), %d unsupported, %d failed; wrote %s\n", n_cases,
            now() - started, nb_version(), unsupported, failures, csv);
    return failures ? 1 : 0;
}
