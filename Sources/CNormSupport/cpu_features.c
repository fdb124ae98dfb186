// CPUID/XGETBV checks for the loops chosen at run time; see include/CPUFeatures.h.

#include "CPUFeatures.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>

int nk_cpu_has_avx512(void) {
    unsigned a, b, c, d;
    if (!(__get_cpuid(1, &a, &b, &c, &d) && ((c >> 27) & 1))) return 0;   // OSXSAVE
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    // XMM, YMM, opmask, ZMM upper halves and ZMM16-31 saved by the OS.
    if ((lo & 0xE6) != 0xE6 || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1;
    int avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    return avx2 && avx512f && avx512dq && avx512bw && avx512vl;
}
#else
int nk_cpu_has_avx512(void) { return 0; }
#endif

int nk_avx512_allowed(const char *variable) {
    const char *value = getenv(variable);
    return !(value && strcmp(value, "never") == 0) && nk_cpu_has_avx512();
}
