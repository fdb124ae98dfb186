#ifndef CNORMSUPPORT_HALF_PRECISION_H
#define CNORMSUPPORT_HALF_PRECISION_H

#include <stddef.h>
#include <stdint.h>

// Float16 ⇄ Float32 conversions for the `Float16` element type (issue 20).
//
// Swift converts SIMD vectors of Float16 with one instruction where the build's
// target features allow it (F16C on x86-64 via `-Xcc -march=x86-64-v3`, always on
// AArch64), and with a library call per element otherwise. A baseline x86-64
// build can still use F16C when the CPU has it: the functions below are compiled
// for F16C by a target attribute (no build flag, no unsafeFlags) and called only
// after a CPUID check. Measured on the Xeon of NOTES-SWIFT-PERFORMANCE.md, per
// element: library call 2.7 ns (widen) / 3.2 ns (narrow); one call of
// nk_f16c_widen8 / nk_f16c_narrow8 per 8 values 0.12 / 0.17 ns; branch-free SSE2
// formulas (HalfBits.swift) 0.58 / 0.85 ns; inline F16C 0.05 / 0.05 ns.

/// 1 when this build converts Float16 vectors in hardware (F16C enabled by the
/// C flags, or AArch64), else 0. A compile-time constant the Swift optimizer
/// folds, so the choice leaves no branch in the kernel loops.
static inline __attribute__((always_inline)) int nk_build_converts_half(void) {
#if defined(__F16C__) || defined(__aarch64__)
    return 1;
#else
    return 0;
#endif
}

/// 1 when this build targets F16C on x86 (`-Xcc -march=x86-64-v3` or newer),
/// else 0: the build where `nk_f16c_load8` / `nk_f16c_round8` below are one
/// instruction each. A compile-time constant, as nk_build_converts_half.
static inline __attribute__((always_inline)) int nk_build_has_f16c(void) {
#if defined(__F16C__)
    return 1;
#else
    return 0;
#endif
}

typedef float nk_v8sf __attribute__((vector_size(32)));
typedef short nk_v8hi __attribute__((vector_size(16)));
typedef float nk_float8h __attribute__((ext_vector_type(8)));
/// Eight 16-bit values (Float16 or BFloat16 bit patterns); Swift imports this
/// type as SIMD8<UInt16>.
typedef unsigned short nk_half8 __attribute__((ext_vector_type(8)));

/// Eight binary16 values at `src` (any alignment) widened to floats: one
/// `vcvtph2ps` from memory, inlined into the Swift loop. Why not Swift's
/// `SIMD8<Float>(SIMD8<Float16>)`: in an F16C build the optimizer left it out of
/// line in several kernels (a call per 8 values, the vector returned in two XMM
/// halves, a vzeroupper: the Welford lanes, mean squares, gradient sums and the
/// short-row backward of a `-march=x86-64-v3` build, objdump). An always-inline C
/// function is inlined wherever it is called. Only when nk_build_has_f16c() is 1
/// (a zero vector otherwise: never called).
static inline __attribute__((always_inline)) nk_float8h nk_f16c_load8(const void *src) {
#if defined(__F16C__)
    nk_v8hi h;
    __builtin_memcpy(&h, src, sizeof h);
    return (nk_float8h)__builtin_ia32_vcvtph2ps256(h);
#else
    (void)src;
    return (nk_float8h)0;
#endif
}

/// Eight floats rounded to binary16 bit patterns, to nearest, ties to even
/// (`vcvtps2ph` with an explicit rounding mode, whatever MXCSR says). Only when
/// nk_build_has_f16c() is 1.
static inline __attribute__((always_inline)) nk_half8 nk_f16c_round8(nk_float8h v) {
#if defined(__F16C__)
    return (nk_half8)__builtin_ia32_vcvtps2ph256((nk_v8sf)v, 0);
#else
    (void)v;
    return (nk_half8)0;
#endif
}

typedef unsigned int nk_uint8 __attribute__((ext_vector_type(8)));
typedef int nk_int8 __attribute__((ext_vector_type(8)));

/// Eight floats rounded to BFloat16 bit patterns, to nearest, ties to even; a
/// NaN keeps its sign and the top of its payload and gets the quiet bit 0x0040
/// (the formula of BFloat16.swift, on 8 lanes):
///
///     b = (f + 0x7FFF + bit 16 of f) >> 16           f: the Float32 bits, not NaN
///
/// Written in C so that a build for AVX-512 BF16 (`-Xcc -march=native` on
/// Sapphire Rapids) uses `vcvtneps2bf16`, which rounds the same way except that
/// it flushes Float32 subnormal inputs to ±0: a vector holding one takes the
/// formula (never in practice; ElementTests' narrowing inputs include them).
/// Every build gives the formula's bits (a C check of 4.4·10⁷ patterns each
/// with -march=x86-64, x86-64-v3 and native on this Xeon).
static inline __attribute__((always_inline)) nk_half8 nk_bf16_round8(nk_float8h v) {
    nk_uint8 f = __builtin_bit_cast(nk_uint8, v);
#if defined(__AVX512BF16__) && defined(__AVX512VL__)
    nk_uint8 rounded = (f + 0x7FFFu + ((f >> 16) & 1u)) >> 16;
    typedef __bf16 nk_v8bf __attribute__((vector_size(16)));
    nk_half8 hardware = __builtin_bit_cast(
        nk_half8, __builtin_ia32_cvtneps2bf16_256_mask((nk_v8sf)v, (nk_v8bf){}, (unsigned char)0xFF));
    nk_int8 subnormal = ((f & 0x7F800000u) == 0) & ((f & 0x007FFFFFu) != 0);
    if (subnormal[0] | subnormal[1] | subnormal[2] | subnormal[3] | subnormal[4] | subnormal[5] | subnormal[6]
        | subnormal[7]) {
        return __builtin_convertvector(subnormal ? rounded : __builtin_convertvector(hardware, nk_uint8), nk_half8);
    }
    return hardware;
#else
    // The rounding alone is 7 operations per 8 values with AVX2; NaN lanes need
    // another result, (f >> 16) | 0x0040. Selecting it in every vector cost 9
    // more (a blend after both packs); instead one unordered compare and a mask
    // test branch to the select only for a vector that holds a NaN (never, in a
    // finite tensor: the branch is always predicted).
    nk_int8 nan = v != v;
    nk_uint8 rounded = (f + 0x7FFFu + ((f >> 16) & 1u)) >> 16;
    if (__builtin_expect(nan[0] | nan[1] | nan[2] | nan[3] | nan[4] | nan[5] | nan[6] | nan[7], 0)) {
        return __builtin_convertvector(nan ? ((f >> 16) | 0x40u) : rounded, nk_half8);
    }
    return __builtin_convertvector(rounded, nk_half8);
#endif
}

/// Eight floats rounded to BFloat16 and widened back, in their 32-bit lanes:
/// the value `nk_bf16_round8` stores, as the Float32 a load of it gives (its
/// bits in the top half of the lane, zeros below), with no pack to 16 bits and
/// no unpack (the gate's z, rounded once before its multiply, BFloat16 the
/// element type: the pack and unpack were a third of that loop's shuffles).
/// The same formula, and for NaN the same (f >> 16) | 0x0040, in every build.
static inline __attribute__((always_inline)) nk_float8h nk_bf16_round_widen8(nk_float8h v) {
    nk_uint8 f = __builtin_bit_cast(nk_uint8, v);
    nk_int8 nan = v != v;
    nk_uint8 rounded = (f + 0x7FFFu + ((f >> 16) & 1u)) & 0xFFFF0000u;
    if (__builtin_expect(nan[0] | nan[1] | nan[2] | nan[3] | nan[4] | nan[5] | nan[6] | nan[7], 0)) {
        rounded = nan ? ((f & 0xFFFF0000u) | 0x00400000u) : rounded;
    }
    return __builtin_bit_cast(nk_float8h, rounded);
}

/// 1 when this build targets AVX2 (`-Xcc -march=x86-64-v3` or newer), else 0:
/// the build where `nk_bf16_load8` is one `vpshufb`. A compile-time constant.
static inline __attribute__((always_inline)) int nk_build_has_avx2(void) {
#if defined(__AVX2__)
    return 1;
#else
    return 0;
#endif
}

/// Eight BFloat16 values at `src` (any alignment) widened exactly: the 16
/// bytes loaded into both 128-bit halves (`vbroadcasti128`, a load-port
/// operation) and each value moved to the top of its 32-bit lane with one
/// `vpshufb` (zeros below). `vpmovzxwd` + `vpslld`, what the zero-extend and
/// shift compile to, take two vector operations per 8 values, one of them on
/// port 5 only; this takes one (ports 1 or 5). Same bits: Float(x) = x << 16.
/// Only when nk_build_has_avx2() is 1 (a zero vector otherwise: never called).
static inline __attribute__((always_inline)) nk_float8h nk_bf16_load8(const void *src) {
#if defined(__AVX2__)
    typedef long long nk_v2di __attribute__((vector_size(16)));
    typedef long long nk_v4di __attribute__((vector_size(32)));
    typedef char nk_v32qi __attribute__((vector_size(32)));
    nk_v2di h;
    __builtin_memcpy(&h, src, sizeof h);
    nk_v4di both = __builtin_shufflevector(h, h, 0, 1, 0, 1);
    const nk_v32qi order = {-128, -128, 0, 1, -128, -128, 2, 3, -128, -128, 4, 5, -128, -128, 6, 7,
                            -128, -128, 8, 9, -128, -128, 10, 11, -128, -128, 12, 13, -128, -128, 14, 15};
    return (nk_float8h)__builtin_ia32_pshufb256((nk_v32qi)both, order);
#else
    (void)src;
    return (nk_float8h)0;
#endif
}

typedef unsigned short nk_half16 __attribute__((ext_vector_type(16)));

/// Sixteen values `a` then `b` rounded as two `nk_bf16_round8` calls round them
/// (the same bits), for output loops that store 16 values at once: one NaN
/// test (`a != a | b != b` folds into one unordered compare) and one pack of
/// both vectors' 16-bit halves, where two calls test and pack twice.
static inline __attribute__((always_inline)) nk_half16 nk_bf16_round16(nk_float8h a, nk_float8h b) {
#if defined(__AVX512BF16__) && defined(__AVX512VL__)
    return __builtin_shufflevector(nk_bf16_round8(a), nk_bf16_round8(b),
                                   0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#else
    nk_int8 nan = (a != a) | (b != b);
    if (__builtin_expect(nan[0] | nan[1] | nan[2] | nan[3] | nan[4] | nan[5] | nan[6] | nan[7], 0)) {
        return __builtin_shufflevector(nk_bf16_round8(a), nk_bf16_round8(b),
                                       0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    }
    nk_uint8 f = __builtin_bit_cast(nk_uint8, a), g = __builtin_bit_cast(nk_uint8, b);
    nk_uint8 ra = (f + 0x7FFFu + ((f >> 16) & 1u)) >> 16;
    nk_uint8 rb = (g + 0x7FFFu + ((g >> 16) & 1u)) >> 16;
#if defined(__AVX2__)
    // The lanes are < 2^16: the saturating pack is the truncation, and the
    // in-lane pack's 64-bit quarters go back in order with one permute.
    typedef int nk_v8si __attribute__((vector_size(32)));
    typedef long long nk_v4di __attribute__((vector_size(32)));
    nk_v4di packed = (nk_v4di)__builtin_ia32_packusdw256((nk_v8si)ra, (nk_v8si)rb);
    return (nk_half16)__builtin_shufflevector(packed, packed, 0, 2, 1, 3);
#else
    typedef unsigned int nk_uint16 __attribute__((ext_vector_type(16)));
    nk_uint16 r = __builtin_shufflevector(ra, rb, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return __builtin_convertvector(r, nk_half16);
#endif
#endif
}

/// 1 when the CPU has F16C and the OS saves AVX state, 0 when not, -1 before
/// the first check. Set by a constructor when the program loads.
extern int nk_f16c_flag;

/// Runs the CPUID/XGETBV check, stores its result in nk_f16c_flag and returns it.
int nk_f16c_detect(void);

/// Whether nk_f16c_* may be called on this CPU: one load and a predictable branch.
static inline __attribute__((always_inline)) int nk_cpu_has_f16c(void) {
    int flag = __atomic_load_n(&nk_f16c_flag, __ATOMIC_RELAXED);
    return flag >= 0 ? flag : nk_f16c_detect();
}

/// Widens 8 binary16 values at `src` (any alignment) to 8 floats at `dst`
/// (vcvtph2ps). Only when nk_cpu_has_f16c() is 1.
void nk_f16c_widen8(const void *src, float *dst);

/// Four floats; Swift imports this type as SIMD4<Float>.
typedef float nk_float4 __attribute__((ext_vector_type(4)));

/// Rounds the 8 floats `low`, `high` to nearest, ties to even, and stores 8
/// binary16 values at `dst` (vcvtps2ph). Only when nk_cpu_has_f16c() is 1.
/// The halves come in two XMM registers: a Swift SIMD8 written to the stack as
/// two 16-byte halves and reloaded as one 32-byte vector misses store-to-load
/// forwarding (measured 1.0 against 0.17 ns per element).
void nk_f16c_narrow8(nk_float4 low, nk_float4 high, void *dst);

/// As nk_f16c_narrow8, with a non-temporal store (`dst` 16-byte aligned): the
/// streaming store of 16-bit outputs in a baseline build on an F16C CPU.
void nk_f16c_narrow8_stream(nk_float4 low, nk_float4 high, void *dst);

/// nk_f16c_widen8 over `count` values (any count): one call for a whole block,
/// for kernels that widen a block into an L1 scratch buffer.
void nk_f16c_widen(const void *src, float *dst, size_t count);

/// nk_f16c_narrow8 over `count` values (any count).
void nk_f16c_narrow(const float *src, void *dst, size_t count);

#endif
