// Float16 (IEEE binary16) tensors. Three ways to convert eight lanes, chosen so
// that each build gets its fastest one (figures: ns per element, measured on the
// Xeon of NOTES-SWIFT-PERFORMANCE.md, widen / narrow):
// 1. the build converts in hardware: with F16C (`-Xcc -march=x86-64-v3`), one
//    `vcvtph2ps` / `vcvtps2ph` inline through the always-inline C helpers
//    `nk_f16c_load8` / `nk_f16c_round8` (0.05 / 0.05); Swift's own `SIMD8`
//    conversion was left out of line in half the kernels of such a build, a
//    call per 8 values (objdump; HalfPrecision.h). On AArch64, Swift's `SIMD8`
//    conversion;
// 2. a baseline x86-64 build on a CPU with F16C: one call per eight values to a
//    C function compiled for F16C by a target attribute (0.12 / 0.17), where
//    Swift's own conversion would call `__extendhfsf2` / `__truncsfhf2` for each
//    element (2.7 / 3.2);
// 3. a CPU without F16C: the branch-free SSE2 formulas of HalfBits.swift (0.58 / 0.85).
// All three give the same bits as Swift's scalar conversions for every input,
// NaNs included (quieted, sign and payload kept), as ElementTests checks.
// The single-value `widen`/`narrow` (loop tails) use Swift's scalar conversion
// where the build converts in hardware, else integer and SSE2 code of
// HalfBits.swift: no build calls a library routine per element.

import CNormSupport

// Swift has no Float16 on x86-64 macOS; everywhere else it does.
#if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))

extension Float16: NormElement {
    @inlinable @inline(__always)
    public static func load8(_ p: UnsafePointer<Float16>) -> SIMD8<Float> {
        if nk_build_has_f16c() != 0 { return nk_f16c_load8(UnsafeRawPointer(p)) }
        if nk_build_converts_half() != 0 {
            return SIMD8<Float>(UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float16>.self))
        }
        if nk_cpu_has_f16c() != 0 {
            var v = SIMD8<Float>()
            withUnsafeMutableBytes(of: &v) {
                nk_f16c_widen8(UnsafeRawPointer(p), $0.baseAddress!.assumingMemoryBound(to: Float.self))
            }
            return v
        }
        return widenHalfBits(UnsafeRawPointer(p).loadUnaligned(as: SIMD8<UInt16>.self))
    }

    @inlinable @inline(__always)
    public static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float16>) {
        if nk_build_has_f16c() != 0 {
            UnsafeMutableRawPointer(p).storeBytes(of: nk_f16c_round8(v), as: SIMD8<UInt16>.self)
        } else if nk_build_converts_half() != 0 {
            UnsafeMutableRawPointer(p).storeBytes(of: SIMD8<Float16>(v), as: SIMD8<Float16>.self)
        } else if nk_cpu_has_f16c() != 0 {
            nk_f16c_narrow8(v.lowHalf, v.highHalf, UnsafeMutableRawPointer(p))
        } else {
            UnsafeMutableRawPointer(p).storeBytes(of: narrowHalfBits(v), as: SIMD8<UInt16>.self)
        }
    }

    /// As `store8`, with a 16-byte non-temporal store.
    @inlinable @inline(__always)
    public static func stream8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float16>) {
        if nk_build_has_f16c() != 0 {
            nk_stream8h(UnsafeMutableRawPointer(p), nk_f16c_round8(v))
        } else if nk_build_converts_half() != 0 {
            nk_stream8h(UnsafeMutableRawPointer(p), unsafeBitCast(SIMD8<Float16>(v), to: SIMD8<UInt16>.self))
        } else if nk_cpu_has_f16c() != 0 {
            nk_f16c_narrow8_stream(v.lowHalf, v.highHalf, UnsafeMutableRawPointer(p))
        } else {
            nk_stream8h(UnsafeMutableRawPointer(p), narrowHalfBits(v))
        }
    }

    /// One value (the last < 8 of a row or block): Swift's conversion where the
    /// build converts in hardware; otherwise the exact integer widening of
    /// `widenHalfBit`, since Swift's would call `__extendhfsf2`.
    @inlinable @inline(__always)
    public static func widen(_ v: Float16) -> Float {
        if nk_build_converts_half() != 0 { return Float(v) }
        return widenHalfBit(v.bitPattern)
    }

    /// One value: Swift's conversion where the build converts in hardware;
    /// otherwise lane 0 of the SSE2 formulas (`narrowHalfBits`), since Swift's
    /// would call `__truncsfhf2`.
    @inlinable @inline(__always)
    public static func narrow(_ v: Float) -> Float16 {
        if nk_build_converts_half() != 0 { return Float16(v) }
        return Float16(bitPattern: narrowHalfBits(SIMD8(repeating: v))[0])
    }
}

#endif
