// Forward kernels against the Float64 references (Reference.swift): LayerNorm
// and RMSNorm over tile-relative feature counts, AdaIN, WeightNorm, BatchNorm
// folding, and tensors larger than the last-level cache (non-temporal stores).

import Foundation
import Testing
@testable import NormKernels

@Suite("Forward: LayerNormalization and RMSNormalization")
struct ForwardRowNormTests {
    @Test("LayerNorm(rows:features:) over tile-relative feature counts, every γ/β combination")
    func layerNormSweep() throws {
        let cases = product([1, 3, 37], Sizes.features).enumerated().map { ($0.element.0, $0.element.1, Affine.allCases[$0.offset % 4]) }
        sweep(cases) { item, context in
            let (rows, features, affine) = item
            var rng = SplitMix64("ln \(context)")
            let x = activations(TensorShape(n: rows, c: 1, h: features), &rng)
            let (scale, bias) = affine.parameters(features, &rng)
            let (y, saved) = try LayerNormalization(rows: rows, features: features).forward(x, scale: scale, bias: bias)
            let ref = Reference.layerNorm(x, rows: rows, features: features, scale: scale, bias: bias)
            expectMatches(y, saved, ref, count: features, context)
        }
    }

    @Test("LayerNorm(shape:) normalizes C·H·W with γ/β in memory order, both layouts")
    func layerNormShape() throws {
        let cases = product([TensorShape(n: 2, c: 3, h: 5, w: 7), TensorShape(n: 1, c: 33, h: 1, w: 1),
                             TensorShape(n: 3, c: 8, h: 17, w: 33)], Layout.allCases)
        sweep(cases) { item, context in
            let shape = item.0.with(layout: item.1)
            var rng = SplitMix64("ln-shape \(context)")
            let x = activations(shape, &rng)
            let features = shape.c * shape.spatial
            let (scale, bias) = Affine.both.parameters(features, &rng)
            let ln = try LayerNormalization(shape: shape)
            #expect(ln.rows == shape.n && ln.features == features, "rows/features — \(context)")
            let (y, saved) = try ln.forward(x, scale: scale, bias: bias)
            let ref = Reference.layerNorm(x, rows: shape.n, features: features, scale: scale, bias: bias)
            expectMatches(y, saved, ref, count: features, context)
        }
    }

    @Test("RMSNorm over tile-relative feature counts, with and without γ")
    func rmsNormSweep() throws {
        let cases = product([1, 3, 37], Sizes.features, [false, true])
        sweep(cases) { item, context in
            let (rows, features, withScale) = item
            var rng = SplitMix64("rms \(context)")
            let x = activations(TensorShape(n: rows, c: 1, h: features), &rng)
            let scale = withScale ? rng.uniforms(features, -2...2) : nil
            let (y, saved) = try RMSNormalization(rows: rows, features: features).forward(x, scale: scale)
            let ref = Reference.rmsNorm(x, rows: rows, features: features, scale: scale)
            let tol = reductionTolerance(features)
            expectAllClose(y, ref.output, atol: tol, rtol: tol, "output", context)
            expectAllClose(saved.invStd, ref.invRMS, atol: 0, rtol: tol / 10, "saved 1/rms", context)
            #expect(saved.mean == Array(repeating: 0, count: rows), "RMSNorm saved means must be zero — \(context)")
        }
    }

    @Test("short rows (8 per vector; RMSNorm 16–256 one row at a time): many chunks of 512 rows, a partial last group of 8, both sides of the length limits")
    func shortRowsAcrossChunks() throws {
        let cases = product([1037], [5, 15, 16, 37, 64, 65, 128, 129, 256, 257])
        sweep(cases) { item, context in
            let (rows, features) = item
            var rng = SplitMix64("short-rows \(context)")
            let x = activations(TensorShape(n: rows, c: 1, h: features), &rng)
            let (scale, bias) = Affine.both.parameters(features, &rng)
            let (y, saved) = try LayerNormalization(rows: rows, features: features).forward(x, scale: scale, bias: bias)
            expectMatches(y, saved, Reference.layerNorm(x, rows: rows, features: features, scale: scale, bias: bias),
                          count: features, "LayerNorm \(context)")
            let (r, rmsSaved) = try RMSNormalization(rows: rows, features: features).forward(x, scale: scale)
            let ref = Reference.rmsNorm(x, rows: rows, features: features, scale: scale)
            let tol = reductionTolerance(features)
            expectAllClose(r, ref.output, atol: tol, rtol: tol, "RMSNorm output", context)
            expectAllClose(rmsSaved.invStd, ref.invRMS, atol: 0, rtol: tol / 10, "RMSNorm saved 1/rms", context)
        }
    }

    @Test("RMSNorm with an explicit ε")
    func rmsNormEpsilon() throws {
        var rng = SplitMix64("rms-eps")
        let x = rng.normals(3 * 40, std: 1e-3)
        let (y, saved) = try RMSNormalization(rows: 3, features: 40, epsilon: 1e-5).forward(x)
        let ref = Reference.rmsNorm(x, rows: 3, features: 40, epsilon: 1e-5)
        expectAllClose(y, ref.output, atol: 1e-6, rtol: 1e-6, "output", "ε = 1e-5 dominating mean(x²) = 1e-6")
        expectAllClose(saved.invStd, ref.invRMS, atol: 0, rtol: 1e-6, "saved 1/rms", "ε = 1e-5")
    }
}

@Suite("Forward: AdaptiveInstanceNormalization")
struct ForwardAdaINTests {
    @Test("matches the reference: content/style sizes and layouts differ, biased and unbiased variance")
    func sweepAll() throws {
        let contents = activationShapes(nsForSmall: [2])
        var cases: [(TensorShape, TensorShape, Bool)] = []
        for (i, content) in contents.enumerated() {
            let (h, w) = Sizes.spatial[(i / 2 + 3) % Sizes.spatial.count]
            let style = TensorShape(n: content.n, c: content.c, h: h, w: w, layout: i % 4 < 2 ? .nchw : .nhwc)
            let unbiased = (i / 4) % 2 == 1 && content.spatial > 1 && style.spatial > 1
            cases.append((content, style, unbiased))
        }
        sweep(cases) { item, context in
            let (cs, ss, unbiased) = item
            var rng = SplitMix64("adain \(context)")
            let content = activations(cs, &rng)
            let style = activations(ss, &rng, center: -5...5, spread: 0.1...3)
            let ada = try AdaptiveInstanceNormalization(content: cs, style: ss, unbiasedVariance: unbiased)
            let (y, saved) = try ada.forward(content: content, style: style)
            let ref = Reference.adaIN(content: content, cs, style: style, ss, unbiased: unbiased)
            let tol = reductionTolerance(max(cs.spatial, ss.spatial))
            expectAllClose(y, ref.output, atol: tol, rtol: tol, "output", context)
            expectAllClose(saved.contentMean, ref.contentMean, atol: tol / 10, rtol: tol / 10, "content mean", context)
            expectAllClose(saved.contentInvStd, ref.contentInvStd, atol: 0, rtol: invStdTolerance(cs.spatial), "content invStd", context)
            expectAllClose(saved.styleMean, ref.styleMean, atol: tol / 10, rtol: tol / 10, "style mean", context)
            expectAllClose(saved.styleStd, ref.styleStd, atol: 0, rtol: invStdTolerance(ss.spatial), "style std", context)
        }
    }

    @Test("unbiasedVariance: true divides by H·W − 1")
    func unbiasedDiffers() throws {
        // With H·W = 2, the unbiased σ² is twice the biased one: outputs must differ
        // by the factor the reference predicts.
        let cs = TensorShape(n: 1, c: 2, h: 1, w: 2), ss = TensorShape(n: 1, c: 2, h: 2, w: 2)
        let content: [Float] = [1, 3, -2, 6], style: [Float] = [0, 1, 2, 3, 10, 10, 14, 14]
        for unbiased in [false, true] {
            let (y, saved) = try AdaptiveInstanceNormalization(content: cs, style: ss, unbiasedVariance: unbiased)
                .forward(content: content, style: style)
            let ref = Reference.adaIN(content: content, cs, style: style, ss, unbiased: unbiased)
            expectAllClose(y, ref.output, atol: 1e-6, rtol: 1e-6, "output", "unbiased \(unbiased)")
            let styleVar0 = unbiased ? 5.0 / 3 : 5.0 / 4
            expectAllClose(saved.styleStd, [(styleVar0 + 1e-5).squareRoot(), ((unbiased ? 16.0 / 3 : 4) + 1e-5).squareRoot()],
                        atol: 0, rtol: 1e-6, "style std (closed form)", "unbiased \(unbiased)")
        }
    }
}

@Suite("Forward: WeightNormalization")
struct ForwardWeightNormTests {
    static let cases: [(shape: [Int], dim: Int?)] = [
        ([64, 4097], 0), ([64, 4097], 1), ([64, 4097], nil),
        ([3, 5, 7, 9], 0), ([3, 5, 7, 9], 1), ([3, 5, 7, 9], 2), ([3, 5, 7, 9], 3), ([3, 5, 7, 9], nil),
        ([1030, 3, 3, 3], 0), ([1030, 3, 3, 3], 1),
        ([8, 32, 33], 0), ([8, 32, 33], 1), ([8, 32, 33], 2), ([8, 32, 33], nil),
        ([33], 0), ([33], nil), ([2, 9000], 0), ([2, 9000], 1), ([1, 1], 0),
    ]

    @Test("w = g·v/‖v‖ for dim 0, middle dims, last dim and nil")
    func sweepAll() throws {
        sweep(Self.cases) { item, context in
            var rng = SplitMix64("wn \(context)")
            let wn = try WeightNormalization(shape: item.shape, dim: item.dim)
            let count = item.shape.reduce(1, *)
            #expect(wn.count == count && wn.normCount == (item.dim.map { item.shape[$0] } ?? 1), "counts — \(context)")
            let v = rng.normals(count, mean: 0.3, std: 1)
            let g = rng.uniforms(wn.normCount, -2...2)
            let (w, norms) = try wn.forward(v: v, g: g)
            let ref = Reference.weightNorm(v, shape: item.shape, dim: item.dim, g: g)
            let tol = 1e-6 * (1 + log2(Double(count / wn.normCount)))
            expectAllClose(norms, ref.norms, atol: 0, rtol: tol, "norms", context)
            expectAllClose(w, ref.weight, atol: 1e-7 * maxAbs(ref.weight), rtol: tol, "weight", context)
        }
    }

    @Test("1-D dim 0: every element is its own slice, so w = g·sign(v)")
    func elementwiseSign() throws {
        let v: [Float] = [3, -0.5, 1e-20, -7e20, 2]
        let g: [Float] = [1, 2, -3, 4, 0.5]
        let (w, norms) = try WeightNormalization(shape: [5], dim: 0).forward(v: v, g: g)
        expectAllClose(w, [1, -2, -3, -4, 0.5], atol: 0, rtol: 2e-7, "weight", "[5] dim 0")
        #expect(norms == v.map { Double(abs($0)) })
    }

    @Test("a zero slice gives NaN, as PyTorch")
    func zeroSlice() throws {
        let (w, norms) = try WeightNormalization(shape: [2, 3], dim: 0).forward(v: [0, 0, 0, 1, 2, 2], g: [1, 3])
        #expect(norms == [0, 3])
        #expect(w[0..<3].allSatisfy { $0.isNaN }, "zero slice: \(w)")
        expectAllClose(Array(w[3...]), [1, 2, 2], atol: 1e-7, rtol: 1e-7, "nonzero slice", "[2, 3] dim 0")
    }
}

@Suite("Forward: BatchNormFolding")
struct ForwardFoldingTests {
    @Test("folded weight and bias equal the Float64 formula")
    func foldMatchesReference() throws {
        let cases = product([(8, [8, 33]), (33, [33, 3, 3, 3]), (1, [1, 5])], [false, true], [false, true])
        sweep(cases) { item, context in
            let ((outChannels, shape), withBias, withAffine) = item
            var rng = SplitMix64("fold \(context)")
            let weight = rng.normals(shape.reduce(1, *))
            let bias = withBias ? rng.normals(outChannels) : nil
            let scale = withAffine ? rng.uniforms(outChannels, -2...2) : nil
            let shift = withAffine ? rng.uniforms(outChannels, -1...1) : nil
            let running = try RunningStatistics(channels: outChannels, mean: rng.uniforms(outChannels, -2...2),
                                                variance: rng.uniforms(outChannels, 0.01...4))
            let folded = try BatchNormFolding.fold(weight: weight, bias: bias, outChannels: outChannels, running: running,
                                                   scale: scale, shift: shift, epsilon: 1e-3)
            let ref = Reference.fold(weight: weight, bias: bias, outChannels: outChannels, mean: running.mean,
                                     variance: running.variance, scale: scale, shift: shift, epsilon: 1e-3)
            expectAllClose(folded.weight, ref.weight, atol: 0, rtol: 1e-7, "folded weight", context)
            expectAllClose(folded.bias, ref.bias, atol: 1e-7, rtol: 1e-7, "folded bias", context)
        }
    }

    @Test("linear layer then BatchNorm inference equals the folded linear layer")
    func foldedLayerIsEquivalent() throws {
        let rows = 50, inputs = 17, outputs = 9
        var rng = SplitMix64("fold-linear")
        let weight = rng.normals(outputs * inputs), bias = rng.normals(outputs)
        let scale = rng.uniforms(outputs, -2...2), shift = rng.uniforms(outputs, -1...1)
        let running = try RunningStatistics(channels: outputs, mean: rng.uniforms(outputs, -2...2),
                                            variance: rng.uniforms(outputs, 0.1...4))
        let x = rng.normals(rows * inputs)
        func linear(_ w: [Float], _ b: [Float]) -> [Double] {
            (0..<(rows * outputs)).map { i in
                let r = i / outputs, o = i % outputs
                return (0..<inputs).reduce(Double(b[o])) { $0 + Double(x[r * inputs + $1]) * Double(w[o * inputs + $1]) }
            }
        }
        let z = linear(weight, bias).map { Float($0) }
        let bn = try BatchNormalization(shape: .matrix(rows, outputs))
        let y = try bn.forwardInference(z, scale: scale, bias: shift, running: running)
        let folded = try BatchNormFolding.fold(weight: weight, bias: bias, outChannels: outputs, running: running,
                                               scale: scale, shift: shift)
        expectAllClose(y, linear(folded.weight, folded.bias), atol: 1e-4, rtol: 1e-4, "BN(linear(x))", "folded linear")
    }
}

@Suite("Forward: tensors larger than the last-level cache (non-temporal output stores)")
struct ForwardStreamingTests {
    /// Just over the size at which input + output exceed the last-level cache, so
    /// the kernels write their output with streaming stores (4.2M values with 32 MiB of L3
    /// counted: `StorePolicy.lastLevelCacheBytes`, the size rules' cache).
    static let elements: Int = StorePolicy.lastLevelCacheBytes / 8 + 4099

    func expectStreaming(_ count: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        if ProcessInfo.processInfo.environment["NORMKERNELS_STREAMING"] == nil {
            // Past the cache by the rule of any thread count (x + y > the counted cache).
            #expect(StorePolicy(twoPass: count, threads: 2).streams, "\(count) values do not take the streaming path",
                    sourceLocation: sourceLocation)
        }
    }

    @Test("LayerNorm and RMSNorm with odd row lengths (unaligned row starts), every γ/β combination")
    func rowKernels() throws {
        let rows = 3, features = (Self.elements / rows) | 1
        expectStreaming(rows * features)
        var rng = SplitMix64("stream-rows")
        let x = activations(TensorShape(n: rows, c: 1, h: features), &rng)
        let tol = reductionTolerance(features)
        sweep(Affine.allCases) { affine, context in
            let (scale, bias) = affine.parameters(features, &rng)
            let (y, saved) = try LayerNormalization(rows: rows, features: features).forward(x, scale: scale, bias: bias)
            expectMatches(y, saved, Reference.layerNorm(x, rows: rows, features: features, scale: scale, bias: bias),
                          count: features, "LayerNorm [\(rows), \(features)] \(context)")
            if affine == .none || affine == .scaleOnly {
                let (yr, savedr) = try RMSNormalization(rows: rows, features: features).forward(x, scale: scale)
                let ref = Reference.rmsNorm(x, rows: rows, features: features, scale: scale)
                expectAllClose(yr, ref.output, atol: tol, rtol: tol, "RMSNorm output", context)
                expectAllClose(savedr.invStd, ref.invRMS, atol: 0, rtol: tol / 10, "RMSNorm 1/rms", context)
            }
        }
    }

    @Test("GroupNorm NCHW (odd W) and NHWC (C = 8; C = 1032: output in strips), BatchNorm training and inference")
    func channelKernels() throws {
        let side = Int(Double(Self.elements / 16).squareRoot()) + 1
        let wide = Int(Double(Self.elements / 1032).squareRoot()) + 1
        let shapes = [TensorShape(n: 2, c: 8, h: side, w: side | 1), TensorShape(n: 2, c: 8, h: side, w: side, layout: .nhwc),
                      TensorShape(n: 1, c: 1032, h: wide, w: wide, layout: .nhwc)]
        sweep(shapes) { shape, context in
            expectStreaming(shape.count)
            var rng = SplitMix64("stream-channels \(context)")
            let x = activations(shape, &rng)
            let (scale, bias) = Affine.both.parameters(shape.c, &rng)
            let (yg, sg) = try GroupNormalization(shape: shape, groups: 4).forward(x, scale: scale, bias: bias)
            expectMatches(yg, sg, Reference.groupNorm(x, shape, groups: 4, scale: scale, bias: bias),
                          count: shape.c / 4 * shape.spatial, "GroupNorm G = 4 \(context)")
            let bn = try BatchNormalization(shape: shape, fusedReLU: true)
            let (yb, sb) = try bn.forwardTraining(x, scale: scale, bias: bias)
            expectMatches(yb, sb, Reference.batchNorm(x, shape, scale: scale, bias: bias, relu: true),
                          count: shape.n * shape.spatial, "BatchNorm training \(context)")
            let running = try RunningStatistics(channels: shape.c, mean: rng.uniforms(shape.c, -1...1),
                                                variance: rng.uniforms(shape.c, 0.5...2))
            let yi = try bn.forwardInference(x, scale: scale, bias: bias, running: running)
            expectAllClose(yi, Reference.inference(x, shape, mean: running.mean, variance: running.variance,
                                                   scale: scale, bias: bias, relu: true),
                           atol: 1e-6, rtol: 1e-6, "BatchNorm inference", context)
        }
    }
}
