// In place for every documented backward alias that had no test (issue 19,
// "tests that can fail"): each gradient written over the buffer it may replace
// must be bit for bit the out-of-place result, and so must the gradients computed
// alongside it. The aliases come from the kernels' doc comments:
// - GroupNorm, InstanceNorm, LayerNorm/RMSNorm: `gradInput` may be `gradOutput` or `input`;
// - BatchNorm: `gradInput` may be `gradOutput`, `input` or `output` (the fused-ReLU y);
// - AdaIN: `gradContent` may be `content` or `gradOutput`, `gradStyle` may be `style`;
// - WeightNorm: `gradV` may be `v` or `gradWeight`, `gradG` may be `g`.
// `inPlace` (the last of these tests, from the former BackwardTests) covers
// BatchNorm dx over dy and x, LayerNorm rows and short rows, AdaIN dstyle over
// the style and WeightNorm dv over dw, on its own numbered data.

import Testing
@testable import NormKernels

/// Seeds of the backward streams (the data `inPlace` was written against).
private let streams = SeededStreams.backward

private let twoThreads = Threading(threads: 2, parallelThreshold: 4096)

private func labelledValues(_ count: Int, _ label: String, _ range: ClosedRange<Double> = -2...2) -> [Float] {
    var rng = SplitMix64("in-place backward \(label)")
    return rng.uniforms(count, range)
}

/// Copies `initial` into a buffer, lets `call` overwrite it in place, and expects
/// the result to equal `expected` bit for bit.
private func expectInPlace(_ what: String, initial: [Float], expected: [Float]?,
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
private func expectGradInputInPlace(
    _ what: String, x: [Float], dy: [Float], channels: Int, expected: NormGradients,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ call: (UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>,
             UnsafeMutableBufferPointer<Float>?, UnsafeMutableBufferPointer<Float>?) throws -> Void
) throws {
    for overX in [false, true] {
        var dg = [Float](repeating: sentinel, count: channels), db = dg
        try expectInPlace("\(what) dx over \(overX ? "x" : "dy")", initial: overX ? x : dy, expected: expected.input,
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
        let x = labelledValues(shape.count, "\(what) x"), dy = labelledValues(shape.count, "\(what) dy")
        let gamma = labelledValues(shape.c, "\(what) γ", 0.5...1.5), beta = labelledValues(shape.c, "\(what) β")
        let gn = try GroupNormalization(shape: shape, groups: groups, threading: twoThreads)
        let (_, saved) = try gn.forward(x, scale: gamma, bias: beta)
        let expected = try gn.backward(x, gradOutput: dy, saved: saved, scale: gamma)
        try gamma.withUnsafeBufferPointer { gp in
            try expectGradInputInPlace(what, x: x, dy: dy, channels: shape.c, expected: expected) { xp, dyp, dx, dg, db in
                try gn.backward(input: xp, gradOutput: dyp, saved: saved, scale: gp, gradInput: dx, gradScale: dg, gradBias: db)
            }
        }
    }

    @Test("InstanceNorm dx over dy and over x (NCHW, NHWC, tiny instances, tiny channels)",
          arguments: [TensorShape(n: 2, c: 3, h: 70, w: 61), TensorShape(n: 2, c: 33, h: 17, w: 19, layout: .nhwc),
                      TensorShape(n: 40, c: 27, h: 7, w: 7), TensorShape(n: 70, c: 16, h: 2, w: 2, layout: .nhwc)])
    func instanceNorm(shape: TensorShape) throws {
        let what = "InstanceNorm \(shape)"
        let x = labelledValues(shape.count, "\(what) x"), dy = labelledValues(shape.count, "\(what) dy")
        let gamma = labelledValues(shape.c, "\(what) γ", 0.5...1.5), beta = labelledValues(shape.c, "\(what) β")
        let norm = try InstanceNormalization(shape: shape, threading: twoThreads)
        let (_, saved) = try norm.forwardTraining(x, scale: gamma, bias: beta)
        let expected = try norm.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma)
        try gamma.withUnsafeBufferPointer { gp in
            try expectGradInputInPlace(what, x: x, dy: dy, channels: shape.c, expected: expected) { xp, dyp, dx, dg, db in
                try norm.backwardTraining(input: xp, gradOutput: dyp, saved: saved, scale: gp, gradInput: dx, gradScale: dg, gradBias: db)
            }
        }
    }

    @Test("RMSNorm dx over dy and over x (short rows, rows in blocks, long rows)",
          arguments: [(301, 100), (256, 1000), (3, 70_000)])
    func rmsNorm(rows: Int, features: Int) throws {
        let what = "RMSNorm [\(rows), \(features)]"
        let x = labelledValues(rows * features, "\(what) x"), dy = labelledValues(rows * features, "\(what) dy")
        let gamma = labelledValues(features, "\(what) γ", 0.5...1.5)
        let rms = try RMSNormalization(rows: rows, features: features, threading: twoThreads)
        let (_, saved) = try rms.forward(x, scale: gamma)
        let expected = try rms.backward(x, gradOutput: dy, saved: saved, scale: gamma)
        #expect(expected.bias == nil)
        try gamma.withUnsafeBufferPointer { gp in
            try expectGradInputInPlace(what, x: x, dy: dy, channels: features, expected: expected) { xp, dyp, dx, dg, _ in
                try rms.backward(input: xp, gradOutput: dyp, saved: saved, scale: gp, gradInput: dx, gradScale: dg)
            }
        }
    }

    @Test("BatchNorm NHWC and [N, D]: dx over dy and over x",
          arguments: [TensorShape(n: 4, c: 64, h: 24, w: 24, layout: .nhwc), TensorShape(n: 8, c: 3, h: 128, w: 130, layout: .nhwc),
                      TensorShape(n: 3, c: 13, h: 61, w: 67, layout: .nhwc), TensorShape.matrix(4096, 40)])
    func batchNormChannelsLast(shape: TensorShape) throws {
        let what = "BatchNorm \(shape)"
        let x = labelledValues(shape.count, "\(what) x"), dy = labelledValues(shape.count, "\(what) dy")
        let gamma = labelledValues(shape.c, "\(what) γ", 0.5...1.5), beta = labelledValues(shape.c, "\(what) β")
        let bn = try BatchNormalization(shape: shape, threading: twoThreads)
        let (_, saved) = try bn.forwardTraining(x, scale: gamma, bias: beta)
        let expected = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma)
        try gamma.withUnsafeBufferPointer { gp in
            try expectGradInputInPlace(what, x: x, dy: dy, channels: shape.c, expected: expected) { xp, dyp, dx, dg, db in
                try bn.backwardTraining(input: xp, gradOutput: dyp, saved: saved, scale: gp, gradInput: dx, gradScale: dg, gradBias: db)
            }
        }
    }

    @Test("BatchNorm with fused ReLU: dx over the output y (NCHW, NHWC, [N, D])",
          arguments: [TensorShape(n: 4, c: 64, h: 24, w: 24), TensorShape(n: 8, c: 3, h: 128, w: 130),
                      TensorShape(n: 4, c: 64, h: 24, w: 24, layout: .nhwc), TensorShape.matrix(4096, 40)])
    func dxOverReLUOutput(shape: TensorShape) throws {
        let what = "BatchNorm + ReLU \(shape)"
        let x = labelledValues(shape.count, "\(what) x"), dy = labelledValues(shape.count, "\(what) dy")
        let gamma = labelledValues(shape.c, "\(what) γ", -1.5...1.5), beta = labelledValues(shape.c, "\(what) β")
        let bn = try BatchNormalization(shape: shape, fusedReLU: true, threading: twoThreads)
        let (y, saved) = try bn.forwardTraining(x, scale: gamma, bias: beta)
        #expect(y.contains(0) && y.contains { $0 > 0 }, "\(what): the ReLU masks some values and not others")
        let expected = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma, output: y)
        var dg = [Float](repeating: sentinel, count: shape.c), db = dg
        try expectInPlace("\(what) dx over y", initial: y, expected: expected.input) { b in
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
        let x = labelledValues(content.count, "\(what) content"), s = labelledValues(style.count, "\(what) style", -3...5)
        let dy = labelledValues(content.count, "\(what) dy")
        let ada = try AdaptiveInstanceNormalization(content: content, style: style, threading: twoThreads)
        let (_, saved) = try ada.forward(content: x, style: s)
        let expected = try ada.backward(content: x, style: s, gradOutput: dy, saved: saved)
        for overContent in [true, false] {
            var ds = [Float](repeating: sentinel, count: style.count)
            try expectInPlace("\(what) dcontent over \(overContent ? "content" : "dy")", initial: overContent ? x : dy,
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
        let wn = try WeightNormalization(shape: shape, dim: dim, threading: twoThreads)
        let v = labelledValues(wn.count, "\(what) v"), g = labelledValues(wn.normCount, "\(what) g", 0.5...2)
        let dw = labelledValues(wn.count, "\(what) dw")
        let (_, norms) = try wn.forward(v: v, g: g)
        let expected = try wn.backward(v: v, g: g, gradWeight: dw, norms: norms)
        // dg over g, with dv beside it.
        var dv = [Float](repeating: sentinel, count: wn.count)
        try expectInPlace("\(what) dg over g", initial: g, expected: expected.g) { b in
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
        try expectInPlace("\(what) dv over v", initial: v, expected: expected.v) { b in
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

    @Test("In place: dx may replace dy or x, dstyle the style, dv the upstream dw")
    func inPlace() throws {
        let shape = TensorShape(n: 4, c: 64, h: 24, w: 24, layout: .nchw)
        let x = streams.uniforms(shape.count, seed: 30, -2...2), dy = streams.uniforms(shape.count, seed: 31)
        let gamma = streams.uniforms(shape.c, seed: 32, 0.5...1.5)
        let bn = try BatchNormalization(shape: shape, threading: Threading(threads: 2, parallelThreshold: 4096))
        let (_, saved) = try bn.forwardTraining(x, scale: gamma)
        let expected = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma)
        var buffer = dy
        try x.withUnsafeBufferPointer { xp in
            try gamma.withUnsafeBufferPointer { gp in
                try buffer.withUnsafeMutableBufferPointer { b in
                    try bn.backwardTraining(input: xp, gradOutput: UnsafeBufferPointer(b), saved: saved, scale: gp, gradInput: b)
                }
            }
        }
        #expect(bitPatterns(buffer) == bitPatterns(expected.input), "BN dx over dy")
        var xBuffer = x
        try dy.withUnsafeBufferPointer { dyp in
            try gamma.withUnsafeBufferPointer { gp in
                try xBuffer.withUnsafeMutableBufferPointer { b in
                    try bn.backwardTraining(input: UnsafeBufferPointer(b), gradOutput: dyp, saved: saved, scale: gp, gradInput: b)
                }
            }
        }
        #expect(bitPatterns(xBuffer) == bitPatterns(expected.input), "BN dx over x")

        let (rows, features) = (256, 1000)
        let lx = streams.uniforms(rows * features, seed: 33), ldy = streams.uniforms(rows * features, seed: 34)
        let ln = try LayerNormalization(rows: rows, features: features, threading: Threading(threads: 2, parallelThreshold: 4096))
        let (_, lsaved) = try ln.forward(lx)
        let lexpected = try ln.backward(lx, gradOutput: ldy, saved: lsaved)
        var lbuffer = ldy
        var dGamma = [Float](repeating: 0, count: features)
        try lx.withUnsafeBufferPointer { xp in
            try lbuffer.withUnsafeMutableBufferPointer { b in
                try dGamma.withUnsafeMutableBufferPointer { dg in
                    try ln.backward(input: xp, gradOutput: UnsafeBufferPointer(b), saved: lsaved, gradInput: b, gradScale: dg)
                }
            }
        }
        #expect(bitPatterns(lbuffer) == bitPatterns(lexpected.input) && bitPatterns(dGamma) == bitPatterns(lexpected.scale), "LN dx over dy")
        // Short rows (`ShortRowsBackward`: each row's dx written after its sums), over dy and over x, with γ.
        let (shortRows, shortFeatures) = (301, 100)
        let shortX = streams.uniforms(shortRows * shortFeatures, seed: 38), shortDy = streams.uniforms(shortRows * shortFeatures, seed: 39)
        let shortGamma = streams.uniforms(shortFeatures, seed: 40, 0.5...1.5)
        let shortLN = try LayerNormalization(rows: shortRows, features: shortFeatures, threading: Threading(threads: 2, parallelThreshold: 4096))
        let (_, shortSaved) = try shortLN.forward(shortX, scale: shortGamma)
        let shortExpected = try shortLN.backward(shortX, gradOutput: shortDy, saved: shortSaved, scale: shortGamma)
        for overX in [false, true] {
            var shortBuffer = overX ? shortX : shortDy
            let other = overX ? shortDy : shortX
            try other.withUnsafeBufferPointer { op in
                try shortGamma.withUnsafeBufferPointer { gp in
                    try shortBuffer.withUnsafeMutableBufferPointer { b in
                        if overX {
                            try shortLN.backward(input: UnsafeBufferPointer(b), gradOutput: op, saved: shortSaved, scale: gp, gradInput: b)
                        } else {
                            try shortLN.backward(input: op, gradOutput: UnsafeBufferPointer(b), saved: shortSaved, scale: gp, gradInput: b)
                        }
                    }
                }
            }
            #expect(bitPatterns(shortBuffer) == bitPatterns(shortExpected.input), "LN short rows dx over \(overX ? "x" : "dy")")
        }

        let content = TensorShape(n: 2, c: 3, h: 40, w: 40), style = TensorShape(n: 2, c: 3, h: 30, w: 30, layout: .nhwc)
        let cx = streams.uniforms(content.count, seed: 35), sx = streams.uniforms(style.count, seed: 36), cdy = streams.uniforms(content.count, seed: 37)
        let ada = try AdaptiveInstanceNormalization(content: content, style: style)
        let (_, asaved) = try ada.forward(content: cx, style: sx)
        let aexpected = try ada.backward(content: cx, style: sx, gradOutput: cdy, saved: asaved)
        var sBuffer = sx
        try cx.withUnsafeBufferPointer { xp in
            try cdy.withUnsafeBufferPointer { dyp in
                try sBuffer.withUnsafeMutableBufferPointer { sb in
                    try ada.backward(content: xp, style: UnsafeBufferPointer(sb), gradOutput: dyp, saved: asaved, gradStyle: sb)
                }
            }
        }
        #expect(bitPatterns(sBuffer) == bitPatterns(aexpected.style), "AdaIN dstyle over style")

        let wn = try WeightNormalization(shape: [64, 300], dim: 0)
        let v = streams.uniforms(64 * 300, seed: 38), g = streams.uniforms(64, seed: 39), dw = streams.uniforms(64 * 300, seed: 40)
        let (_, norms) = try wn.forward(v: v, g: g)
        let wexpected = try wn.backward(v: v, g: g, gradWeight: dw, norms: norms)
        var dwBuffer = dw
        try v.withUnsafeBufferPointer { vp in
            try g.withUnsafeBufferPointer { gp in
                try dwBuffer.withUnsafeMutableBufferPointer { b in
                    try wn.backward(v: vp, g: gp, gradWeight: UnsafeBufferPointer(b), norms: norms, gradV: b)
                }
            }
        }
        #expect(bitPatterns(dwBuffer) == bitPatterns(wexpected.v), "WN dv over dw")
    }
}
