// Shared set-up of the tests of welford_avx512.c's gradient sums
// (`WelfordWideTests+Backward.swift`), and the 16-bit forward's Welford lanes
// on the same data: the forward ran in that file's C loop until `s16` and now
// runs the Swift loop, which prefetches along far-apart runs (`PrefetchAhead`)
// into L2. A prefetch is a hint: the lanes and the block moments with and
// without it must have the same bits on runs of 64…17 000 values, 1–40 runs a
// stride apart, steps past the weight table (> 512 steps), data far from zero
// (mean 1e3, std 0.1 in Float16), near Float16's limit, constant blocks,
// BFloat16 values near 1e30 (the Float32 lanes overflow and the block is redone
// in Float64) and random 16-bit patterns (NaN, ±∞, subnormals). The forward
// kernels must not call the C loop (its call count stays 0).

import CNormSupport
import Foundation
import Testing
@testable import NormKernels

/// Serializes the tests that switch the Welford loop (a process-wide flag).
private let welfordSwitch = NSLock()

@Suite(.serialized) struct WelfordWideTests {
    /// Whether this build and CPU run the C loop for 16-bit blocks.
    var available: Bool { nk_build_has_fma() != 0 && nk_avx512_welford_detect() != 0 }

    /// `body` with the C loop on, then off, with the C loop calls of each on this thread.
    func twoWays<R>(_ body: () throws -> R) rethrows -> [(result: R, calls: UInt64)] {
        welfordSwitch.lock()
        defer { _ = nk_avx512_welford_set(1); welfordSwitch.unlock() }
        var out: [(R, UInt64)] = []
        for on in [1, 0] as [Int32] {
            _ = nk_avx512_welford_set(on)
            let c0 = nk_welford512_thread_calls()
            let r = try body()
            out.append((r, nk_welford512_thread_calls() - c0))
        }
        return out
    }

    func bits(_ m: Moments) -> [UInt64] { [m.count.bitPattern, m.mean.bitPattern, m.m2.bitPattern] }

    func bits(_ l: BlockMoments.Lanes) -> [UInt32] {
        [l.m0, l.m1, l.m2, l.m3, l.s0, l.s1, l.s2, l.s3].flatMap { v in (0..<8).map { v[$0].bitPattern } }
    }

    func stats(_ s: SavedStatistics) -> [UInt64] { (s.mean + s.invStd).map(\.bitPattern) }

    func bytes<T>(_ a: [T]) -> [UInt8] { a.withUnsafeBytes { Array($0) } }

    /// Bytes that differ (a count, so that a failure prints a number, not the arrays).
    func differing(_ a: [UInt8], _ b: [UInt8]) -> Int {
        a.count == b.count ? zip(a, b).filter { $0 != $1 }.count : max(a.count, b.count)
    }

    /// Test data of one kind, rounded to E.
    func data<E: NormElement>(_: E.Type, _ kind: String, _ count: Int, _ rng: inout SplitMix64) -> [E] {
        func normal() -> Double {
            let u = max(rng.unit(), 1e-300), v = rng.unit()
            return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)
        }
        switch kind {
        case "unit": return (0..<count).map { _ in E.narrow(Float(normal())) }
        case "far": return (0..<count).map { _ in E.narrow(Float(1000 + 0.1 * normal())) }
        case "limit": return (0..<count).map { _ in E.narrow(Float(60000 + 4000 * normal())) }
        case "constant": return [E](repeating: E.narrow(3.25), count: count)
        case "huge": return (0..<count).map { _ in E.narrow(Float(1e30 * (1 + 0.1 * normal()))) }
        default: return (0..<count).map { _ in unsafeBitCast(UInt16(truncatingIfNeeded: rng.next()), to: E.self) }
        }
    }

    func kinds<E: NormElement>(_: E.Type) -> [String] {
        E.self == BFloat16.self ? ["unit", "far", "constant", "huge", "patterns"]
                                : ["unit", "far", "limit", "constant", "patterns"]
    }

    /// The forward's Welford lanes and block moments with and without the prefetches, bit for bit.
    func blocks<E: NormElement>(_: E.Type) {
        for (length, segments) in [(64, 1), (96, 3), (100, 40), (255, 2), (256, 1), (576, 3), (3136, 2),
                                   (4096, 1), (5000, 1), (17000, 1)] {
            for kind in kinds(E.self) {
                var rng = SplitMix64("welford wide \(E.self) \(length) \(segments) \(kind)")
                let stride = length + 40, following = segments * stride + 24
                let x = data(E.self, kind, following + segments * stride, &rng)
                let context = "\(E.self) \(kind) \(segments) × \(length)"
                x.withUnsafeBufferPointer { b in
                    let p = b.baseAddress!
                    let pivot = BlockMoments.blockPivot(p, length: length, stride: stride, segments: segments)
                    let c0 = nk_welford512_thread_calls()
                    let prefetching = BlockMoments.segmented(p, length: length, stride: stride, segments: segments,
                                                             following: following)
                    let plain = BlockMoments.segmented(p, length: length, stride: stride, segments: segments)
                    let lanesPrefetching = BlockMoments.welfordLanes32(
                        p, length: length, stride: stride, segments: segments, pivot: pivot, following: following,
                        PrefetchAhead.self)
                    let lanesPlain = BlockMoments.welfordLanes32(
                        p, length: length, stride: stride, segments: segments, pivot: pivot, following: 0,
                        NoPrefetch.self)
                    #expect(bits(prefetching) == bits(plain), "\(context): moments with and without prefetches")
                    if kind != "patterns" && kind != "huge" {
                        // Finite lanes: every bit of every lane (NaN lanes are redone in Float64).
                        #expect(bits(lanesPrefetching) == bits(lanesPlain), "\(context): lanes")
                    }
                    #expect(nk_welford512_thread_calls() == c0, "\(context): the forward called the C loop")
                }
            }
        }
    }

    @Test func float16Blocks() { blocks(Float16.self) }
    @Test func bfloat16Blocks() { blocks(BFloat16.self) }

    /// BatchNorm NCHW training forward (runs of ≥ 256 values that prefetch, and grouped short runs)
    /// on 1 and 3 threads: the same bits, and never the C loop.
    func kernels<E: NormElement>(_: E.Type) throws {
        let shapes = [TensorShape(n: 3, c: 4, h: 24, w: 24), TensorShape(n: 2, c: 3, h: 70, w: 70),
                      TensorShape(n: 40, c: 3, h: 10, w: 10)]
        for kind in ["unit", "far", "constant"] {
            for (index, shape) in shapes.enumerated() {
                var rng = SplitMix64("welford wide kernels \(E.self) \(index) \(kind)")
                let x = data(E.self, kind, shape.count, &rng)
                let gamma = (0..<shape.c).map { Float(1 + $0) / 4 }, beta = (0..<shape.c).map { Float($0) - 1 }
                var results: [([UInt8], [UInt64])] = []
                for threads in [1, 3] {
                    let threading = Threading(threads: threads, parallelThreshold: 1024, spinMicroseconds: 0)
                    let bn = try BatchNormalization(shape: shape, threading: threading)
                    var y = [E](repeating: E.narrow(0), count: shape.count)
                    let c0 = nk_welford512_thread_calls()
                    let s = try x.withUnsafeBufferPointer { xb in
                        try y.withUnsafeMutableBufferPointer { yb in
                            try gamma.withUnsafeBufferPointer { g in
                                try beta.withUnsafeBufferPointer { b in
                                    try bn.forwardTraining(input: xb, output: yb, scale: g, bias: b)
                                }
                            }
                        }
                    }
                    #expect(nk_welford512_thread_calls() == c0, "BatchNorm \(E.self) \(kind) \(shape): C loop ran")
                    results.append((bytes(y), stats(s)))
                }
                let context = "\(E.self) \(kind) \(shape)"
                #expect(differing(results[1].0, results[0].0) == 0, "BatchNorm \(context): y, 3 threads vs 1")
                #expect(results[1].1 == results[0].1, "BatchNorm \(context): saved statistics, 3 threads vs 1")
            }
        }
    }

    @Test func float16Kernels() throws { try kernels(Float16.self) }
    @Test func bfloat16Kernels() throws { try kernels(BFloat16.self) }
}
