// The AVX-512 Welford lanes of 16-bit blocks (nk_welford512_lanes32_f16 /
// _bf16, WelfordWide.swift) against the Swift loop they replace, bit for bit:
// - the lanes alone (`BlockMoments.welfordLanes32`, with and without the
//   prefetches) and the block moments built from them (`BlockMoments.segmented`)
//   on runs of 64…5000 values, 1–40 runs a stride apart, steps past the
//   weight table (> 512 steps), data far from zero (mean 1e3, std 0.1 in
//   Float16), near Float16's limit, constant blocks, BFloat16 values near 1e30
//   (the Float32 lanes overflow and the block is redone in Float64) and random
//   16-bit patterns (NaN, ±∞, subnormals);
// - BatchNorm NCHW training (long runs with prefetches, runs split into two
//   blocks, short runs grouped into blocks), InstanceNorm NCHW and GroupNorm
//   NCHW forward: outputs and saved statistics, 1 and 3 threads.
// Only blocks that prefetch along far-apart runs (`PrefetchAhead`) take the
// C loop; the others must not call it.
// Each run with the C loop is compared with the same call with it off
// (`nk_avx512_welford_set(0)`); the runs with it on must call it (this
// thread's count) wherever a block has a 32-value stage, and those with it off
// never. On a CPU or build without the loop both runs are the Swift loop and
// only the counts are skipped.

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

    func blocks<E: NormElement>(_: E.Type) {
        let on = available
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
                    let runs = twoWays {
                        (BlockMoments.segmented(p, length: length, stride: stride, segments: segments,
                                                following: following),
                         BlockMoments.segmented(p, length: length, stride: stride, segments: segments),
                         BlockMoments.welfordLanes32(p, length: length, stride: stride, segments: segments,
                                                     pivot: pivot, following: following, PrefetchAhead.self),
                         BlockMoments.welfordLanes32(p, length: length, stride: stride, segments: segments,
                                                     pivot: pivot, following: 0, NoPrefetch.self))
                    }
                    let (wide, swift) = (runs[0].result, runs[1].result)
                    #expect(bits(wide.0) == bits(swift.0), "\(context): moments (prefetching)")
                    #expect(bits(wide.1) == bits(swift.1), "\(context): moments")
                    #expect(bits(wide.0) == bits(swift.1), "\(context): moments with and without prefetches")
                    if kind != "patterns" && kind != "huge" {
                        // Finite lanes: every bit of every lane (NaN lanes are redone in Float64).
                        #expect(bits(wide.2) == bits(swift.2), "\(context): lanes (prefetching)")
                        #expect(bits(wide.3) == bits(swift.3), "\(context): lanes")
                    }
                    if on {
                        // Only the prefetching calls: segmented with `following` (stage 1 from 64
                        // values) and the direct PrefetchAhead call; never the NoPrefetch ones.
                        #expect(runs[0].calls == (length >= 64 ? 2 : 1), "\(context): C loop calls")
                    }
                    #expect(runs[1].calls == 0, "\(context): the C loop ran while off")
                }
            }
        }
    }

    @Test func float16Blocks() { blocks(Float16.self) }
    @Test func bfloat16Blocks() { blocks(BFloat16.self) }

    /// Forward outputs and saved statistics of the NCHW channel kernels, C loop on vs off.
    func kernels<E: NormElement>(_: E.Type) throws {
        let on = available
        let shapes = [TensorShape(n: 3, c: 4, h: 24, w: 24), TensorShape(n: 2, c: 3, h: 70, w: 70),
                      TensorShape(n: 40, c: 3, h: 10, w: 10)]
        for threads in [1, 3] {
            let threading = Threading(threads: threads, parallelThreshold: 1024, spinMicroseconds: 0)
            for kind in ["unit", "far", "constant"] {
                for (index, shape) in shapes.enumerated() {
                    var rng = SplitMix64("welford wide kernels \(E.self) \(index) \(kind)")
                    let x = data(E.self, kind, shape.count, &rng)
                    let gamma = (0..<shape.c).map { Float(1 + $0) / 4 }, beta = (0..<shape.c).map { Float($0) - 1 }
                    let context = "\(E.self) \(kind) \(shape) threads \(threads)"
                    let bn = try BatchNormalization(shape: shape, threading: threading)
                    let runs = try twoWays { () throws -> ([UInt8], SavedStatistics) in
                        var y = [E](repeating: E.narrow(0), count: shape.count)
                        let s = try x.withUnsafeBufferPointer { xb in
                            try y.withUnsafeMutableBufferPointer { yb in
                                try gamma.withUnsafeBufferPointer { g in
                                    try beta.withUnsafeBufferPointer { b in
                                        try bn.forwardTraining(input: xb, output: yb, scale: g, bias: b)
                                    }
                                }
                            }
                        }
                        return (bytes(y), s)
                    }
                    #expect(differing(runs[0].result.0, runs[1].result.0) == 0, "BatchNorm \(context): y")
                    #expect(stats(runs[0].result.1) == stats(runs[1].result.1), "BatchNorm \(context): saved statistics")
                    // Runs of ≥ 256 values far apart prefetch (the first two shapes); grouped short
                    // runs of a tensor in cache do not, and keep the Swift loop.
                    if on && threads == 1 && index < 2 {
                        #expect(runs[0].calls > 0, "BatchNorm \(context): the C loop did not run")
                    }
                    #expect(runs[1].calls == 0, "BatchNorm \(context): the C loop ran while off")
                }
                let inShape = TensorShape(n: 2, c: 3, h: 33, w: 33), gnShape = TensorShape(n: 2, c: 8, h: 20, w: 20)
                var rng = SplitMix64("welford wide instance/group \(E.self) \(kind)")
                let xi = data(E.self, kind, inShape.count, &rng), xg = data(E.self, kind, gnShape.count, &rng)
                let instance = try InstanceNormalization(shape: inShape, threading: threading)
                let group = try GroupNormalization(shape: gnShape, groups: 2, threading: threading)
                let runs = try twoWays { () throws -> ([UInt8], SavedStatistics, [UInt8], SavedStatistics) in
                    var yi = [E](repeating: E.narrow(0), count: inShape.count)
                    var yg = [E](repeating: E.narrow(0), count: gnShape.count)
                    let si = try xi.withUnsafeBufferPointer { xb in
                        try yi.withUnsafeMutableBufferPointer { try instance.forwardTraining(input: xb, output: $0) }
                    }
                    let sg = try xg.withUnsafeBufferPointer { xb in
                        try yg.withUnsafeMutableBufferPointer { try group.forward(input: xb, output: $0) }
                    }
                    return (bytes(yi), si, bytes(yg), sg)
                }
                let context = "\(E.self) \(kind) threads \(threads)"
                #expect(differing(runs[0].result.0, runs[1].result.0) == 0, "InstanceNorm \(context): y")
                #expect(stats(runs[0].result.1) == stats(runs[1].result.1), "InstanceNorm \(context): saved statistics")
                #expect(differing(runs[0].result.2, runs[1].result.2) == 0, "GroupNorm \(context): y")
                #expect(stats(runs[0].result.3) == stats(runs[1].result.3), "GroupNorm \(context): saved statistics")
                // Units read in memory order: no prefetch, the Swift loop.
                #expect(runs[0].calls == 0 && runs[1].calls == 0, "Instance/GroupNorm \(context): C loop calls")
            }
        }
    }

    @Test func float16Kernels() throws { try kernels(Float16.self) }
    @Test func bfloat16Kernels() throws { try kernels(BFloat16.self) }
}
