// BatchNorm + add + ReLU backward, and the checks of every fused call.
//
// Exact relations: d identity = dy where y > 0, else 0 (bitwise); dx, dγ, dβ
// bitwise equal BatchNorm's fused-ReLU backward given the fused output as mask.
// Against the Float64 composed op (g = dy·[u > 0], u = BN(x) + identity) and
// central differences: normwise relative error.
import Testing
@testable import NormKernels

private let streams = SeededStreams(salt: 0xF05E_DBAC)

struct FusedGradients { var input, identity, scale, bias: [Float] }

/// The fused backward on arrays; `running` selects inference.
func fusedBackward(_ bn: BatchNormalization, x: [Float], dy: [Float], y: [Float], saved: SavedStatistics?,
                   running: RunningStatistics?, scale: [Float]?) throws -> FusedGradients {
    let count = x.count, c = bn.shape.c
    var g = FusedGradients(input: .init(repeating: .nan, count: count), identity: .init(repeating: .nan, count: count),
                           scale: .init(repeating: .nan, count: c), bias: .init(repeating: .nan, count: c))
    try x.withUnsafeBufferPointer { x in
        try dy.withUnsafeBufferPointer { dy in
            try y.withUnsafeBufferPointer { y in
                try withOptionalBuffer(scale) { gamma in
                    try g.input.withUnsafeMutableBufferPointer { dx in
                        try g.identity.withUnsafeMutableBufferPointer { di in
                            try g.scale.withUnsafeMutableBufferPointer { dg in
                                try g.bias.withUnsafeMutableBufferPointer { db in
                                    if let running {
                                        try bn.backwardInference(input: x, gradOutput: dy, running: running, scale: gamma,
                                                                 output: y, gradInput: dx, gradIdentity: di,
                                                                 gradScale: dg, gradBias: db)
                                    } else {
                                        try bn.backwardTraining(input: x, gradOutput: dy, saved: saved!, scale: gamma,
                                                                output: y, gradInput: dx, gradIdentity: di,
                                                                gradScale: dg, gradBias: db)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    return g
}

extension FusedBatchNormTests {
    @Test("backward: d identity = masked dy (dy without ReLU), dx/dγ/dβ = BatchNorm's, close to the Float64 composed op",
          arguments: fusedShapes, [false, true])
    func backward(shape: TensorShape, training: Bool) throws {
        for relu in [true, false] { try backward(shape: shape, training: training, relu: relu) }
    }

    func backward(shape: TensorShape, training: Bool, relu: Bool) throws {
        var rng = streams.generator(UInt64(shape.count))
        let x = activations(shape, &rng), identity = rng.normals(shape.count), dy = rng.normals(shape.count)
        let (scale, bias) = Affine.both.parameters(shape.c, &rng)
        let mean = rng.uniforms(shape.c, -1...1), variance = rng.uniforms(shape.c, 0.5...3)
        let running = try RunningStatistics(channels: shape.c, mean: mean, variance: variance)
        let bn = try BatchNormalization(shape: shape, fusedReLU: relu, threading: Threading(threads: 2, parallelThreshold: 1))
        let y: [Float], saved: SavedStatistics?
        if training {
            let r = try bn.forwardTraining(x, identity: identity, scale: scale, bias: bias)
            y = r.output
            saved = r.saved
        } else {
            y = try bn.forwardInference(x, identity: identity, scale: scale, bias: bias, running: running)
            saved = nil
        }
        let grads = try fusedBackward(bn, x: x, dy: dy, y: y, saved: saved, running: training ? nil : running, scale: scale)
        let what = "\(shape) training \(training) relu \(relu)"
        expectBitwise(grads.identity, (0..<y.count).map { relu && y[$0] <= 0 ? 0 : dy[$0] }, "\(what) d identity")
        let plain = training
            ? try bn.backwardTraining(x, gradOutput: dy, saved: saved!, scale: scale, output: y)
            : try bn.backwardInference(x, gradOutput: dy, running: running, scale: scale, output: y)
        expectBitwise(grads.input, plain.input!, "\(what) dx")
        expectBitwise(grads.scale, plain.scale!, "\(what) dγ")
        expectBitwise(grads.bias, plain.bias!, "\(what) dβ")

        // Float64 composed op: g = dy·[BN(x) + identity > 0].
        let bnOut = training
            ? Reference.batchNorm(x, shape, scale: scale, bias: bias).output
            : Reference.inference(x, shape, mean: mean, variance: variance, scale: scale, bias: bias)
        let g = (0..<y.count).map { !relu || bnOut[$0] + Double(identity[$0]) > 0 ? dy[$0] : 0 }
        let slots = Reference.slots(shape, groupSize: 1, batch: true)
        let eps = Double(Float(1e-5))
        let dx: [Double]
        var dgamma = [Double](repeating: 0, count: shape.c), dbeta = dgamma
        if training {
            dx = Reference.centeredBackward(x, g, slots, eps: eps, gain: { Double(scale![shape.channel(at: $0)]) })
        } else {
            dx = (0..<x.count).map { i in
                let c = shape.channel(at: i)
                return Double(g[i]) * Double(scale![c]) / (Double(variance[c]) + eps).squareRoot()
            }
        }
        for (c, slot) in slots.enumerated() {
            let center: Double, r: Double
            if training {
                let st = Reference.statistics(slot.map { Double(x[$0]) })
                (center, r) = (st.mean, Reference.invStd(st.biasedVariance, Float(1e-5)))
            } else {
                (center, r) = (Double(mean[c]), 1 / (Double(variance[c]) + eps).squareRoot())
            }
            for i in slot {
                dbeta[c] += Double(g[i])
                dgamma[c] += Double(g[i]) * (Double(x[i]) - center) * r
            }
        }
        expectNormwiseClose(grads.input, dx, tolerance: 1e-4, scaleFloor: 1e-6, "\(what) dx", reference: "Float64")
        expectNormwiseClose(grads.scale, dgamma, tolerance: 1e-4, scaleFloor: 1e-6, "\(what) dγ", reference: "Float64")
        expectNormwiseClose(grads.bias, dbeta, tolerance: 1e-4, scaleFloor: 1e-6, "\(what) dβ", reference: "Float64")
    }

    @Test("backward by finite differences: dx, d identity, dγ, dβ", arguments: GradientCheckTests.imageShapes)
    func finiteDifferences(shape: TensorShape) throws {
        let eps = 1e-5
        var rng = streams.generator(UInt64(11 + shape.count))
        let x = rng.uniforms(shape.count, -2...2), identity = rng.uniforms(shape.count, -1...1)
        let dy = rng.uniforms(shape.count, -1...1)
        let gamma = rng.uniforms(shape.c, 0.5...1.5), beta = rng.uniforms(shape.c, -0.3...0.3)
        let bn = try BatchNormalization(shape: shape, epsilon: Float(eps), fusedReLU: true, threading: .serial)
        let (y, saved) = try bn.forwardTraining(x, identity: identity, scale: gamma, bias: beta)
        let grads = try fusedBackward(bn, x: x, dy: dy, y: y, saved: saved, running: nil, scale: gamma)
        let slots = Reference.slots(shape, groupSize: 1, batch: true)
        func forward(_ x: [Double], _ r: [Double], _ g: [Double], _ b: [Double]) -> [Double] {
            let out = Reference.normalize(x, slots: slots, eps: eps, gain: { g[shape.channel(at: $0)] },
                                          shift: { b[shape.channel(at: $0)] })
            return (0..<out.count).map { max(out[$0] + r[$0], 0) }
        }
        let xd = x.map(Double.init), rd = identity.map(Double.init), gd = gamma.map(Double.init), bd = beta.map(Double.init)
        let what = "fused BN \(shape)"
        expectMatchesNumeric(grads.input, Reference.numericGradient(xd) { Reference.dot(forward($0, rd, gd, bd), dy) }, "\(what) dx")
        expectMatchesNumeric(grads.identity, Reference.numericGradient(rd) { Reference.dot(forward(xd, $0, gd, bd), dy) },
                             "\(what) d identity")
        expectMatchesNumeric(grads.scale, Reference.numericGradient(gd) { Reference.dot(forward(xd, rd, $0, bd), dy) }, "\(what) dγ")
        expectMatchesNumeric(grads.bias, Reference.numericGradient(bd) { Reference.dot(forward(xd, rd, gd, $0), dy) }, "\(what) dβ")
    }

    @Test("backward: bitwise identical on 1–4 threads; in place over dy (gradIdentity and gradInput)", arguments: fusedShapes)
    func backwardDeterminismAndInPlace(shape: TensorShape) throws {
        var rng = streams.generator(UInt64(13 * shape.count))
        let x = activations(shape, &rng), identity = rng.normals(shape.count), dy = rng.normals(shape.count)
        let (scale, bias) = Affine.both.parameters(shape.c, &rng)
        var first: FusedGradients?
        for threads in 1...4 {
            let bn = try BatchNormalization(shape: shape, fusedReLU: true,
                                            threading: Threading(threads: threads, parallelThreshold: 1))
            let (y, saved) = try bn.forwardTraining(x, identity: identity, scale: scale, bias: bias)
            let g = try fusedBackward(bn, x: x, dy: dy, y: y, saved: saved, running: nil, scale: scale)
            guard let f = first else { first = g; continue }
            for (a, b, name) in [(g.input, f.input, "dx"), (g.identity, f.identity, "d identity"),
                                 (g.scale, f.scale, "dγ"), (g.bias, f.bias, "dβ")] {
                expectBitwise(a, b, "\(shape) \(name) \(threads) threads")
            }
            guard threads == 2 else { continue }
            // gradIdentity = gradOutput, then gradInput = gradOutput.
            for target in ["gradIdentity", "gradInput"] {
                var buffer = dy, other = [Float](repeating: .nan, count: shape.count)
                try x.withUnsafeBufferPointer { xb in
                    try y.withUnsafeBufferPointer { yb in
                        try scale!.withUnsafeBufferPointer { gb in
                            try other.withUnsafeMutableBufferPointer { ob in
                                try buffer.withUnsafeMutableBufferPointer { db in
                                    let inPlaceIdentity = target == "gradIdentity"
                                    try bn.backwardTraining(input: xb, gradOutput: UnsafeBufferPointer(db), saved: saved,
                                                            scale: gb, output: yb,
                                                            gradInput: inPlaceIdentity ? ob : db,
                                                            gradIdentity: inPlaceIdentity ? db : ob)
                                }
                            }
                        }
                    }
                }
                let (dxOut, diOut) = target == "gradIdentity" ? (other, buffer) : (buffer, other)
                expectBitwise(dxOut, f.input, "\(shape) dx, \(target) over dy")
                expectBitwise(diOut, f.identity, "\(shape) d identity, \(target) over dy")
            }
        }
    }
}
