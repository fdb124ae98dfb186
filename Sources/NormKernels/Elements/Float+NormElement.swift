// Float32 tensors: loads and stores are the plain unaligned vector moves, and
// widening and narrowing are the identity, so a kernel specialized for `Float`
// compiles to the same loop as before the kernels became generic.

import CNormSupport

extension Float: NormElement {
    @inlinable @inline(__always)
    public static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inlinable @inline(__always)
    public static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    /// `movntps` of the eight lanes (`nk_stream8`), as before the kernels became generic.
    @inlinable @inline(__always)
    public static func stream8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        nk_stream8(p, v)
    }

    @inlinable @inline(__always)
    public static func widen(_ v: Float) -> Float { v }

    @inlinable @inline(__always)
    public static func narrow(_ v: Float) -> Float { v }
}
