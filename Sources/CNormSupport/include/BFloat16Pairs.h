#ifndef CNORMSUPPORT_BFLOAT16_PAIRS_H
#define CNORMSUPPORT_BFLOAT16_PAIRS_H

#include "HalfPrecision.h"

// BFloat16 in pairs: sixteen contiguous values read as eight 32-bit words,
// word i = x[2i] | x[2i + 1] << 16 (little endian). Each word holds two whole
// Float32 patterns once the other half is cleared:
//
//     even lanes: Float(x[2i])     = word << 16
//     odd lanes:  Float(x[2i + 1]) = word & 0xFFFF0000
//
// and the rounding goes back the same way (b = (f + 0x7FFF + bit 16 of f) >> 16,
// the formula of `nk_bf16_round8`): the even result shifted down, the odd one
// masked in place, or-ed into one word. Sixteen values then cost one load, two
// integer operations, the two roundings and one 32-byte store, where
// `load8` / `store8` twice zero-extend (a shuffle each), shift, and pack and
// permute the rounded lanes back to 16 bits (4 shuffles per 16 values on port 5).
// Only for loops whose arithmetic treats every value alike (per-channel
// scalars: the result of a value does not depend on the lane it sits in), so
// the outputs are the bits of `store8(load8(…))` value for value.

/// 1 when the pair loops are the faster choice in this build, else 0 (a
/// compile-time constant): an AVX-512 BF16 build rounds 8 lanes with one
/// `vcvtneps2bf16` (`nk_bf16_round8`) and keeps the plain loops.
static inline __attribute__((always_inline)) int nk_bf16_pairs_enabled(void) {
#if defined(__AVX512BF16__) && defined(__AVX512VL__)
    return 0;
#else
    return 1;
#endif
}

/// The even-indexed values of the eight words `w`, widened exactly.
static inline __attribute__((always_inline)) nk_float8h nk_bf16_even8(nk_uint8 w) {
    return __builtin_bit_cast(nk_float8h, w << 16);
}

/// The odd-indexed values of the eight words `w`, widened exactly.
static inline __attribute__((always_inline)) nk_float8h nk_bf16_odd8(nk_uint8 w) {
    return __builtin_bit_cast(nk_float8h, w & 0xFFFF0000u);
}

/// `even` and `odd` rounded to BFloat16 as `nk_bf16_round8` rounds them (the
/// same bits, NaNs included) and interleaved back into eight words. One
/// unordered compare tests both vectors for a NaN; a vector pair holding one
/// takes `nk_bf16_round8` (never in a finite tensor: the branch is predicted).
static inline __attribute__((always_inline)) nk_uint8 nk_bf16_round_pairs(nk_float8h even, nk_float8h odd) {
    nk_int8 nan = (even != even) | (odd != odd);
    if (__builtin_expect(nan[0] | nan[1] | nan[2] | nan[3] | nan[4] | nan[5] | nan[6] | nan[7], 0)) {
        nk_uint8 e = __builtin_convertvector(nk_bf16_round8(even), nk_uint8);
        nk_uint8 o = __builtin_convertvector(nk_bf16_round8(odd), nk_uint8);
        return e | (o << 16);
    }
    nk_uint8 f = __builtin_bit_cast(nk_uint8, even), g = __builtin_bit_cast(nk_uint8, odd);
    nk_uint8 low = (f + 0x7FFFu + ((f >> 16) & 1u)) >> 16;
    nk_uint8 high = (g + 0x7FFFu + ((g >> 16) & 1u)) & 0xFFFF0000u;
    return low | high;
}

/// Eight words (16 BFloat16 values) at `dst` (16-byte aligned) in two 16-byte
/// non-temporal stores, as two `nk_stream8h` of the values in order.
static inline __attribute__((always_inline)) void nk_stream_words8(void *dst, nk_uint8 w) {
    nk_half8 low = __builtin_bit_cast(nk_half8, __builtin_shufflevector(w, w, 0, 1, 2, 3));
    nk_half8 high = __builtin_bit_cast(nk_half8, __builtin_shufflevector(w, w, 4, 5, 6, 7));
    __builtin_nontemporal_store(low, (nk_half8 *)dst);
    __builtin_nontemporal_store(high, (nk_half8 *)dst + 1);
}

#endif
