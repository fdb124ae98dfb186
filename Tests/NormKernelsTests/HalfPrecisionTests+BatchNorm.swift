// 16-bit BatchNorm (issue 20), every layout and path of its plan: x, y, dy, dx
// and the residual in Float16 or BFloat16; γ, β, dγ, dβ, saved and running
// statistics in Float/Double.
// (a) exactness: y16 == E.narrow(y32) and dx16 == E.narrow(dx32) bit for bit,
//     the saved statistics, running statistics, dγ and dβ identical, y32 … being
//     the Float32 kernel on the widened tensors (and the widened 16-bit forward
//     output as the ReLU mask);
// (b) the Float64 reference of the 16-bit inputs: y within 1 ulp, dx within 2
//     ulps of the correctly rounded value (or the Float32 arithmetic's error
//     where the 16-bit grid is finer, see `expectNearReference`);
// (c) the same bits on 1, 2, 3 and 4 threads, and in place.

import Testing
@testable import NormKernels

/// `body` with the array's buffer, or nil.
func withOptionalElements<E, R>(_ array: [E]?, _ body: (UnsafeBufferPointer<E>?) throws -> R) rethrows -> R {
    if let array { return try array.withUnsafeBufferPointer { try body($0) } }
    return try body(nil)
}

/// The channel of element `i` of a tensor of `shape`.
func channelOf(_ shape: TensorShape, _ i: Int) -> Int {
    shape.layout == .nchw ? (i / shape.spatial) % shape.c : i % shape.c
}

/// Shapes reaching every path of `BatchNormPlan` and of the column microkernels.
let halfBatchNormShapes: [TensorShape] = [
    TensorShape(n: 2, c: 3, h: 16, w: 17),                    // NCHW, channel runs (H·W ≥ 256)
    TensorShape(n: 3, c: 5, h: 7, w: 7),                      // NCHW, short runs
    TensorShape(n: 9, c: 20),                                  // NCHW with H·W = 1: columns
    TensorShape.matrix(37, 5),                                 // [N, D], D < 8 (folded rows, periodic sums)
    TensorShape.matrix(300, 40),                               // [N, D], 32- and 8-column tiles
    TensorShape(n: 2, c: 3, h: 9, w: 11, layout: .nhwc),      // NHWC, RGB
    TensorShape(n: 2, c: 100, h: 5, w: 6, layout: .nhwc),     // NHWC, wide blocks (≥ 64 columns)
    TensorShape.matrix(12, 1290),                              // output and dx strips (≥ 1280 columns)
]

/// Running statistics with seeded initial values (a fresh object per call: the
/// training forward updates it).
func halfRunning(_ channels: Int, _ update: RunningStatistics.Update, _ label: String) -> RunningStatistics {
    var rng = SplitMix64("running \(label)")
    let mean = rng.uniforms(channels, -0.5...0.5), variance = rng.uniforms(channels, 0.5...2)
    return try! RunningStatistics(channels: channels, update: update, mean: mean, variance: variance)
}

let halfUpdates: [RunningStatistics.Update] = [.exponential(momentum: 0.1), .cumulativeAverage, .population]

struct BatchNormForward<E> {
    var y: [E]
    var saved: SavedStatistics?
    var running: RunningSnapshot
}

/// One forward call through the public overload of `E` (the residual when given).
func runBatchNorm<E: BatchNormCalls>(
    _ bn: BatchNormalization, training: Bool, x: [E], identity: [E]?, gamma: [Float]?, beta: [Float]?,
    running: RunningStatistics, inPlace: Bool = false
) throws -> BatchNormForward<E> {
    var y = x, input = x
    var saved: SavedStatistics?
    func call(_ xp: UnsafeBufferPointer<E>, _ yp: UnsafeMutableBufferPointer<E>) throws {
        try withOptionalBuffer(gamma) { g in
            try withOptionalBuffer(beta) { b in
                try withOptionalElements(identity) { id in
                    if training {
                        saved = try E.bnTraining(bn, xp, id, yp, g, b, running)
                    } else {
                        try E.bnInference(bn, xp, id, yp, g, b, running)
                    }
                }
            }
        }
    }
    if inPlace {
        try input.withUnsafeMutableBufferPointer { try call(UnsafeBufferPointer($0), $0) }
        y = input
    } else {
        try x.withUnsafeBufferPointer { xp in try y.withUnsafeMutableBufferPointer { try call(xp, $0) } }
    }
    return BatchNormForward(y: y, saved: saved, running: RunningSnapshot(running))
}

struct BatchNormGradients<E> {
    var dx: [E]?
    var dIdentity: [E]?
    var dgamma: [Float]?
    var dbeta: [Float]?
}

/// One backward call through the public overload of `E`. `inPlace`: dx over dy.
func runBatchNormBackward<E: BatchNormCalls>(
    _ bn: BatchNormalization, _ stats: BatchNormStatistics, x: [E], dy: [E], y: [E]?, gamma: [Float]?,
    identity: Bool, input wantsDx: Bool = true, parameters: Bool = true, inPlace: Bool = false
) throws -> BatchNormGradients<E> {
    let c = bn.shape.c
    var dx = dy, dId = dy, dyCopy = dy
    var dg = [Float](repeating: 0, count: c), db = dg
    try x.withUnsafeBufferPointer { xp in
        try withOptionalBuffer(gamma) { g in
            try withOptionalElements(y) { yp in
                try dg.withUnsafeMutableBufferPointer { dgp in
                    try db.withUnsafeMutableBufferPointer { dbp in
                        try dId.withUnsafeMutableBufferPointer { idp in
                            func call(_ dyp: UnsafeBufferPointer<E>, _ dxp: UnsafeMutableBufferPointer<E>?) throws {
                                try E.bnBackward(bn, stats, xp, dyp, g, yp, dxp, identity ? idp : nil, identity: identity,
                                                 parameters ? dgp : nil, parameters ? dbp : nil)
                            }
                            if inPlace {
                                try dyCopy.withUnsafeMutableBufferPointer { try call(UnsafeBufferPointer($0), $0) }
                            } else {
                                try dy.withUnsafeBufferPointer { dyp in
                                    try dx.withUnsafeMutableBufferPointer { try call(dyp, wantsDx ? $0 : nil) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    return BatchNormGradients(dx: wantsDx ? (inPlace ? dyCopy : dx) : nil, dIdentity: identity ? dId : nil,
                              dgamma: parameters ? dg : nil, dbeta: parameters ? db : nil)
}

/// Seeded N(0, 1)-ish activations with a mean and spread per channel.
func channelValues(_ shape: TensorShape, _ label: String, center: ClosedRange<Double> = -3...3,
                   spread: ClosedRange<Double> = 0.5...2) -> [Float] {
    var rng = SplitMix64(label)
    let means = (0..<shape.c).map { _ in rng.uniform(center) }, stds = (0..<shape.c).map { _ in rng.uniform(spread) }
    return (0..<shape.count).map { i in
        let c = channelOf(shape, i)
        return Float(means[c] + stds[c] * rng.normal())
    }
}

/// The Float64 forward of the 16-bit inputs (widened): BatchNorm, + identity, ReLU.
func referenceBatchNorm(_ shape: TensorShape, training: Bool, relu: Bool, x: [Float], identity: [Float]?,
                        gamma: [Float]?, beta: [Float]?, running: RunningSnapshot) -> [Double] {
    var y = training
        ? Reference.batchNorm(x, shape, scale: gamma, bias: beta).output
        : Reference.inference(x, shape, mean: running.mean, variance: running.variance, scale: gamma, bias: beta)
    for i in y.indices {
        if let identity { y[i] += Double(identity[i]) }
        if relu && y[i] < 0 { y[i] = 0 }
    }
    return y
}

extension HalfPrecisionTests {
    @Test("BatchNorm forward (a, b): every layout and path, training and inference, ReLU, residual")
    func batchNormForward() throws {
        func check<E: SixteenBitElement & BatchNormCalls>(_: E.Type) throws {
            var k = 0
            for (shape, relu, identity, training) in product(halfBatchNormShapes, [false, true], [false, true],
                                                             [true, false]) {
                k += 1
                let update = halfUpdates[k % 3], affine = k % 4 != 1
                let context = "\(E.typeName) BatchNorm \(shape) \(training ? "training" : "inference")"
                    + "\(relu ? " ReLU" : "")\(identity ? " + identity" : "")\(affine ? " γβ" : "") \(update)"
                let bn = try BatchNormalization(shape: shape, fusedReLU: relu)
                let x16 = channelValues(shape, "bn x \(context)").map { E.narrow($0) }
                let id16 = identity ? channelValues(shape, "bn id \(context)", center: -1...1).map { E.narrow($0) } : nil
                let x32 = x16.map { E.widen($0) }, id32 = id16?.map { E.widen($0) }
                let p = halfParameters(shape.c, "bn γβ \(context)")
                let (gamma, beta) = affine ? (Optional(p.gamma), Optional(p.beta)) : (nil, nil)
                let half = try runBatchNorm(bn, training: training, x: x16, identity: id16, gamma: gamma, beta: beta,
                                            running: halfRunning(shape.c, update, context))
                let single = try runBatchNorm(bn, training: training, x: x32, identity: id32, gamma: gamma, beta: beta,
                                              running: halfRunning(shape.c, update, context))
                // (a) One rounding of the Float32 result; its statistics and running update.
                let expected = single.y.map { E.narrow($0).bits }, got = half.y.map(\.bits)
                let first = got.indices.first { got[$0] != expected[$0] }
                #expect(first == nil, Comment(rawValue: first.map {
                    "\(context): y[\($0)] = \(half.y[$0]), y32 = \(single.y[$0])" } ?? ""))
                if let a = half.saved, let b = single.saved { expectIdentical(a, b, context) }
                #expect(half.running == single.running, "\(context): running statistics")
                // In place: the same bits.
                let inPlace = try runBatchNorm(bn, training: training, x: x16, identity: id16, gamma: gamma, beta: beta,
                                               running: halfRunning(shape.c, update, context), inPlace: true)
                #expect(inPlace.y.map(\.bits) == got, "\(context): in place")
                // (b) The Float64 reference of the 16-bit inputs.
                let initial = RunningSnapshot(halfRunning(shape.c, update, context))
                let reference = referenceBatchNorm(shape, training: training, relu: relu, x: x32, identity: id32,
                                                   gamma: gamma, beta: beta, running: initial)
                let shift = (0..<shape.count).map { i in (beta?[channelOf(shape, i)] ?? 0) + (id32?[i] ?? 0) }
                expectNearReference(half.y, reference, beta: shift, features: shape.count, context)
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("BatchNorm backward (a, b): dx one rounding of the Float32 dx, dγ dβ d identity its bits, 2 ulps of Float64")
    func batchNormBackward() throws {
        func check<E: SixteenBitElement & BatchNormCalls>(_: E.Type) throws {
            for (shape, relu, identity, training) in product(halfBatchNormShapes, [false, true], [false, true],
                                                             [true, false]) {
                let context = "\(E.typeName) BatchNorm backward \(shape) \(training ? "training" : "inference")"
                    + "\(relu ? " ReLU" : "")\(identity ? " + identity" : "")"
                let bn = try BatchNormalization(shape: shape, fusedReLU: relu)
                let x16 = channelValues(shape, "bnb x \(context)").map { E.narrow($0) }
                let dy16 = channelValues(shape, "bnb dy \(context)", center: -0.5...0.5).map { E.narrow($0) }
                let id16 = identity ? channelValues(shape, "bnb id \(context)", center: -1...1).map { E.narrow($0) } : nil
                let gamma = halfParameters(shape.c, "bnb γ \(context)").gamma
                let running = halfRunning(shape.c, .exponential(momentum: 0.1), context)
                let forward = try runBatchNorm(bn, training: training, x: x16, identity: id16, gamma: gamma, beta: nil,
                                               running: training ? halfRunning(shape.c, .population, context) : running)
                let stats: BatchNormStatistics = training ? .saved(forward.saved!) : .running(running)
                let y16: [E]? = relu ? forward.y : nil
                let (x32, dy32, y32) = (x16.map { E.widen($0) }, dy16.map { E.widen($0) }, y16?.map { E.widen($0) })
                for (wantsDx, parameters) in [(true, true), (true, false), (false, true)] {
                    let half = try runBatchNormBackward(bn, stats, x: x16, dy: dy16, y: y16, gamma: gamma,
                                                        identity: identity, input: wantsDx, parameters: parameters)
                    let single = try runBatchNormBackward(bn, stats, x: x32, dy: dy32, y: y32, gamma: gamma,
                                                          identity: identity, input: wantsDx, parameters: parameters)
                    let what = "\(context) dx \(wantsDx) dγ/dβ \(parameters)"
                    #expect(half.dx?.map(\.bits) == single.dx?.map { E.narrow($0).bits }, "\(what): dx")
                    #expect(half.dIdentity?.map(\.bits) == single.dIdentity?.map { E.narrow($0).bits }, "\(what): d identity")
                    #expect(bitPatterns(half.dgamma) == bitPatterns(single.dgamma), "\(what): dγ")
                    #expect(bitPatterns(half.dbeta) == bitPatterns(single.dbeta), "\(what): dβ")
                }
                // In place (dx over dy): the same bits.
                let plain = try runBatchNormBackward(bn, stats, x: x16, dy: dy16, y: y16, gamma: gamma, identity: identity)
                let inPlace = try runBatchNormBackward(bn, stats, x: x16, dy: dy16, y: y16, gamma: gamma, identity: false,
                                                       parameters: false, inPlace: true)
                if !identity { #expect(inPlace.dx?.map(\.bits) == plain.dx?.map(\.bits), "\(context): in place") }
                // d identity is dy where y > 0 (all of dy without ReLU), exactly.
                let g32 = dy32.indices.map { i in y32.map { $0[i] <= 0 ? 0 : dy32[i] } ?? dy32[i] }
                if identity {
                    #expect(plain.dIdentity!.map { E.widen($0) } == g32, "\(context): d identity")
                }
                // (b) dx against the Float64 closed form with g = masked dy.
                let reference: [Double]
                if training {
                    reference = Reference.centeredBackward(x32, g32, Reference.slots(shape, groupSize: 1, batch: true),
                                                           eps: Double(Float(1e-5))) { Double(gamma[channelOf(shape, $0)]) }
                } else {
                    let variance = running.variance
                    reference = g32.indices.map { i in
                        let c = channelOf(shape, i)
                        return Double(gamma[c]) / (Double(variance[c]) + Double(Float(1e-5))).squareRoot() * Double(g32[i])
                    }
                }
                expectNearGradient(plain.dx!, reference, context)
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("BatchNorm (c): the same bits on 1, 2, 3 and 4 threads, forward and backward")
    func batchNormThreads() throws {
        func check<E: SixteenBitElement & BatchNormCalls>(_: E.Type) throws {
            let shapes = [TensorShape(n: 8, c: 16, h: 32, w: 32), TensorShape(n: 32, c: 64, h: 7, w: 7),
                          TensorShape(n: 8, c: 64, h: 16, w: 16, layout: .nhwc), TensorShape.matrix(4096, 40),
                          TensorShape.matrix(512, 1300)]
            for shape in shapes {
                let context = "\(E.typeName) BatchNorm threads \(shape)"
                let x = channelValues(shape, "bnt x \(context)").map { E.narrow($0) }
                let dy = channelValues(shape, "bnt dy \(context)").map { E.narrow($0) }
                let p = halfParameters(shape.c, "bnt γβ \(context)")
                func run(_ t: Int) throws -> (BatchNormForward<E>, [E], BatchNormGradients<E>, BatchNormGradients<E>) {
                    let threading = Threading(threads: t, parallelThreshold: 4096, spinMicroseconds: 0)
                    let bn = try BatchNormalization(shape: shape, fusedReLU: true, threading: threading)
                    let running = halfRunning(shape.c, .cumulativeAverage, context)
                    let f = try runBatchNorm(bn, training: true, x: x, identity: nil, gamma: p.gamma, beta: p.beta,
                                             running: running)
                    let inference = try runBatchNorm(bn, training: false, x: x, identity: nil, gamma: p.gamma,
                                                     beta: p.beta, running: running).y
                    let b = try runBatchNormBackward(bn, .saved(f.saved!), x: x, dy: dy, y: f.y, gamma: p.gamma,
                                                     identity: true)
                    let bi = try runBatchNormBackward(bn, .running(running), x: x, dy: dy, y: inference, gamma: p.gamma,
                                                      identity: false)
                    return (f, inference, b, bi)
                }
                let one = try run(1)
                for t in 2...4 {
                    let r = try run(t)
                    let what = "\(context): \(t) threads"
                    #expect(r.0.y.map(\.bits) == one.0.y.map(\.bits), "\(what): y")
                    expectIdentical(r.0.saved!, one.0.saved!, what)
                    #expect(r.0.running == one.0.running, "\(what): running")
                    #expect(r.1.map(\.bits) == one.1.map(\.bits), "\(what): inference y")
                    for (a, b) in [(r.2, one.2), (r.3, one.3)] {
                        #expect(a.dx?.map(\.bits) == b.dx?.map(\.bits), "\(what): dx")
                        #expect(a.dIdentity?.map(\.bits) == b.dIdentity?.map(\.bits), "\(what): d identity")
                        #expect(bitPatterns(a.dgamma) == bitPatterns(b.dgamma), "\(what): dγ")
                        #expect(bitPatterns(a.dbeta) == bitPatterns(b.dbeta), "\(what): dβ")
                    }
                }
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("BatchNorm array conveniences give the pointer overloads' bits; a literal still means [Float]")
    func batchNormArrays() throws {
        func check<E: SixteenBitElement & BatchNormCalls>(_: E.Type) throws {
            let shape = TensorShape(n: 4, c: 6, h: 5, w: 5, layout: .nhwc)
            let x = channelValues(shape, "bna \(E.typeName)").map { E.narrow($0) }
            let p = halfParameters(shape.c, "bna γβ")
            let bn = try BatchNormalization(shape: shape)
            let (y, saved) = try bn.forwardTraining(x, scale: p.gamma, bias: p.beta)
            let direct = try runBatchNorm(bn, training: true, x: x, identity: nil, gamma: p.gamma, beta: p.beta,
                                          running: halfRunning(6, .population, "bna"))
            #expect(y.map(\.bits) == direct.y.map(\.bits), "\(E.typeName) training array")
            expectIdentical(saved, direct.saved!, "\(E.typeName) training array")
            let running = halfRunning(6, .population, "bna")
            let z = try bn.forwardInference(x, scale: p.gamma, bias: p.beta, running: running)
            let directZ = try runBatchNorm(bn, training: false, x: x, identity: nil, gamma: p.gamma, beta: p.beta,
                                           running: running)
            #expect(z.map(\.bits) == directZ.y.map(\.bits), "\(E.typeName) inference array")
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
        let bn = try BatchNormalization(shape: .matrix(2, 2))
        let (y, _) = try bn.forwardTraining([1, 2, 3, 5])
        #expect(type(of: y) == [Float].self)
    }
}

/// Every dx within 2 ulps of the correctly rounded 16-bit value of the
/// reference, or within the Float32 arithmetic's error (2⁻¹⁸ of the largest
/// |dx|) where the 16-bit grid is finer; the floor for at most 1 in 20.
func expectNearGradient<E: SixteenBitElement>(_ dx: [E], _ reference: [Double], _ context: String,
                                              sourceLocation: SourceLocation = #_sourceLocation) {
    let floor = 0x1p-18 * reference.reduce(0) { max($0, abs($1)) }
    var worst = -1, floorUsed = 0
    for i in dx.indices {
        let target = E.narrow(Float(E.format.rounded(reference[i]))).bits
        if abs(ulpPosition(dx[i].bits) - ulpPosition(target)) <= 2 { continue }
        if abs(Double(E.widen(dx[i])) - reference[i]) <= floor { floorUsed += 1; continue }
        worst = i
    }
    let message = worst < 0 ? "" : "\(context): dx[\(worst)] = \(E.widen(dx[worst])), reference \(reference[worst])"
    #expect(worst < 0, Comment(rawValue: message), sourceLocation: sourceLocation)
    #expect(floorUsed * 20 <= dx.count, "\(context): \(floorUsed) of \(dx.count) dx needed the Float32 bound",
            sourceLocation: sourceLocation)
}
