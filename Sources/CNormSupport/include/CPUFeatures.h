#ifndef NK_CPU_FEATURES_H
#define NK_CPU_FEATURES_H

// The CPU checks shared by the loops chosen at run time (BFloat16Hardware.h,
// SiLUAVX512.h): each adds its own extension bits to this one.

/// 1 when the CPU has AVX-512 F, DQ, BW and VL (and AVX2) and the OS saves the
/// AVX-512 state (XMM, YMM, opmask, ZMM upper halves, ZMM16–31); else 0.
int nk_cpu_has_avx512(void);

/// `nk_cpu_has_avx512()`, unless the environment variable `variable` is
/// `never` (the switch each run-time-chosen loop reads once at load).
int nk_avx512_allowed(const char *variable);

#endif
