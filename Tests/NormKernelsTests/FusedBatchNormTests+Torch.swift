// BatchNorm + add + ReLU against PyTorch: Fixtures/batchnorm_add_relu.json holds
// the composed sequence relu(F.batch_norm(x, …) + identity) (and without the
// ReLU), one training step with autograd dx, d identity, dγ, dβ and the running
// statistics after it, then eval with those statistics (tools/make_fixtures.py).
import Testing
@testable import NormKernels

extension FusedBatchNormTests {
    @Test("training, inference and backward match PyTorch autograd of the composed sequence")
    func torchFixtures() throws {
        var checked = ComparisonCounts()
        for f in try Fixture.cases("batchnorm_add_relu", atLeast: 8) {
            let shape = try f.shape(), relu = f.bool("relu")
            let x = try #require(f.floats("input")), identity = try #require(f.floats("identity"))
            let dy = try #require(f.floats("dy"))
            let gamma = f.floats("gamma"), beta = f.floats("beta")
            let bn = try BatchNormalization(shape: shape, epsilon: Float(f.double("eps") ?? 1e-5), fusedReLU: relu)
            let running = try RunningStatistics(channels: shape.c, update: .exponential(momentum: f.double("momentum") ?? 0.1))
            let (y, saved) = try bn.forwardTraining(x, identity: identity, scale: gamma, bias: beta, running: running)
            checked.add("y", matchTorch(y, f.doubles("output"), "\(f.name) y"))
            checked.add("running", matchTorch(running.mean + running.variance,
                                              (f.doubles("running_mean") ?? []) + (f.doubles("running_var") ?? []),
                                              "\(f.name) running statistics"))
            let g = try fusedBackward(bn, x: x, dy: dy, y: y, saved: saved, running: nil, scale: gamma)
            checked.add("dx", matchTorch(g.input, f.doubles("dx"), "\(f.name) dx"))
            checked.add("d identity", matchTorch(g.identity, f.doubles("didentity"), "\(f.name) d identity"))
            checked.add("dγ", matchTorch(gamma == nil ? nil : g.scale, f.doubles("dgamma"), "\(f.name) dγ"))
            checked.add("dβ", matchTorch(beta == nil ? nil : g.bias, f.doubles("dbeta"), "\(f.name) dβ"))
            let xe = try #require(f.floats("eval_input")), ie = try #require(f.floats("eval_identity"))
            let ye = try bn.forwardInference(xe, identity: ie, scale: gamma, bias: beta, running: running)
            checked.add("eval y", matchTorch(ye, f.doubles("eval_output"), "\(f.name) eval y"))
        }
        checked.expect(["y": 8, "running": 8, "dx": 8, "d identity": 8, "dγ": 4, "dβ": 4, "eval y": 8],
                       "batchnorm_add_relu")
    }
}
