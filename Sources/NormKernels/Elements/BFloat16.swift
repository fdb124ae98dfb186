// BFloat16 ("brain floating point"): the top 16 bits of a Float32, i.e. 1 sign,
// 8 exponent (bias 127) and 7 fraction bits. Same range as Float32, ~2.4
// decimal digits. Swift has no such type, so this is a 16-bit pattern with the
// two conversions the kernels need:
// - widening is exact: the pattern shifted into the top half of a Float32;
// - narrowing rounds to nearest, ties to even, on the integer bits:
//   ```
//   b = (f + 0x7FFF + bit 16 of f) >> 16        (f: the Float32 bits, not NaN)
//   ```
//   adds just under half an ulp, plus one when the kept part is odd, so an
//   exact tie goes to the even neighbour; a carry out of the fraction moves to
//   the next binade, and values at or past the overflow threshold become ±inf.
//   A NaN keeps its sign and the top of its payload and gets the quiet bit
//   (0x0040), so it never rounds into an infinity.

import CNormSupport

/// A 16-bit floating-point value with Float32's exponent range and a 7-bit fraction.
///
/// `BFloat16` is a storage type for tensors: the kernels widen it exactly to
/// `Float` for every computation and round each result once back to it. Arithmetic
/// is not provided; convert to `Float`, compute, and convert back.
///
/// ```swift
/// let b = BFloat16(3.14159 as Float)   // rounds to 3.140625
/// let f = Float(b)                     // 3.140625, exactly
/// ```
@frozen
public struct BFloat16: Sendable, BitwiseCopyable {
    /// The raw bits: the upper 16 bits of the `Float` with the same value.
    public var bitPattern: UInt16

    /// Creates the value whose raw bits are `bitPattern`.
    ///
    /// - Parameter bitPattern: 1 sign, 8 exponent and 7 fraction bits.
    @inlinable @inline(__always)
    public init(bitPattern: UInt16) {
        self.bitPattern = bitPattern
    }

    /// Rounds a `Float` to the nearest `BFloat16`, ties to even.
    ///
    /// Values whose magnitude reaches the overflow threshold
    /// (greatestFiniteMagnitude + half an ulp) become infinite; a NaN stays a
    /// quiet NaN with the same sign.
    ///
    /// - Parameter value: Any `Float`, including infinities and NaN.
    @inlinable @inline(__always)
    public init(_ value: Float) {
        self.init(bitPattern: bfloat16Bits(value.bitPattern))
    }

    /// Rounds a `Double` to the nearest `BFloat16`, ties to even, with a single rounding.
    ///
    /// The `Double` is first rounded to a `Float` with round-to-odd (truncate,
    /// then set the last bit if anything was dropped), which keeps enough
    /// information for the second rounding to be correct.
    ///
    /// - Parameter value: Any `Double`, including infinities and NaN.
    @inlinable
    public init(_ value: Double) {
        var f = Float(value)
        if !value.isNaN && Double(f) != value {
            if abs(Double(f)) > abs(value) { f = f > 0 ? f.nextDown : f.nextUp }
            f = Float(bitPattern: f.bitPattern | 1)
        }
        self.init(f)
    }

    /// Positive infinity.
    public static var infinity: BFloat16 { BFloat16(bitPattern: 0x7F80) }
    /// A quiet NaN.
    public static var nan: BFloat16 { BFloat16(bitPattern: 0x7FC0) }
    /// The largest finite value, (2 − 2⁻⁷)·2¹²⁷ ≈ 3.39·10³⁸.
    public static var greatestFiniteMagnitude: BFloat16 { BFloat16(bitPattern: 0x7F7F) }
    /// The smallest positive normal value, 2⁻¹²⁶.
    public static var leastNormalMagnitude: BFloat16 { BFloat16(bitPattern: 0x0080) }
    /// The smallest positive subnormal value, 2⁻¹³³.
    public static var leastNonzeroMagnitude: BFloat16 { BFloat16(bitPattern: 0x0001) }

    /// Whether the value is NaN.
    @inlinable
    public var isNaN: Bool { bitPattern & 0x7FFF > 0x7F80 }
}

/// The BFloat16 bits of a Float32 given by its bits `f`, rounded to nearest,
/// ties to even; see the file comment for the formula.
@inlinable @inline(__always)
func bfloat16Bits(_ f: UInt32) -> UInt16 {
    if f & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16(truncatingIfNeeded: f &>> 16) | 0x0040 }
    return UInt16(truncatingIfNeeded: (f &+ 0x7FFF &+ ((f &>> 16) & 1)) &>> 16)
}

extension Float {
    /// Widens a `BFloat16` exactly (every `BFloat16` is a `Float`).
    ///
    /// - Parameter value: The value to widen; NaN stays NaN with its payload.
    @inlinable @inline(__always)
    public init(_ value: BFloat16) {
        self.init(bitPattern: UInt32(value.bitPattern) &<< 16)
    }
}

extension BFloat16: Equatable, Hashable, Comparable {
    /// Compares as `Float` does: −0 equals +0 and NaN equals nothing.
    @inlinable
    public static func == (a: BFloat16, b: BFloat16) -> Bool { Float(a) == Float(b) }

    /// Orders as `Float` does (NaN is unordered).
    @inlinable
    public static func < (a: BFloat16, b: BFloat16) -> Bool { Float(a) < Float(b) }

    /// Hashes the widened `Float`, so that −0 and +0 hash alike.
    @inlinable
    public func hash(into hasher: inout Hasher) { hasher.combine(Float(self)) }
}

extension BFloat16: CustomStringConvertible, ExpressibleByFloatLiteral, ExpressibleByIntegerLiteral {
    /// The shortest decimal text that reads back as the same `Float`.
    public var description: String { Float(self).description }

    /// Rounds the literal (read as a `Double`) once to the nearest `BFloat16`.
    ///
    /// - Parameter value: The literal's value.
    @inlinable
    public init(floatLiteral value: Double) { self.init(value) }

    /// Rounds the integer to the nearest `BFloat16` (exact up to 256 in magnitude).
    ///
    /// - Parameter value: The literal's value.
    @inlinable
    public init(integerLiteral value: Int) { self.init(Double(value)) }
}

extension BFloat16: NormElement {
    /// Widens eight values: each 16-bit pattern moves to the top of a 32-bit lane
    /// (with AVX2 one `vpshufb` of the 16 bytes loaded twice, `nk_bf16_load8`).
    @inlinable @inline(__always)
    public static func load8(_ p: UnsafePointer<BFloat16>) -> SIMD8<Float> {
        if nk_build_has_avx2() != 0 { return nk_bf16_load8(UnsafeRawPointer(p)) }
        let raw = UnsafeRawPointer(p).loadUnaligned(as: SIMD8<UInt16>.self)
        return unsafeBitCast(zeroExtend(raw) &<< 16, to: SIMD8<Float>.self)
    }

    /// Rounds eight lanes to nearest, ties to even (`nk_bf16_round8`, the formula
    /// above on 8 lanes, inline), and stores them.
    @inlinable @inline(__always)
    public static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<BFloat16>) {
        UnsafeMutableRawPointer(p).storeBytes(of: nk_bf16_round8(v), as: SIMD8<UInt16>.self)
    }

    /// As `store8`, with a 16-byte non-temporal store (`nk_stream8h`).
    @inlinable @inline(__always)
    public static func stream8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<BFloat16>) {
        nk_stream8h(UnsafeMutableRawPointer(p), nk_bf16_round8(v))
    }

    @inlinable @inline(__always)
    public static func widen(_ v: BFloat16) -> Float { Float(v) }

    @inlinable @inline(__always)
    public static func narrow(_ v: Float) -> BFloat16 { BFloat16(v) }
}
