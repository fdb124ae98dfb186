// 16-bit BatchNorm (HalfPrecisionTests+BatchNorm.swift): (d) the hard cases of
// issue 20, each checked for exactness against the Float32 kernel and against
// the Float64 reference, and (e) the validation layer on 16-bit buffers
// (lengths in elements, overlaps in bytes, nothing written on a throw).

import Testing
@testable import NormKernels

extension HalfPrecisionTests {
    /// (a) and (b) of a training forward and its backward on `values` rounded to E.
    func expectBatchNormExact<E: SixteenBitElement & BatchNormCalls>(
        _: E.Type, _ shape: TensorShape, _ values: [Float], gamma: [Float]?, beta: [Float]?, epsilon: Float = 1e-5,
        backward: Bool = true, _ what: String
    ) throws -> [E] {
        let context = "\(E.typeName) BatchNorm \(shape) \(what)"
        let bn = try BatchNormalization(shape: shape, epsilon: epsilon)
        let x16 = values.map { E.narrow($0) }, x32 = x16.map { E.widen($0) }
        let half = try runBatchNorm(bn, training: true, x: x16, identity: nil, gamma: gamma, beta: beta,
                                    running: halfRunning(shape.c, .population, context))
        let single = try runBatchNorm(bn, training: true, x: x32, identity: nil, gamma: gamma, beta: beta,
                                      running: halfRunning(shape.c, .population, context))
        #expect(half.y.map(\.bits) == single.y.map { E.narrow($0).bits }, "\(context): y")
        expectIdentical(half.saved!, single.saved!, context)
        #expect(half.running == single.running, "\(context): running statistics")
        let reference = Reference.batchNorm(x32, shape, epsilon: epsilon, scale: gamma, bias: beta).output
        let shift = (0..<shape.count).map { i in beta?[channelOf(shape, i)] ?? 0 }
        expectNearReference(half.y, reference, beta: shift, features: shape.count, context)
        if backward {
            let dy16 = channelValues(shape, "hard dy \(context)").map { E.narrow($0) }
            let stats = BatchNormStatistics.saved(half.saved!)
            let h = try runBatchNormBackward(bn, stats, x: x16, dy: dy16, y: nil, gamma: gamma, identity: false)
            let s = try runBatchNormBackward(bn, stats, x: x32, dy: dy16.map { E.widen($0) }, y: nil, gamma: gamma,
                                             identity: false)
            #expect(h.dx!.map(\.bits) == s.dx!.map { E.narrow($0).bits }, "\(context): dx")
            #expect(bitPatterns(h.dgamma) == bitPatterns(s.dgamma), "\(context): dγ")
            #expect(bitPatterns(h.dbeta) == bitPatterns(s.dbeta), "\(context): dβ")
        }
        return half.y
    }

    @Test("BatchNorm (d): near the largest value, subnormals, mean 1e3 ± 0.1, constant input, 2²⁰ values per channel")
    func batchNormHardCases() throws {
        func check<E: SixteenBitElement & BatchNormCalls>(_: E.Type) throws {
            let greatest = E.format.greatestFinite
            let subnormal = Double(sign: .plus, exponent: E.format.minExponent, significand: 1)
            for shape in [TensorShape(n: 4, c: 3, h: 20, w: 20), TensorShape(n: 4, c: 40, h: 5, w: 5, layout: .nhwc)] {
                let p = halfParameters(shape.c, "hard γβ \(shape)")
                var rng = SplitMix64("bn hard \(E.typeName) \(shape)")
                // Both signs up to the largest value (BFloat16: half of Float32's, as in the LayerNorm case).
                let mixed = min(greatest, Double(Float.greatestFiniteMagnitude) / 2)
                _ = try expectBatchNormExact(E.self, shape, (0..<shape.count).map { _ in Float(rng.uniform(-1...1) * mixed) },
                                             gamma: p.gamma, beta: p.beta, "near max")
                _ = try expectBatchNormExact(E.self, shape,
                                             (0..<shape.count).map { _ in Float(rng.uniform(0.9...1) * greatest) },
                                             gamma: p.gamma, beta: p.beta, "near max, same sign")
                // Outputs past the largest value round to ±∞, as the reference does.
                let huge = [Float](repeating: Float(greatest / 2), count: shape.c)
                _ = try expectBatchNormExact(E.self, shape, channelValues(shape, "overflow"), gamma: huge, beta: nil,
                                             backward: false, "outputs overflowing")
                _ = try expectBatchNormExact(E.self, shape,
                                             (0..<shape.count).map { _ in Float(rng.uniform(-1...1) * subnormal) },
                                             gamma: p.gamma, beta: p.beta, epsilon: 1e-30, "subnormals")
                _ = try expectBatchNormExact(E.self, shape, channelValues(shape, "offset", center: 1000...1000,
                                                                          spread: 0.1...0.1),
                                             gamma: p.gamma, beta: p.beta, "mean 1e3 std 0.1")
                // Constant channels: x̂ = 0, so y = β exactly.
                let constant = (0..<shape.count).map { Float(channelOf(shape, $0)) * 0.75 - 1 }
                let y: [E] = try expectBatchNormExact(E.self, shape, constant, gamma: p.gamma, beta: p.beta, "constant")
                #expect(y.indices.allSatisfy { E.widen(y[$0]) == E.widen(E.narrow(p.beta[channelOf(shape, $0)])) },
                        "\(E.typeName) \(shape): constant input gives β")
            }
            // 2²⁰ values per channel: a 16-bit running sum would have stopped growing
            // (Float16) or lost every digit long before the end.
            for shape in [TensorShape(n: 1, c: 2, h: 1024, w: 1024), TensorShape.matrix(1 << 20, 2)] {
                let y: [E] = try expectBatchNormExact(E.self, shape, channelValues(shape, "long", center: 100...100,
                                                                                   spread: 1...1),
                                                      gamma: nil, beta: nil, backward: true, "2²⁰ values per channel")
                #expect(y.count == shape.count)
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("BatchNorm (e): wrong lengths, a missing ReLU mask, overlaps and N·H·W = 1 throw; nothing is written")
    func batchNormErrors() throws {
        func check<E: SixteenBitElement & BatchNormCalls>(_: E.Type) throws {
            let shape = TensorShape(n: 2, c: 4, h: 4, w: 5), total = 160, c = 4
            let bn = try BatchNormalization(shape: shape), relu = try BatchNormalization(shape: shape, fusedReLU: true)
            let mark = E(bits: 0x7E5A)
            let x = (0...total).map { E.narrow(Float($0 % 7) - 3) }
            let g = [Float](repeating: 1, count: c + 1)
            let running = halfRunning(c, .population, "errors")
            let before = RunningSnapshot(running)
            func sized(_ n: Int, _ body: (UnsafeBufferPointer<E>) throws -> Void) throws {
                try x.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[0..<n])) }
            }
            func params(_ n: Int, _ body: (UnsafeBufferPointer<Float>) throws -> Void) throws {
                try g.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[0..<n])) }
            }
            func rejected(_ expected: NormError, _ what: String, output: Int = total,
                          _ call: (UnsafeMutableBufferPointer<E>) throws -> Void) {
                var out = [E](repeating: mark, count: output)
                expectNormError(expected, mentions: [expected.argument], "\(E.typeName) \(what)") {
                    try out.withUnsafeMutableBufferPointer { try call($0) }
                }
                #expect(out.allSatisfy { $0.bits == mark.bits }, "\(E.typeName) \(what): output written before the error")
            }
            rejected(.lengthMismatch(argument: "input", expected: total, actual: total - 1), "short input") { y in
                try sized(total - 1) { xp in _ = try E.bnTraining(bn, xp, nil, y, nil, nil, running) }
            }
            rejected(.lengthMismatch(argument: "output", expected: total, actual: total + 1), "long output",
                     output: total + 1) { y in
                try sized(total) { xp in _ = try E.bnTraining(bn, xp, nil, y, nil, nil, running) }
            }
            rejected(.lengthMismatch(argument: "identity", expected: total, actual: total - 1), "short identity") { y in
                try sized(total) { xp in
                    try sized(total - 1) { id in try E.bnInference(bn, xp, id, y, nil, nil, running) }
                }
            }
            rejected(.lengthMismatch(argument: "scale (γ)", expected: c, actual: c + 1), "long γ") { y in
                try sized(total) { xp in try params(c + 1) { gp in _ = try E.bnTraining(bn, xp, nil, y, gp, nil, running) } }
            }
            rejected(.lengthMismatch(argument: "bias (β)", expected: c, actual: c - 1), "short β") { y in
                try sized(total) { xp in try params(c - 1) { bp in try E.bnInference(bn, xp, nil, y, nil, bp, running) } }
            }
            // Backward: the gradient buffers keep their marks.
            let saved = try runBatchNorm(bn, training: true, x: Array(x[0..<total]), identity: nil, gamma: nil, beta: nil,
                                         running: halfRunning(c, .population, "errors 2")).saved!
            rejected(.lengthMismatch(argument: "gradInput", expected: total, actual: total - 1), "short gradInput",
                     output: total - 1) { dx in
                try sized(total) { xp in
                    try E.bnBackward(bn, .saved(saved), xp, xp, nil, nil, dx, nil, identity: false, nil, nil)
                }
            }
            rejected(.lengthMismatch(argument: "gradIdentity", expected: total, actual: total + 1), "long gradIdentity",
                     output: total + 1) { dId in
                try sized(total) { xp in
                    try E.bnBackward(bn, .running(running), xp, xp, nil, nil, nil, dId, identity: true, nil, nil)
                }
            }
            rejected(.invalidArgument(argument: "output", reason: "fusedReLU backward needs the forward output (the ReLU mask)"),
                     "fused ReLU without the mask") { dx in
                try sized(total) { xp in
                    try E.bnBackward(relu, .saved(saved), xp, xp, nil, nil, dx, nil, identity: false, nil, nil)
                }
            }
            rejected(.singleValuePerChannel(argument: "input", valuesPerChannel: 1), "one value per channel",
                     output: 4) { y in
                let one = try BatchNormalization(shape: .matrix(1, 4))
                try sized(4) { xp in _ = try E.bnTraining(one, xp, nil, y, nil, nil, running) }
            }
            #expect(RunningSnapshot(running) == before, "\(E.typeName): running statistics changed by a rejected call")

            // Overlaps, decided on bytes: one allocation holds all the buffers.
            let bytes = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64)
            defer { bytes.deallocate() }
            func fill() { for i in 0..<2048 { bytes.storeBytes(of: mark.bits, toByteOffset: 2 * i, as: UInt16.self) } }
            func untouched() -> Bool { (0..<2048).allSatisfy { bytes.load(fromByteOffset: 2 * $0, as: UInt16.self) == mark.bits } }
            func elements(_ offset: Int, _ count: Int = total) -> UnsafeMutableBufferPointer<E> {
                UnsafeMutableBufferPointer(start: (bytes + offset).assumingMemoryBound(to: E.self), count: count)
            }
            func floats(_ offset: Int, _ count: Int) -> UnsafeBufferPointer<Float> {
                UnsafeBufferPointer(start: (bytes + offset).assumingMemoryBound(to: Float.self), count: count)
            }
            func overlap(_ expected: NormError, _ what: String, _ call: () throws -> Void) {
                fill()
                expectNormError(expected, mentions: [expected.argument], "\(E.typeName) \(what)", call)
                #expect(untouched(), "\(E.typeName) \(what): memory written before the error")
            }
            overlap(.partialOverlap(argument: "output"), "output one element past the input") {
                _ = try E.bnTraining(bn, UnsafeBufferPointer(elements(0)), nil, elements(2), nil, nil, running)
            }
            overlap(.partialOverlap(argument: "output (against identity)"), "output one element past the identity") {
                try E.bnInference(bn, UnsafeBufferPointer(elements(1024)), UnsafeBufferPointer(elements(0)), elements(2),
                                  nil, nil, running)
            }
            overlap(.overlappingBuffers(argument: "output", other: "scale (γ)"), "output over γ") {
                _ = try E.bnTraining(bn, UnsafeBufferPointer(elements(3072)), nil, elements(800), floats(1024, c), nil,
                                     running)
            }
            overlap(.partialOverlap(argument: "gradInput (against gradOutput)"), "gradInput one element past gradOutput") {
                try E.bnBackward(bn, .saved(saved), UnsafeBufferPointer(elements(2048)), UnsafeBufferPointer(elements(0)),
                                 nil, nil, elements(2), nil, identity: false, nil, nil)
            }
            #expect(RunningSnapshot(running) == before, "\(E.typeName): running statistics changed by a rejected call")
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }
}
