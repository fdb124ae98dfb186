// PyTorch fixtures of the fused channel kernels on 16-bit tensors
// (tools/make_fixtures.py: groupnorm_silu_16bit.json, batchnorm_add_relu_16bit.json;
// bf16 and fp16 x, dy, identity; Float32 γ, β, running statistics and modulation).
// PyTorch runs the composed sequence in the 16-bit type (rounding after each
// op), so it is a witness, not the target:
// - the library's y is within 1 ulp of the Float64 composed op of the stored
//   inputs (GroupNorm + SiLU; `expectNearReference`);
// - y, dx, d identity, the running statistics and the Float32 gradients agree
//   with PyTorch's within four times torch.testing's tolerance for the dtype
//   (bf16 rtol 1.6e-2, fp16 1e-3, of each sample's largest value; the script
//   asserts the same of PyTorch against Float64). BatchNorm + add + ReLU
//   compares dx and d identity where PyTorch's ReLU mask agrees with ours
//   (a value rounding across 0 flips one element's gradient).

import Testing
@testable import NormKernels

/// Four roundings of the composed sequence (`COMPOSED_ROUNDINGS` in the script).
private let composedRoundings = 4.0

/// `got` against `expected` per sample (rows of `width`), within the witness tolerance.
private func expectWitness(_ got: [Double], _ expected: [Double], width: Int, rtol: Double, _ what: String,
                           skip: Set<Int> = [], sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(got.count == expected.count, "\(what): \(got.count) values, PyTorch \(expected.count)",
            sourceLocation: sourceLocation)
    guard got.count == expected.count else { return }
    for start in stride(from: 0, to: expected.count, by: width) {
        let part = start..<min(expected.count, start + width)
        let scale = expected[part].reduce(0) { max($0, abs($1)) }
        let bound = 1e-5 + composedRoundings * rtol * scale
        if let bad = part.first(where: { !skip.contains($0) && !(abs(got[$0] - expected[$0]) <= bound) }) {
            Issue.record("\(what)[\(bad)] = \(got[bad]), PyTorch \(expected[bad]) (bound \(bound))",
                         sourceLocation: sourceLocation)
            return
        }
    }
}

extension HalfPrecisionTests {
    @Test("PyTorch fixtures (bf16, fp16): GroupNorm + SiLU and BatchNorm + add + ReLU, forward and backward")
    func fusedChannelFixtures() throws {
        var checked = 0
        for f in try Fixture.cases("groupnorm_silu_16bit", atLeast: 10) {
            switch f.string("dtype") {
            case "bf16": try checkSiLUFixture(BFloat16.self, f)
            case "f16":
                #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
                try checkSiLUFixture(Float16.self, f)
                #endif
            default: Issue.record("\(f.name): unknown dtype")
            }
            checked += 1
        }
        for f in try Fixture.cases("batchnorm_add_relu_16bit", atLeast: 8) {
            switch f.string("dtype") {
            case "bf16": try checkResidualFixture(BFloat16.self, f)
            case "f16":
                #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
                try checkResidualFixture(Float16.self, f)
                #endif
            default: Issue.record("\(f.name): unknown dtype")
            }
            checked += 1
        }
        #expect(checked >= 18)
    }

    private func tensor<E: SixteenBitElement>(_: E.Type, _ f: Fixture, _ key: String, _ count: Int) throws -> [E] {
        let bits = try #require(f.ints(key), "\(f.name): no \(key)")
        try #require(bits.count == count, "\(f.name): \(key) has \(bits.count) values")
        return bits.map { E(bits: UInt16($0)) }
    }

    private func checkSiLUFixture<E: SixteenBitElement>(_: E.Type, _ f: Fixture) throws {
        let shape = try f.shape(), groups = try #require(f.int("groups")), count = shape.count
        let rtol = try #require(Self.torchTolerance[f.string("dtype") ?? ""])
        let x = try tensor(E.self, f, "input", count), dy = try tensor(E.self, f, "dy", count)
        let torchY = try tensor(E.self, f, "output", count), torchDx = try tensor(E.self, f, "dx", count)
        var i = SiLUInputs(shape, seed: 0)
        (i.x, i.gamma, i.beta, i.scale, i.shift) = (x.map { E.widen($0) }, f.floats("gamma"), f.floats("beta"),
                                                    f.floats("scale"), f.floats("shift"))
        let gn = try GroupNormalization(shape: shape, groups: groups, epsilon: Float(f.double("eps") ?? 1e-5))
        let (y, saved) = try runGroupNormSiLU(gn, x: x, i)
        let reference = referenceGroupNormSiLU(i.x, shape, groups: groups, i).y
        expectNearReference(y, reference, beta: nil, features: count, "\(f.name) y")
        let perSample = count / shape.n
        expectWitness(y.map { Double(E.widen($0)) }, torchY.map { Double(E.widen($0)) }, width: perSample,
                      rtol: rtol, "\(f.name) y")
        let grads = try runGroupNormSiLUBackward(gn, x: x, dy: dy, saved: saved, i)
        expectWitness(grads.dx!.map { Double(E.widen($0)) }, torchDx.map { Double(E.widen($0)) }, width: perSample,
                      rtol: rtol, "\(f.name) dx")
        for (ours, key) in [(grads.dgamma, "dgamma"), (grads.dbeta, "dbeta"), (grads.dscale, "dscale"),
                            (grads.dshift, "dshift")] {
            guard let torch = f.doubles(key) else { continue }
            let ours = try #require(ours, "\(f.name): no \(key)")
            expectWitness(ours.map(Double.init), torch, width: torch.count, rtol: rtol, "\(f.name) \(key)")
        }
    }

    private func checkResidualFixture<E: SixteenBitElement & BatchNormCalls>(_: E.Type, _ f: Fixture) throws {
        let shape = try f.shape(), count = shape.count, relu = f.bool("relu")
        let rtol = try #require(Self.torchTolerance[f.string("dtype") ?? ""])
        let x = try tensor(E.self, f, "input", count), identity = try tensor(E.self, f, "identity", count)
        let dy = try tensor(E.self, f, "dy", count), torchY = try tensor(E.self, f, "output", count)
        let torchDx = try tensor(E.self, f, "dx", count), torchDid = try tensor(E.self, f, "didentity", count)
        let gamma = f.floats("gamma"), beta = f.floats("beta")
        let bn = try BatchNormalization(shape: shape, epsilon: Float(f.double("eps") ?? 1e-5), fusedReLU: relu)
        let running = try RunningStatistics(channels: shape.c, update: .exponential(momentum: f.double("momentum") ?? 0.1))
        let forward = try runBatchNorm(bn, training: true, x: x, identity: identity, gamma: gamma, beta: beta,
                                       running: running)
        let width = count / shape.n, widen = { (v: [E]) in v.map { Double(E.widen($0)) } }
        let array = try bn.forwardTraining(x, identity: identity, scale: gamma, bias: beta)
        #expect(array.output.map(\.bits) == forward.y.map(\.bits), "\(f.name): array convenience")
        expectWitness(widen(forward.y), widen(torchY), width: width, rtol: rtol, "\(f.name) y")
        let torchRunning = (f.doubles("running_mean") ?? []) + (f.doubles("running_var") ?? [])
        expectWitness((running.mean + running.variance).map(Double.init), torchRunning, width: torchRunning.count,
                      rtol: rtol / 16, "\(f.name) running statistics")
        let grads = try runBatchNormBackward(bn, .saved(forward.saved!), x: x, dy: dy, y: relu ? forward.y : nil,
                                             gamma: gamma, identity: true)
        // Where PyTorch's mask and ours disagree (a sum rounding across 0), skip that element.
        let flipped = Set(relu ? (0..<count).filter { (E.widen(forward.y[$0]) > 0) != (E.widen(torchY[$0]) > 0) } : [])
        #expect(flipped.count * 50 <= count, "\(f.name): \(flipped.count) masks differ from PyTorch's")
        expectWitness(widen(grads.dx!), widen(torchDx), width: width, rtol: rtol, "\(f.name) dx", skip: flipped)
        let dIdentity = grads.dIdentity!
        for k in 0..<count where !flipped.contains(k) {
            #expect(dIdentity[k].bits == torchDid[k].bits || (E.widen(dIdentity[k]) == 0 && E.widen(torchDid[k]) == 0),
                    "\(f.name): d identity[\(k)] = \(E.widen(dIdentity[k])), PyTorch \(E.widen(torchDid[k]))")
        }
        for (ours, key) in [(grads.dgamma, "dgamma"), (grads.dbeta, "dbeta")] {
            guard let torch = f.doubles(key), gamma != nil else { continue }
            expectWitness(try #require(ours).map(Double.init), torch, width: torch.count, rtol: rtol, "\(f.name) \(key)")
        }
        let xe = try tensor(E.self, f, "eval_input", count), ie = try tensor(E.self, f, "eval_identity", count)
        let torchYe = try tensor(E.self, f, "eval_output", count)
        let eval = try runBatchNorm(bn, training: false, x: xe, identity: ie, gamma: gamma, beta: beta, running: running)
        expectWitness(widen(eval.y), widen(torchYe), width: width, rtol: rtol, "\(f.name) eval y")
        let evalArray = try bn.forwardInference(xe, identity: ie, scale: gamma, bias: beta, running: running)
        #expect(evalArray.map(\.bits) == eval.y.map(\.bits), "\(f.name): inference array convenience")
    }
}
