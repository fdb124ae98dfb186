// Counts heap allocations of the whole process, for NormKernels' allocation
// tests (Tests/NormKernelsTests/AllocationTests.swift).
//
// How: the test executable defines malloc, calloc, realloc, free,
// posix_memalign, aligned_alloc, memalign and valloc. ELF symbol lookup finds
// an executable's definitions before libc's, so every caller in the process —
// Swift code, the Swift runtime (swift_slowAlloc calls malloc or
// posix_memalign), Foundation, Dispatch — lands here. Each entry counts (when
// counting is on) and forwards to glibc's own allocator through its exported
// __libc_* names, so no memory ever changes hands between two allocators and
// nothing needs dlsym or a bootstrap heap (compare ordo-one/malloc-interposer,
// which is a preloaded library and resolves libc with dlsym(RTLD_NEXT)).
//
// Under AddressSanitizer or ThreadSanitizer the sanitizer owns malloc; the
// replacements are compiled out and nk_alloc_counter_available() says 0.

#define _GNU_SOURCE
#include "CAllocationCounter.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#if defined(__has_feature)
#  if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#    define NK_ALLOC_SANITIZED 1
#  endif
#endif
#if !defined(NK_ALLOC_SANITIZED) && (defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__))
#  define NK_ALLOC_SANITIZED 1
#endif

static atomic_bool counting = false;
static atomic_bool tracing = false;
static atomic_int_fast64_t allocations = 0;
static atomic_int_fast64_t requested = 0;

void nk_alloc_counter_start(void) {
    atomic_store(&allocations, 0);
    atomic_store(&requested, 0);
    atomic_store(&counting, true);
}

void nk_alloc_counter_stop(void) { atomic_store(&counting, false); }
int64_t nk_alloc_counter_allocations(void) { return (int64_t)atomic_load(&allocations); }
int64_t nk_alloc_counter_bytes(void) { return (int64_t)atomic_load(&requested); }
void nk_alloc_counter_set_trace(int on) { atomic_store(&tracing, on != 0); }

#if defined(__GLIBC__) && !defined(NK_ALLOC_SANITIZED)

#include <execinfo.h>

int nk_alloc_counter_available(void) { return 1; }

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void __libc_free(void *pointer);
extern void *__libc_memalign(size_t alignment, size_t size);

// Set while this thread writes a trace: backtrace() itself may allocate (it
// loads libgcc_s on first use), and those allocations are not the caller's.
static _Thread_local bool inTrace = false;

static void note(size_t size) {
    if (!atomic_load_explicit(&counting, memory_order_relaxed) || inTrace) return;
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&requested, (int_fast64_t)size, memory_order_relaxed);
    if (atomic_load_explicit(&tracing, memory_order_relaxed)) {
        inTrace = true;
        void *frames[48];
        int depth = backtrace(frames, 48);
        static const char header[] = "== allocation\n";
        (void)!write(2, header, sizeof header - 1);
        backtrace_symbols_fd(frames + 1, depth - 1, 2);
        inTrace = false;
    }
}

void *malloc(size_t size) {
    note(size);
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    note(count * size);
    return __libc_calloc(count, size);
}

// A realloc moves or grows a block: counted as an allocation; realloc(p, 0),
// which frees, is not.
void *realloc(void *pointer, size_t size) {
    if (size != 0 || pointer == NULL) note(size);
    return __libc_realloc(pointer, size);
}

void free(void *pointer) { __libc_free(pointer); }

void *memalign(size_t alignment, size_t size) {
    note(size);
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    note(size);
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **result, size_t alignment, size_t size) {
    // POSIX: a power of two that is a multiple of sizeof(void *).
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment % sizeof(void *) != 0)
        return EINVAL;
    note(size);
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL) return ENOMEM;
    *result = pointer;
    return 0;
}

void *valloc(size_t size) {
    note(size);
    return __libc_memalign((size_t)getpagesize(), size);
}

#else

int nk_alloc_counter_available(void) { return 0; }

#endif
