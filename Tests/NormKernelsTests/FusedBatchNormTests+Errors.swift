// BatchNorm + add + ReLU: typed errors before any write (lengths, overlaps).
import Testing
@testable import NormKernels

extension FusedBatchNormTests {
    @Test("forward errors: identity length, output partly over identity or over γ; nothing written",
          arguments: [TensorShape(n: 2, c: 3, h: 4, w: 5, layout: .nchw), TensorShape(n: 2, c: 3, h: 4, w: 5, layout: .nhwc),
                      TensorShape.matrix(6, 5)])
    func forwardErrors(shape: TensorShape) throws {
        let count = shape.count
        let bn = try BatchNormalization(shape: shape, fusedReLU: true)
        let running = try RunningStatistics(channels: shape.c)
        var memory = [Float](repeating: 1, count: 3 * count + 64)
        for i in memory.indices { memory[i] = Float(i % 7) - 3 }
        let before = memory
        memory.withUnsafeMutableBufferPointer { m in
            let base = m.baseAddress!
            let x = UnsafeBufferPointer(start: base, count: count)
            let identity = UnsafeBufferPointer(start: base + count, count: count)
            let output = UnsafeMutableBufferPointer(start: base + 2 * count + 32, count: count)
            let cases: [(String, UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>, NormError)] = [
                ("short identity", UnsafeBufferPointer(start: base + count, count: count - 1), output,
                 .lengthMismatch(argument: "identity", expected: count, actual: count - 1)),
                ("output partly over identity", identity, UnsafeMutableBufferPointer(start: base + count + 1, count: count),
                 .partialOverlap(argument: "output (against identity)")),
                ("output partly over x", identity, UnsafeMutableBufferPointer(start: base + 3, count: count),
                 .partialOverlap(argument: "output")),
            ]
            for (what, id, out, error) in cases {
                #expect(throws: error, "training \(what)") {
                    try bn.forwardTraining(input: x, identity: id, output: out, running: running)
                }
                #expect(throws: error, "inference \(what)") {
                    try bn.forwardInference(input: x, identity: id, output: out, running: running)
                }
            }
            // Output over γ.
            let gamma = UnsafeBufferPointer(start: base + 2 * count + 32, count: shape.c)
            #expect(throws: NormError.overlappingBuffers(argument: "output", other: "scale (γ)")) {
                try bn.forwardTraining(input: x, identity: identity, output: output, scale: gamma)
            }
        }
        expectBitwise(memory, before, "\(shape): memory after the failed calls")
        #expect(running.batchesTracked == 0, "\(shape): running statistics untouched")
    }

    @Test("backward errors: gradIdentity length, over output, over gradInput, partly over dy; nothing written",
          arguments: [TensorShape(n: 2, c: 3, h: 4, w: 5, layout: .nchw), TensorShape.matrix(6, 5)])
    func backwardErrors(shape: TensorShape) throws {
        let count = shape.count
        let bn = try BatchNormalization(shape: shape, fusedReLU: true)
        let saved = SavedStatistics(mean: [Double](repeating: 0, count: shape.c), invStd: [Double](repeating: 1, count: shape.c))
        var memory = [Float](repeating: 0, count: 5 * count)
        for i in memory.indices { memory[i] = Float(i % 5) - 2 }
        let before = memory
        memory.withUnsafeMutableBufferPointer { m in
            let base = m.baseAddress!
            let x = UnsafeBufferPointer(start: base, count: count)
            let dy = UnsafeBufferPointer(start: base + count, count: count)
            let y = UnsafeBufferPointer(start: base + 2 * count, count: count)
            let dx = UnsafeMutableBufferPointer(start: base + 3 * count, count: count)
            let cases: [(String, UnsafeMutableBufferPointer<Float>, NormError)] = [
                ("short gradIdentity", UnsafeMutableBufferPointer(start: base + 4 * count, count: count - 1),
                 .lengthMismatch(argument: "gradIdentity", expected: count, actual: count - 1)),
                ("gradIdentity over output", UnsafeMutableBufferPointer(mutating: y),
                 .overlappingBuffers(argument: "gradIdentity", other: "output")),
                ("gradIdentity over gradInput", dx, .overlappingBuffers(argument: "gradInput", other: "gradIdentity")),
                ("gradIdentity partly over dy", UnsafeMutableBufferPointer(start: base + count + 1, count: count),
                 .partialOverlap(argument: "gradIdentity (against gradOutput)")),
            ]
            for (what, di, error) in cases {
                #expect(throws: error, "\(what)") {
                    try bn.backwardTraining(input: x, gradOutput: dy, saved: saved, output: y, gradInput: dx, gradIdentity: di)
                }
            }
            #expect(throws: NormError.self, "fusedReLU without output") {
                try bn.backwardTraining(input: x, gradOutput: dy, saved: saved, gradIdentity: dx)
            }
        }
        expectBitwise(memory, before, "\(shape): memory after the failed calls")
    }
}
