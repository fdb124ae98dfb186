// 16-bit InstanceNorm and AdaIN (issue 20): see HalfPrecisionTests+InstanceNormCalls.swift.

import Testing
@testable import NormKernels

/// Shapes reaching every InstanceNorm path, forward and backward.
let halfInstanceNormShapes: [TensorShape] = [
    TensorShape(n: 3, c: 5, h: 4, w: 5),                     // NCHW tiny units (H·W ≤ 64)
    TensorShape(n: 2, c: 16, h: 2, w: 2, layout: .nhwc),     // NHWC tiny channels, forward and backward
    TensorShape(n: 2, c: 16, h: 3, w: 4, layout: .nhwc),     // tiny channels forward, channel groups backward
    TensorShape(n: 2, c: 3, h: 9, w: 9),                     // NCHW channel groups
    TensorShape(n: 2, c: 12, h: 5, w: 5, layout: .nhwc),     // NHWC channel groups
]

struct InstanceNormRun<E> {
    var y: [E]
    var saved: SavedStatistics?
    var running: RunningSnapshot
}

func runInstanceNorm<E: InstanceNormCalls>(_ n: InstanceNormalization, training: Bool, x: [E], gamma: [Float]?,
                                           beta: [Float]?, running: RunningStatistics) throws -> InstanceNormRun<E> {
    var y = x
    var saved: SavedStatistics?
    try x.withUnsafeBufferPointer { xp in
        try y.withUnsafeMutableBufferPointer { yp in
            try withOptionalBuffer(gamma) { g in
                try withOptionalBuffer(beta) { b in
                    if training { saved = try E.inTraining(n, xp, yp, g, b, running) } else {
                        try E.inInference(n, xp, yp, g, b, running)
                    }
                }
            }
        }
    }
    return InstanceNormRun(y: y, saved: saved, running: RunningSnapshot(running))
}

func runInstanceNormBackward<E: InstanceNormCalls>(_ n: InstanceNormalization, _ stats: BatchNormStatistics, x: [E],
                                                   dy: [E], gamma: [Float]?, input wantsDx: Bool = true,
                                                   parameters: Bool = true) throws -> BatchNormGradients<E> {
    var dx = dy
    var dg = [Float](repeating: 0, count: n.shape.c), db = dg
    try x.withUnsafeBufferPointer { xp in
        try dy.withUnsafeBufferPointer { dyp in
            try dx.withUnsafeMutableBufferPointer { dxp in
                try withOptionalBuffer(gamma) { g in
                    try dg.withUnsafeMutableBufferPointer { dgp in
                        try db.withUnsafeMutableBufferPointer { dbp in
                            try E.inBackward(n, stats, xp, dyp, g, wantsDx ? dxp : nil, parameters ? dgp : nil,
                                             parameters ? dbp : nil)
                        }
                    }
                }
            }
        }
    }
    return BatchNormGradients(dx: wantsDx ? dx : nil, dIdentity: nil, dgamma: parameters ? dg : nil,
                              dbeta: parameters ? db : nil)
}

extension HalfPrecisionTests {
    @Test("InstanceNorm (a, b): every path, training and inference, forward and backward")
    func instanceNormEveryPath() throws {
        func check<E: SixteenBitElement & InstanceNormCalls>(_: E.Type) throws {
            var k = 0
            for (shape, training) in product(halfInstanceNormShapes, [true, false]) {
                k += 1
                let update = halfUpdates[k % 3], affine = k % 3 != 1
                let n = try InstanceNormalization(shape: shape)
                let context = "\(E.typeName) InstanceNorm \(shape) \(training ? "training" : "inference")"
                    + "\(affine ? " γβ" : "") \(update)"
                let x16 = channelValues(shape, "in x \(context)").map { E.narrow($0) }, x32 = x16.map { E.widen($0) }
                let dy16 = channelValues(shape, "in dy \(context)", center: -0.5...0.5).map { E.narrow($0) }
                let dy32 = dy16.map { E.widen($0) }
                let p = halfParameters(shape.c, "in γβ \(context)")
                let (gamma, beta) = affine ? (Optional(p.gamma), Optional(p.beta)) : (nil, nil)
                let half = try runInstanceNorm(n, training: training, x: x16, gamma: gamma, beta: beta,
                                               running: halfRunning(shape.c, update, context))
                let single = try runInstanceNorm(n, training: training, x: x32, gamma: gamma, beta: beta,
                                                 running: halfRunning(shape.c, update, context))
                #expect(half.y.map(\.bits) == single.y.map { E.narrow($0).bits }, "\(context): y")
                if let a = half.saved, let b = single.saved { expectIdentical(a, b, context) }
                #expect(half.running == single.running, "\(context): running statistics")
                let initial = RunningSnapshot(halfRunning(shape.c, update, context))
                let reference = training
                    ? Reference.instanceNorm(x32, shape, scale: gamma, bias: beta).output
                    : Reference.inference(x32, shape, mean: initial.mean, variance: initial.variance, scale: gamma,
                                          bias: beta)
                let shift = (0..<shape.count).map { beta?[channelOf(shape, $0)] ?? 0 }
                expectNearReference(half.y, reference, beta: shift, features: shape.count, context)
                let running = halfRunning(shape.c, update, context)
                let stats: BatchNormStatistics = training ? .saved(half.saved!) : .running(running)
                for (wantsDx, parameters) in [(true, true), (false, true)] {
                    let h = try runInstanceNormBackward(n, stats, x: x16, dy: dy16, gamma: gamma, input: wantsDx,
                                                        parameters: parameters)
                    let s = try runInstanceNormBackward(n, stats, x: x32, dy: dy32, gamma: gamma, input: wantsDx,
                                                        parameters: parameters)
                    let what = "\(context) backward dx \(wantsDx)"
                    #expect(h.dx?.map(\.bits) == s.dx?.map { E.narrow($0).bits }, "\(what): dx")
                    #expect(bitPatterns(h.dgamma) == bitPatterns(s.dgamma), "\(what): dγ")
                    #expect(bitPatterns(h.dbeta) == bitPatterns(s.dbeta), "\(what): dβ")
                }
                let dx = try runInstanceNormBackward(n, stats, x: x16, dy: dy16, gamma: gamma).dx!
                let dxReference: [Double]
                if training {
                    dxReference = Reference.centeredBackward(x32, dy32, Reference.slots(shape, groupSize: 1),
                                                             eps: Double(Float(1e-5))) {
                        Double(gamma?[channelOf(shape, $0)] ?? 1)
                    }
                } else {
                    dxReference = dy32.indices.map { i in
                        let c = channelOf(shape, i)
                        return Double(gamma?[c] ?? 1) / (Double(running.variance[c]) + Double(Float(1e-5))).squareRoot()
                            * Double(dy32[i])
                    }
                }
                expectNearGradient(dx, dxReference, context)
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("AdaIN (a, b): both layouts, biased and unbiased variance, forward and backward")
    func adaINBothLayouts() throws {
        func check<E: SixteenBitElement & InstanceNormCalls>(_: E.Type) throws {
            let cases = [(TensorShape(n: 2, c: 3, h: 9, w: 9), TensorShape(n: 2, c: 3, h: 5, w: 5)),
                         (TensorShape(n: 2, c: 16, h: 5, w: 5, layout: .nhwc), TensorShape(n: 2, c: 16, h: 4, w: 4, layout: .nhwc)),
                         (TensorShape(n: 3, c: 5, h: 4, w: 5), TensorShape(n: 3, c: 5, h: 17, w: 17))]
            for ((cs, ss), unbiased) in product(cases, [false, true]) {
                let context = "\(E.typeName) AdaIN \(cs) style \(ss)\(unbiased ? " unbiased" : "")"
                let ada = try AdaptiveInstanceNormalization(content: cs, style: ss, unbiasedVariance: unbiased)
                let x16 = channelValues(cs, "ada x \(context)").map { E.narrow($0) }, x32 = x16.map { E.widen($0) }
                let s16 = channelValues(ss, "ada s \(context)").map { E.narrow($0) }, s32 = s16.map { E.widen($0) }
                let dy16 = channelValues(cs, "ada dy \(context)", center: -0.5...0.5).map { E.narrow($0) }
                let dy32 = dy16.map { E.widen($0) }
                func run<T: InstanceNormCalls>(_ x: [T], _ s: [T], _ dy: [T], saved: AdaptiveInstanceNormalization.Saved?)
                    throws -> ([T], AdaptiveInstanceNormalization.Saved, [T], [T]) {
                    var y = x, dx = x, ds = s
                    var out: AdaptiveInstanceNormalization.Saved?
                    try x.withUnsafeBufferPointer { xp in
                        try s.withUnsafeBufferPointer { sp in
                            try y.withUnsafeMutableBufferPointer { out = try T.adaForward(ada, xp, sp, $0) }
                            try dy.withUnsafeBufferPointer { dyp in
                                try dx.withUnsafeMutableBufferPointer { dxp in
                                    try ds.withUnsafeMutableBufferPointer { dsp in
                                        try T.adaBackward(ada, xp, sp, dyp, saved ?? out!, dxp, dsp)
                                    }
                                }
                            }
                        }
                    }
                    return (y, out!, dx, ds)
                }
                let half = try run(x16, s16, dy16, saved: nil)
                let single = try run(x32, s32, dy32, saved: half.1)
                #expect(half.0.map(\.bits) == single.0.map { E.narrow($0).bits }, "\(context): y")
                #expect(half.1 == single.1, "\(context): saved statistics")
                #expect(half.2.map(\.bits) == single.2.map { E.narrow($0).bits }, "\(context): d content")
                #expect(half.3.map(\.bits) == single.3.map { E.narrow($0).bits }, "\(context): d style")
                let reference = Reference.adaIN(content: x32, cs, style: s32, ss, unbiased: unbiased)
                let shift = (0..<cs.count).map { i in
                    Float(reference.styleMean[(i / (cs.c * cs.spatial)) * cs.c + channelOf(cs, i)])
                }
                expectNearReference(half.0, reference.output, beta: shift, features: cs.count, context)
                let (y, saved) = try ada.forward(content: x16, style: s16)
                #expect(y.map(\.bits) == half.0.map(\.bits) && saved == half.1, "\(context): array")
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("InstanceNorm and AdaIN (c): the same bits on 1, 2, 3 and 4 threads; array conveniences")
    func instanceNormThreads() throws {
        func check<E: SixteenBitElement & InstanceNormCalls>(_: E.Type) throws {
            for shape in [TensorShape(n: 8, c: 32, h: 16, w: 16), TensorShape(n: 8, c: 32, h: 16, w: 16, layout: .nhwc),
                          TensorShape(n: 64, c: 64, h: 4, w: 4), TensorShape(n: 64, c: 64, h: 2, w: 2, layout: .nhwc)] {
                let context = "\(E.typeName) InstanceNorm threads \(shape)"
                let x = channelValues(shape, "int x \(context)").map { E.narrow($0) }
                let dy = channelValues(shape, "int dy \(context)").map { E.narrow($0) }
                let p = halfParameters(shape.c, "int γβ \(context)")
                func run(_ t: Int) throws -> (InstanceNormRun<E>, BatchNormGradients<E>, [E], AdaptiveInstanceNormalization.Saved) {
                    let threading = Threading(threads: t, parallelThreshold: 4096, spinMicroseconds: 0)
                    let n = try InstanceNormalization(shape: shape, threading: threading)
                    let f = try runInstanceNorm(n, training: true, x: x, gamma: p.gamma, beta: p.beta,
                                                running: halfRunning(shape.c, .exponential(momentum: 0.1), context))
                    let b = try runInstanceNormBackward(n, .saved(f.saved!), x: x, dy: dy, gamma: p.gamma)
                    let ada = try AdaptiveInstanceNormalization(content: shape, style: shape, threading: threading)
                    let (y, saved) = try ada.forward(content: x, style: dy)
                    return (f, b, y, saved)
                }
                let one = try run(1)
                for t in 2...4 {
                    let r = try run(t)
                    let what = "\(context): \(t) threads"
                    #expect(r.0.y.map(\.bits) == one.0.y.map(\.bits), "\(what): y")
                    expectIdentical(r.0.saved!, one.0.saved!, what)
                    #expect(r.0.running == one.0.running, "\(what): running")
                    #expect(r.1.dx?.map(\.bits) == one.1.dx?.map(\.bits), "\(what): dx")
                    #expect(bitPatterns(r.1.dgamma) == bitPatterns(one.1.dgamma), "\(what): dγ")
                    #expect(r.2.map(\.bits) == one.2.map(\.bits) && r.3 == one.3, "\(what): AdaIN")
                }
                let n = try InstanceNormalization(shape: shape)
                let (y, saved) = try n.forwardTraining(x, scale: p.gamma, bias: p.beta)
                #expect(y.map(\.bits) == one.0.y.map(\.bits), "\(context): array")
                expectIdentical(saved, one.0.saved!, "\(context): array")
                let running = halfRunning(shape.c, .population, context)
                let z = try n.forwardInference(x, scale: p.gamma, bias: p.beta, running: running)
                let direct = try runInstanceNorm(n, training: false, x: x, gamma: p.gamma, beta: p.beta, running: running)
                #expect(z.map(\.bits) == direct.y.map(\.bits), "\(context): inference array")
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }
}
