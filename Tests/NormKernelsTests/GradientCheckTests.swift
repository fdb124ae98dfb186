// Finite-difference checks of every backward kernel: a small Float64 forward
// reference per op, central differences of L = Σ dy·f(·) with respect to every
// input and parameter, compared with the Float32 analytic gradients.
import Testing
@testable import NormKernels

// MARK: - Helpers (fileprivate, prefixed bw)

/// SplitMix64 uniform values in [lo, hi).
fileprivate func bwRandom(_ count: Int, seed: UInt64, _ lo: Double = -1, _ hi: Double = 1) -> [Float] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 0x1234_5678
    return (0..<count).map { _ in
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Float(lo + (hi - lo) * Double(z >> 11) / Double(1 << 53))
    }
}

/// Memory offset of (n, c, s) in `shape`'s layout (s = h·W + w).
fileprivate func bwOffset(_ shape: TensorShape, _ n: Int, _ c: Int, _ s: Int) -> Int {
    shape.layout == .nchw ? (n * shape.c + c) * shape.spatial + s : (n * shape.spatial + s) * shape.c + c
}

fileprivate func bwDoubles(_ a: [Float]) -> [Double] { a.map(Double.init) }

/// Central differences of `loss` at `p` (Float64).
fileprivate func bwNumericGradient(_ p: [Double], _ loss: ([Double]) -> Double) -> [Double] {
    var q = p
    return (0..<p.count).map { i in
        let h = 1e-5 * max(1, abs(p[i]))
        q[i] = p[i] + h
        let up = loss(q)
        q[i] = p[i] - h
        let down = loss(q)
        q[i] = p[i]
        return (up - down) / (2 * h)
    }
}

fileprivate func bwDot(_ a: [Double], _ b: [Float]) -> Double {
    var s = 0.0
    for i in 0..<a.count { s += a[i] * Double(b[i]) }
    return s
}

/// Normwise relative error max|a − e| / max|e| must stay below `tolerance`.
fileprivate func bwExpectClose(_ analytic: [Float]?, _ numeric: [Double], _ what: String,
                               tolerance: Double = 1e-3, sourceLocation: SourceLocation = #_sourceLocation) {
    guard let analytic else {
        Issue.record("\(what): gradient missing", sourceLocation: sourceLocation)
        return
    }
    guard analytic.count == numeric.count else {
        Issue.record("\(what): \(analytic.count) values, expected \(numeric.count)", sourceLocation: sourceLocation)
        return
    }
    let scale = max(numeric.map(abs).max() ?? 0, 1e-6)
    var worst = 0.0, at = 0
    for i in 0..<numeric.count {
        let e = abs(Double(analytic[i]) - numeric[i])
        if !(e <= worst) { worst = e; at = i }
    }
    let relative = worst / scale
    if !(relative <= tolerance) {
        Issue.record("\(what): relative error \(relative) at [\(at)]: analytic \(analytic[at]), numeric \(numeric[at])",
                     sourceLocation: sourceLocation)
    }
}

// MARK: - Float64 forward references

/// Normalization over `slots`, each a list of memory offsets; `gain`/`shift` per offset.
fileprivate func bwNormalize(_ x: [Double], slots: [[Int]], eps: Double, unbiased: Bool = false,
                             gain: (Int) -> Double, shift: (Int) -> Double) -> [Double] {
    var y = x
    for slot in slots {
        let m = Double(slot.count)
        let mean = slot.reduce(0) { $0 + x[$1] } / m
        let m2 = slot.reduce(0) { $0 + (x[$1] - mean) * (x[$1] - mean) }
        let r = 1 / (m2 / (unbiased ? m - 1 : m) + eps).squareRoot()
        for i in slot { y[i] = (x[i] - mean) * r * gain(i) + shift(i) }
    }
    return y
}

/// Slots of (n, group of `size` channels) or channel-wide (`batch`) in `shape`.
fileprivate func bwSlots(_ shape: TensorShape, groupSize: Int, batch: Bool = false) -> [[Int]] {
    if batch {
        return (0..<shape.c).map { c in
            (0..<shape.n).flatMap { n in (0..<shape.spatial).map { bwOffset(shape, n, c, $0) } }
        }
    }
    return (0..<shape.n).flatMap { n in
        (0..<(shape.c / groupSize)).map { g in
            (0..<groupSize).flatMap { j in (0..<shape.spatial).map { bwOffset(shape, n, g * groupSize + j, $0) } }
        }
    }
}

fileprivate func bwChannel(_ shape: TensorShape, _ offset: Int) -> Int {
    shape.layout == .nchw ? (offset / shape.spatial) % shape.c : offset % shape.c
}

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
            let x = bwRandom(shape.count, seed: 1, -2, 2)
            let dy = bwRandom(shape.count, seed: 2)
            let gamma = affine ? bwRandom(shape.c, seed: 3, 0.5, 1.5) : [Float](repeating: 1, count: shape.c)
            let beta = affine ? bwRandom(shape.c, seed: 4, -0.3, 0.3) : [Float](repeating: 0, count: shape.c)
            let bn = try BatchNormalization(shape: shape, epsilon: Float(eps), fusedReLU: relu, threading: .serial)
            let (y, saved) = try bn.forwardTraining(x, scale: affine ? gamma : nil, bias: affine ? beta : nil)
            let grads = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: affine ? gamma : nil,
                                                output: relu ? y : nil)
            let slots = bwSlots(shape, groupSize: 1, batch: true)
            func forward(_ x: [Double], _ g: [Double], _ b: [Double]) -> [Double] {
                let out = bwNormalize(x, slots: slots, eps: eps, gain: { g[bwChannel(shape, $0)] },
                                      shift: { b[bwChannel(shape, $0)] })
                return relu ? out.map { max($0, 0) } : out
            }
            let xd = bwDoubles(x), gd = bwDoubles(gamma), bd = bwDoubles(beta)
            let what = "BN \(shape) affine \(affine) relu \(relu)"
            bwExpectClose(grads.input, bwNumericGradient(xd) { bwDot(forward($0, gd, bd), dy) }, "\(what) dx")
            bwExpectClose(grads.scale, bwNumericGradient(gd) { bwDot(forward(xd, $0, bd), dy) }, "\(what) dγ")
            bwExpectClose(grads.bias, bwNumericGradient(bd) { bwDot(forward(xd, gd, $0), dy) }, "\(what) dβ")
        }
    }

    @Test("BatchNorm inference: running statistics held fixed", arguments: imageShapes)
    func batchNormInference(shape: TensorShape) throws {
        for relu in [false, true] {
            let eps = 1e-3
            let x = bwRandom(shape.count, seed: 5, -2, 2)
            let dy = bwRandom(shape.count, seed: 6)
            let gamma = bwRandom(shape.c, seed: 7, 0.5, 1.5), beta = bwRandom(shape.c, seed: 8, -0.3, 0.3)
            let running = try RunningStatistics(channels: shape.c, mean: bwRandom(shape.c, seed: 9, -0.5, 0.5),
                                                variance: bwRandom(shape.c, seed: 10, 0.5, 2))
            let bn = try BatchNormalization(shape: shape, epsilon: Float(eps), fusedReLU: relu, threading: .serial)
            let y = try bn.forwardInference(x, scale: gamma, bias: beta, running: running)
            let grads = try bn.backwardInference(x, gradOutput: dy, running: running, scale: gamma, output: relu ? y : nil)
            func forward(_ x: [Double], _ g: [Double], _ b: [Double]) -> [Double] {
                (0..<x.count).map { i in
                    let c = bwChannel(shape, i)
                    let v = (x[i] - Double(running.mean[c])) / (Double(running.variance[c]) + eps).squareRoot() * g[c] + b[c]
                    return relu ? max(v, 0) : v
                }
            }
            let xd = bwDoubles(x), gd = bwDoubles(gamma), bd = bwDoubles(beta)
            let what = "BN inference \(shape) relu \(relu)"
            bwExpectClose(grads.input, bwNumericGradient(xd) { bwDot(forward($0, gd, bd), dy) }, "\(what) dx")
            bwExpectClose(grads.scale, bwNumericGradient(gd) { bwDot(forward(xd, $0, bd), dy) }, "\(what) dγ")
            bwExpectClose(grads.bias, bwNumericGradient(bd) { bwDot(forward(xd, gd, $0), dy) }, "\(what) dβ")
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
        let x = bwRandom(shape.count, seed: 11, -2, 2), dy = bwRandom(shape.count, seed: 12)
        let gamma = affine ? bwRandom(shape.c, seed: 13, 0.5, 1.5) : [Float](repeating: 1, count: shape.c)
        let beta = affine ? bwRandom(shape.c, seed: 14, -0.3, 0.3) : [Float](repeating: 0, count: shape.c)
        let norm = try InstanceNormalization(shape: shape, epsilon: Float(eps), threading: .serial)
        let (_, saved) = try norm.forwardTraining(x, scale: affine ? gamma : nil, bias: affine ? beta : nil)
        let grads = try norm.backwardTraining(x, gradOutput: dy, saved: saved, scale: affine ? gamma : nil)
        let slots = bwSlots(shape, groupSize: 1)
        func forward(_ x: [Double], _ g: [Double], _ b: [Double]) -> [Double] {
            bwNormalize(x, slots: slots, eps: eps, gain: { g[bwChannel(shape, $0)] }, shift: { b[bwChannel(shape, $0)] })
        }
        let xd = bwDoubles(x), gd = bwDoubles(gamma), bd = bwDoubles(beta)
        let what = "IN \(shape) affine \(affine)"
        bwExpectClose(grads.input, bwNumericGradient(xd) { bwDot(forward($0, gd, bd), dy) }, "\(what) dx")
        bwExpectClose(grads.scale, bwNumericGradient(gd) { bwDot(forward(xd, $0, bd), dy) }, "\(what) dγ")
        bwExpectClose(grads.bias, bwNumericGradient(bd) { bwDot(forward(xd, gd, $0), dy) }, "\(what) dβ")
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
        let x = bwRandom(shape.count, seed: seed, -2, 2), dy = bwRandom(shape.count, seed: seed + 1)
        let gamma = affine ? bwRandom(shape.c, seed: seed + 2, 0.5, 1.5) : [Float](repeating: 1, count: shape.c)
        let beta = affine ? bwRandom(shape.c, seed: seed + 3, -0.3, 0.3) : [Float](repeating: 0, count: shape.c)
        let norm = try GroupNormalization(shape: shape, groups: groups, epsilon: Float(eps), threading: .serial)
        let (_, saved) = try norm.forward(x, scale: affine ? gamma : nil, bias: affine ? beta : nil)
        let grads = try norm.backward(x, gradOutput: dy, saved: saved, scale: affine ? gamma : nil)
        let slots = bwSlots(shape, groupSize: shape.c / groups)
        func forward(_ x: [Double], _ g: [Double], _ b: [Double]) -> [Double] {
            bwNormalize(x, slots: slots, eps: eps, gain: { g[bwChannel(shape, $0)] }, shift: { b[bwChannel(shape, $0)] })
        }
        let xd = bwDoubles(x), gd = bwDoubles(gamma), bd = bwDoubles(beta)
        let what = "GN \(shape) G \(groups) affine \(affine)"
        if shape.c / groups * shape.spatial == 1 {
            // One value per group: y = β whatever x, so dx = 0 exactly; ours is
            // r·γ·dy − r·γ·dy with r = 1/√ε ≈ 316 rounded apart, i.e. Float32
            // rounding of terms of size ~300 (PyTorch's form has the same).
            let dx = try #require(grads.input)
            #expect(dx.allSatisfy { abs($0) <= 1e-3 }, "\(what) dx: \(dx.map { abs($0) }.max() ?? 0)")
        } else {
            bwExpectClose(grads.input, bwNumericGradient(xd) { bwDot(forward($0, gd, bd), dy) }, "\(what) dx")
        }
        bwExpectClose(grads.scale, bwNumericGradient(gd) { bwDot(forward(xd, $0, bd), dy) }, "\(what) dγ")
        bwExpectClose(grads.bias, bwNumericGradient(bd) { bwDot(forward(xd, gd, $0), dy) }, "\(what) dβ")
    }

    // MARK: - LayerNorm, RMSNorm

    @Test("LayerNorm: dx, dγ, dβ (γ and β each optional)",
          arguments: [(4, 10), (3, 33), (1, 64), (5, 7), (2, 1030)])
    func layerNorm(rows: Int, features: Int) throws {
        for (withScale, withBias) in [(false, false), (true, false), (true, true), (false, true)] {
            let eps = 1e-5
            let x = bwRandom(rows * features, seed: 19, -2, 2), dy = bwRandom(rows * features, seed: 20)
            let gamma = withScale ? bwRandom(features, seed: 21, 0.5, 1.5) : [Float](repeating: 1, count: features)
            let beta = withBias ? bwRandom(features, seed: 22, -0.3, 0.3) : [Float](repeating: 0, count: features)
            let norm = try LayerNormalization(rows: rows, features: features, epsilon: Float(eps), threading: .serial)
            let (_, saved) = try norm.forward(x, scale: withScale ? gamma : nil, bias: withBias ? beta : nil)
            let grads = try norm.backward(x, gradOutput: dy, saved: saved, scale: withScale ? gamma : nil)
            let slots = (0..<rows).map { r in Array((r * features)..<((r + 1) * features)) }
            func forward(_ x: [Double], _ g: [Double], _ b: [Double]) -> [Double] {
                bwNormalize(x, slots: slots, eps: eps, gain: { g[$0 % features] }, shift: { b[$0 % features] })
            }
            let xd = bwDoubles(x), gd = bwDoubles(gamma), bd = bwDoubles(beta)
            let what = "LN \(rows)×\(features) γ \(withScale) β \(withBias)"
            bwExpectClose(grads.input, bwNumericGradient(xd) { bwDot(forward($0, gd, bd), dy) }, "\(what) dx")
            if features <= 64 {
                bwExpectClose(grads.scale, bwNumericGradient(gd) { bwDot(forward(xd, $0, bd), dy) }, "\(what) dγ")
                bwExpectClose(grads.bias, bwNumericGradient(bd) { bwDot(forward(xd, gd, $0), dy) }, "\(what) dβ")
            }
        }
    }

    @Test("RMSNorm: dx, dγ", arguments: [(4, 16), (3, 13), (1, 7), (2, 1030)])
    func rmsNorm(rows: Int, features: Int) throws {
        for withScale in [false, true] {
            let eps = 1e-6
            let x = bwRandom(rows * features, seed: 23, -2, 2), dy = bwRandom(rows * features, seed: 24)
            let gamma = withScale ? bwRandom(features, seed: 25, 0.5, 1.5) : [Float](repeating: 1, count: features)
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
            let xd = bwDoubles(x), gd = bwDoubles(gamma)
            let what = "RMS \(rows)×\(features) γ \(withScale)"
            bwExpectClose(grads.input, bwNumericGradient(xd) { bwDot(forward($0, gd), dy) }, "\(what) dx")
            if features <= 64 {
                bwExpectClose(grads.scale, bwNumericGradient(gd) { bwDot(forward(xd, $0), dy) }, "\(what) dγ")
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
        let x = bwRandom(content.count, seed: 26, -2, 2), s = bwRandom(style.count, seed: 27, -1, 3)
        let dy = bwRandom(content.count, seed: 28)
        let ada = try AdaptiveInstanceNormalization(content: content, style: style, epsilon: Float(eps),
                                                    unbiasedVariance: unbiased, threading: .serial)
        let (_, saved) = try ada.forward(content: x, style: s)
        let grads = try ada.backward(content: x, style: s, gradOutput: dy, saved: saved)
        let contentSlots = bwSlots(content, groupSize: 1), styleSlots = bwSlots(style, groupSize: 1)
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
            return bwNormalize(x, slots: contentSlots, eps: eps, unbiased: unbiased,
                               gain: { sigma[slot($0)] }, shift: { mu[slot($0)] })
        }
        let xd = bwDoubles(x), sd = bwDoubles(s)
        let what = "AdaIN \(layout) unbiased \(unbiased)"
        bwExpectClose(grads.content, bwNumericGradient(xd) { bwDot(forward($0, sd), dy) }, "\(what) dcontent")
        bwExpectClose(grads.style, bwNumericGradient(sd) { bwDot(forward(xd, $0), dy) }, "\(what) dstyle")
    }

    // MARK: - Weight normalization

    @Test("WeightNorm: dv and dg for every dim",
          arguments: [([4, 3], Optional(0)), ([4, 3], 1), ([2, 3, 4], 2), ([3, 2, 2, 2], 0), ([3, 4], nil), ([2, 3, 5], 1)])
    func weightNorm(shape: [Int], dim: Int?) throws {
        let count = shape.reduce(1, *)
        let wn = try WeightNormalization(shape: shape, dim: dim, threading: .serial)
        let v = bwRandom(count, seed: 29, -2, 2), g = bwRandom(wn.normCount, seed: 30, -1.5, 1.5)
        let dw = bwRandom(count, seed: 31)
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
        let vd = bwDoubles(v), gd = bwDoubles(g)
        let what = "WN \(shape) dim \(String(describing: dim))"
        bwExpectClose(grads.v, bwNumericGradient(vd) { bwDot(forward($0, gd), dw) }, "\(what) dv")
        bwExpectClose(grads.g, bwNumericGradient(gd) { bwDot(forward(vd, $0), dw) }, "\(what) dg")
    }
}
