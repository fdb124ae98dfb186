// hwloc access for NormKernels' runtime. hwloc's bitmap iteration macros and
// some inline helpers do not import into Swift, so the runtime calls these
// small functions instead. One topology is loaded per process and only read
// afterwards, which hwloc allows from many threads at once.
#define _GNU_SOURCE
#include "CNormSupport.h"

#include <hwloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <emmintrin.h>

// Calls of the short-run output loop (`Apply.shortRuns`) on this thread: tests
// prove with it that the loop ran.
static _Thread_local uint64_t nk_short_runs_calls = 0;

void nk_short_runs_note(void) { nk_short_runs_calls++; }
uint64_t nk_short_runs_thread_calls(void) { return nk_short_runs_calls; }

// Calls of BatchNorm NCHW's tiny-run passes (planes of 2–7 values as one row of
// per-position coefficients: `CoefficientTable.expanded`, `GradientTable.expand`)
// on this thread, for the same purpose.
static _Thread_local uint64_t nk_tiny_runs_calls = 0;

void nk_tiny_runs_note(void) { nk_tiny_runs_calls++; }
uint64_t nk_tiny_runs_thread_calls(void) { return nk_tiny_runs_calls; }

// Calls of the tiny-run sums (`BlockGradients.shortRunSums` on runs of < 8
// values: each run's sums are its Float64 tail) and of the tiny-run moments
// lanes (`BlockMoments.tinyRunLanes`: eight units' Welford in Float64 lanes) on
// this thread, for the same purpose.
static _Thread_local uint64_t nk_tiny_sums_calls = 0;
static _Thread_local uint64_t nk_tiny_moments_calls = 0;

void nk_tiny_sums_note(void) { nk_tiny_sums_calls++; }
uint64_t nk_tiny_sums_thread_calls(void) { return nk_tiny_sums_calls; }
void nk_tiny_moments_note(void) { nk_tiny_moments_calls++; }
uint64_t nk_tiny_moments_thread_calls(void) { return nk_tiny_moments_calls; }

static hwloc_topology_t g_topology;
static int g_loaded;
static char g_error[256];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void load_topology(void) {
    if (hwloc_topology_init(&g_topology) != 0) {
        snprintf(g_error, sizeof g_error, "hwloc_topology_init failed");
        return;
    }
    if (hwloc_topology_load(g_topology) != 0) {
        snprintf(g_error, sizeof g_error, "hwloc_topology_load failed");
        hwloc_topology_destroy(g_topology);
        return;
    }
    g_loaded = 1;
}

static int count_of(hwloc_obj_type_t type) {
    int n = hwloc_get_nbobjs_by_type(g_topology, type);
    return n < 0 ? 0 : n;
}

static void cache_of(hwloc_obj_type_t type, int64_t *bytes, int *count) {
    *count = count_of(type);
    hwloc_obj_t obj = hwloc_get_obj_by_type(g_topology, type, 0);
    *bytes = (obj && obj->attr) ? (int64_t)obj->attr->cache.size : 0;
}

void nk_topology_query(nk_topology_info *out) {
    memset(out, 0, sizeof *out);
    pthread_once(&g_once, load_topology);
    if (!g_loaded) {
        snprintf(out->message, sizeof out->message, "%s", g_error[0] ? g_error : "hwloc unavailable");
        return;
    }
    out->packages = count_of(HWLOC_OBJ_PACKAGE);
    out->numa_nodes = count_of(HWLOC_OBJ_NUMANODE);
    out->cores = count_of(HWLOC_OBJ_CORE);
    out->pus = count_of(HWLOC_OBJ_PU);
    cache_of(HWLOC_OBJ_L1CACHE, &out->l1d_bytes, &out->l1d_count);
    cache_of(HWLOC_OBJ_L2CACHE, &out->l2_bytes, &out->l2_count);
    cache_of(HWLOC_OBJ_L3CACHE, &out->l3_bytes, &out->l3_count);
    if (out->cores <= 0 || out->pus <= 0) {
        snprintf(out->message, sizeof out->message, "hwloc reported %d cores and %d PUs", out->cores, out->pus);
        return;
    }
    out->ok = 1;
    snprintf(out->message, sizeof out->message, "hwloc %s", HWLOC_VERSION);
}

static hwloc_obj_t core_obj(int core_index) {
    pthread_once(&g_once, load_topology);
    if (!g_loaded || core_index < 0) return NULL;
    return hwloc_get_obj_by_type(g_topology, HWLOC_OBJ_CORE, (unsigned)core_index);
}

int nk_core_locality(int core_index, int *package_index, int *l3_index) {
    hwloc_obj_t core = core_obj(core_index);
    if (!core) return -1;
    hwloc_obj_t pkg = hwloc_get_ancestor_obj_by_type(g_topology, HWLOC_OBJ_PACKAGE, core);
    hwloc_obj_t l3 = hwloc_get_ancestor_obj_by_type(g_topology, HWLOC_OBJ_L3CACHE, core);
    *package_index = pkg ? (int)pkg->logical_index : 0;
    *l3_index = l3 ? (int)l3->logical_index : -1;
    return 0;
}

int nk_bind_thread_to_core(int core_index, void **saved) {
    *saved = NULL;
    hwloc_obj_t core = core_obj(core_index);
    if (!core || !core->cpuset) return -1;
    hwloc_bitmap_t old = hwloc_bitmap_alloc();
    if (!old) return -1;
    if (hwloc_get_cpubind(g_topology, old, HWLOC_CPUBIND_THREAD) != 0) {
        hwloc_bitmap_free(old);
        return -1;
    }
    if (hwloc_set_cpubind(g_topology, core->cpuset, HWLOC_CPUBIND_THREAD) != 0) {
        hwloc_bitmap_free(old);
        return -1;
    }
    *saved = old;
    return 0;
}

int nk_restore_thread_binding(void *saved) {
    if (!saved) return 0;
    hwloc_bitmap_t old = (hwloc_bitmap_t)saved;
    int rc = hwloc_set_cpubind(g_topology, old, HWLOC_CPUBIND_THREAD);
    hwloc_bitmap_free(old);
    return rc;
}

int nk_thread_binding_weight(void) {
    pthread_once(&g_once, load_topology);
    if (!g_loaded) return -1;
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    if (!set) return -1;
    int weight = -1;
    if (hwloc_get_cpubind(g_topology, set, HWLOC_CPUBIND_THREAD) == 0) weight = hwloc_bitmap_weight(set);
    hwloc_bitmap_free(set);
    return weight;
}

int nk_current_cpu(void) { return sched_getcpu(); }

long nk_thread_id(void) { return (long)syscall(SYS_gettid); }

void nk_stream_copy_f32(float *dst, const float *src, size_t count) {
    size_t i = 0;
    // Align the destination to 16 bytes for _mm_stream_ps (SSE2: every x86-64).
    while (i < count && (((uintptr_t)(dst + i)) & 15u) != 0) { dst[i] = src[i]; i++; }
    for (; i + 16 <= count; i += 16) {
        __m128 a = _mm_loadu_ps(src + i), b = _mm_loadu_ps(src + i + 4);
        __m128 c = _mm_loadu_ps(src + i + 8), d = _mm_loadu_ps(src + i + 12);
        _mm_stream_ps(dst + i, a); _mm_stream_ps(dst + i + 4, b);
        _mm_stream_ps(dst + i + 8, c); _mm_stream_ps(dst + i + 12, d);
    }
    for (; i < count; i++) dst[i] = src[i];
    _mm_sfence();
}

void nk_stream_triad_f32(float *a, const float *b, const float *c, float s, size_t count) {
    size_t i = 0;
    while (i < count && (((uintptr_t)(a + i)) & 15u) != 0) { a[i] = b[i] + s * c[i]; i++; }
    __m128 sv = _mm_set1_ps(s);
    for (; i + 8 <= count; i += 8) {
        __m128 x0 = _mm_add_ps(_mm_loadu_ps(b + i), _mm_mul_ps(sv, _mm_loadu_ps(c + i)));
        __m128 x1 = _mm_add_ps(_mm_loadu_ps(b + i + 4), _mm_mul_ps(sv, _mm_loadu_ps(c + i + 4)));
        _mm_stream_ps(a + i, x0); _mm_stream_ps(a + i + 4, x1);
    }
    for (; i < count; i++) a[i] = b[i] + s * c[i];
    _mm_sfence();
}

void nk_black_hole(const void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }
