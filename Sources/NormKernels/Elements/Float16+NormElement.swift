// Float16 (IEEE binary16) tensors. Three ways to convert eight lanes, chosen so
// that each build gets its fastest one (figures: ns per element, measured on the
// Xeon of NOTES-SWIFT-PERFORMANCE.md, widen / narrow):
// 1. the build converts in hardware (`-Xcc -march=x86-64-v3` enables F16C, and
//    these C flags set the Swift target features too; AArch64 always): Swift's
//    `SIMD8` conversion, one `vcvtph2ps` / `vcvtps2ph` inline (0.05 / 0.05);
// 2. a baseline x86-64 build on a CPU with F16C: one call per eight values to a
//    C function compiled for F16C by a target attribute (0.12 / 0.17), where
//    Swift's own conversion would call `__extendhfsf2` / `__truncsfhf2` for each
//    element (2.7 / 3.2);
// 3. a CPU without F16C: the branch-free SSE2 formulas of HalfBits.swift (0.58 / 0.85).
// All three give the same bits as Swift's scalar conversions for every input,
// NaNs included (quieted, sign and payload kept), as ElementTests checks.
// The single-value `widen`/`narrow` (loop tails) use Swift's scalar conversion.

import CNormSupport

// Swift has no Float16 on x86-64 macOS; everywhere else it does.
#if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))

extension Float16: NormElement {
    @inlinable @inline(__always)
    public static func load8(_ p: UnsafePointer<Float16>) -> SIMD8<Float> {
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
        if nk_build_converts_half() != 0 {
            UnsafeMutableRawPointer(p).storeBytes(of: SIMD8<Float16>(v), as: SIMD8<Float16>.self)
        } else if nk_cpu_has_f16c() != 0 {
            nk_f16c_narrow8(v.lowHalf, v.highHalf, UnsafeMutableRawPointer(p))
        } else {
            UnsafeMutableRawPointer(p).storeBytes(of: narrowHalfBits(v), as: SIMD8<UInt16>.self)
        }
    }

    @inlinable @inline(__always)
    public static func widen(_ v: Float16) -> Float { Float(v) }

    @inlinable @inline(__always)
    public static func narrow(_ v: Float) -> Float16 { Float16(v) }
}

#endif
