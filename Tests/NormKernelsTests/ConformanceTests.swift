import Foundation
import Testing
import NormKernels

// PyTorch conformance: fixtures written by tools/make_fixtures.py (torch, float32,
// one thread) and committed under Fixtures/, so the tests never need torch.
// Tensors are flattened in their layout's memory order; shapes are logical [N, C, H, W].

struct Fixture {
    let fields: [String: Any]

    /// The cases of `op`.json; at least `atLeast` of them (the count committed
    /// today), so a truncated or renamed fixture cannot pass by checking nothing.
    static func cases(_ op: String, atLeast minimum: Int) throws -> [Fixture] {
        let url = try #require(Bundle.module.url(forResource: op, withExtension: "json", subdirectory: "Fixtures"),
                               "fixture \(op).json missing")
        let root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let cases = try #require(root["cases"] as? [[String: Any]])
        try #require(cases.count >= minimum, "fixture \(op).json has \(cases.count) cases, expected at least \(minimum)")
        return cases.map(Fixture.init)
    }

    var name: String { fields["name"] as? String ?? "?" }
    func floats(_ key: String) -> [Float]? { (fields[key] as? [NSNumber])?.map { $0.floatValue } }
    func ints(_ key: String) -> [Int]? { (fields[key] as? [NSNumber])?.map { $0.intValue } }
    func double(_ key: String) -> Double? { (fields[key] as? NSNumber)?.doubleValue }
    func int(_ key: String) -> Int? { (fields[key] as? NSNumber)?.intValue }
    func bool(_ key: String) -> Bool { (fields[key] as? Bool) ?? false }
    func string(_ key: String) -> String? { fields[key] as? String }
    var steps: [Fixture] { (fields["steps"] as? [[String: Any]] ?? []).map(Fixture.init) }

    func shape(_ key: String = "shape") -> TensorShape {
        let s = ints(key)!
        return TensorShape(n: s[0], c: s[1], h: s[2], w: s[3], layout: string("layout") == "nhwc" ? .nhwc : .nchw)
    }
}

/// |actual − expected| ≤ tolerance · max(1, |expected|) elementwise.
func expectClose<A: Collection, B: Collection>(
    _ actual: A, _ expected: B, tolerance: Double = 1e-5, _ label: String,
    sourceLocation: SourceLocation = #_sourceLocation
) where A.Element: BinaryFloatingPoint, B.Element: BinaryFloatingPoint {
    #expect(actual.count == expected.count, "\(label): \(actual.count) values, expected \(expected.count)",
            sourceLocation: sourceLocation)
    var worst = 0.0, at = -1
    for (i, (a, e)) in zip(actual, expected).enumerated() {
        let error = abs(Double(a) - Double(e)) / max(1, abs(Double(e)))
        if !(error <= worst) { worst = error; at = i }
    }
    #expect(worst <= tolerance, "\(label): worst relative error \(worst) at \(at)", sourceLocation: sourceLocation)
}

@Suite struct ConformanceTests {
    @Test func batchNorm() throws {
        var evaluated = 0
        for f in try Fixture.cases("batchnorm", atLeast: 11) {
            let shape = f.shape()
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
            let shape = f.shape()
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
            let op = try GroupNormalization(shape: f.shape(), groups: f.int("groups")!, epsilon: Float(f.double("eps")!))
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
                content: f.shape("content_shape"), style: f.shape("style_shape"), epsilon: Float(f.double("eps")!))
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
