// Residual LayerNorm/RMSNorm and RMSNorm × gate: typed errors naming the
// argument, thrown before anything is written (lengths, overlaps).
import Testing
@testable import NormKernels

extension FusedRowTests {
    @Test("residual forward errors: lengths of residual, sum, inputBias; sum over output, partly over the residual, over γ; nothing written",
          arguments: FusedRowKind.allCases)
    func residualForwardErrors(kind: FusedRowKind) throws {
        let rows = 3, features = 10, count = rows * features
        let ln = try LayerNormalization(rows: rows, features: features)
        let rms = try RMSNormalization(rows: rows, features: features)
        var memory = [Float](repeating: 0, count: 5 * count + 64)
        for i in memory.indices { memory[i] = Float(i % 7) - 3 }
        let before = memory
        memory.withUnsafeMutableBufferPointer { m in
            let base = m.baseAddress!
            let x = UnsafeBufferPointer(start: base, count: count)
            let r = UnsafeBufferPointer(start: base + count, count: count)
            let y = UnsafeMutableBufferPointer(start: base + 2 * count, count: count)
            let s = UnsafeMutableBufferPointer(start: base + 3 * count, count: count)
            let gamma = UnsafeBufferPointer(start: base + 4 * count, count: features)
            let bias = UnsafeBufferPointer(start: base + 4 * count + 16, count: features)
            typealias Case = (String, UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>,
                              UnsafeMutableBufferPointer<Float>?, UnsafeBufferPointer<Float>, NormError)
            let cases: [Case] = [
                ("short residual", UnsafeBufferPointer(start: r.baseAddress, count: count - 1), y, s, bias,
                 .lengthMismatch(argument: "residual", expected: count, actual: count - 1)),
                ("long sum", r, y, UnsafeMutableBufferPointer(start: s.baseAddress, count: count + 1), bias,
                 .lengthMismatch(argument: "sum", expected: count, actual: count + 1)),
                ("short inputBias", r, y, s, UnsafeBufferPointer(start: bias.baseAddress, count: features - 1),
                 .lengthMismatch(argument: "inputBias", expected: features, actual: features - 1)),
                ("sum over output", r, y, y, bias, .overlappingBuffers(argument: "output", other: "sum")),
                ("sum partly over the residual", r, s, UnsafeMutableBufferPointer(start: base + count + 1, count: count),
                 bias, .partialOverlap(argument: "sum (against residual)")),
                ("output partly over x", r, UnsafeMutableBufferPointer(start: base + 2, count: count), s, bias,
                 .partialOverlap(argument: "output (against input)")),
                ("sum over γ", r, y, UnsafeMutableBufferPointer(start: base + 4 * count, count: count), bias,
                 .overlappingBuffers(argument: "sum", other: "scale (γ)")),
                ("output over inputBias", r, UnsafeMutableBufferPointer(start: base + 4 * count + 10, count: count), s,
                 bias, .overlappingBuffers(argument: "output", other: "inputBias")),
            ]
            for (what, residual, output, sum, inputBias, error) in cases {
                #expect(throws: error, "\(kind) \(what)") {
                    if kind == .layer {
                        try ln.forward(input: x, residual: residual, output: output, sum: sum, scale: gamma,
                                       inputBias: inputBias)
                    } else {
                        try rms.forward(input: x, residual: residual, output: output, sum: sum, scale: gamma,
                                        inputBias: inputBias)
                    }
                }
            }
        }
        expectBitwise(memory, before, "\(kind): memory after the failed calls")
    }

    @Test("residual backward errors: gradSum length, dx over ds, d bias length and over dγ, saved count; nothing written",
          arguments: FusedRowKind.allCases)
    func residualBackwardErrors(kind: FusedRowKind) throws {
        let rows = 3, features = 10, count = rows * features
        let ln = try LayerNormalization(rows: rows, features: features)
        let rms = try RMSNormalization(rows: rows, features: features)
        let saved = SavedStatistics(mean: [Double](repeating: 0, count: rows), invStd: [Double](repeating: 1, count: rows))
        var memory = [Float](repeating: 0, count: 4 * count + 2 * features)
        for i in memory.indices { memory[i] = Float(i % 5) - 2 }
        let before = memory
        memory.withUnsafeMutableBufferPointer { m in
            let base = m.baseAddress!
            let s = UnsafeBufferPointer(start: base, count: count)
            let dy = UnsafeBufferPointer(start: base + count, count: count)
            let ds = UnsafeBufferPointer(start: base + 2 * count, count: count)
            let dx = UnsafeMutableBufferPointer(start: base + 3 * count, count: count)
            let dgamma = UnsafeMutableBufferPointer(start: base + 4 * count, count: features)
            let dbias = UnsafeMutableBufferPointer(start: base + 4 * count + features, count: features)
            typealias Case = (String, UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>,
                              UnsafeMutableBufferPointer<Float>, SavedStatistics, NormError)
            let cases: [Case] = [
                ("short gradSum", UnsafeBufferPointer(start: ds.baseAddress, count: count - 1), dx, dbias, saved,
                 .lengthMismatch(argument: "gradSum", expected: count, actual: count - 1)),
                ("dx over ds", ds, UnsafeMutableBufferPointer(mutating: ds), dbias, saved,
                 .overlappingBuffers(argument: "gradInput", other: "gradSum")),
                ("short d bias", ds, dx, UnsafeMutableBufferPointer(start: dbias.baseAddress, count: features - 1), saved,
                 .lengthMismatch(argument: "gradInputBias", expected: features, actual: features - 1)),
                ("d bias over dγ", ds, dx, dgamma, saved,
                 .overlappingBuffers(argument: "gradScale", other: "gradInputBias")),
                ("saved count", ds, dx, dbias, SavedStatistics(mean: [0, 0], invStd: [1, 1]),
                 .lengthMismatch(argument: kind == .layer ? "saved.mean" : "saved.invStd", expected: rows, actual: 2)),
            ]
            for (what, gradSum, gradInput, gradInputBias, saved, error) in cases {
                #expect(throws: error, "\(kind) \(what)") {
                    if kind == .layer {
                        try ln.backward(sum: s, gradOutput: dy, gradSum: gradSum, saved: saved, gradInput: gradInput,
                                        gradScale: dgamma, gradInputBias: gradInputBias)
                    } else {
                        try rms.backward(sum: s, gradOutput: dy, gradSum: gradSum, saved: saved, gradInput: gradInput,
                                         gradScale: dgamma, gradInputBias: gradInputBias)
                    }
                }
            }
        }
        expectBitwise(memory, before, "\(kind): memory after the failed calls")
    }

    @Test("gate errors: gate and d gate lengths, output partly over the gate, d gate over dx; nothing written")
    func gateErrors() throws {
        let rows = 3, features = 10, count = rows * features
        let rms = try RMSNormalization(rows: rows, features: features)
        let saved = SavedStatistics(mean: [Double](repeating: 0, count: rows), invStd: [Double](repeating: 1, count: rows))
        var memory = [Float](repeating: 0, count: 5 * count)
        for i in memory.indices { memory[i] = Float(i % 5) - 2 }
        let before = memory
        memory.withUnsafeMutableBufferPointer { m in
            let base = m.baseAddress!
            let x = UnsafeBufferPointer(start: base, count: count)
            let gate = UnsafeBufferPointer(start: base + count, count: count)
            let dy = UnsafeBufferPointer(start: base + 2 * count, count: count)
            let out = UnsafeMutableBufferPointer(start: base + 3 * count, count: count)
            let dgate = UnsafeMutableBufferPointer(start: base + 4 * count, count: count)
            #expect(throws: NormError.lengthMismatch(argument: "gate", expected: count, actual: count - 1)) {
                try rms.forward(input: x, gate: UnsafeBufferPointer(start: gate.baseAddress, count: count - 1), output: out)
            }
            #expect(throws: NormError.partialOverlap(argument: "output (against gate)")) {
                try rms.forward(input: x, gate: gate, output: UnsafeMutableBufferPointer(start: base + count + 3, count: count))
            }
            #expect(throws: NormError.lengthMismatch(argument: "gradGate", expected: count, actual: count - 1)) {
                try rms.backward(input: x, gate: gate, gradOutput: dy, saved: saved, gradInput: out,
                                 gradGate: UnsafeMutableBufferPointer(start: dgate.baseAddress, count: count - 1))
            }
            #expect(throws: NormError.overlappingBuffers(argument: "gradInput", other: "gradGate")) {
                try rms.backward(input: x, gate: gate, gradOutput: dy, saved: saved, gradInput: out, gradGate: out)
            }
            #expect(throws: NormError.lengthMismatch(argument: "saved.invStd", expected: rows, actual: 1)) {
                try rms.backward(input: x, gate: gate, gradOutput: dy, saved: SavedStatistics(mean: [0], invStd: [1]),
                                 gradInput: out)
            }
        }
        expectBitwise(memory, before, "gate: memory after the failed calls")
    }
}
