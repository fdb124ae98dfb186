// Backward against PyTorch autograd (Tests/NormKernelsTests/Fixtures/*.json, written
// by tools/make_fixtures.py): dx, dγ, dβ, dcontent, dstyle, dv, dg matched to 1e-4
// relative (normwise: max|ours − torch| ≤ 1e-4 · max|torch|). Saved statistics come
// from our own forward on the fixture's input, as in real use.
import Foundation
import Testing
@testable import NormKernels

@Suite("Conformance: backward against PyTorch autograd")
struct BackwardConformanceTests {
    @Test("BatchNorm training backward (incl. NHWC, [N, D], fused ReLU) matches PyTorch autograd")
    func batchNorm() throws {
        var checked = ComparisonCounts()
        for f in try Fixture.cases("batchnorm", atLeast: 11) {
            let name = f.name
            let shape = try f.shape()
            let eps = Float(f.double("eps") ?? 1e-5)
            let relu = f.bool("relu")
            let x = try #require(f.steps.last?.floats("input"))
            let dy = try #require(f.floats("dy"))
            let gamma = f.floats("gamma"), beta = f.floats("beta")
            let bn = try BatchNormalization(shape: shape, epsilon: eps, fusedReLU: relu)
            let (y, saved) = try bn.forwardTraining(x, scale: gamma, bias: beta)
            let grads = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma, output: y)
            checked.add("dx", matchTorch(grads.input, f.doubles("dx"), "\(name) dx"))
            checked.add("dγ", matchTorch(grads.scale, f.doubles("dgamma"), "\(name) dγ"))
            checked.add("dβ", matchTorch(grads.bias, f.doubles("dbeta"), "\(name) dβ"))
        }
        checked.expect(["dx": 11, "dγ": 7, "dβ": 7], "batchnorm")
    }

    @Test("InstanceNorm backward matches PyTorch autograd")
    func instanceNorm() throws {
        var checked = ComparisonCounts()
        for f in try Fixture.cases("instancenorm", atLeast: 9) {
            let name = f.name
            let shape = try f.shape()
            let eps = Float(f.double("eps") ?? 1e-5)
            let x = try #require(f.steps.last?.floats("input"))
            let dy = try #require(f.floats("dy"))
            let gamma = f.floats("gamma"), beta = f.floats("beta")
            let norm = try InstanceNormalization(shape: shape, epsilon: eps)
            let (_, saved) = try norm.forwardTraining(x, scale: gamma, bias: beta)
            let grads = try norm.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma)
            checked.add("dx", matchTorch(grads.input, f.doubles("dx"), "\(name) dx"))
            checked.add("dγ", matchTorch(grads.scale, f.doubles("dgamma"), "\(name) dγ"))
            checked.add("dβ", matchTorch(grads.bias, f.doubles("dbeta"), "\(name) dβ"))
        }
        checked.expect(["dx": 9, "dγ": 5, "dβ": 5], "instancenorm")
    }

    @Test("GroupNorm backward (NCHW and NHWC) matches PyTorch autograd")
    func groupNorm() throws {
        var checked = ComparisonCounts()
        for f in try Fixture.cases("groupnorm", atLeast: 16) {
            let name = f.name
            let shape = try f.shape()
            let groups = try #require(f.int("groups"))
            let eps = Float(f.double("eps") ?? 1e-5)
            let x = try #require(f.floats("input")), dy = try #require(f.floats("dy"))
            let gamma = f.floats("gamma"), beta = f.floats("beta")
            let norm = try GroupNormalization(shape: shape, groups: groups, epsilon: eps)
            let (_, saved) = try norm.forward(x, scale: gamma, bias: beta)
            let grads = try norm.backward(x, gradOutput: dy, saved: saved, scale: gamma)
            checked.add("dx", matchTorch(grads.input, f.doubles("dx"), "\(name) dx"))
            checked.add("dγ", matchTorch(grads.scale, f.doubles("dgamma"), "\(name) dγ"))
            checked.add("dβ", matchTorch(grads.bias, f.doubles("dbeta"), "\(name) dβ"))
        }
        checked.expect(["dx": 16, "dγ": 8, "dβ": 8], "groupnorm")
    }

    @Test("LayerNorm backward matches PyTorch autograd")
    func layerNorm() throws {
        var checked = ComparisonCounts()
        for f in try Fixture.cases("layernorm", atLeast: 9) {
            let name = f.name
            let rows = try #require(f.int("rows")), features = try #require(f.int("features"))
            let eps = Float(f.double("eps") ?? 1e-5)
            let x = try #require(f.floats("input")), dy = try #require(f.floats("dy"))
            let gamma = f.floats("gamma"), beta = f.floats("beta")
            let norm = try LayerNormalization(rows: rows, features: features, epsilon: eps)
            let (_, saved) = try norm.forward(x, scale: gamma, bias: beta)
            let grads = try norm.backward(x, gradOutput: dy, saved: saved, scale: gamma)
            checked.add("dx", matchTorch(grads.input, f.doubles("dx"), "\(name) dx"))
            checked.add("dγ", matchTorch(grads.scale, f.doubles("dgamma"), "\(name) dγ"))
            checked.add("dβ", matchTorch(grads.bias, f.doubles("dbeta"), "\(name) dβ"))
        }
        checked.expect(["dx": 9, "dγ": 5, "dβ": 5], "layernorm")
    }

    @Test("RMSNorm backward matches PyTorch autograd")
    func rmsNorm() throws {
        var checked = ComparisonCounts()
        for f in try Fixture.cases("rmsnorm", atLeast: 12) {
            let name = f.name
            let rows = try #require(f.int("rows")), features = try #require(f.int("features"))
            let eps = Float(try #require(f.double("eps")))
            let x = try #require(f.floats("input")), dy = try #require(f.floats("dy"))
            let weight = f.floats("weight")
            let norm = try RMSNormalization(rows: rows, features: features, epsilon: eps)
            let (_, saved) = try norm.forward(x, scale: weight)
            let grads = try norm.backward(x, gradOutput: dy, saved: saved, scale: weight)
            checked.add("dx", matchTorch(grads.input, f.doubles("dx"), "\(name) dx"))
            checked.add("dγ", matchTorch(grads.scale, f.doubles("dweight"), "\(name) dγ"))
        }
        checked.expect(["dx": 12, "dγ": 6], "rmsnorm")
    }

    @Test("AdaIN backward (content and style) matches PyTorch autograd")
    func adain() throws {
        var checked = ComparisonCounts()
        for f in try Fixture.cases("adain", atLeast: 4) {
            let name = f.name
            let content = try f.shape("content_shape")
            let style = try f.shape("style_shape")
            let eps = Float(f.double("eps") ?? 1e-5)
            let x = try #require(f.floats("content")), s = try #require(f.floats("style"))
            let dy = try #require(f.floats("dy"))
            let ada = try AdaptiveInstanceNormalization(content: content, style: style, epsilon: eps)
            let (_, saved) = try ada.forward(content: x, style: s)
            let grads = try ada.backward(content: x, style: s, gradOutput: dy, saved: saved)
            checked.add("dcontent", matchTorch(grads.content, f.doubles("dcontent"), "\(name) dcontent"))
            checked.add("dstyle", matchTorch(grads.style, f.doubles("dstyle"), "\(name) dstyle"))
        }
        checked.expect(["dcontent": 4, "dstyle": 4], "adain")
    }

    @Test("WeightNorm backward matches PyTorch autograd")
    func weightNorm() throws {
        var checked = ComparisonCounts()
        for f in try Fixture.cases("weightnorm", atLeast: 6) {
            let name = f.name
            let shape = try #require(f.ints("shape"))
            let dim = f.int("dim")
            let v = try #require(f.floats("v")), g = try #require(f.floats("g"))
            let dw = try #require(f.floats("dw"))
            let wn = try WeightNormalization(shape: shape, dim: dim)
            let (_, norms) = try wn.forward(v: v, g: g)
            let grads = try wn.backward(v: v, g: g, gradWeight: dw, norms: norms)
            checked.add("dv", matchTorch(grads.v, f.doubles("dv"), "\(name) dv"))
            checked.add("dg", matchTorch(grads.g, f.doubles("dg"), "\(name) dg"))
        }
        checked.expect(["dv": 6, "dg": 6], "weightnorm")
    }
}
