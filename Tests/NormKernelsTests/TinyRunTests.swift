// BatchNorm NCHW on planes of 2–7 values (TinyRuns.swift): the passes in memory
// order take a sample's C·H·W values as one row of per-position coefficients.
//
// - Backward dx (`channelPasses`, the short-run path): bitwise the per-element
//   formula of `BlockGradients.apply`, dx = a·g + (b·(x − p) + c) with g = dy
//   (0 where mask ≤ 0), for a table given up front (dx alone, as
//   SynchronizedBatchNormalization calls it) and for a table filled by
//   `finalize` from the sums (the fused block path when the inputs exceed half
//   of L2, the phased path otherwise); x read or not, mask or not, in place over
//   x and over dy, channel counts not a multiple of 8, 1 and 3 threads, Float,
//   Float16 and BFloat16. The sums (unchanged code) must equal, bit for bit,
//   those of the same call without dx.
// - Forward with NaN and ±∞ in x: inference equals the per-element formula
//   (NaN where the formula gives NaN).
// On one thread the thread's call counter (`nk_tiny_runs_thread_calls`) proves
// the tiny-run pass ran, and that it did not for H·W = 1 or 8.

import CNormSupport
import Testing
@testable import NormKernels

private let streams = SeededStreams(salt: 0x7141_2B5E)

@Suite struct TinyRunTests {
    static let spatials = [1, 2, 3, 4, 5, 6, 7, 8]

    /// Small (the phased path: inputs within L2) and large (fused blocks of
    /// channels: x and dy past L2 for every H·W ≥ 2 on a 2 MiB L2).
    static func shapes(_ hw: Int) -> [TensorShape] {
        [TensorShape(n: 3, c: 11, h: 1, w: hw, layout: .nchw),
         TensorShape(n: 256, c: (1100 / hw) | 1, h: hw, w: 1, layout: .nchw)]
    }

    @Test("BatchNorm NCHW backward dx on planes of 2–7 values: bitwise the per-element formula", arguments: spatials)
    func backward(hw: Int) throws {
        for shape in Self.shapes(hw) {
            try check(Float.self, shape)
            try check(Float16.self, shape)
            try check(BFloat16.self, shape)
        }
    }

    private func check<E: NormElement>(_: E.Type, _ shape: TensorShape) throws {
        var rng = streams.generator(UInt64(shape.count) &* 17 &+ UInt64(MemoryLayout<E>.size))
        let c = shape.c, count = shape.count
        let x = rng.normals(count, std: 2).map { E.narrow($0) }
        let dy = rng.normals(count).map { E.narrow($0) }
        let mask = rng.normals(count).map { E.narrow($0) }
        let p0 = rng.normals(c), s0 = rng.uniforms(c, 0.2...3), t0 = rng.normals(c)
        let pa = rng.normals(c), a0 = rng.uniforms(c, -2...2), b0 = rng.uniforms(c, -1...1), c0 = rng.normals(c)
        for threads in [1, 3] {
            let bn = try BatchNormalization(shape: shape, threading: Threading(threads: threads, parallelThreshold: 1))
            for withMask in [false, true] {
                for readsX in [false, true] {
                    for reduce in [false, true] {
                        // 0: out of place; 1: dx over x; 2: dx over dy.
                        for aliasing in [0, 1, 2] {
                            let arena = Arena()
                            let xhat = CoefficientTable(count: c, in: arena)
                            let table = GradientTable(count: c, in: arena)
                            for ch in 0..<c {
                                xhat[ch] = AffineCoefficients(pivot: p0[ch], scale: s0[ch], shift: t0[ch])
                                // With `reduce`, finalize overwrites these from the sums.
                                table[ch] = GradientCoefficients(pivot: pa[ch], a: a0[ch], b: b0[ch], c: c0[ch])
                            }
                            // Written by the workers (one slot each).
                            let sums = arena.take(GradientSums.self, count: c)
                            /// A table entry from the sums: any function of them will do.
                            func finalize(_ ch: Int, _ s: GradientSums) {
                                sums[ch] = s
                                table[ch] = GradientCoefficients(pivot: pa[ch], a: Float(s.dy * 1e-2) + a0[ch],
                                                                 b: Float(s.dyXhat * 1e-3), c: c0[ch])
                            }
                            var out = aliasing == 1 ? x : aliasing == 2 ? dy : [E](repeating: E.narrow(.nan), count: count)
                            let before = nk_tiny_runs_thread_calls()
                            x.withUnsafeBufferPointer { xp in
                                dy.withUnsafeBufferPointer { dp in
                                    mask.withUnsafeBufferPointer { mp in
                                        out.withUnsafeMutableBufferPointer { op in
                                            let o = op.baseAddress!
                                            bn.channelPasses(
                                                x: aliasing == 1 ? UnsafePointer(o) : xp.baseAddress!,
                                                dy: aliasing == 2 ? UnsafePointer(o) : dp.baseAddress!,
                                                mask: withMask ? mp.baseAddress! : nil, xhat: xhat, reduce: reduce,
                                                table: table, dx: o, dxReadsInput: readsX, workspace: arena,
                                                finalize: finalize)
                                        }
                                    }
                                }
                            }
                            let what = "\(E.self) \(shape) \(threads) threads mask \(withMask) x \(readsX) reduce \(reduce) aliasing \(aliasing)"
                            // `BlockGradients.apply`'s formula, value by value, with the table as the call left it.
                            var expected = [E](repeating: E.narrow(0), count: count)
                            for i in 0..<count {
                                let k = table[(i / shape.spatial) % c]
                                var g = E.widen(dy[i])
                                if withMask, E.widen(mask[i]) <= 0 { g = 0 }
                                expected[i] = E.narrow(readsX ? muladd(k.a, g, muladd(k.b, E.widen(x[i]) - k.pivot, k.c))
                                                              : k.a * g)
                            }
                            // The first differing element only (printing 280 000 values per failure
                            // made a broken build's run take minutes).
                            let bad = (0..<count).first { bits(out[$0]) != bits(expected[$0]) }
                            #expect(bad == nil, "dx \(what): first difference at \(bad ?? -1)")
                            if threads == 1 {
                                #expect((nk_tiny_runs_thread_calls() > before) == Apply.tinyRuns(shape.spatial),
                                        "tiny-run pass calls \(what)")
                            }
                            if reduce && aliasing == 0 {
                                // The sums are the unchanged code's: the same as a call without dx.
                                let arena2 = Arena()
                                let alone = arena2.take(GradientSums.self, count: c)
                                x.withUnsafeBufferPointer { xp in
                                    dy.withUnsafeBufferPointer { dp in
                                        mask.withUnsafeBufferPointer { mp in
                                            bn.channelPasses(x: xp.baseAddress!, dy: dp.baseAddress!,
                                                             mask: withMask ? mp.baseAddress! : nil, xhat: xhat,
                                                             reduce: true, table: nil, dx: nil, dxReadsInput: readsX,
                                                             workspace: arena2) { ch, s in alone[ch] = s }
                                        }
                                    }
                                }
                                let same = (0..<c).allSatisfy {
                                    sums[$0].dy.bitPattern == alone[$0].dy.bitPattern
                                        && sums[$0].dyXhat.bitPattern == alone[$0].dyXhat.bitPattern
                                }
                                #expect(same, "sums \(what)")
                            }
                        }
                    }
                }
            }
        }
    }

    @Test("BatchNorm NCHW inference on planes of 2–7 values with NaN and ±∞: the per-element formula",
          arguments: [2, 3, 4, 5, 6, 7])
    func nonFinite(hw: Int) throws {
        let shape = TensorShape(n: 5, c: 13, h: hw, w: 1, layout: .nchw), c = shape.c
        var rng = streams.generator(UInt64(hw) &+ 991)
        var x = rng.normals(shape.count, std: 2)
        for i in Swift.stride(from: 0, to: x.count, by: 7) { x[i] = [Float.nan, .infinity, -.infinity][(i / 7) % 3] }
        let gamma = rng.uniforms(c, -2...2), beta = rng.normals(c)
        let mean = rng.normals(c), variance = rng.uniforms(c, 0.05...4)
        let running = try RunningStatistics(channels: c, mean: mean, variance: variance)
        for threads in [1, 2] {
            let bn = try BatchNormalization(shape: shape, threading: Threading(threads: threads, parallelThreshold: 1))
            var y = [Float](repeating: 0, count: x.count)
            let before = nk_tiny_runs_thread_calls()
            try x.withUnsafeBufferPointer { xp in
                try gamma.withUnsafeBufferPointer { g in
                    try beta.withUnsafeBufferPointer { b in
                        try y.withUnsafeMutableBufferPointer { yp in
                            try bn.forwardInference(input: xp, output: yp, scale: g, bias: b, running: running)
                        }
                    }
                }
            }
            for i in 0..<x.count {
                let ch = (i / hw) % c
                let k = AffineCoefficients(mean: Double(mean[ch]), invStd: inverseStandardDeviation(Double(variance[ch]), 1e-5),
                                           gamma: Double(gamma[ch]), beta: Double(beta[ch]))
                let v = muladd(x[i] - k.pivot, k.scale, k.shift)
                #expect(v.isNaN ? y[i].isNaN : v.bitPattern == y[i].bitPattern, "hw \(hw) \(threads) threads value \(i)")
            }
            if threads == 1 { #expect(nk_tiny_runs_thread_calls() > before) }
        }
    }

    private func bits<E>(_ v: E) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }
}
