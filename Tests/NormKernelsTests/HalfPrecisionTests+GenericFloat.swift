// The generic 16-bit entry points reached with `Float` from generic code (as
// from another module's generic caller): the dispatch must hand `Float` to the
// `Float` overloads, so the bits and statistics are theirs.

import Testing
@testable import NormKernels

/// The calls below, made from a generic context so that they resolve to the
/// generic entry points; `direct` makes them with the concrete `Float` overloads.
func viaGenericEntryPoints<E: NormElement>(
    _ x: UnsafeBufferPointer<E>, _ g: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>,
    _ y: UnsafeMutableBufferPointer<E>, step: Int, shape: TensorShape
) throws -> [Double] {
    switch step {
    case 0: return try BatchNormalization(shape: shape).forwardTraining(input: x, output: y, scale: g, bias: b).invStd
    case 1: return try BatchNormalization(shape: shape).forwardTraining(input: x, identity: x, output: y).mean
    case 2: return try InstanceNormalization(shape: shape).forwardTraining(input: x, output: y, scale: g, bias: b).invStd
    case 3: return try GroupNormalization(shape: shape, groups: 2).forward(input: x, output: y, scale: g, bias: b).invStd
    default:
        let bn = try BatchNormalization(shape: shape)
        let saved = try bn.forwardTraining(input: x, output: y)
        try bn.backwardTraining(input: x, gradOutput: x, saved: saved, scale: g, gradInput: y)
        return saved.mean
    }
}

struct HalfPrecisionGenericFloatTests {
    @Test("the generic entry points with Float give the Float overloads' bits")
    func genericFloat() throws {
        let shape = TensorShape(n: 2, c: 4, h: 3, w: 5)
        let x = (0..<shape.count).map { Float(($0 * 37) % 23) / 7 - 1.5 }
        let g = (0..<shape.c).map { 0.5 + Float($0) / 4 }, b = (0..<shape.c).map { Float($0) / 8 - 0.2 }
        func direct(_ step: Int, _ xp: UnsafeBufferPointer<Float>, _ gp: UnsafeBufferPointer<Float>,
                    _ bp: UnsafeBufferPointer<Float>, _ y: UnsafeMutableBufferPointer<Float>) throws -> [Double] {
            switch step {
            case 0: return try BatchNormalization(shape: shape).forwardTraining(input: xp, output: y, scale: gp, bias: bp).invStd
            case 1: return try BatchNormalization(shape: shape).forwardTraining(input: xp, identity: xp, output: y).mean
            case 2: return try InstanceNormalization(shape: shape).forwardTraining(input: xp, output: y, scale: gp, bias: bp).invStd
            case 3: return try GroupNormalization(shape: shape, groups: 2).forward(input: xp, output: y, scale: gp, bias: bp).invStd
            default:
                let bn = try BatchNormalization(shape: shape)
                let saved = try bn.forwardTraining(input: xp, output: y)
                try bn.backwardTraining(input: xp, gradOutput: xp, saved: saved, scale: gp, gradInput: y)
                return saved.mean
            }
        }
        for step in 0..<5 {
            var y1 = [Float](repeating: 0, count: x.count), y2 = y1
            let (s1, s2) = try x.withUnsafeBufferPointer { xp in
                try g.withUnsafeBufferPointer { gp in
                    try b.withUnsafeBufferPointer { bp in
                        (try y1.withUnsafeMutableBufferPointer { try viaGenericEntryPoints(xp, gp, bp, $0, step: step, shape: shape) },
                         try y2.withUnsafeMutableBufferPointer { try direct(step, xp, gp, bp, $0) })
                    }
                }
            }
            #expect(s1 == s2, "step \(step) statistics")
            #expect(y1.map(\.bitPattern) == y2.map(\.bitPattern), "step \(step) output")
        }
    }
}
