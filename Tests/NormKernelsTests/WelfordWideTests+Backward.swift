// The AVX-512 gradient sums of 16-bit runs (nk_welford512_gradient_sums_f16 /
// _bf16, `WelfordWide.gradientSums`) against the Swift loop
// (`BlockGradients.segmentedFloat32`), bit for bit: the block sums alone on
// runs of 8…17000 values (32-value steps, 8-value steps and scalar ends), 1–40
// runs a stride apart, with and without prefetches, including dy near
// BFloat16's limit (the Float32 sums overflow and the block is redone in
// Float64); and BatchNorm, InstanceNorm and GroupNorm NCHW backward (dx, dγ,
// dβ), 1 and 3 threads. With the loop on, the runs without mask, γ or store
// must call it; with it off, never.

import CNormSupport
import Foundation
import Testing
@testable import NormKernels

extension WelfordWideTests {
    func gradientBlocks<E: NormElement>(_: E.Type) {
        let on = available
        for (length, segments) in [(8, 3), (21, 2), (64, 1), (100, 40), (255, 2), (256, 1), (576, 3), (3136, 2),
                                   (4903, 1), (17000, 1)] {
            for kind in kinds(E.self) {
                var rng = SplitMix64("welford wide gradients \(E.self) \(length) \(segments) \(kind)")
                let stride = length + 40, following = segments * stride + 24
                let total = following + segments * stride
                let x = data(E.self, kind, total, &rng)
                let dy = data(E.self, kind == "huge" ? "huge" : "unit", total, &rng)
                let context = "\(E.self) \(kind) \(segments) × \(length)"
                let c = AffineCoefficients(mean: Double(E.widen(x[1])), invStd: 0.37, gamma: 1.5, beta: -0.25)
                x.withUnsafeBufferPointer { xb in
                    dy.withUnsafeBufferPointer { db in
                        let runs = twoWays {
                            [BlockGradients.segmented(xb.baseAddress!, db.baseAddress!, length: length, stride: stride,
                                                      segments: segments, c, mask: nil, gamma: nil,
                                                      following: following),
                             BlockGradients.segmented(xb.baseAddress!, db.baseAddress!, length: length, stride: stride,
                                                      segments: segments, c, mask: nil, gamma: nil)]
                        }
                        let wide = runs[0].result.map { [$0.dy.bitPattern, $0.dyXhat.bitPattern] }
                        let swift = runs[1].result.map { [$0.dy.bitPattern, $0.dyXhat.bitPattern] }
                        #expect(wide == swift, "\(context): gradient sums")
                        #expect(wide[0] == swift[1], "\(context): with and without prefetches")
                        // Only the call with `following` (runs far apart) takes the C loop.
                        if on { #expect(runs[0].calls == 1, "\(context): C loop calls") }
                        #expect(runs[1].calls == 0, "\(context): the C loop ran while off")
                    }
                }
            }
        }
    }

    @Test func float16GradientBlocks() { gradientBlocks(Float16.self) }
    @Test func bfloat16GradientBlocks() { gradientBlocks(BFloat16.self) }

    /// dx, dγ, dβ of one backward as bytes.
    func gradients<E: NormElement>(
        _ count: Int, _ channels: Int, _ body: (UnsafeMutableBufferPointer<E>, UnsafeMutableBufferPointer<Float>,
                                                UnsafeMutableBufferPointer<Float>) throws -> Void
    ) rethrows -> [UInt8] {
        var dx = [E](repeating: E.narrow(0), count: count)
        var dg = [Float](repeating: 0, count: channels), db = [Float](repeating: 0, count: channels)
        try dx.withUnsafeMutableBufferPointer { a in
            try dg.withUnsafeMutableBufferPointer { b in try db.withUnsafeMutableBufferPointer { try body(a, b, $0) } }
        }
        return bytes(dx) + bytes(dg) + bytes(db)
    }

    func backwardKernels<E: NormElement>(_: E.Type) throws {
        let on = available
        let shapes = [TensorShape(n: 3, c: 4, h: 24, w: 24), TensorShape(n: 2, c: 3, h: 70, w: 70),
                      TensorShape(n: 40, c: 3, h: 10, w: 10), TensorShape(n: 2, c: 8, h: 21, w: 19)]
        for threads in [1, 3] {
            let threading = Threading(threads: threads, parallelThreshold: 1024, spinMicroseconds: 0)
            for kind in ["unit", "far"] {
                for (index, shape) in shapes.enumerated() {
                    var rng = SplitMix64("welford wide backward \(E.self) \(index) \(kind)")
                    let x = data(E.self, kind, shape.count, &rng), dy = data(E.self, "unit", shape.count, &rng)
                    let gamma = (0..<shape.c).map { Float(1 + $0) / 4 }
                    let context = "\(E.self) \(kind) \(shape) threads \(threads)"
                    let bn = try BatchNormalization(shape: shape, threading: threading)
                    let instance = try InstanceNormalization(shape: shape, threading: threading)
                    let group = try GroupNormalization(shape: shape, groups: shape.c % 2 == 0 ? 2 : 1, threading: threading)
                    var y = [E](repeating: E.narrow(0), count: shape.count)
                    let (sb, si, sg) = try x.withUnsafeBufferPointer { xb in
                        try y.withUnsafeMutableBufferPointer { yb in
                            (try bn.forwardTraining(input: xb, output: yb),
                             try instance.forwardTraining(input: xb, output: yb),
                             try group.forward(input: xb, output: yb))
                        }
                    }
                    let runs = try twoWays { () throws -> [[UInt8]] in
                        try x.withUnsafeBufferPointer { xb in
                            try dy.withUnsafeBufferPointer { db in
                                try gamma.withUnsafeBufferPointer { g in
                                    [try gradients(shape.count, shape.c) { (dx: UnsafeMutableBufferPointer<E>, dg, dbeta) in
                                        try bn.backwardTraining(input: xb, gradOutput: db, saved: sb, scale: g,
                                                                gradInput: dx, gradScale: dg, gradBias: dbeta)
                                     },
                                     try gradients(shape.count, shape.c) { (dx: UnsafeMutableBufferPointer<E>, dg, dbeta) in
                                        try instance.backwardTraining(input: xb, gradOutput: db, saved: si, scale: g,
                                                                      gradInput: dx, gradScale: dg, gradBias: dbeta)
                                     },
                                     try gradients(shape.count, shape.c) { (dx: UnsafeMutableBufferPointer<E>, dg, dbeta) in
                                        try group.backward(input: xb, gradOutput: db, saved: sg, scale: g,
                                                           gradInput: dx, gradScale: dg, gradBias: dbeta)
                                     }]
                                }
                            }
                        }
                    }
                    for (k, name) in ["BatchNorm", "InstanceNorm", "GroupNorm"].enumerated() {
                        #expect(differing(runs[0].result[k], runs[1].result[k]) == 0, "\(name) \(context): dx, dγ, dβ")
                    }
                    // BatchNorm's runs of ≥ 256 values far apart (shapes 0, 1, 3) take the C loop.
                    if on && threads == 1 && index != 2 {
                        #expect(runs[0].calls > 0, "\(context): the C loop did not run")
                    }
                    #expect(runs[1].calls == 0, "\(context): the C loop ran while off")
                }
            }
        }
    }

    @Test func float16BackwardKernels() throws { try backwardKernels(Float16.self) }
    @Test func bfloat16BackwardKernels() throws { try backwardKernels(BFloat16.self) }
}
