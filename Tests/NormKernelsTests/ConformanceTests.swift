import Foundation
import Testing
import NormKernels

// PyTorch conformance, forward: outputs, saved statistics, running statistics
// and folded weights against the fixtures (TestSupport+Fixtures.swift), within
// 1e-5 · max(1, |torch|) elementwise.

@Suite struct ConformanceTests {
    @Test func batchNorm() throws {
        var evaluated = 0
        for f in try Fixture.cases("batchnorm", atLeast: 11) {
            let shape = try f.shape()
            let momentum = f.double("momentum")
            let running = try RunningStatistics(
                channels: shape.c, update: momentum.map { .exponential(momentum: $0) } ?? .cumulativeAverage)
            let bn = try BatchNormalization(shape: shape, epsilon: Float(f.double("eps")!), fusedReLU: f.bool("relu"))
            let gamma = f.floats("gamma"), beta = f.floats("beta")
            try #require(!f.steps.isEmpty, "\(f.name): no training steps")
            for (k, step) in f.steps.enumerated() {
                let (y, saved) = try bn.forwardTraining(step.floats("input")!, scale: gamma, bias: beta, running: running)
                expectClose(y, step.floats("output")!, "\(f.name) step \(k) output")
                expectClose(saved.mean, step.floats("save_mean")!, "\(f.name) step \(k) mean")
                expectClose(saved.invStd, step.floats("save_invstd")!, "\(f.name) step \(k) invstd")
            }
            expectClose(running.mean, f.floats("running_mean")!, "\(f.name) running mean")
            expectClose(running.variance, f.floats("running_var")!, "\(f.name) running var")
            if let x = f.floats("eval_input") {
                let y = try bn.forwardInference(x, scale: gamma, bias: beta, running: running)
                expectClose(y, f.floats("eval_output")!, "\(f.name) eval output")
                evaluated += 1
            }
        }
        #expect(evaluated >= 1, "batchnorm.json: \(evaluated) inference cases checked, expected at least 1")
    }

    @Test func instanceNorm() throws {
        var tracked = 0, evaluated = 0
        for f in try Fixture.cases("instancenorm", atLeast: 9) {
            let shape = try f.shape()
            let tracking = f.bool("track_running_stats")
            let running = tracking ? try RunningStatistics(
                channels: shape.c, update: .exponential(momentum: f.double("momentum") ?? 0.1)) : nil
            let op = try InstanceNormalization(shape: shape, epsilon: Float(f.double("eps")!))
            let gamma = f.floats("gamma"), beta = f.floats("beta")
            try #require(!f.steps.isEmpty, "\(f.name): no training steps")
            for (k, step) in f.steps.enumerated() {
                let (y, saved) = try op.forwardTraining(step.floats("input")!, scale: gamma, bias: beta, running: running)
                expectClose(y, step.floats("output")!, "\(f.name) step \(k) output")
                expectClose(saved.mean, step.floats("save_mean")!, "\(f.name) step \(k) mean")
                expectClose(saved.invStd, step.floats("save_invstd")!, "\(f.name) step \(k) invstd")
            }
            if let running {
                expectClose(running.mean, f.floats("running_mean")!, "\(f.name) running mean")
                expectClose(running.variance, f.floats("running_var")!, "\(f.name) running var")
                tracked += 1
                if let x = f.floats("eval_input") {
                    let y = try op.forwardInference(x, scale: gamma, bias: beta, running: running)
                    expectClose(y, f.floats("eval_output")!, "\(f.name) eval output")
                    evaluated += 1
                }
            }
        }
        #expect(tracked >= 1 && evaluated >= 1,
                "instancenorm.json: \(tracked) running-statistics cases and \(evaluated) inference cases checked, expected at least 1 each")
    }

    @Test func groupNorm() throws {
        for f in try Fixture.cases("groupnorm", atLeast: 16) {
            let op = try GroupNormalization(shape: try f.shape(), groups: f.int("groups")!, epsilon: Float(f.double("eps")!))
            let (y, saved) = try op.forward(f.floats("input")!, scale: f.floats("gamma"), bias: f.floats("beta"))
            expectClose(y, f.floats("output")!, "\(f.name) output")
            expectClose(saved.mean, f.floats("mean")!, "\(f.name) mean")
            expectClose(saved.invStd, f.floats("rstd")!, "\(f.name) rstd")
        }
    }

    @Test func layerNorm() throws {
        for f in try Fixture.cases("layernorm", atLeast: 9) {
            let op = try LayerNormalization(rows: f.int("rows")!, features: f.int("features")!, epsilon: Float(f.double("eps")!))
            let (y, saved) = try op.forward(f.floats("input")!, scale: f.floats("gamma"), bias: f.floats("beta"))
            expectClose(y, f.floats("output")!, "\(f.name) output")
            expectClose(saved.mean, f.floats("mean")!, "\(f.name) mean")
            expectClose(saved.invStd, f.floats("rstd")!, "\(f.name) rstd")
        }
    }

    @Test func rmsNorm() throws {
        for f in try Fixture.cases("rmsnorm", atLeast: 12) {
            let op = try RMSNormalization(rows: f.int("rows")!, features: f.int("features")!, epsilon: Float(f.double("eps")!))
            let (y, _) = try op.forward(f.floats("input")!, scale: f.floats("weight"))
            expectClose(y, f.floats("output")!, "\(f.name) output")
        }
    }

    @Test func adaIN() throws {
        for f in try Fixture.cases("adain", atLeast: 4) {
            let op = try AdaptiveInstanceNormalization(
                content: try f.shape("content_shape"), style: try f.shape("style_shape"), epsilon: Float(f.double("eps")!))
            let (y, _) = try op.forward(content: f.floats("content")!, style: f.floats("style")!)
            expectClose(y, f.floats("output")!, "\(f.name) output")
        }
    }

    @Test func weightNorm() throws {
        for f in try Fixture.cases("weightnorm", atLeast: 6) {
            let op = try WeightNormalization(shape: f.ints("shape")!, dim: f.int("dim"))
            let (w, _) = try op.forward(v: f.floats("v")!, g: f.floats("g")!)
            expectClose(w, f.floats("w")!, "\(f.name) w")
        }
    }

    @Test func batchNormFolding() throws {
        for f in try Fixture.cases("batchnorm_fold", atLeast: 5) {
            let shape = f.ints("weight_shape")!
            let running = try RunningStatistics(channels: shape[0], mean: f.floats("running_mean"), variance: f.floats("running_var"))
            let (w, b) = try BatchNormFolding.fold(
                weight: f.floats("weight")!, bias: f.floats("bias"), outChannels: shape[0], running: running,
                scale: f.floats("gamma"), shift: f.floats("beta"), epsilon: Float(f.double("eps")!))
            expectClose(w, f.floats("fused_weight")!, "\(f.name) weight")
            expectClose(b, f.floats("fused_bias")!, "\(f.name) bias")
        }
    }
}
