// Test-only allocation counter: replaces the C allocator entry points of the
// test executable and counts calls while counting is on. Never linked into the
// NormKernels library (only NormKernelsTests depends on it).
#ifndef C_ALLOCATION_COUNTER_H
#define C_ALLOCATION_COUNTER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when this build replaces malloc and friends (glibc, no sanitizer), else 0:
/// then every count stays 0 and allocation tests have nothing to measure.
int nk_alloc_counter_available(void);

/// Starts counting (from zero) the allocations of every thread of the process.
void nk_alloc_counter_start(void);

/// Stops counting; the counts stay readable until the next start.
void nk_alloc_counter_stop(void);

/// Allocations counted (malloc, calloc, realloc, posix_memalign,
/// aligned_alloc, memalign, valloc) since the last start.
int64_t nk_alloc_counter_allocations(void);

/// Bytes requested by those allocations.
int64_t nk_alloc_counter_bytes(void);

/// 1: each counted allocation also writes its call stack to standard error
/// (glibc's backtrace_symbols_fd, mangled Swift names: pipe through
/// `swift demangle`). For finding where allocations come from.
void nk_alloc_counter_set_trace(int on);

#ifdef __cplusplus
}
#endif

#endif
