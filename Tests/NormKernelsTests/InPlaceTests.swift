// In place: every documented forward alias (output = input) bit for bit the
// out-of-place call, outputs and saved statistics, every kernel and layout.
// Backward aliases: InPlaceTests+Backward.swift.

import Testing
@testable import NormKernels

@Suite("In place: forward aliases")
struct InPlaceForwardTests {
    /// The shapes of EquivalenceKernelTests (odd C·H·W, H·W = 1, few channels,
    /// C = 40); `inPlace` adds a long channel pair and 16 small samples.
    static let shapes = [TensorShape(n: 2, c: 33, h: 9, w: 13), TensorShape(n: 3, c: 8, h: 1, w: 1),
                         TensorShape(n: 1, c: 3, h: 70, w: 61), TensorShape(n: 2, c: 40, h: 4, w: 8)]

    /// Runs `kernel` out of place and in place (output = input buffer) and expects the same bits.
    func expectInPlaceMatches(_ x: [Float], _ context: String,
                              _ kernel: (UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) throws -> [Double]) throws {
        var out = [Float](repeating: sentinel, count: x.count)
        let saved = try x.withUnsafeBufferPointer { xp in try out.withUnsafeMutableBufferPointer { try kernel(xp, $0) } }
        var buffer = x
        let savedInPlace = try buffer.withUnsafeMutableBufferPointer { p in try kernel(UnsafeBufferPointer(p), p) }
        expectIdentical(buffer, out, "in-place output", context)
        expectIdentical(savedInPlace, saved, "in-place saved statistics", context)
    }

    @Test("in place equals out of place, every kernel and layout")
    func inPlace() throws {
        let shapes = Self.shapes + [TensorShape(n: 1, c: 2, h: 300, w: 300), TensorShape(n: 16, c: 4, h: 40, w: 50)]
        sweep(product(shapes, Layout.allCases)) { item, context in
            let shape = item.0.with(layout: item.1)
            var rng = SplitMix64("inplace \(context)")
            let x = activations(shape, &rng)
            let (scale, bias) = Affine.both.parameters(shape.c, &rng)
            let running = try RunningStatistics(channels: shape.c, mean: rng.uniforms(shape.c, -1...1),
                                                variance: rng.uniforms(shape.c, 0.5...2))
            let bn = try BatchNormalization(shape: shape, fusedReLU: true)
            try scale!.withUnsafeBufferPointer { g in
                try bias!.withUnsafeBufferPointer { b in
                    try expectInPlaceMatches(x, "BatchNorm training \(context)") { i, o in
                        let s = try bn.forwardTraining(input: i, output: o, scale: g, bias: b)
                        return s.mean + s.invStd
                    }
                    try expectInPlaceMatches(x, "BatchNorm inference \(context)") { i, o in
                        try bn.forwardInference(input: i, output: o, scale: g, bias: b, running: running)
                        return []
                    }
                    if shape.spatial > 1 {
                        let instance = try InstanceNormalization(shape: shape)
                        try expectInPlaceMatches(x, "InstanceNorm training \(context)") { i, o in
                            let s = try instance.forwardTraining(input: i, output: o, scale: g, bias: b)
                            return s.mean + s.invStd
                        }
                        try expectInPlaceMatches(x, "InstanceNorm inference \(context)") { i, o in
                            try instance.forwardInference(input: i, output: o, scale: g, bias: b, running: running)
                            return []
                        }
                    }
                    let gn = try GroupNormalization(shape: shape, groups: shape.c % 2 == 0 ? 2 : 1)
                    try expectInPlaceMatches(x, "GroupNorm \(context)") { i, o in
                        let s = try gn.forward(input: i, output: o, scale: g, bias: b)
                        return s.mean + s.invStd
                    }
                }
            }
            let ln = try LayerNormalization(shape: shape)
            try expectInPlaceMatches(x, "LayerNorm \(context)") { i, o in
                let s = try ln.forward(input: i, output: o)
                return s.mean + s.invStd
            }
            let rms = try RMSNormalization(rows: shape.n, features: shape.c * shape.spatial)
            try expectInPlaceMatches(x, "RMSNorm \(context)") { i, o in try rms.forward(input: i, output: o).invStd }
            let ss = TensorShape(n: shape.n, c: shape.c, h: 3, w: 3)
            let style = activations(ss, &rng)
            let ada = try AdaptiveInstanceNormalization(content: shape, style: ss)
            try style.withUnsafeBufferPointer { st in
                try expectInPlaceMatches(x, "AdaIN \(context)") { i, o in
                    let s = try ada.forward(content: i, style: st, output: o)
                    return s.contentMean + s.contentInvStd + s.styleMean + s.styleStd
                }
            }
            let wn = try WeightNormalization(shape: [shape.n, shape.c, shape.h, shape.w], dim: 1)
            let gains = rng.uniforms(shape.c, 0.5...2)
            try gains.withUnsafeBufferPointer { gp in
                try expectInPlaceMatches(x, "WeightNorm \(context)") { i, o in try wn.forward(v: i, g: gp, output: o) }
            }
        }
    }
}
