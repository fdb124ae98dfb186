// Residual LayerNorm/RMSNorm and RMSNorm × gate against PyTorch autograd of the
// unfused sequences (Fixtures/fused_rows.json, tools/make_fixtures.py): outputs,
// s, and every gradient, normwise within 1e-4 (`matchTorch`).
import Testing
@testable import NormKernels

extension FusedRowTests {
    @Test("fused rows match PyTorch autograd of the unfused sequences")
    func torchFixtures() throws {
        var checked = ComparisonCounts()
        for f in try Fixture.cases("fused_rows", atLeast: 18) {
            let name = f.name
            let rows = try #require(f.int("rows")), features = try #require(f.int("features"))
            let eps = Float(try #require(f.double("eps")))
            let x = try #require(f.floats("input")), dy = try #require(f.floats("dy"))
            let weight = f.floats("weight")
            switch try #require(f.string("kind")) {
            case "gate":
                let gate = try #require(f.floats("gate"))
                let rms = try RMSNormalization(rows: rows, features: features, epsilon: eps)
                let (y, saved) = try rms.forward(x, gate: gate, scale: weight)
                checked.add("y", matchTorch(y, f.doubles("output"), "\(name) y"))
                let g = try rms.backward(x, gate: gate, gradOutput: dy, saved: saved, scale: weight)
                checked.add("dx", matchTorch(g.input, f.doubles("dx"), "\(name) dx"))
                checked.add("d gate", matchTorch(g.gate, f.doubles("dgate"), "\(name) d gate"))
                checked.add("dγ", matchTorch(g.scale, f.doubles("dweight"), "\(name) dγ"))
            case let kind:
                let residual = try #require(f.floats("residual"))
                let inputBias = f.floats("input_bias"), beta = f.floats("bias"), ds = f.floats("ds")
                let forward: (output: [Float], sum: [Float], saved: SavedStatistics)
                let grads: ResidualGradients
                if kind == "layer" {
                    let ln = try LayerNormalization(rows: rows, features: features, epsilon: eps)
                    forward = try ln.forward(x, residual: residual, scale: weight, bias: beta, inputBias: inputBias)
                    grads = try ln.backward(sum: forward.sum, gradOutput: dy, gradSum: ds, saved: forward.saved,
                                            scale: weight)
                } else {
                    let rms = try RMSNormalization(rows: rows, features: features, epsilon: eps)
                    forward = try rms.forward(x, residual: residual, scale: weight, inputBias: inputBias)
                    grads = try rms.backward(sum: forward.sum, gradOutput: dy, gradSum: ds, saved: forward.saved,
                                             scale: weight)
                }
                checked.add("y", matchTorch(forward.output, f.doubles("output"), "\(name) y"))
                checked.add("s", matchTorch(forward.sum, f.doubles("sum"), "\(name) s"))
                checked.add("dx", matchTorch(grads.input, f.doubles("dx"), "\(name) dx"))
                checked.add("dx", matchTorch(grads.input, f.doubles("dresidual"), "\(name) d residual"))
                checked.add("dγ", matchTorch(grads.scale, f.doubles("dweight"), "\(name) dγ"))
                checked.add("dβ", matchTorch(grads.bias, f.doubles("dbias"), "\(name) dβ"))
                if inputBias != nil {
                    checked.add("d bias", matchTorch(grads.inputBias, f.doubles("dinput_bias"), "\(name) d bias"))
                }
            }
        }
        checked.expect(["y": 18, "s": 12, "dx": 30, "d gate": 6, "dγ": 15, "dβ": 6, "d bias": 6], "fused_rows")
    }
}
