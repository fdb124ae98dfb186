// Runs shorter than 8 values (BatchNorm NCHW on planes of 1–7 values, e.g. 2×2):
// the statistics and gradient sums that take them a different way, bit for bit
// the kernels they replace.
//
// - Moments (`BlockMoments.tinyRunLanes`, eight units in Float64 lanes): the
//   geometry's per-unit moments bitwise the tree merge of `segmented` block by
//   block (the unchanged per-block kernel), for BatchNorm NCHW geometries with
//   one and two blocks per channel, channel counts that leave 1–7 units in the
//   last group, rows of 1–7 values (segments of one unit), 1, 2 and 3 threads
//   (whole units per worker and the split strategy), Float, Float16 and
//   BFloat16, and channels holding NaN, +∞ and values near 1e30 (the Float64
//   fallback per lane).
// - Sums (`BlockGradients.tinyRun` inside `shortRunSums`): every run's Σg and
//   Σg·x̂ bitwise `contiguous`'s for that run, mask or not, NaN and ∞ in dy,
//   channel ranges not starting at 0, and the prefetch callback at the same
//   points as before.
// On one thread the call counters (`nk_tiny_moments_thread_calls`,
// `nk_tiny_sums_thread_calls`) prove the new loops ran for runs of 1–7 values
// and did not for 8 and 9 (controls, the unchanged kernels).

import CNormSupport
import Testing
@testable import NormKernels

private let streams = SeededStreams(salt: 0x3A11_4D2F)

@Suite struct TinyRunStatisticsTests {
    static let lengths = Array(1...9)
    /// Runs for the sums: the tiny ones, then `runs`' vector paths (one accumulator
    /// pair below 32 values, four from 32) with and without a tail.
    static let sumLengths = lengths + [15, 16, 17, 24, 25, 31, 32, 33, 40, 63]

    /// BatchNorm NCHW channel geometries (one block per channel; two blocks, the
    /// second partial; three channels, split across workers when blocks > 1) and
    /// rows of `hw` values (LayerNorm-like: one segment per unit).
    static func geometries(_ hw: Int) -> [(String, RowsGeometry)] {
        let blockRuns = RowsGeometry.defaultBlockLength / hw
        let shapes = [TensorShape(n: 5, c: 13, h: 1, w: hw, layout: .nchw),
                      TensorShape(n: blockRuns + 37, c: 11, h: hw, w: 1, layout: .nchw),
                      TensorShape(n: blockRuns + 5, c: 3, h: 1, w: hw, layout: .nchw)]
        return shapes.map { ("batchnorm \($0)", BatchNormPlan.channelRows($0)) }
            + [("rows 37x\(hw)", RowsGeometry(units: 37, segmentLength: hw, unitStride: hw))]
    }

    @Test("moments of runs of 1–7 values: bitwise segmented block by block", arguments: lengths)
    func moments(hw: Int) {
        for (name, g) in Self.geometries(hw) {
            checkMoments(Float.self, name, g, hw)
            checkMoments(Float16.self, name, g, hw)
            checkMoments(BFloat16.self, name, g, hw)
        }
    }

    private func checkMoments<E: NormElement>(_: E.Type, _ name: String, _ g: RowsGeometry, _ hw: Int) {
        let count = g.units * g.unitElements
        var rng = streams.generator(UInt64(count) &* 31 &+ UInt64(MemoryLayout<E>.size))
        for special in [false, true] {
            var values = rng.normals(count, mean: 3, std: 2)
            if special {
                // Unit 1: a NaN; unit 2 (if any): +∞; the last unit: values near 1e30 (finite in Float64).
                let big: Float = E.self == Float.self ? 1e30 : E.self == BFloat16.self ? 1e30 : 6e4
                for u in 0..<g.units {
                    let b = g.block(u * g.blocksPerUnit)
                    if u == 1 { values[b.offset + (b.count - 1)] = .nan }
                    if u == 2 && u < g.units - 1 { values[b.offset] = .infinity }
                    if u == g.units - 1 {
                        for s in 0..<b.segmentCount { values[b.offset + s * g.segmentStride] = s % 2 == 0 ? big : -big }
                    }
                }
            }
            let x = values.map { E.narrow($0) }
            x.withUnsafeBufferPointer { xb in
                let xp = xb.baseAddress!
                // The unchanged per-block kernel, merged in the geometry's tree.
                let expected: [Moments] = (0..<g.units).map { u in
                    let parts = (0..<g.blocksPerUnit).map { i -> Moments in
                        let b = g.block(u * g.blocksPerUnit + i)
                        return BlockMoments.segmented(xp + b.offset, length: b.count, stride: g.segmentStride,
                                                      segments: b.segmentCount)
                    }
                    return parts.withUnsafeBufferPointer { Moments.treeMerge($0) }
                }
                for threads in [1, 2, 3] {
                    let arena = Arena()
                    let out = arena.take(Moments.self, count: g.units)
                    let before = nk_tiny_moments_thread_calls()
                    g.reduce(xp, statistic: .moments, threading: Threading(threads: threads, parallelThreshold: 1),
                             workspace: arena, into: out)
                    let what = "\(E.self) \(name) special \(special) \(threads) threads"
                    let bad = (0..<g.units).first {
                        out[$0].count.bitPattern != expected[$0].count.bitPattern
                            || out[$0].mean.bitPattern != expected[$0].mean.bitPattern
                            || out[$0].m2.bitPattern != expected[$0].m2.bitPattern
                    }
                    #expect(bad == nil, "moments \(what): first difference at unit \(bad ?? -1)")
                    if threads == 1 {
                        #expect((nk_tiny_moments_thread_calls() > before) == (hw < 8), "lanes ran \(what)")
                    }
                    #expect(out[0].count == Double(g.segments * hw), "count \(what)")
                }
            }
        }
    }

    @Test("gradient sums of runs of 1–63 values: bitwise contiguous run by run", arguments: sumLengths)
    func sums(n: Int) {
        checkSums(Float.self, n)
        checkSums(Float16.self, n)
        checkSums(BFloat16.self, n)
    }

    private func checkSums<E: NormElement>(_: E.Type, _ n: Int) {
        let c = 19
        var rng = streams.generator(UInt64(n) &* 7919 &+ UInt64(MemoryLayout<E>.size))
        var dyValues = rng.normals(c * n)
        dyValues[2 * n] = .nan                 // channel 2: NaN (the `contiguous` redo)
        dyValues[5 * n + n - 1] = .infinity    // channel 5: +∞
        for i in 0..<n { dyValues[7 * n + i] = -0.0 }   // channel 7: Σg of −0s (the sign of a zero lane sum)
        let x = rng.normals(c * n, mean: 1, std: 3).map { E.narrow($0) }
        let dy = dyValues.map { E.narrow($0) }
        let mask = rng.normals(c * n).map { E.narrow($0) }
        let arena = Arena()
        let xhat = CoefficientTable(count: c, in: arena)
        let p0 = rng.normals(c), s0 = rng.uniforms(c, 0.2...3), t0 = rng.normals(c)
        for ch in 0..<c { xhat[ch] = AffineCoefficients(pivot: p0[ch], scale: s0[ch], shift: t0[ch]) }
        let lanes = UnsafeMutablePointer<F8>.allocate(capacity: BlockGradients.runLanes)
        defer { lanes.deallocate() }
        let partials = arena.take(GradientSums.self, count: c)
        for withMask in [false, true] {
            for channels in [0..<c, 3..<14] {
                for ch in 0..<c { partials[ch] = GradientSums(dy: -1, dyXhat: -1) }
                let before = nk_tiny_sums_thread_calls()
                x.withUnsafeBufferPointer { xp in
                    dy.withUnsafeBufferPointer { dp in
                        mask.withUnsafeBufferPointer { mp in
                            BlockGradients.shortRunSums(xp.baseAddress!, dp.baseAddress!,
                                                        mask: withMask ? mp.baseAddress! : nil, n: n,
                                                        channels: channels, xhat: xhat, lanes: lanes, into: partials)
                        }
                    }
                }
                let what = "\(E.self) n \(n) mask \(withMask) channels \(channels)"
                #expect((nk_tiny_sums_thread_calls() > before) == (n < 8), "tiny sums ran \(what)")
                for ch in channels {
                    let o = ch * n
                    let expected = x.withUnsafeBufferPointer { xp in
                        dy.withUnsafeBufferPointer { dp in
                            mask.withUnsafeBufferPointer { mp in
                                BlockGradients.contiguous(xp.baseAddress! + o, dp.baseAddress! + o, n, xhat[ch],
                                                          mask: withMask ? mp.baseAddress! + o : nil, gamma: nil)
                            }
                        }
                    }
                    #expect(partials[ch].dy.bitPattern == expected.dy.bitPattern
                                && partials[ch].dyXhat.bitPattern == expected.dyXhat.bitPattern,
                            "sums \(what) channel \(ch): \(partials[ch]) vs \(expected)")
                }
                if channels.lowerBound > 0 { #expect(partials[0].dy == -1, "slot outside the range written \(what)") }
            }
        }
    }
}
