// Every rejection the kernels promise, with the content of its message
// (argument names, expected and actual values), and — for forward calls —
// proof that nothing was written: the output keeps its sentinel and running
// statistics (mean, variance, counters, population moments) are unchanged.

import Testing
@testable import NormKernels

/// A forward entry point seen through one signature, for the buffer checks.
struct ForwardUnderTest {
    typealias Call = (_ input: UnsafeBufferPointer<Float>, _ output: UnsafeMutableBufferPointer<Float>,
                      _ scale: UnsafeBufferPointer<Float>?, _ bias: UnsafeBufferPointer<Float>?,
                      _ running: RunningStatistics?) throws -> Void
    var name: String
    var count: Int
    /// Length of γ (and β when `hasBias`); nil when the kernel takes none.
    var parameters: Int?
    var hasBias = true
    /// Channels of the running statistics it uses; nil when it takes none.
    var runningChannels: Int?
    var call: Call
}

@Suite("Errors: forward calls reject bad buffers and write nothing")
struct ErrorForwardTests {
    static let shape = TensorShape(n: 2, c: 3, h: 4, w: 5)

    /// Calls `kernel.call` with the given lengths; the output is filled with the sentinel.
    func reject(_ kernel: ForwardUnderTest, _ expected: NormError, _ fragments: [String], _ what: String,
                input: Int? = nil, output: Int? = nil, scale: Int? = nil, bias: Int? = nil, runningChannels: Int? = nil,
                sourceLocation: SourceLocation = #_sourceLocation) throws {
        var rng = SplitMix64("error \(kernel.name) \(what)")
        let x = rng.normals(input ?? kernel.count)
        let g = (scale ?? kernel.parameters).map { rng.uniforms($0, 0.5...2) }
        let b = kernel.hasBias ? (bias ?? kernel.parameters).map { rng.uniforms($0, -1...1) } : nil
        let running = try (runningChannels ?? kernel.runningChannels).map {
            try RunningStatistics(channels: $0, mean: rng.uniforms($0, -1...1), variance: rng.uniforms($0, 0.5...2))
        }
        expectRejected(expected, mentions: fragments, "\(kernel.name): \(what)", outputCount: output ?? kernel.count,
                       running: running.map { [$0] } ?? [], sourceLocation: sourceLocation) { out in
            try x.withUnsafeBufferPointer { xp in
                try withOptionalBuffer(g) { gp in try withOptionalBuffer(b) { bp in try kernel.call(xp, out, gp, bp, running) } }
            }
        }
    }

    /// input, output, γ, β and running-channel lengths, and partial overlap.
    func checkBuffers(_ kernel: ForwardUnderTest) throws {
        let n = kernel.count
        func mismatch(_ argument: String, _ expected: Int, _ actual: Int) -> (NormError, [String]) {
            (.lengthMismatch(argument: argument, expected: expected, actual: actual),
             [argument, "has \(actual) elements", "expected \(expected)"])
        }
        var (e, f) = mismatch("input", n, n + 1)
        try reject(kernel, e, f, "input too long", input: n + 1)
        (e, f) = mismatch("input", n, n - 7)
        try reject(kernel, e, f, "input too short", input: n - 7, output: n - 7)
        (e, f) = mismatch("output", n, n - 1)
        try reject(kernel, e, f, "output too short", output: n - 1)
        (e, f) = mismatch("output", n, n + 3)
        try reject(kernel, e, f, "output too long", output: n + 3)
        if let p = kernel.parameters {
            (e, f) = mismatch("scale (γ)", p, p + 1)
            try reject(kernel, e, f, "γ too long", scale: p + 1)
            if kernel.hasBias {
                (e, f) = mismatch("bias (β)", p, p - 1)
                try reject(kernel, e, f, "β too short", bias: p - 1)
            }
        }
        if let c = kernel.runningChannels {
            (e, f) = mismatch("running statistics channels", c, c + 2)
            try reject(kernel, e, f, "running statistics for another channel count", runningChannels: c + 2)
        }
        checkPartialOverlap(kernel)
    }

    /// Output shifted by ±1 element against the input, inside one allocation: rejected,
    /// nothing written; adjacent (touching) buffers are fine.
    func checkPartialOverlap(_ kernel: ForwardUnderTest, sourceLocation: SourceLocation = #_sourceLocation) {
        let n = kernel.count
        var rng = SplitMix64("overlap \(kernel.name)")
        let g = kernel.parameters.map { rng.uniforms($0, 0.5...2) }
        let b = kernel.hasBias ? g : nil
        for (inputStart, outputStart) in [(0, 1), (1, 0), (0, n - 1), (0, n)] {
            let what = "\(kernel.name): input at \(inputStart), output at \(outputStart)"
            let running = try! kernel.runningChannels.map { try RunningStatistics(channels: $0, mean: rng.uniforms($0, -1...1)) }
            let before = running.map(RunningSnapshot.init)
            var storage = rng.normals(2 * n)
            let original = storage
            let call = {
                try storage.withUnsafeMutableBufferPointer { p in
                    let input = UnsafeBufferPointer(rebasing: p[inputStart..<(inputStart + n)])
                    let output = UnsafeMutableBufferPointer(rebasing: p[outputStart..<(outputStart + n)])
                    try withOptionalBuffer(g) { gp in try withOptionalBuffer(b) { bp in try kernel.call(input, output, gp, bp, running) } }
                }
            }
            if outputStart == n {
                // Adjacent, not overlapping: accepted.
                #expect(throws: Never.self, "\(what)", sourceLocation: sourceLocation) { try call() }
                #expect(storage[..<n] == original[..<n], "\(what): input modified", sourceLocation: sourceLocation)
                continue
            }
            expectNormError(.partialOverlap(argument: "output"), mentions: ["output", "overlaps the input"], what,
                            sourceLocation: sourceLocation) { try call() }
            #expect(storage.map(\.bitPattern) == original.map(\.bitPattern), "\(what): memory written before the error",
                    sourceLocation: sourceLocation)
            if let running, let before {
                #expect(RunningSnapshot(running) == before, "\(what): running statistics changed", sourceLocation: sourceLocation)
            }
        }
    }

    @Test("BatchNorm training and inference, NCHW / NHWC / [N, D]")
    func batchNorm() throws {
        for shape in [Self.shape, Self.shape.with(layout: .nhwc), TensorShape.matrix(6, 5)] {
            let bn = try BatchNormalization(shape: shape, fusedReLU: true)
            try checkBuffers(ForwardUnderTest(name: "BatchNorm training \(shape)", count: shape.count,
                                              parameters: shape.c, runningChannels: shape.c) { x, y, g, b, r in
                try bn.forwardTraining(input: x, output: y, scale: g, bias: b, running: r)
            })
            try checkBuffers(ForwardUnderTest(name: "BatchNorm inference \(shape)", count: shape.count,
                                              parameters: shape.c, runningChannels: shape.c) { x, y, g, b, r in
                try bn.forwardInference(input: x, output: y, scale: g, bias: b, running: r!)
            })
        }
    }

    @Test("InstanceNorm training and inference, GroupNorm, LayerNorm, RMSNorm")
    func otherKernels() throws {
        for shape in [Self.shape, Self.shape.with(layout: .nhwc)] {
            let inorm = try InstanceNormalization(shape: shape)
            try checkBuffers(ForwardUnderTest(name: "InstanceNorm training \(shape)", count: shape.count,
                                              parameters: shape.c, runningChannels: shape.c) { x, y, g, b, r in
                try inorm.forwardTraining(input: x, output: y, scale: g, bias: b, running: r)
            })
            try checkBuffers(ForwardUnderTest(name: "InstanceNorm inference \(shape)", count: shape.count,
                                              parameters: shape.c, runningChannels: shape.c) { x, y, g, b, r in
                try inorm.forwardInference(input: x, output: y, scale: g, bias: b, running: r!)
            })
            let gn = try GroupNormalization(shape: shape, groups: 3)
            try checkBuffers(ForwardUnderTest(name: "GroupNorm \(shape)", count: shape.count, parameters: shape.c) { x, y, g, b, _ in
                try gn.forward(input: x, output: y, scale: g, bias: b)
            })
            let ln = try LayerNormalization(shape: shape)
            try checkBuffers(ForwardUnderTest(name: "LayerNorm(shape:) \(shape)", count: shape.count,
                                              parameters: ln.features) { x, y, g, b, _ in
                try ln.forward(input: x, output: y, scale: g, bias: b)
            })
        }
        let ln = try LayerNormalization(rows: 7, features: 33)
        try checkBuffers(ForwardUnderTest(name: "LayerNorm [7, 33]", count: 231, parameters: 33) { x, y, g, b, _ in
            try ln.forward(input: x, output: y, scale: g, bias: b)
        })
        let rms = try RMSNormalization(rows: 7, features: 33)
        try checkBuffers(ForwardUnderTest(name: "RMSNorm [7, 33]", count: 231, parameters: 33, hasBias: false) { x, y, g, _, _ in
            try rms.forward(input: x, output: y, scale: g)
        })
    }

    @Test("AdaIN: content, style and output lengths; output overlapping content or style")
    func adaIN() throws {
        let cs = Self.shape, ss = TensorShape(n: 2, c: 3, h: 3, w: 3, layout: .nhwc)
        let ada = try AdaptiveInstanceNormalization(content: cs, style: ss)
        var rng = SplitMix64("adain-errors")
        let content = rng.normals(cs.count), style = rng.normals(ss.count)
        func run(_ c: [Float], _ s: [Float], _ out: UnsafeMutableBufferPointer<Float>) throws {
            try c.withUnsafeBufferPointer { cp in try s.withUnsafeBufferPointer { sp in
                _ = try ada.forward(content: cp, style: sp, output: out)
            } }
        }
        expectRejected(.lengthMismatch(argument: "content", expected: 120, actual: 121), mentions: ["content", "121", "expected 120"],
                       "AdaIN content too long", outputCount: 120) { try run(content + [1], style, $0) }
        expectRejected(.lengthMismatch(argument: "style", expected: 54, actual: 53), mentions: ["style", "53", "expected 54"],
                       "AdaIN style too short", outputCount: 120) { try run(content, Array(style.dropLast()), $0) }
        expectRejected(.lengthMismatch(argument: "output", expected: 120, actual: 119), mentions: ["output", "119", "expected 120"],
                       "AdaIN output too short", outputCount: 119) { try run(content, style, $0) }

        // Output overlapping the content by one element, or the style.
        var storage = rng.normals(2 * cs.count)
        let original = storage
        expectNormError(.partialOverlap(argument: "output"), mentions: ["output", "overlaps"]) {
            try storage.withUnsafeMutableBufferPointer { p in
                try style.withUnsafeBufferPointer { sp in
                    _ = try ada.forward(content: UnsafeBufferPointer(rebasing: p[0..<120]), style: sp,
                                        output: UnsafeMutableBufferPointer(rebasing: p[1..<121]))
                }
            }
        }
        // The style is a parameter of the call: the output may not touch it at all.
        expectNormError(.overlappingBuffers(argument: "output", other: "style"), mentions: ["output", "style", "shares memory"]) {
            try storage.withUnsafeMutableBufferPointer { p in
                try content.withUnsafeBufferPointer { cp in
                    _ = try ada.forward(content: cp, style: UnsafeBufferPointer(rebasing: p[100..<154]),
                                        output: UnsafeMutableBufferPointer(rebasing: p[0..<120]))
                }
            }
        }
        #expect(storage == original, "AdaIN wrote before rejecting an overlap")
    }

    @Test("WeightNorm: v, g and output lengths; partial overlap")
    func weightNorm() throws {
        let wn = try WeightNormalization(shape: [4, 3, 5], dim: 1)
        var rng = SplitMix64("wn-errors")
        let v = rng.normals(60), g = rng.uniforms(3, 0.5...2)
        func run(_ v: [Float], _ g: [Float], _ out: UnsafeMutableBufferPointer<Float>) throws {
            try v.withUnsafeBufferPointer { vp in try g.withUnsafeBufferPointer { gp in _ = try wn.forward(v: vp, g: gp, output: out) } }
        }
        expectRejected(.lengthMismatch(argument: "v", expected: 60, actual: 59), mentions: ["v has 59 elements", "expected 60"],
                       "WeightNorm v", outputCount: 60) { try run(Array(v.dropLast()), g, $0) }
        expectRejected(.lengthMismatch(argument: "g", expected: 3, actual: 4), mentions: ["g has 4 elements", "expected 3"],
                       "WeightNorm g", outputCount: 60) { try run(v, g + [1], $0) }
        expectRejected(.lengthMismatch(argument: "output (w)", expected: 60, actual: 61), mentions: ["output (w)", "expected 60"],
                       "WeightNorm output", outputCount: 61) { try run(v, g, $0) }
        var storage = rng.normals(120)
        let original = storage
        expectNormError(.partialOverlap(argument: "output (w)"), mentions: ["output (w)", "overlaps"]) {
            try storage.withUnsafeMutableBufferPointer { p in
                try g.withUnsafeBufferPointer { gp in
                    _ = try wn.forward(v: UnsafeBufferPointer(rebasing: p[30..<90]), g: gp,
                                       output: UnsafeMutableBufferPointer(rebasing: p[0..<60]))
                }
            }
        }
        #expect(storage == original, "WeightNorm wrote before rejecting an overlap")
    }

    @Test("training needs more than one value per channel: BatchNorm N·H·W = 1, InstanceNorm H·W = 1")
    func singleValue() throws {
        for shape in [TensorShape.matrix(1, 4), TensorShape(n: 1, c: 3, h: 1, w: 1)] {
            let bn = try BatchNormalization(shape: shape)
            let running = try RunningStatistics(channels: shape.c)
            let x = [Float](repeating: 2, count: shape.count)
            expectRejected(.singleValuePerChannel(argument: "input", valuesPerChannel: 1),
                           mentions: ["input", "more than 1 value per channel", "got 1"],
                           "BatchNorm training \(shape)", outputCount: shape.count, running: [running]) { out in
                try x.withUnsafeBufferPointer { _ = try bn.forwardTraining(input: $0, output: out, running: running) }
            }
            // Inference is legal for the same shape.
            let y = try bn.forwardInference(x, running: running)
            expectAllClose(y, Array(repeating: 2 / (1 + 1e-5).squareRoot(), count: shape.count), atol: 1e-6, "inference", "\(shape)")
        }
        for shape in [TensorShape(n: 4, c: 3, h: 1, w: 1), TensorShape(n: 4, c: 3, h: 1, w: 1, layout: .nhwc)] {
            let inorm = try InstanceNormalization(shape: shape)
            let running = try RunningStatistics(channels: 3)
            let x = [Float](repeating: 2, count: shape.count)
            expectRejected(.singleValuePerChannel(argument: "input (H·W per instance)", valuesPerChannel: 1),
                           mentions: ["H·W per instance", "more than 1 value", "got 1"],
                           "InstanceNorm training \(shape)", outputCount: shape.count, running: [running]) { out in
                try x.withUnsafeBufferPointer { _ = try inorm.forwardTraining(input: $0, output: out, running: running) }
            }
            #expect(throws: Never.self) { _ = try inorm.forwardInference(x, running: running) }
        }
    }

    @Test("the array API reports the same errors and leaves running statistics alone")
    func arrayAPI() throws {
        let bn = try BatchNormalization(shape: Self.shape)
        let running = try RunningStatistics(channels: 3)
        let before = RunningSnapshot(running)
        expectNormError(.lengthMismatch(argument: "input", expected: 120, actual: 119), mentions: ["input", "119"]) {
            _ = try bn.forwardTraining([Float](repeating: 1, count: 119), running: running)
        }
        expectNormError(.lengthMismatch(argument: "scale (γ)", expected: 3, actual: 2), mentions: ["scale (γ)", "expected 3"]) {
            _ = try bn.forwardTraining([Float](repeating: 1, count: 120), scale: [1, 1], running: running)
        }
        #expect(RunningSnapshot(running) == before)
    }
}

@Suite("Errors: BatchNormFolding")
struct ErrorFoldingTests {
    /// Folds with the pointer API and checks that the weight was not touched.
    func rejectFold(_ expected: NormError, _ fragments: [String], weightCount: Int = 6, bias: Int? = nil,
                    runningChannels: Int = 3, outChannels: Int = 3, scale: Int? = nil, shift: Int? = nil,
                    sourceLocation: SourceLocation = #_sourceLocation) throws {
        var rng = SplitMix64("fold-error \(expected)")
        var weight = rng.normals(weightCount)
        let original = weight
        let running = try RunningStatistics(channels: runningChannels, mean: rng.uniforms(runningChannels, -1...1))
        let before = RunningSnapshot(running)
        let b = bias.map { rng.normals($0) }, g = scale.map { rng.normals($0) }, t = shift.map { rng.normals($0) }
        expectNormError(expected, mentions: fragments, sourceLocation: sourceLocation) {
            try weight.withUnsafeMutableBufferPointer { w in
                try withOptionalBuffer(b) { bp in try withOptionalBuffer(g) { gp in try withOptionalBuffer(t) { tp in
                    _ = try BatchNormFolding.fold(weight: w, bias: bp, outChannels: outChannels, running: running, scale: gp, shift: tp)
                } } }
            }
        }
        #expect(weight == original, "weight rewritten before the error", sourceLocation: sourceLocation)
        #expect(RunningSnapshot(running) == before, sourceLocation: sourceLocation)
    }

    @Test("wrong lengths and counts are rejected before the weight is rewritten")
    func lengths() throws {
        try rejectFold(.lengthMismatch(argument: "weight", expected: 9, actual: 10), ["weight has 10 elements", "expected 9"],
                       weightCount: 10)
        try rejectFold(.lengthMismatch(argument: "weight", expected: 3, actual: 2), ["weight has 2 elements", "expected 3"],
                       weightCount: 2)
        try rejectFold(.lengthMismatch(argument: "bias", expected: 3, actual: 4), ["bias has 4 elements", "expected 3"], bias: 4)
        try rejectFold(.lengthMismatch(argument: "running statistics channels", expected: 3, actual: 2),
                       ["running statistics channels has 2", "expected 3"], runningChannels: 2)
        try rejectFold(.lengthMismatch(argument: "scale (γ)", expected: 3, actual: 1), ["scale (γ) has 1", "expected 3"], scale: 1)
        try rejectFold(.lengthMismatch(argument: "shift (β)", expected: 3, actual: 6), ["shift (β) has 6", "expected 3"], shift: 6)
        try rejectFold(.lengthMismatch(argument: "weight", expected: 3, actual: 0), ["weight has 0 elements", "expected 3"],
                       weightCount: 0)
        try rejectFold(.invalidDimension(argument: "outChannels", value: 0), ["outChannels must be > 0, got 0"], outChannels: 0)
        // Array API: same error.
        let running = try RunningStatistics(channels: 3)
        expectNormError(.lengthMismatch(argument: "bias", expected: 3, actual: 2), mentions: ["bias"]) {
            _ = try BatchNormFolding.fold(weight: [1, 2, 3, 4, 5, 6], bias: [1, 2], outChannels: 3, running: running)
        }
    }
}
