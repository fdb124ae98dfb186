// BFloat16 output loops in pairs: 16 values per step read as eight 32-bit
// words, the even-indexed values in one Float32 vector and the odd-indexed in
// another, rounded back into the same words and stored whole
// (`BFloat16Pairs.h` has the bit arithmetic and why it is cheaper).
//
// Only loops whose arithmetic does not depend on the lane a value sits in use
// it: the per-channel (scalar-coefficient) output and dx loops of the channel
// kernels, and the per-column loops once their coefficient tables are
// deinterleaved the same way (`deinterleave`). Every value goes through the
// same operations as in the 8-lane loop, so the outputs are the same bits.
// The moments and gradient-sum loops keep `E.load8`: their lanes accumulate,
// and the order of values within a lane is part of their result.

import CNormSupport

enum BFloat16Pairs {
    typealias Words = SIMD8<UInt32>

    /// Whether the loops over `E` run in pairs in this build: `E` is
    /// `BFloat16` and the build rounds with the integer formula (an AVX-512
    /// BF16 build keeps the 8-lane loops and `vcvtneps2bf16`).
    @inline(__always)
    static func enabled<E: NormElement>(_: E.Type) -> Bool {
        E.self == BFloat16.self && nk_bf16_pairs_enabled() != 0
    }

    /// The 16 values at `p` (BFloat16), widened exactly: values 0, 2, …, 14 and 1, 3, …, 15.
    @inline(__always)
    static func load<E: NormElement>(_ p: UnsafePointer<E>) -> (even: F8, odd: F8) {
        let w = UnsafeRawPointer(p).loadUnaligned(as: Words.self)
        return (nk_bf16_even8(w), nk_bf16_odd8(w))
    }

    /// The gradient g of `gradient8` (dy, 0 where the mask ≤ 0; no γ) for the 16 values at `i`.
    @inline(__always)
    static func gradient<E: NormElement>(_ dy: UnsafePointer<E>, _ mask: UnsafePointer<E>?,
                                         _ i: Int) -> (even: F8, odd: F8) {
        var (e, o) = load(dy + i)
        if let mask {
            let (me, mo) = load(mask + i)
            e.replace(with: F8(), where: me .<= F8())
            o.replace(with: F8(), where: mo .<= F8())
        }
        return (e, o)
    }

    /// A per-column coefficient table reordered for the pair loops: in every
    /// whole 16-column chunk starting at column c, entries c ..< c + 8 hold
    /// columns c, c + 2, …, c + 14 and entries c + 8 ..< c + 16 columns
    /// c + 1, c + 3, …, c + 15. `width` (a multiple of 16) columns are written.
    @inline(__always)
    static func deinterleave(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, width: Int) {
        var c = 0
        while c < width {
            for l in 0..<8 {
                dst[c + l] = src[c + 2 * l]
                dst[c + 8 + l] = src[c + 2 * l + 1]
            }
            c += 16
        }
    }
}

extension VectorStore {
    /// The even and odd lanes of 16 values rounded to BFloat16 and stored at `p`
    /// (`nk_bf16_round_pairs`: the bits of two `store`s of the values in order).
    @inline(__always)
    static func storePairs<E: NormElement>(_ even: F8, _ odd: F8, _ p: UnsafeMutablePointer<E>) {
        storeWords(nk_bf16_round_pairs(even, odd), UnsafeMutableRawPointer(p))
    }
}

extension CachedStore {
    @inline(__always)
    static func storeWords(_ w: BFloat16Pairs.Words, _ p: UnsafeMutableRawPointer) {
        p.storeBytes(of: w, as: BFloat16Pairs.Words.self)
    }
}

extension StreamingStore {
    /// Two 16-byte non-temporal stores (`p` aligned as `prologue` leaves it).
    @inline(__always)
    static func storeWords(_ w: BFloat16Pairs.Words, _ p: UnsafeMutableRawPointer) {
        nk_stream_words8(p, w)
    }
}

/// The BFloat16 output loops that round in hardware (`BFloat16Hardware.h`):
/// taken where this build fuses its multiply-adds (their arithmetic is the
/// Swift loops' only then) and the CPU has AVX-512 BF16. An AVX-512 BF16
/// build rounds inline instead (`BFloat16Pairs.enabled` is false there).
enum BFloat16Hardware {
    @inline(__always)
    static var available: Bool { nk_build_has_fma() != 0 && nk_cpu_rounds_bf16() != 0 }
}
