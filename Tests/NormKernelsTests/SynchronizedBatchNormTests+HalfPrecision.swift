// Synchronized BatchNorm on Float16 and BFloat16 slices (issue 20): on every
// rank, y16 == E.narrow(y32) and dx16 == E.narrow(dx32) bit for bit, with the
// same saved statistics, dγ and dβ, where the Float32 results come from the
// Float32 synchronized kernel on the widened slices; for 1–3 ranks with even,
// uneven and empty splits (the single-process tree and the tree over ranks),
// NCHW long and short planes and NHWC, fused ReLU, 1 and 3 threads.
import Foundation
import Testing
@testable import NormKernels

@Suite("Synchronized BatchNorm on 16-bit tensors")
struct SynchronizedHalfPrecisionTests {
    /// One rank's forward and backward results, as bit patterns.
    struct Step: Sendable, Equatable {
        var y: [UInt32]
        var mean: [Double]
        var invStd: [Double]
        var dx: [UInt32]
        var dScale: [Float]
        var dBias: [Float]
    }

    /// Runs a synchronized forward then backward on every rank with tensors of
    /// element type `E` (inputs given as Float32 values that `E` holds exactly).
    static func run<E: NormElement>(_: E.Type, template: TensorShape, counts: [Int], relu: Bool, threads: Int,
                                    x: [Float], dy: [Float], gamma: [Float], beta: [Float]) throws -> [Step] {
        let perSample = template.c * template.spatial
        let results = try InProcessExchange.run(ranks: counts.count, timeout: 60) { exchange -> Step in
            let r = exchange.rank
            var shape = template
            shape.n = counts[r]
            let first = counts[..<r].reduce(0, +) * perSample, count = counts[r] * perSample
            let xs = x[first..<(first + count)].map { E.narrow($0) }, dys = dy[first..<(first + count)].map { E.narrow($0) }
            let bn = try SynchronizedBatchNormalization(
                shape: shape, fusedReLU: relu, threading: Threading(threads: threads, parallelThreshold: 0), exchange: exchange)
            var y = [E](repeating: E.narrow(0), count: count), dx = y
            var dScale = [Float](repeating: 0, count: template.c), dBias = dScale
            let saved = try xs.withUnsafeBufferPointer { xb in
                try y.withUnsafeMutableBufferPointer { yb in
                    try gamma.withUnsafeBufferPointer { g in
                        try beta.withUnsafeBufferPointer { b in
                            try bn.forwardTraining(input: xb, output: yb, scale: g, bias: b)
                        }
                    }
                }
            }
            try xs.withUnsafeBufferPointer { xb in
                try dys.withUnsafeBufferPointer { dyb in
                    try y.withUnsafeBufferPointer { yb in
                        try gamma.withUnsafeBufferPointer { g in
                            try dx.withUnsafeMutableBufferPointer { dxb in
                                try dScale.withUnsafeMutableBufferPointer { ds in
                                    try dBias.withUnsafeMutableBufferPointer { db in
                                        try bn.backwardTraining(input: xb, gradOutput: dyb, saved: saved, scale: g,
                                                                output: yb, gradInput: dxb, gradScale: ds, gradBias: db,
                                                                parameterGradients: .global)
                                    }
                                }
                            }
                        }
                    }
                }
            }
            return Step(y: y.map { E.widen($0).bitPattern }, mean: saved.mean, invStd: saved.invStd,
                        dx: dx.map { E.widen($0).bitPattern }, dScale: dScale, dBias: dBias)
        }
        return try results.map { try $0.get() }
    }

    /// The 16-bit steps against the narrowed Float32 steps on the widened data.
    static func check<E: NormElement>(_ type: E.Type, template: TensorShape, counts: [Int], relu: Bool) throws {
        var rng = SplitMix64("sync16 \(E.self) \(template) \(counts) \(relu)")
        let total = counts.reduce(0, +) * template.c * template.spatial
        // Values E holds exactly, offset from 0 so that the statistics are not trivial.
        let x = rng.normals(total).map { E.widen(E.narrow(3 + 2 * $0)) }
        let dy = rng.normals(total).map { E.widen(E.narrow($0)) }
        let gamma = rng.normals(template.c).map { 1 + 0.25 * $0 }, beta = rng.normals(template.c)
        let wide = try run(Float.self, template: template, counts: counts, relu: relu, threads: 2,
                           x: x, dy: dy, gamma: gamma, beta: beta)
        for threads in [1, 3] {
            let half = try run(E.self, template: template, counts: counts, relu: relu, threads: threads,
                               x: x, dy: dy, gamma: gamma, beta: beta)
            for r in counts.indices {
                let label = "\(E.self) \(template) counts \(counts) relu \(relu) threads \(threads) rank \(r)"
                let narrowed = Step(y: wide[r].y.map { E.widen(E.narrow(Float(bitPattern: $0))).bitPattern },
                                    mean: wide[r].mean, invStd: wide[r].invStd,
                                    dx: wide[r].dx.map { E.widen(E.narrow(Float(bitPattern: $0))).bitPattern },
                                    dScale: wide[r].dScale, dBias: wide[r].dBias)
                #expect(half[r].y == narrowed.y, "y: \(label)")
                #expect(half[r].mean == narrowed.mean && half[r].invStd == narrowed.invStd, "saved: \(label)")
                #expect(half[r].dx == narrowed.dx, "dx: \(label)")
                #expect(half[r].dScale.map(\.bitPattern) == narrowed.dScale.map(\.bitPattern), "dγ: \(label)")
                #expect(half[r].dBias.map(\.bitPattern) == narrowed.dBias.map(\.bitPattern), "dβ: \(label)")
            }
        }
    }

    static let cases: [(TensorShape, [Int], Bool)] = [
        (TensorShape(n: 0, c: 5, h: 9, w: 11), [3, 3], false),                    // NCHW, one subtree per rank
        (TensorShape(n: 0, c: 5, h: 9, w: 11), [1, 4, 0], true),                  // uneven, an empty rank, ReLU
        (TensorShape(n: 0, c: 7, h: 3, w: 3), [2, 5, 1], false),                  // short planes
        (TensorShape(n: 0, c: 13, h: 5, w: 5, layout: .nhwc), [4, 2], true),      // NHWC
        (TensorShape(n: 0, c: 9, h: 1, w: 1), [64, 37], false),                   // [N, D]
        (TensorShape(n: 0, c: 3, h: 40, w: 40), [1], false),                      // one rank
    ]

    @Test("BFloat16 on every rank: y, dx the narrowed Float32 results; statistics, dγ, dβ identical; any thread count",
          arguments: 0..<6)
    func bfloat16(_ index: Int) throws {
        let (template, counts, relu) = Self.cases[index]
        try Self.check(BFloat16.self, template: template, counts: counts, relu: relu)
    }

    #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
    @Test("Float16 on every rank: y, dx the narrowed Float32 results; statistics, dγ, dβ identical; any thread count",
          arguments: 0..<6)
    func float16(_ index: Int) throws {
        let (template, counts, relu) = Self.cases[index]
        try Self.check(Float16.self, template: template, counts: counts, relu: relu)
    }
    #endif

    @Test("a 16-bit rank with a wrong length: every rank throws, nothing written")
    func collectiveRejection() throws {
        let template = TensorShape(n: 0, c: 3, h: 4, w: 4)
        let sentinel = BFloat16(bitPattern: 0x7FC1)
        let results = try InProcessExchange.run(ranks: 2) { exchange -> (error: (any Error)?, untouched: Bool) in
            var shape = template
            shape.n = 2
            let bn = try SynchronizedBatchNormalization(shape: shape, exchange: exchange)
            let x = (0..<shape.count).map { BFloat16(Float($0 % 5)) }
            var y = [BFloat16](repeating: sentinel, count: shape.count + exchange.rank)
            do {
                _ = try x.withUnsafeBufferPointer { xb in try y.withUnsafeMutableBufferPointer { try bn.forwardTraining(input: xb, output: $0) } }
                return (nil, true)
            } catch {
                return (error, y.allSatisfy { $0.bitPattern == sentinel.bitPattern })
            }
        }
        let outcomes = try results.map { try $0.get() }
        #expect(outcomes.map(\.untouched) == [true, true])
        #expect(outcomes[1].error as? NormError == .lengthMismatch(argument: "output", expected: 96, actual: 97))
        #expect(outcomes[0].error as? SynchronizationError == .peerRejectedArguments(ranks: [1]))
    }
}
