// Branch-free Float16 ⇄ Float32 conversions on eight SIMD lanes, written with
// integer and Float32 operations that SSE2 has: the `Float16` conformance's
// last resort, for a baseline x86-64 build running on a CPU without F16C.
//
// Why: Swift's `SIMD8<Float>(SIMD8<Float16>)` on a baseline x86-64 build (SSE2,
// no `-Xcc -march=x86-64-v3`) calls `__extendhfsf2` / `__truncsfhf2` once per lane
// (2.7 / 3.2 ns per element; these formulas: 0.7 / 0.9). They give the same bits
// as those routines for every input, NaNs included (ElementTests checks all 2¹⁶
// patterns one way and every rounding boundary the other way).
//
// IEEE binary16: 1 sign, 5 exponent (bias 15), 10 fraction bits.
// binary32:      1 sign, 8 exponent (bias 127), 23 fraction bits.

@usableFromInline typealias U8x32 = SIMD8<UInt32>
@usableFromInline typealias I8x32 = SIMD8<Int32>

// Swift's SIMD comparisons (`.<`, `.==`), `replacing(with:where:)` and
// `init(truncatingIfNeeded:)` on these types compile to a loop over lanes or to
// a call that is not inlined (measured: 20–60 ns per element). The helpers below
// use only lane-wise arithmetic, shifts and bitwise logic, plus an explicit lane
// list that LLVM turns into one shuffle; all of it stays in vector registers.

/// All ones in the lanes where `x` is negative, zeros elsewhere (x >> 31, arithmetic).
@inlinable @inline(__always)
func negativeMask(_ x: I8x32) -> U8x32 {
    unsafeBitCast(x &>> 31, to: U8x32.self)
}

/// `b` where `mask` is all ones, `a` where it is zero.
@inlinable @inline(__always)
func selectLanes(_ mask: U8x32, _ b: U8x32, _ a: U8x32) -> U8x32 {
    (b & mask) | (a & ~mask)
}

/// The eight 16-bit values, zero-extended to 32-bit lanes.
@inlinable @inline(__always)
func zeroExtend(_ h: SIMD8<UInt16>) -> U8x32 {
    U8x32(UInt32(h[0]), UInt32(h[1]), UInt32(h[2]), UInt32(h[3]),
          UInt32(h[4]), UInt32(h[5]), UInt32(h[6]), UInt32(h[7]))
}

/// The low 16 bits of each 32-bit lane.
@inlinable @inline(__always)
func lowHalves(_ w: U8x32) -> SIMD8<UInt16> {
    SIMD8<UInt16>(UInt16(truncatingIfNeeded: w[0]), UInt16(truncatingIfNeeded: w[1]),
                  UInt16(truncatingIfNeeded: w[2]), UInt16(truncatingIfNeeded: w[3]),
                  UInt16(truncatingIfNeeded: w[4]), UInt16(truncatingIfNeeded: w[5]),
                  UInt16(truncatingIfNeeded: w[6]), UInt16(truncatingIfNeeded: w[7]))
}

/// Widens eight binary16 bit patterns exactly to Float32.
///
/// ```
/// e = 0 (zero, subnormal):  m·2⁻²⁴, formed as (2⁻¹⁴ + m·2⁻²⁴) − 2⁻¹⁴ (exact)
/// e = 1…30 (normal):        exponent rebiased by 127 − 15 = 112
/// e = 31 (inf, NaN):        exponent 255, fraction shifted up; a NaN gets the
///                           quiet bit (0x400000), as `Float(Float16)` and F16C do
/// ```
@inlinable @inline(__always)
func widenHalfBits(_ h: SIMD8<UInt16>) -> SIMD8<Float> {
    let h32 = zeroExtend(h)
    let sign = (h32 & 0x8000) &<< 16
    let magnitude = (h32 & 0x7FFF) &<< 13
    let exponent = unsafeBitCast(h32 & 0x7C00, to: I8x32.self)
    let isSpecial = negativeMask((exponent &+ 0x0400) &<< 16)  // e = 31 carries into bit 31
    let isSubnormal = negativeMask(exponent &- 1)               // e = 0
    let normal = magnitude &+ (112 << 23)
    let isNaN = negativeMask(0 &- unsafeBitCast(magnitude & 0x7F_E000, to: I8x32.self))  // fraction ≠ 0
    let special = (magnitude &+ (224 << 23)) | (isNaN & 0x40_0000)
    // 113 << 23 is 2⁻¹⁴; adding it makes the subnormal a normal Float32.
    let shifted = unsafeBitCast(magnitude &+ (113 << 23), to: SIMD8<Float>.self)
    let subnormal = unsafeBitCast(shifted - 0x1p-14, to: U8x32.self)
    let bits = selectLanes(isSubnormal, subnormal, selectLanes(isSpecial, special, normal))
    return unsafeBitCast(bits | sign, to: SIMD8<Float>.self)
}

/// Rounds eight Float32 lanes to binary16 bit patterns, to nearest, ties to even.
///
/// On |x| (bits a, sign restored at the end):
/// ```
/// |x| ≥ 65536 or NaN:    inf (0x7C00), or a quiet NaN keeping the payload's top bits
/// |x| < 2⁻¹⁴:            bits of (|x| + 0.5) − bits of 0.5   (the FPU rounds to the 2⁻²⁴ grid)
/// otherwise:             (a − 112·2²³ + 0x0FFF + bit 13 of a) >> 13
/// ```
/// The last line rounds the 13 dropped bits to nearest, ties to even; a carry
/// out of the fraction bumps the exponent, so [65520, 65536) overflows to inf.
@inlinable @inline(__always)
func narrowHalfBits(_ v: SIMD8<Float>) -> SIMD8<UInt16> {
    let f = unsafeBitCast(v, to: U8x32.self)
    let sign = f & 0x8000_0000
    let a = f ^ sign
    let ai = unsafeBitCast(a, to: I8x32.self)
    let isNaN = negativeMask(0x7F80_0000 &- ai)
    let isSmall = negativeMask(ai &- 0x3880_0000)   // below 2⁻¹⁴
    let isLarge = ~negativeMask(ai &- 0x4780_0000)  // 65536 or more
    let odd = (a &>> 13) & 1
    let normal = (a &+ 0xC800_0FFF &+ odd) &>> 13  // 0xC8000000 = −112 << 23
    let sum = unsafeBitCast(a, to: SIMD8<Float>.self) + 0.5
    let subnormal = unsafeBitCast(sum, to: U8x32.self) &- 0x3F00_0000
    let nan = 0x7E00 | ((a &>> 13) & 0x3FF)
    let large = selectLanes(isNaN, nan, U8x32(repeating: 0x7C00))
    let bits = selectLanes(isLarge, large, selectLanes(isSmall, subnormal, normal))
    return lowHalves(bits | (sign &>> 16))
}

/// Widens one binary16 bit pattern exactly (the scalar twin of `widenHalfBits`,
/// for loop tails in a build without F16C): a normal value's exponent is
/// rebiased; zero and subnormals are m·2⁻²⁴ (m < 2¹⁰, exact in Float32); ±inf and
/// NaN get exponent 255, a NaN its quiet bit.
@inlinable @inline(__always)
func widenHalfBit(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) &<< 16, e = UInt32(h &>> 10) & 0x1F, m = UInt32(h & 0x3FF)
    let bits: UInt32
    switch e {
    case 0: bits = (Float(m) * 0x1p-24).bitPattern
    case 31: bits = 0x7F80_0000 | (m &<< 13) | (m != 0 ? 0x40_0000 : 0)
    default: bits = ((e &+ 112) &<< 23) | (m &<< 13)
    }
    return Float(bitPattern: bits | sign)
}
