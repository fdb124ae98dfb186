/// A tensor element type the kernels read and write: `Float`, `Float16`, `BFloat16`.
///
/// Every statistic and every accumulation is Float32 (or wider): values are widened on
/// load, eight at a time, and each output is rounded once from its Float32 result.
/// Kernels are generic over `Element` and specialized at compile time (the
/// conformances are `@inlinable`), so a Float32 call runs the same code as before.
public protocol NormElement: BitwiseCopyable, Sendable {
    /// Eight contiguous values widened to Float32 lanes.
    static func load8(_ p: UnsafePointer<Self>) -> SIMD8<Float>
    /// Eight Float32 lanes rounded (to nearest, ties to even) and stored contiguously.
    static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Self>)
    /// As `store8` (the same bits), with a non-temporal store that bypasses the
    /// cache; `p` is aligned to the eight values' size (32 bytes for Float, 16 for
    /// 16-bit types). The output loops use it where their `StorePolicy` streams.
    static func stream8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Self>)
    /// One value widened exactly to Float32.
    static func widen(_ v: Self) -> Float
    /// One Float32 value rounded to nearest, ties to even (NaN stays NaN).
    static func narrow(_ v: Float) -> Self
}

extension NormElement {
    /// A conforming type without a streaming store of its own stores through the cache.
    @inlinable @inline(__always)
    public static func stream8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Self>) { store8(v, p) }
}
