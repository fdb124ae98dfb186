// BatchNorm NCHW backward with short runs (H·W < `BatchNormalization.shortRunSpatial`):
// the same bits for any thread count.
import Testing
@testable import NormKernels

private let streams = SeededStreams(salt: 0x5A0B_7C11)

@Suite("BatchNorm short-run backward")
struct ShortRunBackwardTests {
    static let shapes: [TensorShape] = [
        TensorShape(n: 64, c: 192, h: 7, w: 7, layout: .nchw),    // 4.8 MB of x and dy: past the L2
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
