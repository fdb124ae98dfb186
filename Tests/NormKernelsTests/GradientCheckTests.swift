// Finite-difference checks of every backward kernel: a small Float64 forward
// reference per op, central differences of L = Σ dy·f(·) with respect to every
// input and parameter, compared with the Float32 analytic gradients.
import Testing
@testable import NormKernels

/// Seeds 1, 2, … of the finite-difference streams.
private let streams = SeededStreams.gradientCheck

// MARK: - BatchNorm

struct GradientCheckTests {
    static let imageShapes: [TensorShape] = [
        TensorShape(n: 3, c: 4, h: 2, w: 3, layout: .nchw),
        TensorShape(n: 3, c: 4, h: 2, w: 3, layout: .nhwc),
        TensorShape.matrix(6, 5),
        TensorShape(n: 2, c: 9, h: 3, w: 1, layout: .nhwc),
        TensorShape(n: 5, c: 3, h: 1, w: 3, layout: .nhwc),         // C < 8: periodic lanes, then a rest
        TensorShape.matrix(11, 5),
    ]

    @Test("BatchNorm training: dx, dγ, dβ by finite differences",
          arguments: imageShapes, [false, true])
    func batchNormTraining(shape: TensorShape, affine: Bool) throws {
        for relu in [false, true] {
            let eps = 1e-5
            let x = streams.uniforms(shape.count, seed: 1, -2...2)
            let dy = streams.uniforms(shape.count, seed: 2)
            let gamma = affine ? streams.uniforms(shape.c, seed: 3, 0.5...1.5) : [Float](repeating: 1, count: shape.c)
            let beta = affine ? streams.uniforms(shape.c, seed: 4, -0.3...0.3) : [Float](repeating: 0, count: shape.c)
            let bn = try BatchNormalization(shape: shape, epsilon: Float(eps), fusedReLU: relu, threading: .serial)
            let (y, saved) = try bn.forwardTraining(x, scale: affine ? gamma : nil, bias: affine ? beta : nil)
            let grads = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: affine ? gamma : nil,
                                                output: relu ? y : nil)
            let slots = Reference.slots(shape, groupSize: 1, batch: true)
            func forward(_ x: [Double], _ g: [Double], _ b: [Double]) -> [Double] {
                let out = Reference.normalize(x, slots: slots, eps: eps, gain: { g[shape.channel(at: $0)] },
                                      shift: { b[shape.channel(at: $0)] })
                return relu ? out.map { max($0, 0) } : out
            }
            let xd = x.map(Double.init), gd = gamma.map(Double.init), bd = beta.map(Double.init)
            let what = "BN \(shape) affine \(affine) relu \(relu)"
            expectMatchesNumeric(grads.input, Reference.numericGradient(xd) { Reference.dot(forward($0, gd, bd), dy) }, "\(what) dx")
            expectMatchesNumeric(grads.scale, Reference.numericGradient(gd) { Reference.dot(forward(xd, $0, bd), dy) }, "\(what) dγ")
            expectMatchesNumeric(grads.bias, Reference.numericGradient(bd) { Reference.dot(forward(xd, gd, $0), dy) }, "\(what) dβ")
        }
    }

    @Test("BatchNorm inference: running statistics held fixed", arguments: imageShapes)
    func batchNormInference(shape: TensorShape) throws {
        for relu in [false, true] {
            let eps = 1e-3
            let x = streams.uniforms(shape.count, seed: 5, -2...2)
            let dy = streams.uniforms(shape.count, seed: 6)
            let gamma = streams.uniforms(shape.c, seed: 7, 0.5...1.5), beta = streams.uniforms(shape.c, seed: 8, -0.3...0.3)
            let running = try RunningStatistics(channels: shape.c, mean: streams.uniforms(shape.c, seed: 9, -0.5...0.5),
                                                variance: streams.uniforms(shape.c, seed: 10, 0.5...2))
            let bn = try BatchNormalization(shape: shape, epsilon: Float(eps), fusedReLU: relu, threading: .serial)
            let y = try bn.forwardInference(x, scale: gamma, bias: beta, running: running)
            let grads = try bn.backwardInference(x, gradOutput: dy, running: running, scale: gamma, output: relu ? y : nil)
            func forward(_ x: [Double], _ g: [Double], _ b: [Double]) -> [Double] {
                (0..<x.count).map { i in
                    let c = shape.channel(at: i)
                    let v = (x[i] - Double(running.mean[c])) / (Double(running.variance[c]) + eps).squareRoot() * g[c] + b[c]
                    return relu ? max(v, 0) : v
                }
            }
            let xd = x.map(Double.init), gd = gamma.map(Double.init), bd = beta.map(Double.init)
            let what = "BN inference \(shape) relu \(relu)"
            expectMatchesNumeric(grads.input, Reference.numericGradient(xd) { Reference.dot(forward($0, gd, bd), dy) }, "\(what) dx")
            expectMatchesNumeric(grads.scale, Reference.numericGradient(gd) { Reference.dot(forward(xd, $0, bd), dy) }, "\(what) dγ")
            expectMatchesNumeric(grads.bias, Reference.numericGradient(bd) { Reference.dot(forward(xd, gd, $0), dy) }, "\(what) dβ")
        }
    }

    // MARK: - InstanceNorm, GroupNorm

    static let groupedShapes: [TensorShape] = [
        TensorShape(n: 2, c: 6, h: 2, w: 3, layout: .nchw),
        TensorShape(n: 2, c: 6, h: 2, w: 3, layout: .nhwc),
        TensorShape(n: 1, c: 12, h: 3, w: 3, layout: .nhwc),
        // GroupNorm's NHWC small-map path needs groups of ≥ 8 channels: G = 1, 2
        // give groups of 16 and 8 here, and of 18 and 9 (vector + 1) below.
        TensorShape(n: 2, c: 16, h: 2, w: 3, layout: .nhwc),
        TensorShape(n: 3, c: 18, h: 2, w: 2, layout: .nhwc),
    ]

    @Test("InstanceNorm training: dx, dγ, dβ", arguments: groupedShapes, [false, true])
    func instanceNorm(shape: TensorShape, affine: Bool) throws {
        let eps = 1e-5
        let x = streams.uniforms(shape.count, seed: 11, -2...2), dy = streams.uniforms(shape.count, seed: 12)
        let gamma = affine ? streams.uniforms(shape.c, seed: 13, 0.5...1.5) : [Float](repeating: 1, count: shape.c)
        let beta = affine ? streams.uniforms(shape.c, seed: 14, -0.3...0.3) : [Float](repeating: 0, count: shape.c)
        let norm = try InstanceNormalization(shape: shape, epsilon: Float(eps), threading: .serial)
        let (_, saved) = try norm.forwardTraining(x, scale: affine ? gamma : nil, bias: affine ? beta : nil)
        let grads = try norm.backwardTraining(x, gradOutput: dy, saved: saved, scale: affine ? gamma : nil)
        let slots = Reference.slots(shape, groupSize: 1)
        func forward(_ x: [Double], _ g: [Double], _ b: [Double]) -> [Double] {
            Reference.normalize(x, slots: slots, eps: eps, gain: { g[shape.channel(at: $0)] }, shift: { b[shape.channel(at: $0)] })
        }
        let xd = x.map(Double.init), gd = gamma.map(Double.init), bd = beta.map(Double.init)
        let what = "IN \(shape) affine \(affine)"
        expectMatchesNumeric(grads.input, Reference.numericGradient(xd) { Reference.dot(forward($0, gd, bd), dy) }, "\(what) dx")
        expectMatchesNumeric(grads.scale, Reference.numericGradient(gd) { Reference.dot(forward(xd, $0, bd), dy) }, "\(what) dγ")
        expectMatchesNumeric(grads.bias, Reference.numericGradient(bd) { Reference.dot(forward(xd, gd, $0), dy) }, "\(what) dβ")
    }

    @Test("GroupNorm: dx, dγ, dβ for G = 1, 2, 3, C", arguments: groupedShapes, [false, true])
    func groupNorm(shape: TensorShape, affine: Bool) throws {
        for groups in [1, 2, 3, shape.c] where shape.c % groups == 0 {
            try checkGroupNorm(shape, groups: groups, affine: affine, seed: 15)
        }
    }

    @Test("GroupNorm on feature vectors (H·W = 1): dx, dγ, dβ for G = 1, 2, 3, 6, 12",
          arguments: [TensorShape(n: 5, c: 12, h: 1, w: 1, layout: .nchw),
                      TensorShape(n: 4, c: 12, h: 1, w: 1, layout: .nhwc)], [false, true])
    func groupNormFeatureVectors(shape: TensorShape, affine: Bool) throws {
        // H·W = 1 takes LayerNorm's backward engine with per-group statistics.
        for groups in [1, 2, 3, 6, 12] {
            try checkGroupNorm(shape, groups: groups, affine: affine, seed: 23)
        }
    }

    /// GroupNorm's dx, dγ, dβ against Float64 finite differences (inputs from
    /// seeds `seed` … `seed + 3`).
    private func checkGroupNorm(_ shape: TensorShape, groups: Int, affine: Bool, seed: UInt64) throws {
        let eps = 1e-5
        let x = streams.uniforms(shape.count, seed: seed, -2...2), dy = streams.uniforms(shape.count, seed: seed + 1)
        let gamma = affine ? streams.uniforms(shape.c, seed: seed + 2, 0.5...1.5) : [Float](repeating: 1, count: shape.c)
        let beta = affine ? streams.uniforms(shape.c, seed: seed + 3, -0.3...0.3) : [Float](repeating: 0, count: shape.c)
        let norm = try GroupNormalization(shape: shape, groups: groups, epsilon: Float(eps), threading: .serial)
        let (_, saved) = try norm.forward(x, scale: affine ? gamma : nil, bias: affine ? beta : nil)
        let grads = try norm.backward(x, gradOutput: dy, saved: saved, scale: affine ? gamma : nil)
        let slots = Reference.slots(shape, groupSize: shape.c / groups)
        func forward(_ x: [Double], _ g: [Double], _ b: [Double]) -> [Double] {
            Reference.normalize(x, slots: slots, eps: eps, gain: { g[shape.channel(at: $0)] }, shift: { b[shape.channel(at: $0)] })
        }
        let xd = x.map(Double.init), gd = gamma.map(Double.init), bd = beta.map(Double.init)
        let what = "GN \(shape) G \(groups) affine \(affine)"
        if shape.c / groups * shape.spatial == 1 {
            // One value per group: y = β whatever x, so dx = 0 exactly; ours is
            // r·γ·dy − r·γ·dy with r = 1/√ε ≈ 316 rounded apart, i.e. Float32
            // rounding of terms of size ~300 (PyTorch's form has the same).
            let dx = try #require(grads.input)
            #expect(dx.allSatisfy { abs($0) <= 1e-3 }, "\(what) dx: \(dx.map { abs($0) }.max() ?? 0)")
        } else {
            expectMatchesNumeric(grads.input, Reference.numericGradient(xd) { Reference.dot(forward($0, gd, bd), dy) }, "\(what) dx")
        }
        expectMatchesNumeric(grads.scale, Reference.numericGradient(gd) { Reference.dot(forward(xd, $0, bd), dy) }, "\(what) dγ")
        expectMatchesNumeric(grads.bias, Reference.numericGradient(bd) { Reference.dot(forward(xd, gd, $0), dy) }, "\(what) dβ")
    }

    // MARK: - LayerNorm, RMSNorm

    @Test("LayerNorm: dx, dγ, dβ (γ and β each optional)",
          arguments: [(4, 10), (3, 33), (1, 64), (5, 7), (2, 1030)])
    func layerNorm(rows: Int, features: Int) throws {
        for (withScale, withBias) in [(false, false), (true, false), (true, true), (false, true)] {
            let eps = 1e-5
            let x = streams.uniforms(rows * features, seed: 19, -2...2), dy = streams.uniforms(rows * features, seed: 20)
            let gamma = withScale ? streams.uniforms(features, seed: 21, 0.5...1.5) : [Float](repeating: 1, count: features)
            let beta = withBias ? streams.uniforms(features, seed: 22, -0.3...0.3) : [Float](repeating: 0, count: features)
            let norm = try LayerNormalization(rows: rows, features: features, epsilon: Float(eps), threading: .serial)
            let (_, saved) = try norm.forward(x, scale: withScale ? gamma : nil, bias: withBias ? beta : nil)
            let grads = try norm.backward(x, gradOutput: dy, saved: saved, scale: withScale ? gamma : nil)
            let slots = (0..<rows).map { r in Array((r * features)..<((r + 1) * features)) }
            func forward(_ x: [Double], _ g: [Double], _ b: [Double]) -> [Double] {
                Reference.normalize(x, slots: slots, eps: eps, gain: { g[$0 % features] }, shift: { b[$0 % features] })
            }
            let xd = x.map(Double.init), gd = gamma.map(Double.init), bd = beta.map(Double.init)
            let what = "LN \(rows)×\(features) γ \(withScale) β \(withBias)"
            expectMatchesNumeric(grads.input, Reference.numericGradient(xd) { Reference.dot(forward($0, gd, bd), dy) }, "\(what) dx")
            if features <= 64 {
                expectMatchesNumeric(grads.scale, Reference.numericGradient(gd) { Reference.dot(forward(xd, $0, bd), dy) }, "\(what) dγ")
                expectMatchesNumeric(grads.bias, Reference.numericGradient(bd) { Reference.dot(forward(xd, gd, $0), dy) }, "\(what) dβ")
            }
        }
    }

    @Test("RMSNorm: dx, dγ", arguments: [(4, 16), (3, 13), (1, 7), (2, 1030)])
    func rmsNorm(rows: Int, features: Int) throws {
        for withScale in [false, true] {
            let eps = 1e-6
            let x = streams.uniforms(rows * features, seed: 23, -2...2), dy = streams.uniforms(rows * features, seed: 24)
            let gamma = withScale ? streams.uniforms(features, seed: 25, 0.5...1.5) : [Float](repeating: 1, count: features)
            let norm = try RMSNormalization(rows: rows, features: features, epsilon: Float(eps), threading: .serial)
            let (_, saved) = try norm.forward(x, scale: withScale ? gamma : nil)
            let grads = try norm.backward(x, gradOutput: dy, saved: saved, scale: withScale ? gamma : nil)
            #expect(grads.bias == nil)
            func forward(_ x: [Double], _ g: [Double]) -> [Double] {
                var y = x
                for r in 0..<rows {
                    let row = (r * features)..<((r + 1) * features)
                    let ms = row.reduce(0) { $0 + x[$1] * x[$1] } / Double(features)
                    let inv = 1 / (ms + Double(Float(eps))).squareRoot()
                    for i in row { y[i] = x[i] * inv * g[i - r * features] }
                }
                return y
            }
            let xd = x.map(Double.init), gd = gamma.map(Double.init)
            let what = "RMS \(rows)×\(features) γ \(withScale)"
            expectMatchesNumeric(grads.input, Reference.numericGradient(xd) { Reference.dot(forward($0, gd), dy) }, "\(what) dx")
            if features <= 64 {
                expectMatchesNumeric(grads.scale, Reference.numericGradient(gd) { Reference.dot(forward(xd, $0), dy) }, "\(what) dγ")
            }
        }
    }

    // MARK: - AdaIN

    @Test("AdaIN: dcontent and dstyle through μ(style) and σ(style)",
          arguments: [Layout.nchw, .nhwc], [false, true])
    func adain(layout: Layout, unbiased: Bool) throws {
        let eps = 1e-5
        let content = TensorShape(n: 2, c: 3, h: 3, w: 2, layout: layout)
        let style = TensorShape(n: 2, c: 3, h: 2, w: 5, layout: layout)
        let x = streams.uniforms(content.count, seed: 26, -2...2), s = streams.uniforms(style.count, seed: 27, -1...3)
        let dy = streams.uniforms(content.count, seed: 28)
        let ada = try AdaptiveInstanceNormalization(content: content, style: style, epsilon: Float(eps),
                                                    unbiasedVariance: unbiased, threading: .serial)
        let (_, saved) = try ada.forward(content: x, style: s)
        let grads = try ada.backward(content: x, style: s, gradOutput: dy, saved: saved)
        let contentSlots = Reference.slots(content, groupSize: 1), styleSlots = Reference.slots(style, groupSize: 1)
        func forward(_ x: [Double], _ s: [Double]) -> [Double] {
            var mu = [Double](), sigma = [Double]()
            for slot in styleSlots {
                let m = Double(slot.count)
                let mean = slot.reduce(0) { $0 + s[$1] } / m
                let m2 = slot.reduce(0) { $0 + (s[$1] - mean) * (s[$1] - mean) }
                mu.append(mean)
                sigma.append((m2 / (unbiased ? m - 1 : m) + eps).squareRoot())
            }
            func slot(_ i: Int) -> Int {
                content.layout == .nchw ? i / content.spatial : (i / (content.spatial * content.c)) * content.c + i % content.c
            }
            return Reference.normalize(x, slots: contentSlots, eps: eps, unbiased: unbiased,
                               gain: { sigma[slot($0)] }, shift: { mu[slot($0)] })
        }
        let xd = x.map(Double.init), sd = s.map(Double.init)
        let what = "AdaIN \(layout) unbiased \(unbiased)"
        expectMatchesNumeric(grads.content, Reference.numericGradient(xd) { Reference.dot(forward($0, sd), dy) }, "\(what) dcontent")
        expectMatchesNumeric(grads.style, Reference.numericGradient(sd) { Reference.dot(forward(xd, $0), dy) }, "\(what) dstyle")
    }

    // MARK: - Weight normalization

    @Test("WeightNorm: dv and dg for every dim",
          arguments: [([4, 3], Optional(0)), ([4, 3], 1), ([2, 3, 4], 2), ([3, 2, 2, 2], 0), ([3, 4], nil), ([2, 3, 5], 1)])
    func weightNorm(shape: [Int], dim: Int?) throws {
        let count = shape.reduce(1, *)
        let wn = try WeightNormalization(shape: shape, dim: dim, threading: .serial)
        let v = streams.uniforms(count, seed: 29, -2...2), g = streams.uniforms(wn.normCount, seed: 30, -1.5...1.5)
        let dw = streams.uniforms(count, seed: 31)
        let (_, norms) = try wn.forward(v: v, g: g)
        let grads = try wn.backward(v: v, g: g, gradWeight: dw, norms: norms)
        let outer = dim.map { shape[..<$0].reduce(1, *) } ?? 1
        let inner = dim.map { shape[($0 + 1)...].reduce(1, *) } ?? count
        func forward(_ v: [Double], _ g: [Double]) -> [Double] {
            var w = v
            for i in 0..<wn.normCount {
                let idx = (0..<outer).flatMap { o in (0..<inner).map { (o * wn.normCount + i) * inner + $0 } }
                let norm = idx.reduce(0) { $0 + v[$1] * v[$1] }.squareRoot()
                for j in idx { w[j] = g[i] * v[j] / norm }
            }
            return w
        }
        let vd = v.map(Double.init), gd = g.map(Double.init)
        let what = "WN \(shape) dim \(String(describing: dim))"
        expectMatchesNumeric(grads.v, Reference.numericGradient(vd) { Reference.dot(forward($0, gd), dw) }, "\(what) dv")
        expectMatchesNumeric(grads.g, Reference.numericGradient(gd) { Reference.dot(forward(vd, $0), dw) }, "\(what) dg")
    }
}
