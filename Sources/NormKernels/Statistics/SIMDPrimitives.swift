// The vector vocabulary of every microkernel: 8 Float32 lanes (`F8`, one AVX
// register), unaligned loads and stores, the multiply-add that fuses where the
// target has FMA, Float64 widening of lanes, and the two ways an output loop
// stores a vector (through the cache, or streaming past it).

import CNormSupport

@usableFromInline typealias F8 = SIMD8<Float>

/// 8 lanes from `p` (Float: `F8`; Double: `D8`), unaligned.
@inline(__always)
func load8<S: SIMDScalar>(_ p: UnsafePointer<S>) -> SIMD8<S> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<S>.self)
}

/// 8 lanes to `p`, unaligned (through the cache).
@inline(__always)
func store8<S: SIMDScalar>(_ v: SIMD8<S>, _ p: UnsafeMutablePointer<S>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<S>.self)
}

/// a·b + c, fused where the build targets FMA (see `nk_muladd8`).
@inline(__always)
func muladd(_ a: F8, _ b: F8, _ c: F8) -> F8 { nk_muladd8(a, b, c) }

/// a·b + c for one value, rounded as `muladd` rounds each lane.
@inline(__always)
func muladd(_ a: Float, _ b: Float, _ c: Float) -> Float { nk_muladd1(a, b, c) }

/// Eight Float64 lanes: where Float32 lanes are folded into wider sums.
typealias D8 = SIMD8<Double>

/// The 8 lanes of `v` widened exactly to Float64.
@inline(__always)
func widened(_ v: F8) -> D8 {
    D8(Double(v[0]), Double(v[1]), Double(v[2]), Double(v[3]), Double(v[4]), Double(v[5]), Double(v[6]), Double(v[7]))
}

/// Lane sum in Float64, lanes in order.
@inline(__always)
func laneSum64(_ v: F8) -> Double {
    var s = 0.0
    for l in 0..<8 { s += Double(v[l]) }
    return s
}

/// How the output loops store a vector: through the cache, or streaming.
///
/// Streaming stores are weakly ordered; the fence that makes them visible to
/// other threads runs once per work range in `Parallel.forEach`, not per loop
/// (an sfence waits for the write-combining buffers to drain: one per 4 KiB
/// LayerNorm row cost more than a tenth of the pass).
protocol VectorStore {
    /// Values to store one at a time before `p` is aligned for `store`.
    static func prologue<E: NormElement>(_ p: UnsafeMutablePointer<E>, _ n: Int) -> Int
    /// Eight Float32 lanes stored as eight `E` values (`E.store8`: one rounding).
    static func store<E: NormElement>(_ v: F8, _ p: UnsafeMutablePointer<E>)
    /// Eight 32-bit words (16 BFloat16 values of a pair loop, BFloat16Pairs.swift) stored at `p`.
    static func storeWords(_ w: SIMD8<UInt32>, _ p: UnsafeMutableRawPointer)
    /// Whether the stores are non-temporal (for the C loops of `BFloat16Hardware.h`).
    static var streams: Bool { get }
}

enum CachedStore: VectorStore {
    static var streams: Bool { false }
    @inline(__always) static func prologue<E: NormElement>(_ p: UnsafeMutablePointer<E>, _ n: Int) -> Int { 0 }
    @inline(__always) static func store<E: NormElement>(_ v: F8, _ p: UnsafeMutablePointer<E>) { E.store8(v, p) }
}

enum StreamingStore: VectorStore {
    static var streams: Bool { true }
    /// Bytes of one streaming store: eight values (32 for Float, 16 for 16-bit types).
    @inline(__always) static func alignment<E: NormElement>(_: E.Type) -> Int { 8 * MemoryLayout<E>.stride }

    /// Whether `p` is aligned for `store` (kernels that stream rows whole check their output).
    @inline(__always) static func isAligned<E: NormElement>(_ p: UnsafeMutablePointer<E>) -> Bool {
        Int(bitPattern: UInt(bitPattern: p)) & (alignment(E.self) - 1) == 0
    }

    /// Non-temporal vector stores need the eight values' alignment.
    @inline(__always) static func prologue<E: NormElement>(_ p: UnsafeMutablePointer<E>, _ n: Int) -> Int {
        let a = alignment(E.self)
        let misaligned = Int(bitPattern: UInt(bitPattern: p)) & (a - 1)
        return misaligned == 0 ? 0 : min(n, (a - misaligned) / MemoryLayout<E>.stride)
    }
    /// `E.stream8`: Float `movntps` of 32 bytes, 16-bit types 16 bytes (`nk_stream8h`).
    @inline(__always) static func store<E: NormElement>(_ v: F8, _ p: UnsafeMutablePointer<E>) {
        E.stream8(v, p)
    }
}
