// 16-bit residual LayerNorm/RMSNorm and RMSNorm × gate against PyTorch autograd
// of the composed sequences on bf16/fp16 tensors (Fixtures/fused_rows_16bit.json,
// tools/make_fixtures.py): s bit for bit (both form the sum in Float32 and round
// once), y, dx = d residual, d gate and the Float32 parameter gradients within
// torch.testing's default tolerance for the dtype, of each row's largest value.

import Testing
@testable import NormKernels

extension FusedRowHalfTests {
    @Test("16-bit fused rows match PyTorch autograd of the composed bf16/fp16 sequences")
    func torchFixtures() throws {
        var checked = 0
        for fixture in try Fixture.cases("fused_rows_16bit", atLeast: 16) {
            switch fixture.string("dtype") {
            case "bf16": try checkFixture(BFloat16.self, fixture)
            case "f16":
                #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
                try checkFixture(Float16.self, fixture)
                #endif
            default: Issue.record("\(fixture.name): unknown dtype")
            }
            checked += 1
        }
        #expect(checked >= 16)
    }

    private func checkFixture<E: SixteenBitElement>(_: E.Type, _ f: Fixture) throws {
        let name = f.name
        let rows = try #require(f.int("rows")), features = try #require(f.int("features"))
        // eps: the descriptors' defaults (1e-5; Float.ulpOfOne for RMSNorm), as the fixture's.
        let eps = try #require(f.double("eps"))
        #expect(eps == 1e-5 || eps == Double(Float.ulpOfOne), "\(name): eps \(eps)")
        let rtol = try #require(HalfPrecisionTests.torchTolerance[f.string("dtype") ?? ""])
        func tensor(_ key: String) throws -> [E] {
            let bits = try #require(f.ints(key), "\(name): no \(key)")
            try #require(bits.count == rows * features, "\(name): \(key) has \(bits.count) values")
            return bits.map { E(bits: UInt16($0)) }
        }
        /// Within rtol of each `width` values' largest |expected| (plus 1e-5).
        func near(_ got: [Double]?, _ expected: [Double]?, width: Int, _ what: String) {
            guard let got, let expected else { Issue.record("\(name): \(what) missing"); return }
            for start in stride(from: 0, to: expected.count, by: width) {
                let part = start..<min(expected.count, start + width)
                let scale = expected[part].reduce(0) { max($0, abs($1)) }
                for i in part {
                    #expect(abs(got[i] - expected[i]) <= 1e-5 + rtol * scale,
                            "\(name): \(what)[\(i)] = \(got[i]), PyTorch \(expected[i])")
                }
            }
        }
        let wide = { (a: [E]) in a.map { Double(E.widen($0)) } }
        let x = try tensor("input"), dy = try tensor("dy"), weight = f.floats("weight")
        switch f.string("kind") {
        case "gate":
            let gate = try tensor("gate")
            let forward = try halfGateForward(rows: rows, features: features, x: x, gate: gate, gamma: weight)
            near(wide(forward.output), wide(try tensor("output")), width: features, "y")
            let g = weight ?? [Float](repeating: 1, count: features)
            let back = try halfGateBackward(rows: rows, features: features, x: x, gate: gate, dy: dy,
                                            saved: forward.saved, gamma: g)
            near(wide(back.dx), wide(try tensor("dx")), width: features, "dx")
            near(wide(back.dgate), wide(try tensor("dgate")), width: features, "d gate")
            if let dweight = f.doubles("dweight") { near(back.dgamma.map(Double.init), dweight, width: features, "dγ") }
        case let kind?:
            let k: FusedRowKind = kind == "layer" ? .layer : .rms
            let r = try tensor("residual"), inputBias = f.floats("input_bias"), beta = f.floats("bias")
            let ds = f.ints("ds").map { $0.map { E(bits: UInt16($0)) } }
            let gamma = try #require(weight)
            let forward = try halfResidualForward(k, rows: rows, features: features, x: x, r: r, gamma: gamma,
                                                  beta: beta, inputBias: inputBias)
            expectSameElements(forward.sum, try tensor("sum"), "\(name) s")
            near(wide(forward.output), wide(try tensor("output")), width: features, "y")
            let back = try halfResidualBackward(k, rows: rows, features: features, s: forward.sum, dy: dy, ds: ds,
                                                saved: forward.saved, gamma: gamma)
            near(wide(back.dx), wide(try tensor("dx")), width: features, "dx")
            near(wide(back.dx), wide(try tensor("dresidual")), width: features, "d residual")
            near(back.dgamma.map(Double.init), f.doubles("dweight"), width: features, "dγ")
            if k == .layer { near(back.dbeta.map(Double.init), f.doubles("dbias"), width: features, "dβ") }
            if inputBias != nil {
                near(back.dbias.map(Double.init), f.doubles("dinput_bias"), width: features, "d bias")
            }
        case nil:
            Issue.record("\(name): no kind")
        }
    }
}
