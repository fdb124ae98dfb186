// BatchNorm NCHW backward with short runs (H·W < `BatchNormalization.shortRunSpatial`):
// the batched run sums give each run exactly the sums of `BlockGradients.contiguous`,
// and the channel blocks (whose width follows the thread count) give the same bits
// for any thread count.
import Testing
@testable import NormKernels

private let streams = SeededStreams(salt: 0x5A0B_7C11)

@Suite("BatchNorm short-run backward")
struct ShortRunBackwardTests {
    @Test("runSums equals contiguous run by run, bit for bit (lengths 1…80, with and without mask)")
    func runSumsBits() {
        for n in Array(1...80) + [129, 255] {
            let runs = 19
            let x = streams.uniforms(runs * n, seed: UInt64(n), -3...5)
            var dy = streams.uniforms(runs * n, seed: UInt64(1000 + n))
            if n == 7 { dy[3] = .infinity }   // one non-finite run: the Float64 fallback
            let mask = streams.uniforms(runs * n, seed: UInt64(2000 + n))
            let arena = Arena()
            let table = CoefficientTable(count: runs + 2, in: arena)
            for k in 0..<(runs + 2) { table[k] = AffineCoefficients(mean: Double(k) * 0.1 - 1, invStd: 1.5 + Double(k) * 0.01) }
            for useMask in [false, true] {
                var got = [GradientSums](repeating: .zero, count: runs)
                x.withUnsafeBufferPointer { xs in dy.withUnsafeBufferPointer { ds in mask.withUnsafeBufferPointer { ms in
                    got.withUnsafeMutableBufferPointer { out in
                        BlockGradients.runSums(xs.baseAddress!, ds.baseAddress!, mask: useMask ? ms.baseAddress! : nil,
                                               length: n, runs: runs, xhat: table, slot: 2, into: out.baseAddress!)
                    }
                    for k in 0..<runs {
                        let o = k * n
                        let want = BlockGradients.contiguous(xs.baseAddress! + o, ds.baseAddress! + o, n, table[2 + k],
                                                             mask: useMask ? ms.baseAddress! + o : nil, gamma: nil)
                        #expect(want.dy.bitPattern == got[k].dy.bitPattern && want.dyXhat.bitPattern == got[k].dyXhat.bitPattern,
                                "n \(n) run \(k) mask \(useMask): \(got[k]) vs \(want)")
                    }
                } } }
            }
        }
    }

    static let shapes: [TensorShape] = [
        TensorShape(n: 64, c: 48, h: 7, w: 7, layout: .nchw),     // channel blocks of 48/(4·threads)
        TensorShape(n: 9, c: 37, h: 13, w: 11, layout: .nchw),    // odd sizes, run tails
    ]

    @Test("short-run backward is bitwise identical for 1, 2, 3, 5, 8 threads", arguments: shapes)
    func determinism(shape: TensorShape) throws {
        let x = streams.uniforms(shape.count, seed: 1, -3...5), dy = streams.uniforms(shape.count, seed: 2)
        let gamma = streams.uniforms(shape.c, seed: 3, 0.5...1.5), beta = streams.uniforms(shape.c, seed: 4)
        for relu in [false, true] {
            let forward = try BatchNormalization(shape: shape, fusedReLU: relu, threading: .serial)
            let (y, saved) = try forward.forwardTraining(x, scale: gamma, bias: beta)
            try expectGradientsDeterministic("BN short runs \(shape) relu \(relu)") { threading in
                let bn = try BatchNormalization(shape: shape, fusedReLU: relu, threading: threading)
                let g = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma, output: y)
                return [g.input, g.scale, g.bias]
            }
        }
    }
}
