#ifndef CNORMSUPPORT_H
#define CNORMSUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include "HalfPrecision.h"
#include "BFloat16Pairs.h"
#include "BFloat16Hardware.h"
#include "Float16LayerNormRows.h"
#include "SiLUAVX512.h"
#include "ColumnGradientsAVX512.h"
#include "WelfordAVX512.h"
#include "Float16GradientAVX512.h"

/// Counts a call of NormKernels' short-run output loop (`Apply.shortRuns`) on
/// this thread; `nk_short_runs_thread_calls` reads the count (for tests).
void nk_short_runs_note(void);
uint64_t nk_short_runs_thread_calls(void);

/// Counts a call of BatchNorm NCHW's tiny-run passes (planes of 2–7 values) on
/// this thread; `nk_tiny_runs_thread_calls` reads the count (for tests).
void nk_tiny_runs_note(void);
uint64_t nk_tiny_runs_thread_calls(void);

/// Counts a call of the backward's tiny-run sums (runs of < 8 values,
/// `BlockGradients.shortRunSums`) on this thread; read by `nk_tiny_sums_thread_calls`.
void nk_tiny_sums_note(void);
uint64_t nk_tiny_sums_thread_calls(void);

/// Counts a call of the tiny-run moments lanes (`BlockMoments.tinyRunLanes`) on
/// this thread; read by `nk_tiny_moments_thread_calls`.
void nk_tiny_moments_note(void);
uint64_t nk_tiny_moments_thread_calls(void);

/// What hwloc reports about the machine, reduced to plain numbers.
/// `ok` is 0 when hwloc could not load a topology; `message` then says why.
typedef struct nk_topology_info {
    int ok;
    int packages;
    int numa_nodes;
    int cores;          // cores in the process's allowed cpuset
    int pus;            // hardware threads in the process's allowed cpuset
    int64_t l1d_bytes;  // size of one cache of each level, 0 when unknown
    int64_t l2_bytes;
    int64_t l3_bytes;
    int l1d_count;      // how many caches of each level
    int l2_count;
    int l3_count;
    char message[256];
} nk_topology_info;

/// Loads (once per process) and describes the topology. Never aborts.
void nk_topology_query(nk_topology_info *out);

/// For core `core_index` (0 ..< cores), the logical index of its package and
/// of the L3 cache above it (-1 when there is none). Returns 0 on success.
int nk_core_locality(int core_index, int *package_index, int *l3_index);

/// Binds the calling thread to every PU of core `core_index`, saving the
/// previous binding in `*saved` (an opaque handle) so it can be restored.
/// Returns 0 on success; on failure nothing is bound and `*saved` is NULL.
int nk_bind_thread_to_core(int core_index, void **saved);

/// Restores the binding saved by nk_bind_thread_to_core and frees the handle.
/// Returns 0 on success. Passing NULL is a no-op.
int nk_restore_thread_binding(void *saved);

/// How many PUs the calling thread is allowed to run on (its current binding),
/// -1 when unknown. Tests use it to prove pinning does not leak.
int nk_thread_binding_weight(void);

/// The PU the calling thread runs on now (sched_getcpu), -1 if unknown.
int nk_current_cpu(void);

/// Linux thread id of the caller (gettid), for diagnostics.
long nk_thread_id(void);

/// Copies `count` floats with non-temporal (streaming) stores where the
/// destination allows, bypassing the cache; used by the bandwidth probe.
void nk_stream_copy_f32(float *dst, const float *src, size_t count);

/// a[i] = b[i] + s·c[i] with non-temporal stores (the bandwidth probe's nt-triad:
/// two streams read, one written past the cache, the shape of a backward dx pass).
void nk_stream_triad_f32(float *a, const float *b, const float *c, float s, size_t count);

/// Compiler barrier that keeps a value alive in benchmarks.
void nk_black_hole(const void *p);

/// Eight floats; Swift imports this type as SIMD8<Float>.
typedef float nk_float8 __attribute__((ext_vector_type(8)));

/// Stores `value` at `dst` (32-byte aligned) with a non-temporal hint: the line
/// goes to memory without being read first (no write-allocate) and without
/// evicting useful data. Swift cannot express this store; as a static inline
/// function it is compiled into the Swift caller and inlined, so the kernel loop
/// stays in Swift and pays no call.
static inline __attribute__((always_inline)) void nk_stream8(float *dst, nk_float8 value) {
    __builtin_nontemporal_store(value, (nk_float8 *)dst);
}

/// Stores 8 16-bit values (`nk_half8`, HalfPrecision.h) at `dst` (16-byte aligned) with a non-temporal hint,
/// as `nk_stream8` does for 8 floats: the 16-bit outputs' streaming store
/// (movntdq). Four of them fill a cache line in the write-combining buffer.
static inline __attribute__((always_inline)) void nk_stream8h(void *dst, nk_half8 value) {
    __builtin_nontemporal_store(value, (nk_half8 *)dst);
}

/// a·b + c in one rounding (vfmadd) when the build targets FMA (`-Xcc
/// -march=x86-64-v3` defines __FMA__), else a multiply then an add. Swift never
/// fuses a multiply and an add by itself, and its `addingProduct` becomes a
/// libm call per lane on targets without FMA (the default x86-64 build); this
/// helper gives the Swift loops the fused instruction where it exists and plain
/// arithmetic everywhere else.
static inline __attribute__((always_inline)) nk_float8 nk_muladd8(nk_float8 a, nk_float8 b, nk_float8 c) {
#if defined(__FMA__)
    return __builtin_elementwise_fma(a, b, c);
#else
    return a * b + c;
#endif
}

/// The scalar twin of `nk_muladd8`, so that the scalar ends of a loop round
/// exactly like its vector body.
static inline __attribute__((always_inline)) float nk_muladd1(float a, float b, float c) {
#if defined(__FMA__)
    return __builtin_fmaf(a, b, c);
#else
    return a * b + c;
#endif
}

/// `table[index[l] & 7]` in each lane l (index: HalfPrecision.h's nk_int8,
/// Swift's SIMD8<Int32>): one `vpermps` where the build targets
/// AVX2 (`-Xcc -march=x86-64-v3` defines __AVX2__), else a lane loop with the
/// same result. The 8-entry table lookup of the SiLU lanes' e^v (2^(k/8),
/// `SiLU.swift`), which Swift's SIMD types cannot express.
static inline __attribute__((always_inline)) nk_float8 nk_lookup8(nk_float8 table, nk_int8 index) {
#if defined(__AVX2__)
    return __builtin_ia32_permvarsf256(table, index);
#else
    nk_float8 r;
    for (int l = 0; l < 8; l++) r[l] = table[index[l] & 7];
    return r;
#endif
}

/// Orders earlier non-temporal stores before later stores (sfence).
static inline __attribute__((always_inline)) void nk_stream_fence(void) {
    __builtin_ia32_sfence();
}

/// Four Float64 lanes (Swift: SIMD4<Double>).
typedef double nk_double4 __attribute__((ext_vector_type(4)));

/// out[r] = the Float64 sum of v[r]'s lanes 0, 1, …, 7, in that order, from +0
/// (Swift's `laneSum64`, bit for bit), for the eight vectors v[0…7] at once: a
/// transpose by shuffles within 128-bit halves (unpcklps/unpckhps, shufps),
/// then four-lane widenings (vcvtps2pd) and vector adds, one lane per vector.
/// In C because Swift's SIMD types have no shuffles: built from lanes, they
/// became scalar extractions through the stack. Two vector stores to `out`.
static inline __attribute__((always_inline)) void nk_lane_sums8(const void *vectors, double *out) {
    nk_float8 v[8];   // `vectors`: eight nk_float8 (a void pointer: Swift imports nk_float8 * as opaque)
    __builtin_memcpy(v, vectors, sizeof v);
    nk_float8 t0 = __builtin_shufflevector(v[0], v[1], 0, 8, 1, 9, 4, 12, 5, 13);
    nk_float8 t1 = __builtin_shufflevector(v[0], v[1], 2, 10, 3, 11, 6, 14, 7, 15);
    nk_float8 t2 = __builtin_shufflevector(v[2], v[3], 0, 8, 1, 9, 4, 12, 5, 13);
    nk_float8 t3 = __builtin_shufflevector(v[2], v[3], 2, 10, 3, 11, 6, 14, 7, 15);
    nk_float8 t4 = __builtin_shufflevector(v[4], v[5], 0, 8, 1, 9, 4, 12, 5, 13);
    nk_float8 t5 = __builtin_shufflevector(v[4], v[5], 2, 10, 3, 11, 6, 14, 7, 15);
    nk_float8 t6 = __builtin_shufflevector(v[6], v[7], 0, 8, 1, 9, 4, 12, 5, 13);
    nk_float8 t7 = __builtin_shufflevector(v[6], v[7], 2, 10, 3, 11, 6, 14, 7, 15);
    // s0: lane 0 of v[0…3] | lane 4 of v[0…3]; s1: lanes 1 | 5; s2: 2 | 6; s3: 3 | 7; s4…s7: v[4…7].
    nk_float8 s0 = __builtin_shufflevector(t0, t2, 0, 1, 8, 9, 4, 5, 12, 13);
    nk_float8 s1 = __builtin_shufflevector(t0, t2, 2, 3, 10, 11, 6, 7, 14, 15);
    nk_float8 s2 = __builtin_shufflevector(t1, t3, 0, 1, 8, 9, 4, 5, 12, 13);
    nk_float8 s3 = __builtin_shufflevector(t1, t3, 2, 3, 10, 11, 6, 7, 14, 15);
    nk_float8 s4 = __builtin_shufflevector(t4, t6, 0, 1, 8, 9, 4, 5, 12, 13);
    nk_float8 s5 = __builtin_shufflevector(t4, t6, 2, 3, 10, 11, 6, 7, 14, 15);
    nk_float8 s6 = __builtin_shufflevector(t5, t7, 0, 1, 8, 9, 4, 5, 12, 13);
    nk_float8 s7 = __builtin_shufflevector(t5, t7, 2, 3, 10, 11, 6, 7, 14, 15);
#define NK_LOW(v) __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1, 2, 3), nk_double4)
#define NK_HIGH(v) __builtin_convertvector(__builtin_shufflevector(v, v, 4, 5, 6, 7), nk_double4)
    nk_double4 a = {0, 0, 0, 0}, b = {0, 0, 0, 0};   // v[0…3], v[4…7]
    a += NK_LOW(s0);  b += NK_LOW(s4);
    a += NK_LOW(s1);  b += NK_LOW(s5);
    a += NK_LOW(s2);  b += NK_LOW(s6);
    a += NK_LOW(s3);  b += NK_LOW(s7);
    a += NK_HIGH(s0); b += NK_HIGH(s4);
    a += NK_HIGH(s1); b += NK_HIGH(s5);
    a += NK_HIGH(s2); b += NK_HIGH(s6);
    a += NK_HIGH(s3); b += NK_HIGH(s7);
#undef NK_LOW
#undef NK_HIGH
    __builtin_memcpy(out, &a, sizeof a);
    __builtin_memcpy(out + 4, &b, sizeof b);
}

/// Asks for the cache line at `p` to be brought into the cache ahead of use
/// (prefetcht0). A hint only: it never faults, so it may point past a buffer.
static inline __attribute__((always_inline)) void nk_prefetch(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

/// The same hint into L2 (prefetcht1): for streams a loop reads a few KiB later
/// (`PrefetchAhead`), where an L1 fill evicts lines still in use (measured:
/// docs/PERFORMANCE.md, "BatchNorm NCHW reductions: prefetch into L2").
static inline __attribute__((always_inline)) void nk_prefetch_l2(const void *p) {
    __builtin_prefetch(p, 0, 2);
}

/// A spin-wait hint (x86 `pause`): lets the sibling hyperthread run and keeps a
/// waiting loop from flooding the memory system while another thread finishes.
static inline __attribute__((always_inline)) void nk_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

#endif
