// PyTorch fixtures of 16-bit LayerNorm and RMSNorm (tools/make_fixtures.py:
// layernorm_16bit.json, rmsnorm_16bit.json; bf16 and fp16 x and dy, Float32 γ
// and β, as PyTorch's mixed-dtype path takes them). Each case is checked twice
// against the Float64 reference of its stored 16-bit inputs:
// - the library: forward within 1 ulp of the correctly rounded result
//   (`expectNearReference`), dx within 2 ulps (or the Float32 arithmetic's error
//   where the 16-bit grid is finer, as `backwardExact`);
// - PyTorch: within torch.testing's default tolerance for the dtype (bf16 rtol
//   1.6e-2, fp16 rtol 1e-3, atol 1e-5, of the row's largest value). PyTorch's
//   own 16-bit results are not always the nearest value (its composite bf16
//   rms_norm rounds intermediates), so they are a witness, not the target.
// dγ and dβ (Float32 in both) must agree with PyTorch's to the same tolerance.

import Testing
@testable import NormKernels

extension HalfPrecisionTests {
    /// torch.testing's default relative tolerance per fixture dtype.
    static let torchTolerance: [String: Double] = ["bf16": 1.6e-2, "f16": 1e-3]

    @Test("PyTorch fixtures (bf16, fp16): LayerNorm and RMSNorm forward and backward")
    func pytorchFixtures() throws {
        var checked = 0
        for (file, op, minimum) in [("layernorm_16bit", RowOp.layerNorm, 8), ("rmsnorm_16bit", RowOp.rmsNorm, 6)] {
            for fixture in try Fixture.cases(file, atLeast: minimum) {
                switch fixture.string("dtype") {
                case "bf16": try checkFixture(BFloat16.self, op, fixture)
                case "f16":
                    #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
                    try checkFixture(Float16.self, op, fixture)
                    #endif
                default: Issue.record("\(fixture.name): unknown dtype \(fixture.string("dtype") ?? "nil")")
                }
                checked += 1
            }
        }
        #expect(checked >= 14)
    }

    private func checkFixture<E: SixteenBitElement>(_: E.Type, _ op: RowOp, _ f: Fixture) throws {
        let name = f.name, dtype = f.string("dtype") ?? "?"
        let rows = try #require(f.int("rows")), features = try #require(f.int("features"))
        let eps = try #require(f.double("eps"))
        func tensor(_ key: String) throws -> [E] {
            let bits = try #require(f.ints(key), "\(name): no \(key)")
            try #require(bits.count == rows * features, "\(name): \(key) has \(bits.count) values")
            return bits.map { E(bits: UInt16($0)) }
        }
        let x = try tensor("input"), dy = try tensor("dy")
        let torchY = try tensor("output"), torchDx = try tensor("dx")
        let gamma = f.floats(op == .layerNorm ? "gamma" : "weight")
        let beta = op == .layerNorm ? f.floats("beta") : nil
        let (x64, dy64) = (x.map { Double(E.widen($0)) }, dy.map { Double(E.widen($0)) })
        let g64 = (0..<features).map { Double(gamma?[$0] ?? 1) }

        // Float64 reference from the stored inputs.
        var reference = [Double](), referenceDx = [Double]()
        var referenceDgamma = [Double](repeating: 0, count: features), referenceDbeta = referenceDgamma
        for r in 0..<rows {
            let row = Array(x64[(r * features)..<((r + 1) * features)])
            let d = Array(dy64[(r * features)..<((r + 1) * features)])
            let mean = op == .layerNorm ? row.reduce(0, +) / Double(features) : 0
            let second = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(features)
            let inv = 1 / (second + eps).squareRoot()
            let xhat = row.map { ($0 - mean) * inv }
            let g = (0..<features).map { d[$0] * g64[$0] }
            let meanG = op == .layerNorm ? g.reduce(0, +) / Double(features) : 0
            let meanGX = (0..<features).reduce(0) { $0 + g[$1] * xhat[$1] } / Double(features)
            for i in 0..<features {
                reference.append(xhat[i] * g64[i] + Double(beta?[i] ?? 0))
                referenceDx.append(inv * (g[i] - meanG - xhat[i] * meanGX))
                referenceDgamma[i] += d[i] * xhat[i]
                referenceDbeta[i] += d[i]
            }
        }

        // The library.
        let forward = try runRows(op, rows: rows, features: features, x, gamma: gamma, beta: beta,
                                  epsilon: Float(eps))
        expectNearReference(forward.output, reference, beta: beta, features: features, "\(name) y")
        let grads = try backwardRows(op, rows: rows, features: features, x: x, dy: dy, saved: forward.saved,
                                     gamma: gamma ?? [Float](repeating: 1, count: features))
        let dx = try #require(grads.input)
        let floor = 0x1p-18 * referenceDx.reduce(0) { max($0, abs($1)) }
        for i in dx.indices {
            let target = E.narrow(Float(E.format.rounded(referenceDx[i]))).bits
            let steps = abs(ulpPosition(dx[i].bits) - ulpPosition(target))
            #expect(steps <= 2 || abs(Double(E.widen(dx[i])) - referenceDx[i]) <= floor,
                    "\(name): dx[\(i)] = \(E.widen(dx[i])) is \(steps) ulps from \(referenceDx[i])")
        }

        // PyTorch against the same reference, and the parameter gradients against PyTorch's.
        let rtol = try #require(Self.torchTolerance[dtype])
        func expectWithinTorchTolerance(_ got: [Double], _ expected: [Double], width: Int, _ what: String) {
            for start in stride(from: 0, to: expected.count, by: width) {
                let part = start..<min(expected.count, start + width)
                let scale = expected[part].reduce(0) { max($0, abs($1)) }
                for i in part {
                    #expect(abs(got[i] - expected[i]) <= 1e-5 + rtol * scale,
                            "\(name): \(what)[\(i)] = \(got[i]), reference \(expected[i])")
                }
            }
        }
        expectWithinTorchTolerance(torchY.map { Double(E.widen($0)) }, reference, width: features, "PyTorch y")
        expectWithinTorchTolerance(torchDx.map { Double(E.widen($0)) }, referenceDx, width: features, "PyTorch dx")
        if let torchDgamma = f.doubles(op == .layerNorm ? "dgamma" : "dweight"), gamma != nil {
            expectWithinTorchTolerance(grads.scale!.map(Double.init), torchDgamma, width: features, "dγ vs PyTorch")
            expectWithinTorchTolerance(referenceDgamma, torchDgamma, width: features, "reference dγ vs PyTorch")
        }
        if let torchDbeta = f.doubles("dbeta"), beta != nil {
            expectWithinTorchTolerance(grads.bias!.map(Double.init), torchDbeta, width: features, "dβ vs PyTorch")
        }
    }
}
