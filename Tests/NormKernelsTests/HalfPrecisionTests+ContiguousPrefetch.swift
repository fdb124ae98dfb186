// 16-bit statistics of contiguous units prefetched ahead (`ContiguousPrefetch16`,
// branch dram16): reached on any cache size by forcing the path (`.always`) and
// counted per thread (`nk_prefetch16_thread_blocks`). A prefetch moves no
// value, so the forced path must give (a) the bits of the Float32 kernel on the
// widened tensor (y16 == E.narrow(y32), saved statistics identical), (b) the
// same bits on 1 and 3 threads, and (c) saved statistics near a Float64
// reference, on GroupNorm and InstanceNorm-like (G = C) NCHW units of several
// blocks, including a 10^6-value unit with mean 1e3 and std 1e-1.

import Testing
import CNormSupport
@testable import NormKernels

extension HalfPrecisionTests {
    @Test("Contiguous 16-bit statistics prefetched ahead: Float32 bits, thread-count bits, near Float64")
    func contiguousPrefetch16() throws {
        // (shape, groups, mean, std): units of 6400 values (blocks of 4096 + 2304),
        // InstanceNorm-like units of 4900, and one unit of 10^6 values far from zero.
        let cases: [(TensorShape, Int, Double, Double)] = [
            (TensorShape(n: 2, c: 8, h: 40, w: 40), 2, 0.5, 2),
            (TensorShape(n: 2, c: 3, h: 70, w: 70), 3, -3, 0.7),
            (TensorShape(n: 1, c: 4, h: 500, w: 500), 1, 1000, 0.1),
        ]
        ContiguousPrefetch16.set(.always)
        defer { ContiguousPrefetch16.set(.sizeRule) }
        func check<E: SixteenBitElement & GroupNormCalls>(_: E.Type) throws {
            for (index, (shape, groups, mean, std)) in cases.enumerated() {
                let context = "\(E.typeName) GroupNorm \(shape) G=\(groups) mean \(mean) std \(std)"
                var rng = SplitMix64(seed: 0xD16 + UInt64(index))
                let x16 = rng.normals(shape.count, mean: mean, std: std).map { E.narrow($0) }
                let x32 = x16.map { E.widen($0) }
                var first: [UInt16]?
                for threads in [1, 3] {
                    let threading = Threading(threads: threads, parallelThreshold: 1024, spinMicroseconds: 0)
                    let gn = try GroupNormalization(shape: shape, groups: groups, threading: threading)
                    let before = nk_prefetch16_thread_blocks()
                    let half = try runGroupNorm(gn, x: x16, gamma: nil, beta: nil)
                    let blocks = nk_prefetch16_thread_blocks() - before
                    // On one thread every block is reduced on this thread.
                    if threads == 1 { #expect(blocks > 0, "\(context): prefetching path not taken") }
                    let single = try runGroupNorm(gn, x: x32, gamma: nil, beta: nil)
                    #expect(half.y.map(\.bits) == single.y.map { E.narrow($0).bits }, "\(context), \(threads) threads: y")
                    expectIdentical(half.saved, single.saved, context)
                    if let first {
                        #expect(half.y.map(\.bits) == first, "\(context): \(threads) threads differ from 1")
                    } else {
                        first = half.y.map(\.bits)
                    }
                    // Saved statistics against Float64 (compensated sums of the widened values).
                    let reference = Reference.groupNorm(x32, shape, groups: groups)
                    for s in 0..<reference.statistics.count {
                        let m = reference.mean[s], r = reference.invStd[s]
                        #expect(abs(half.saved.mean[s] - m) <= 1e-6 * max(std, abs(m) * 1e-3),
                                "\(context): mean[\(s)] \(half.saved.mean[s]) vs \(m)")
                        #expect(abs(half.saved.invStd[s] - r) <= 1e-5 * r,
                                "\(context): invStd[\(s)] \(half.saved.invStd[s]) vs \(r)")
                    }
                }
                // The plain loop (no prefetch) gives the same bits.
                ContiguousPrefetch16.set(.never)
                let gn = try GroupNormalization(shape: shape, groups: groups)
                let before = nk_prefetch16_thread_blocks()
                let plain = try runGroupNorm(gn, x: x16, gamma: nil, beta: nil)
                #expect(nk_prefetch16_thread_blocks() == before, "\(context): prefetched with .never")
                #expect(plain.y.map(\.bits) == first, "\(context): plain loop differs")
                ContiguousPrefetch16.set(.always)
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }
}
