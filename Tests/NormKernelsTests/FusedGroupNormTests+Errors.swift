// GroupNorm + SiLU: typed errors naming the argument, before any write.
import Testing
@testable import NormKernels

extension FusedGroupNormTests {
    @Test("forward errors: modulation lengths, output over the modulation or partly over x; nothing written",
          arguments: [siluCases[0], siluCases[3], siluCases[6]])
    func forwardErrors(_ c: SiLUCase) throws {
        let shape = c.shape, count = shape.count, perSample = shape.n * shape.c
        let gn = try GroupNormalization(shape: shape, groups: c.groups)
        var memory = [Float](repeating: 0, count: 2 * count + 2 * perSample + 64)
        for k in memory.indices { memory[k] = Float(k % 7) - 3 }
        let before = memory
        memory.withUnsafeMutableBufferPointer { m in
            let base = m.baseAddress!
            let x = UnsafeBufferPointer(start: base, count: count)
            let y = UnsafeMutableBufferPointer(start: base + count + 32, count: count)
            let s = UnsafeBufferPointer(start: base + 2 * count + 64, count: perSample)
            let t = UnsafeBufferPointer(start: base + 2 * count + 64 + perSample, count: perSample)
            let cases: [(String, UnsafeMutableBufferPointer<Float>, UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>,
                         NormError)] = [
                ("short scale", y, UnsafeBufferPointer(start: s.baseAddress, count: perSample - 1), t,
                 .lengthMismatch(argument: "modulationScale", expected: perSample, actual: perSample - 1)),
                ("long shift", y, s, UnsafeBufferPointer(start: s.baseAddress, count: perSample + 1),
                 .lengthMismatch(argument: "modulationShift", expected: perSample, actual: perSample + 1)),
                ("output over shift", UnsafeMutableBufferPointer(start: base + 2 * count + 64 + perSample - count + 1,
                                                                count: count), s, t,
                 .overlappingBuffers(argument: "output", other: "modulationScale")),
                ("output partly over x", UnsafeMutableBufferPointer(start: base + 3, count: count), s, t,
                 .partialOverlap(argument: "output")),
            ]
            for (what, out, scale, shift, error) in cases {
                #expect(throws: error, "\(c) \(what)") {
                    try gn.forwardSiLU(input: x, output: out, modulationScale: scale, modulationShift: shift)
                }
            }
        }
        expectBitwise(memory, before, "\(c): memory after the failed calls")
    }

    @Test("backward errors: lengths, modulation gradients over inputs or each other, saved; nothing written",
          arguments: [siluCases[0], siluCases[6], siluCases[10]])
    func backwardErrors(_ c: SiLUCase) throws {
        let shape = c.shape, count = shape.count, perSample = shape.n * shape.c
        let gn = try GroupNormalization(shape: shape, groups: c.groups)
        let saved = SavedStatistics(mean: [Double](repeating: 0, count: shape.n * c.groups),
                                    invStd: [Double](repeating: 1, count: shape.n * c.groups))
        var memory = [Float](repeating: 0, count: 3 * count + 4 * perSample)
        for k in memory.indices { memory[k] = Float(k % 5) - 2 }
        let before = memory
        memory.withUnsafeMutableBufferPointer { m in
            let base = m.baseAddress!
            let x = UnsafeBufferPointer(start: base, count: count)
            let dy = UnsafeBufferPointer(start: base + count, count: count)
            let dx = UnsafeMutableBufferPointer(start: base + 2 * count, count: count)
            let s = UnsafeBufferPointer(start: base + 3 * count, count: perSample)
            let ds = UnsafeMutableBufferPointer(start: base + 3 * count + perSample, count: perSample)
            let dt = UnsafeMutableBufferPointer(start: base + 3 * count + 2 * perSample, count: perSample)
            let cases: [(String, UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>, NormError)] = [
                ("short d scale", UnsafeMutableBufferPointer(start: ds.baseAddress, count: perSample - 1), dt,
                 .lengthMismatch(argument: "gradModulationScale", expected: perSample, actual: perSample - 1)),
                ("d scale over scale", UnsafeMutableBufferPointer(mutating: s), dt,
                 .overlappingBuffers(argument: "gradModulationScale", other: "modulationScale")),
                ("d shift over d scale", ds, UnsafeMutableBufferPointer(start: ds.baseAddress! + 1, count: perSample),
                 .overlappingBuffers(argument: "gradModulationScale", other: "gradModulationShift")),
                ("d shift over dx", ds, UnsafeMutableBufferPointer(start: dx.baseAddress, count: perSample),
                 .overlappingBuffers(argument: "gradInput", other: "gradModulationShift")),
                ("d shift over dy", ds, UnsafeMutableBufferPointer(mutating: UnsafeBufferPointer(start: dy.baseAddress, count: perSample)),
                 .overlappingBuffers(argument: "gradModulationShift", other: "gradOutput")),
            ]
            for (what, dsp, dtp, error) in cases {
                #expect(throws: error, "\(c) \(what)") {
                    try gn.backwardSiLU(input: x, gradOutput: dy, saved: saved, modulationScale: s, gradInput: dx,
                                        gradModulationScale: dsp, gradModulationShift: dtp)
                }
            }
            #expect(throws: NormError.lengthMismatch(argument: "saved.mean", expected: shape.n * c.groups, actual: 1)) {
                try gn.backwardSiLU(input: x, gradOutput: dy, saved: SavedStatistics(mean: [0], invStd: saved.invStd),
                                    gradInput: dx)
            }
        }
        expectBitwise(memory, before, "\(c): memory after the failed calls")
    }
}
