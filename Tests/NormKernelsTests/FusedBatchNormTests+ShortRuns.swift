// BatchNorm + add + ReLU backward on NCHW short runs (H·W < 256), where d identity
// is stored by the sums loop itself: eight runs at a time for runs of at most
// `BlockGradients.runsAtATimeSpatial` values (`BlockGradients.runs(store:)`), run
// by run for longer ones, in the two memory-order passes. The relations of `backward(shape:training:relu:)`:
// d identity = masked dy and dx, dγ, dβ = the plain fused-ReLU backward's, bitwise.
import Testing
@testable import NormKernels

extension FusedBatchNormTests {
    static let shortRunShapes: [TensorShape] = [
        TensorShape(n: 16, c: 256, h: 7, w: 7, layout: .nchw),   // x, dy, y, d identity past L2
        TensorShape(n: 3, c: 19, h: 5, w: 3, layout: .nchw),     // 15-value runs (no 32-value step), 8 + 8 + 3 channels
        TensorShape(n: 2, c: 11, h: 9, w: 9, layout: .nchw),     // 81-value runs: run by run
    ]

    @Test("backward on NCHW short runs: d identity stored by the sums loop, dx/dγ/dβ bitwise BatchNorm's",
          arguments: shortRunShapes, [false, true])
    func backwardShortRuns(shape: TensorShape, training: Bool) throws {
        try backward(shape: shape, training: training, relu: true)
    }
}
