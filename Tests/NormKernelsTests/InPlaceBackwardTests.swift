// In place for every documented backward alias that had no test (issue 19,
// "tests that can fail"): each gradient written over the buffer it may replace
// must be bit for bit the out-of-place result, and so must the gradients computed
// alongside it. The aliases come from the kernels' doc comments:
// - GroupNorm, InstanceNorm, LayerNorm/RMSNorm: `gradInput` may be `gradOutput` or `input`;
// - BatchNorm: `gradInput` may be `gradOutput`, `input` or `output` (the fused-ReLU y);
// - AdaIN: `gradContent` may be `content` or `gradOutput`, `gradStyle` may be `style`;
// - WeightNorm: `gradV` may be `v` or `gradWeight`, `gradG` may be `g`.

import Testing
@testable import NormKernels

fileprivate let ipThreading = Threading(threads: 2, parallelThreshold: 4096)

fileprivate func ipValues(_ count: Int, _ label: String, _ range: ClosedRange<Double> = -2...2) -> [Float] {
    var rng = SplitMix64("in-place backward \(label)")
    return rng.uniforms(count, range)
}

/// Copies `initial` into a buffer, lets `call` overwrite it in place, and expects
/// the result to equal `expected` bit for bit.
fileprivate func ipExpect(_ what: String, initial: [Float], expected: [Float]?,
                          sourceLocation: SourceLocation = #_sourceLocation,
                          _ call: (UnsafeMutableBufferPointer<Float>) throws -> Void) throws {
    let expected = try #require(expected, "\(what): no out-of-place result", sourceLocation: sourceLocation)
    #expect(initial.map(\.bitPattern) != expected.map(\.bitPattern), "\(what): the buffer already holds the result",
            sourceLocation: sourceLocation)
    var buffer = initial
    try buffer.withUnsafeMutableBufferPointer { try call($0) }
    expectIdentical(buffer, expected, what, "in place", sourceLocation: sourceLocation)
}

/// Runs `call(x, dy, dx)` with dx over dy and with dx over x; dγ and dβ (written
/// to their own buffers) must match too.
fileprivate func ipGradInput(
    _ what: String, x: [Float], dy: [Float], channels: Int, expected: NormGradients,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ call: (UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>,
             UnsafeMutableBufferPointer<Float>?, UnsafeMutableBufferPointer<Float>?) throws -> Void
) throws {
    for overX in [false, true] {
        var dg = [Float](repeating: sentinel, count: channels), db = dg
        try ipExpect("\(what) dx over \(overX ? "x" : "dy")", initial: overX ? x : dy, expected: expected.input,
                     sourceLocation: sourceLocation) { b in
            try dg.withUnsafeMutableBufferPointer { g in
                try db.withUnsafeMutableBufferPointer { bb in
                    let other = overX ? dy : x
                    try other.withUnsafeBufferPointer { o in
                        if overX {
                            try call(UnsafeBufferPointer(b), o, b, expected.scale == nil ? nil : g, expected.bias == nil ? nil : bb)
                        } else {
                            try call(o, UnsafeBufferPointer(b), b, expected.scale == nil ? nil : g, expected.bias == nil ? nil : bb)
                        }
                    }
                }
            }
        }
        if let scale = expected.scale { expectIdentical(dg, scale, "\(what) dγ beside dx over \(overX ? "x" : "dy")", "in place") }
        if let bias = expected.bias { expectIdentical(db, bias, "\(what) dβ beside dx over \(overX ? "x" : "dy")", "in place") }
    }
}

@Suite("In place: backward aliases")
struct InPlaceBackwardTests {
    @Test("GroupNorm dx over dy and over x (rows, columns, feature vectors, small maps)",
          arguments: [(TensorShape(n: 2, c: 8, h: 33, w: 35), 4), (TensorShape(n: 2, c: 40, h: 20, w: 20, layout: .nhwc), 5),
                      (TensorShape(n: 300, c: 60, h: 1, w: 1), 4), (TensorShape(n: 300, c: 60, h: 1, w: 1, layout: .nhwc), 4),
                      (TensorShape(n: 64, c: 32, h: 4, w: 4), 8), (TensorShape(n: 64, c: 72, h: 2, w: 2, layout: .nhwc), 3),
                      (TensorShape(n: 1, c: 300, h: 30, w: 30, layout: .nhwc), 100)])
    func groupNorm(shape: TensorShape, groups: Int) throws {
        let what = "GroupNorm \(shape) G \(groups)"
        let x = ipValues(shape.count, "\(what) x"), dy = ipValues(shape.count, "\(what) dy")
        let gamma = ipValues(shape.c, "\(what) γ", 0.5...1.5), beta = ipValues(shape.c, "\(what) β")
        let gn = try GroupNormalization(shape: shape, groups: groups, threading: ipThreading)
        let (_, saved) = try gn.forward(x, scale: gamma, bias: beta)
        let expected = try gn.backward(x, gradOutput: dy, saved: saved, scale: gamma)
        try gamma.withUnsafeBufferPointer { gp in
            try ipGradInput(what, x: x, dy: dy, channels: shape.c, expected: expected) { xp, dyp, dx, dg, db in
                try gn.backward(input: xp, gradOutput: dyp, saved: saved, scale: gp, gradInput: dx, gradScale: dg, gradBias: db)
            }
        }
    }

    @Test("InstanceNorm dx over dy and over x (NCHW, NHWC, tiny instances, tiny channels)",
          arguments: [TensorShape(n: 2, c: 3, h: 70, w: 61), TensorShape(n: 2, c: 33, h: 17, w: 19, layout: .nhwc),
                      TensorShape(n: 40, c: 27, h: 7, w: 7), TensorShape(n: 70, c: 16, h: 2, w: 2, layout: .nhwc)])
    func instanceNorm(shape: TensorShape) throws {
        let what = "InstanceNorm \(shape)"
        let x = ipValues(shape.count, "\(what) x"), dy = ipValues(shape.count, "\(what) dy")
        let gamma = ipValues(shape.c, "\(what) γ", 0.5...1.5), beta = ipValues(shape.c, "\(what) β")
        let norm = try InstanceNormalization(shape: shape, threading: ipThreading)
        let (_, saved) = try norm.forwardTraining(x, scale: gamma, bias: beta)
        let expected = try norm.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma)
        try gamma.withUnsafeBufferPointer { gp in
            try ipGradInput(what, x: x, dy: dy, channels: shape.c, expected: expected) { xp, dyp, dx, dg, db in
                try norm.backwardTraining(input: xp, gradOutput: dyp, saved: saved, scale: gp, gradInput: dx, gradScale: dg, gradBias: db)
            }
        }
    }

    @Test("RMSNorm dx over dy and over x (short rows, rows in blocks, long rows)",
          arguments: [(301, 100), (256, 1000), (3, 70_000)])
    func rmsNorm(rows: Int, features: Int) throws {
        let what = "RMSNorm [\(rows), \(features)]"
        let x = ipValues(rows * features, "\(what) x"), dy = ipValues(rows * features, "\(what) dy")
        let gamma = ipValues(features, "\(what) γ", 0.5...1.5)
        let rms = try RMSNormalization(rows: rows, features: features, threading: ipThreading)
        let (_, saved) = try rms.forward(x, scale: gamma)
        let expected = try rms.backward(x, gradOutput: dy, saved: saved, scale: gamma)
        #expect(expected.bias == nil)
        try gamma.withUnsafeBufferPointer { gp in
            try ipGradInput(what, x: x, dy: dy, channels: features, expected: expected) { xp, dyp, dx, dg, _ in
                try rms.backward(input: xp, gradOutput: dyp, saved: saved, scale: gp, gradInput: dx, gradScale: dg)
            }
        }
    }

    @Test("BatchNorm NHWC and [N, D]: dx over dy and over x",
          arguments: [TensorShape(n: 4, c: 64, h: 24, w: 24, layout: .nhwc), TensorShape(n: 8, c: 3, h: 128, w: 130, layout: .nhwc),
                      TensorShape(n: 3, c: 13, h: 61, w: 67, layout: .nhwc), TensorShape.matrix(4096, 40)])
    func batchNormChannelsLast(shape: TensorShape) throws {
        let what = "BatchNorm \(shape)"
        let x = ipValues(shape.count, "\(what) x"), dy = ipValues(shape.count, "\(what) dy")
        let gamma = ipValues(shape.c, "\(what) γ", 0.5...1.5), beta = ipValues(shape.c, "\(what) β")
        let bn = try BatchNormalization(shape: shape, threading: ipThreading)
        let (_, saved) = try bn.forwardTraining(x, scale: gamma, bias: beta)
        let expected = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma)
        try gamma.withUnsafeBufferPointer { gp in
            try ipGradInput(what, x: x, dy: dy, channels: shape.c, expected: expected) { xp, dyp, dx, dg, db in
                try bn.backwardTraining(input: xp, gradOutput: dyp, saved: saved, scale: gp, gradInput: dx, gradScale: dg, gradBias: db)
            }
        }
    }

    @Test("BatchNorm with fused ReLU: dx over the output y (NCHW, NHWC, [N, D])",
          arguments: [TensorShape(n: 4, c: 64, h: 24, w: 24), TensorShape(n: 8, c: 3, h: 128, w: 130),
                      TensorShape(n: 4, c: 64, h: 24, w: 24, layout: .nhwc), TensorShape.matrix(4096, 40)])
    func dxOverReLUOutput(shape: TensorShape) throws {
        let what = "BatchNorm + ReLU \(shape)"
        let x = ipValues(shape.count, "\(what) x"), dy = ipValues(shape.count, "\(what) dy")
        let gamma = ipValues(shape.c, "\(what) γ", -1.5...1.5), beta = ipValues(shape.c, "\(what) β")
        let bn = try BatchNormalization(shape: shape, fusedReLU: true, threading: ipThreading)
        let (y, saved) = try bn.forwardTraining(x, scale: gamma, bias: beta)
        #expect(y.contains(0) && y.contains { $0 > 0 }, "\(what): the ReLU masks some values and not others")
        let expected = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma, output: y)
        var dg = [Float](repeating: sentinel, count: shape.c), db = dg
        try ipExpect("\(what) dx over y", initial: y, expected: expected.input) { b in
            try x.withUnsafeBufferPointer { xp in
                try dy.withUnsafeBufferPointer { dyp in
                    try gamma.withUnsafeBufferPointer { gp in
                        try dg.withUnsafeMutableBufferPointer { g in
                            try db.withUnsafeMutableBufferPointer { bb in
                                try bn.backwardTraining(input: xp, gradOutput: dyp, saved: saved, scale: gp, output: UnsafeBufferPointer(b),
                                                        gradInput: b, gradScale: g, gradBias: bb)
                            }
                        }
                    }
                }
            }
        }
        expectIdentical(dg, try #require(expected.scale), "\(what) dγ beside dx over y", "in place")
        expectIdentical(db, try #require(expected.bias), "\(what) dβ beside dx over y", "in place")
    }

    @Test("AdaIN dcontent over content and over dy (with dstyle beside it), both layouts",
          arguments: [(TensorShape(n: 2, c: 3, h: 40, w: 40), TensorShape(n: 2, c: 3, h: 30, w: 30, layout: .nhwc)),
                      (TensorShape(n: 2, c: 33, h: 17, w: 19, layout: .nhwc), TensorShape(n: 2, c: 33, h: 9, w: 9)),
                      (TensorShape(n: 2, c: 4, h: 130, w: 130), TensorShape(n: 2, c: 4, h: 64, w: 64))])
    func adaIN(content: TensorShape, style: TensorShape) throws {
        let what = "AdaIN \(content) ← \(style)"
        let x = ipValues(content.count, "\(what) content"), s = ipValues(style.count, "\(what) style", -3...5)
        let dy = ipValues(content.count, "\(what) dy")
        let ada = try AdaptiveInstanceNormalization(content: content, style: style, threading: ipThreading)
        let (_, saved) = try ada.forward(content: x, style: s)
        let expected = try ada.backward(content: x, style: s, gradOutput: dy, saved: saved)
        for overContent in [true, false] {
            var ds = [Float](repeating: sentinel, count: style.count)
            try ipExpect("\(what) dcontent over \(overContent ? "content" : "dy")", initial: overContent ? x : dy,
                         expected: expected.content) { b in
                try (overContent ? dy : x).withUnsafeBufferPointer { other in
                    try s.withUnsafeBufferPointer { sp in
                        try ds.withUnsafeMutableBufferPointer { dsp in
                            try ada.backward(content: overContent ? UnsafeBufferPointer(b) : other, style: sp,
                                             gradOutput: overContent ? other : UnsafeBufferPointer(b), saved: saved,
                                             gradContent: b, gradStyle: dsp)
                        }
                    }
                }
            }
            expectIdentical(ds, try #require(expected.style), "\(what) dstyle beside dcontent over \(overContent ? "content" : "dy")", "in place")
        }
    }

    @Test("WeightNorm dg over g and dv over v (dim 0, middle dim, nil)",
          arguments: [([64, 300], 0 as Int?), ([8, 32, 33], 1), ([3, 5, 7, 9], nil), ([1030, 3, 3, 3], 0)])
    func weightNorm(shape: [Int], dim: Int?) throws {
        let what = "WeightNorm \(shape) dim \(dim.map(String.init) ?? "nil")"
        let wn = try WeightNormalization(shape: shape, dim: dim, threading: ipThreading)
        let v = ipValues(wn.count, "\(what) v"), g = ipValues(wn.normCount, "\(what) g", 0.5...2)
        let dw = ipValues(wn.count, "\(what) dw")
        let (_, norms) = try wn.forward(v: v, g: g)
        let expected = try wn.backward(v: v, g: g, gradWeight: dw, norms: norms)
        // dg over g, with dv beside it.
        var dv = [Float](repeating: sentinel, count: wn.count)
        try ipExpect("\(what) dg over g", initial: g, expected: expected.g) { b in
            try v.withUnsafeBufferPointer { vp in
                try dw.withUnsafeBufferPointer { dwp in
                    try dv.withUnsafeMutableBufferPointer { dvp in
                        try wn.backward(v: vp, g: UnsafeBufferPointer(b), gradWeight: dwp, norms: norms, gradV: dvp, gradG: b)
                    }
                }
            }
        }
        expectIdentical(dv, try #require(expected.v), "\(what) dv beside dg over g", "in place")
        // dv over v, with dg beside it.
        var dg = [Float](repeating: sentinel, count: wn.normCount)
        try ipExpect("\(what) dv over v", initial: v, expected: expected.v) { b in
            try g.withUnsafeBufferPointer { gp in
                try dw.withUnsafeBufferPointer { dwp in
                    try dg.withUnsafeMutableBufferPointer { dgp in
                        try wn.backward(v: UnsafeBufferPointer(b), g: gp, gradWeight: dwp, norms: norms, gradV: b, gradG: dgp)
                    }
                }
            }
        }
        expectIdentical(dg, try #require(expected.g), "\(what) dg beside dv over v", "in place")
    }
}
