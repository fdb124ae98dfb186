import Foundation
import Testing
@testable import NormKernels

/// The prefetch of grouped short runs (BatchNorm NCHW with small planes past the
/// cache; `PrefetchAhead.run`, docs/PERFORMANCE.md "Short planes past the
/// cache"): when the rows geometry turns it on, and that it never changes a bit.
/// The kernels' own tests use tensors that stay in cache, so the prefetching
/// variant of the statistics loop is reached here directly.
struct ShortRunPrefetchTests {
    @Test("grouped short runs prefetch only past the cache; long runs as before")
    func geometryDecides() {
        let cache = StorePolicy.lastLevelCacheBytes
        // BatchNorm NCHW [N, C, 7, 7]: C units of N runs of 49 values, C·49 apart.
        func rows(n: Int, c: Int, hw: Int) -> RowsGeometry {
            BatchNormPlan.channelRows(TensorShape(n: n, c: c, h: 1, w: hw))
        }
        // Small: 64·512·49 values (6.4 MB) against a counted cache of ≥ 24 MiB here;
        // on a smaller counted cache this case may prefetch, so only check the rule.
        let small = rows(n: 64, c: 512, hw: 49)
        #expect(small.segmentsPerBlock > 1)
        #expect(small.prefetchesAhead == StorePolicy.twoPassStreams(64 * 512 * 49, cache: cache))
        // Past any plausible cache: 3 · cache bytes of Float32.
        let n = max(64, 3 * cache / (4 * 2048 * 49) + 1)
        let large = rows(n: n, c: 2048, hw: 49)
        #expect(large.segmentsPerBlock > 1)
        #expect(large.prefetchesAhead)
        // One sample: the runs are one contiguous unit, nothing to prefetch along.
        #expect(!rows(n: 1, c: 2048, hw: 49).prefetchesAhead)
        // Long runs prefetch step by step whatever the size, as before.
        #expect(rows(n: 8, c: 16, hw: 3136).prefetchesAhead)
    }

    @Test("the prefetching statistics loop gives the bits of the plain one", arguments: [49, 7, 8, 63, 196])
    func sameBits(length: Int) {
        // 40 runs of `length` values, 3·length + 5 apart, values with an offset.
        let stride = 3 * length + 5, segments = 40
        var x = [Float](repeating: 0, count: segments * stride + length)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in x.indices {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            x[i] = 1000 + Float(Int(truncatingIfNeeded: state >> 40) % 2001 - 1000) / 997
        }
        x.withUnsafeBufferPointer { b in
            let p = b.baseAddress!
            let plain = BlockMoments.segmented(p, length: length, stride: stride, segments: segments)
            // `following` as a worker's next block: prefetches run past this block
            // (harmless: a prefetch never faults, even past the buffer).
            for following in [segments * stride, 7, -stride] {
                let ahead = BlockMoments.segmented(p, length: length, stride: stride, segments: segments,
                                                   following: following)
                #expect(ahead.count.bitPattern == plain.count.bitPattern)
                #expect(ahead.mean.bitPattern == plain.mean.bitPattern)
                #expect(ahead.m2.bitPattern == plain.m2.bitPattern)
            }
            // And against a Float64 reference, so the test would see a broken loop.
            let values = (0..<segments).flatMap { s in (0..<length).map { Double(p[s * stride + $0]) } }
            let mean = values.reduce(0, +) / Double(values.count)
            let m2 = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
            #expect(plain.count == Double(values.count))
            #expect(abs(plain.mean - mean) <= 1e-4)
            #expect(abs(plain.m2 - m2) <= 1e-4 * m2)
        }
    }
}
