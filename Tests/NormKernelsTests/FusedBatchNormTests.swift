// BatchNorm + add + ReLU (`BatchNormalization+Residual.swift`), forward:
// y = relu(BN(x) + identity).
//
// The exact relation tested: the fused output is bitwise equal to our own
// unfused Float32 sequence v = BN(x) (same descriptor without ReLU), v + identity
// (one Float32 add), then v < 0 ? 0 : v — because the fused loop adds identity to
// the same rounded BatchNorm value. Against the Float64 reference of the composed
// op: |y − ref| ≤ 2e-5·(1 + |BN| + |identity|).
import Testing
@testable import NormKernels

private let streams = SeededStreams(salt: 0xF05E_D021)

/// Every path of BatchNorm: NCHW channel runs (H·W ≥ 256, one and several blocks),
/// NCHW short runs (7×7) and H·W = 1, NHWC narrow (C < 8, folded rows), NHWC
/// 8- and 32-column tiles with a rest, NHWC strips (C ≥ 1024), [N, D].
let fusedShapes: [TensorShape] = [
    TensorShape(n: 2, c: 3, h: 16, w: 17, layout: .nchw),
    TensorShape(n: 2, c: 2, h: 70, w: 70, layout: .nchw),
    TensorShape(n: 3, c: 5, h: 7, w: 7, layout: .nchw),
    TensorShape(n: 4, c: 9, h: 1, w: 1, layout: .nchw),
    TensorShape(n: 2, c: 3, h: 5, w: 5, layout: .nhwc),
    TensorShape(n: 3, c: 40, h: 3, w: 4, layout: .nhwc),
    TensorShape(n: 2, c: 1030, h: 3, w: 2, layout: .nhwc),
    TensorShape.matrix(37, 33),
]

/// The Float32 sequence the fused op replaces: v + identity, then ReLU (NaN kept).
func unfusedAddReLU(_ v: [Float], _ identity: [Float], relu: Bool) -> [Float] {
    (0..<v.count).map { i in
        let s = v[i] + identity[i]
        return relu && s < 0 ? 0 : s
    }
}

private func fusedSpanCall(_ array: inout [Float], _ body: (inout MutableSpan<Float>) throws -> Void) rethrows {
    var span = array.mutableSpan
    try body(&span)
}

func expectBitwise(_ a: [Float], _ b: [Float], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let differing = (0..<a.count).filter { a[$0].bitPattern != b[$0].bitPattern }
    #expect(a.count == b.count && differing.isEmpty,
            "\(what): \(differing.count) values differ, first at \(differing.first ?? -1)", sourceLocation: sourceLocation)
}

struct FusedBatchNormTests {
    @Test("training: bitwise our unfused sequence, close to the Float64 composed op, running statistics as plain BN",
          arguments: fusedShapes, [false, true])
    func training(shape: TensorShape, relu: Bool) throws {
        for affine in Affine.allCases {
            var rng = streams.generator(UInt64(shape.count + shape.c))
            let x = activations(shape, &rng), identity = rng.normals(shape.count, std: 2)
            let (scale, bias) = affine.parameters(shape.c, &rng)
            let threading = Threading(threads: 2, parallelThreshold: 1)
            let fused = try BatchNormalization(shape: shape, fusedReLU: relu, threading: threading)
            let plain = try BatchNormalization(shape: shape, threading: threading)
            let runFused = try RunningStatistics(channels: shape.c), runPlain = try RunningStatistics(channels: shape.c)
            let (y, saved) = try fused.forwardTraining(x, identity: identity, scale: scale, bias: bias, running: runFused)
            let (v, savedPlain) = try plain.forwardTraining(x, scale: scale, bias: bias, running: runPlain)
            let what = "\(shape) relu \(relu) \(affine)"
            expectBitwise(y, unfusedAddReLU(v, identity, relu: relu), "\(what) vs unfused")
            #expect(saved.mean == savedPlain.mean && saved.invStd == savedPlain.invStd, "\(what) saved")
            #expect(runFused.mean == runPlain.mean && runFused.variance == runPlain.variance
                    && runFused.batchesTracked == runPlain.batchesTracked, "\(what) running")
            let reference = Reference.batchNorm(x, shape, scale: scale, bias: bias).output
            let worst = (0..<y.count).map { i -> Double in
                var u = reference[i] + Double(identity[i])
                if relu && u < 0 { u = 0 }
                return abs(Double(y[i]) - u) / (1 + abs(reference[i]) + abs(Double(identity[i])))
            }.max() ?? 0
            #expect(worst <= 2e-5, "\(what): error \(worst) against Float64")
        }
    }

    @Test("inference: bitwise our unfused sequence, close to the Float64 composed op", arguments: fusedShapes, [false, true])
    func inference(shape: TensorShape, relu: Bool) throws {
        var rng = streams.generator(UInt64(3 * shape.count))
        let x = activations(shape, &rng), identity = rng.normals(shape.count, std: 2)
        let (scale, bias) = Affine.both.parameters(shape.c, &rng)
        let mean = rng.uniforms(shape.c, -1...1), variance = rng.uniforms(shape.c, 0.5...3)
        let running = try RunningStatistics(channels: shape.c, mean: mean, variance: variance)
        let threading = Threading(threads: 2, parallelThreshold: 1)
        let fused = try BatchNormalization(shape: shape, fusedReLU: relu, threading: threading)
        let plain = try BatchNormalization(shape: shape, threading: threading)
        let y = try fused.forwardInference(x, identity: identity, scale: scale, bias: bias, running: running)
        let v = try plain.forwardInference(x, scale: scale, bias: bias, running: running)
        expectBitwise(y, unfusedAddReLU(v, identity, relu: relu), "\(shape) relu \(relu) vs unfused")
        let reference = Reference.inference(x, shape, mean: mean, variance: variance, scale: scale, bias: bias)
        let worst = (0..<y.count).map { i -> Double in
            var u = reference[i] + Double(identity[i])
            if relu && u < 0 { u = 0 }
            return abs(Double(y[i]) - u) / (1 + abs(reference[i]) + abs(Double(identity[i])))
        }.max() ?? 0
        #expect(worst <= 2e-5, "\(shape) relu \(relu): error \(worst) against Float64")
    }

    @Test("forward: bitwise identical on 1, 2, 3 and 4 threads, training and inference", arguments: fusedShapes)
    func determinism(shape: TensorShape) throws {
        var rng = streams.generator(UInt64(5 * shape.count))
        let x = activations(shape, &rng), identity = rng.normals(shape.count)
        let (scale, bias) = Affine.both.parameters(shape.c, &rng)
        let running = try RunningStatistics(channels: shape.c, mean: rng.uniforms(shape.c, -1...1),
                                            variance: rng.uniforms(shape.c, 0.5...3))
        var first: ([Float], [Float], [Double])?
        for threads in 1...4 {
            let bn = try BatchNormalization(shape: shape, fusedReLU: true,
                                            threading: Threading(threads: threads, parallelThreshold: 1))
            let (t, saved) = try bn.forwardTraining(x, identity: identity, scale: scale, bias: bias)
            let i = try bn.forwardInference(x, identity: identity, scale: scale, bias: bias, running: running)
            if let (t0, i0, m0) = first {
                expectBitwise(t, t0, "\(shape) training \(threads) threads")
                expectBitwise(i, i0, "\(shape) inference \(threads) threads")
                #expect(saved.mean == m0, "\(shape) saved mean \(threads) threads")
            } else {
                first = (t, i, saved.mean)
            }
        }
    }

    @Test("in place over x and over identity equals out of place; spans equal arrays", arguments: fusedShapes)
    func inPlace(shape: TensorShape) throws {
        var rng = streams.generator(UInt64(7 * shape.count))
        let x = activations(shape, &rng), identity = rng.normals(shape.count)
        let (scale, bias) = Affine.both.parameters(shape.c, &rng)
        let running = try RunningStatistics(channels: shape.c, mean: rng.uniforms(shape.c, -1...1),
                                            variance: rng.uniforms(shape.c, 0.5...3))
        let bn = try BatchNormalization(shape: shape, fusedReLU: true, threading: Threading(threads: 2, parallelThreshold: 1))
        let (expected, _) = try bn.forwardTraining(x, identity: identity, scale: scale, bias: bias)
        let expectedInference = try bn.forwardInference(x, identity: identity, scale: scale, bias: bias, running: running)
        for training in [true, false] {
            let want = training ? expected : expectedInference
            func run(_ input: UnsafeBufferPointer<Float>, _ id: UnsafeBufferPointer<Float>,
                     _ out: UnsafeMutableBufferPointer<Float>) throws {
                try scale!.withUnsafeBufferPointer { g in
                    try bias!.withUnsafeBufferPointer { b in
                        if training {
                            try bn.forwardTraining(input: input, identity: id, output: out, scale: g, bias: b)
                        } else {
                            try bn.forwardInference(input: input, identity: id, output: out, scale: g, bias: b, running: running)
                        }
                    }
                }
            }
            var overX = x
            try identity.withUnsafeBufferPointer { id in
                try overX.withUnsafeMutableBufferPointer { try run(UnsafeBufferPointer($0), id, $0) }
            }
            expectBitwise(overX, want, "\(shape) training \(training) in place over x")
            var overIdentity = identity
            try x.withUnsafeBufferPointer { input in
                try overIdentity.withUnsafeMutableBufferPointer { try run(input, UnsafeBufferPointer($0), $0) }
            }
            expectBitwise(overIdentity, want, "\(shape) training \(training) in place over identity")
            var viaSpan = [Float](repeating: 0, count: shape.count)
            try fusedSpanCall(&viaSpan) { out in
                if training {
                    try bn.forwardTraining(input: x.span, identity: identity.span, output: &out, scale: scale!.span,
                                           bias: bias!.span)
                } else {
                    try bn.forwardInference(input: x.span, identity: identity.span, output: &out, scale: scale!.span,
                                            bias: bias!.span, running: running)
                }
            }
            expectBitwise(viaSpan, want, "\(shape) training \(training) span")
        }
    }
}
