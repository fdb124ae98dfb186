// GroupNorm + SiLU against PyTorch: Fixtures/groupnorm_silu.json holds the
// composed sequence F.silu(F.group_norm(x, G, γ, β)·(1 + scale) + shift) and its
// autograd gradients (tools/make_fixtures.py), on every `GroupNormPlan` path
// and one case with γ ≈ 30 (|z| in the tens).
import Testing
@testable import NormKernels

extension FusedGroupNormTests {
    @Test("forward and backward match PyTorch autograd of the composed sequence")
    func torchFixtures() throws {
        var checked = ComparisonCounts()
        var paths = Set<String>()
        for f in try Fixture.cases("groupnorm_silu", atLeast: 13) {
            let shape = try f.shape(), groups = try #require(f.int("groups"))
            let x = try #require(f.floats("input")), dy = try #require(f.floats("dy"))
            let i = (gamma: f.floats("gamma"), beta: f.floats("beta"), scale: f.floats("scale"), shift: f.floats("shift"))
            let gn = try GroupNormalization(shape: shape, groups: groups, epsilon: Float(f.double("eps") ?? 1e-5))
            paths.insert(pathName(gn))
            let (y, saved) = try gn.forwardSiLU(x, scale: i.gamma, bias: i.beta, modulationScale: i.scale,
                                                modulationShift: i.shift)
            checked.add("y", matchTorch(y, f.doubles("output"), "\(f.name) y"))
            let grads = try gn.backwardSiLU(x, gradOutput: dy, saved: saved, scale: i.gamma, bias: i.beta,
                                            modulationScale: i.scale, modulationShift: i.shift)
            checked.add("dx", matchTorch(grads.norm.input, f.doubles("dx"), "\(f.name) dx"))
            checked.add("dγ", matchTorch(grads.norm.scale, f.doubles("dgamma"), "\(f.name) dγ"))
            checked.add("dβ", matchTorch(grads.norm.bias, f.doubles("dbeta"), "\(f.name) dβ"))
            checked.add("d scale", matchTorch(grads.modulationScale, f.doubles("dscale"), "\(f.name) d scale"))
            checked.add("d shift", matchTorch(grads.modulationShift, f.doubles("dshift"), "\(f.name) d shift"))
        }
        checked.expect(["y": 13, "dx": 13, "dγ": 7, "dβ": 7, "d scale": 7, "d shift": 7], "groupnorm_silu")
        #expect(paths == ["channelGroups", "expandedAffine", "groupSegments", "featureVectors"], "paths: \(paths)")
    }
}
