// Residual LayerNorm/RMSNorm and RMSNorm × gate, backward.
//
// Exact relations: residual dx = (plain backward's dx on s) + ds in Float32, dγ
// and dβ bitwise the plain backward's; d bias = Σ_rows dx within 1e-6 of a
// Float64 sum. Gate: d gate = dy ⊙ (plain forward output) bitwise, and dx, dγ
// bitwise the plain backward given dy ⊙ gate. Finite differences of the Float64
// composed ops; the same bits for any thread count.
import Testing
@testable import NormKernels

private let streams = SeededStreams(salt: 0xBAC0_F05E)

/// The plain backward of `kind` on s.
private func plainBackward(_ kind: FusedRowKind, rows: Int, features: Int, _ s: [Float], _ dy: [Float],
                           _ saved: SavedStatistics, gamma: [Float]?, threading: Threading) throws -> NormGradients {
    switch kind {
    case .layer:
        return try LayerNormalization(rows: rows, features: features, threading: threading)
            .backward(s, gradOutput: dy, saved: saved, scale: gamma)
    case .rms:
        return try RMSNormalization(rows: rows, features: features, threading: threading)
            .backward(s, gradOutput: dy, saved: saved, scale: gamma)
    }
}

private func residualBackward(_ kind: FusedRowKind, rows: Int, features: Int, sum: [Float], dy: [Float],
                              ds: [Float]?, saved: SavedStatistics, gamma: [Float]?,
                              threading: Threading) throws -> ResidualGradients {
    switch kind {
    case .layer:
        return try LayerNormalization(rows: rows, features: features, threading: threading)
            .backward(sum: sum, gradOutput: dy, gradSum: ds, saved: saved, scale: gamma)
    case .rms:
        return try RMSNormalization(rows: rows, features: features, threading: threading)
            .backward(sum: sum, gradOutput: dy, gradSum: ds, saved: saved, scale: gamma)
    }
}

extension FusedRowTests {
    @Test("residual backward: dx = plain dx + ds bitwise, dγ dβ bitwise, d bias the column sums; every strategy",
          arguments: FusedRowKind.allCases, fusedRowLengths)
    func residualBackward(kind: FusedRowKind, features: Int) throws {
        let rows = fusedRows(features), count = rows * features
        let threading = Threading(threads: 2, parallelThreshold: 1)
        for (affine, withDs) in product([Affine.none, .both], [false, true]) {
            let c = ResidualCase(rows: rows, features: features, affine: affine, bias: true, seed: UInt64(features + 5))
            var rng = streams.generator(UInt64(features))
            let dy = rng.normals(count), ds = withDs ? rng.normals(count, std: 0.5) : nil
            let what = "\(kind) [\(rows), \(features)] \(affine) ds \(withDs)"
            let (_, s, saved) = try residualForward(kind, rows: rows, features: features, c, threading: threading)
            let fused = try NormKernelsTests.residualBackward(kind, rows: rows, features: features, sum: s, dy: dy, ds: ds,
                                                              saved: saved, gamma: c.gamma, threading: threading)
            let plain = try plainBackward(kind, rows: rows, features: features, s, dy, saved, gamma: c.gamma,
                                          threading: threading)
            let expectedDx = (0..<count).map { i in ds.map { plain.input![i] + $0[i] } ?? plain.input![i] }
            expectBitwise(fused.input ?? [], expectedDx, "\(what) dx")
            expectBitwise(fused.scale ?? [], plain.scale ?? [], "\(what) dγ")
            if kind == .layer { expectBitwise(fused.bias ?? [], plain.bias ?? [], "\(what) dβ") }
            let columnSums = (0..<features).map { j in (0..<rows).reduce(0.0) { $0 + Double(expectedDx[$1 * features + j]) } }
            let magnitude = (0..<features).map { j in (0..<rows).reduce(0.0) { $0 + abs(Double(expectedDx[$1 * features + j])) } }
            let worst = (0..<features).map { abs(Double(fused.inputBias![$0]) - columnSums[$0]) / (1e-30 + magnitude[$0]) }.max()!
            #expect(worst <= 1e-6, "\(what) d bias: error \(worst)")
        }
    }

    @Test("RMSNorm × gate backward: d gate, dx and dγ bitwise our unfused sequence; every strategy",
          arguments: fusedRowLengths)
    func gateBackward(features: Int) throws {
        let rows = fusedRows(features), count = rows * features
        let threading = Threading(threads: 2, parallelThreshold: 1)
        var rng = streams.generator(UInt64(features) + 3)
        let x = rng.normals(count, std: 2), gate = rng.normals(count), dy = rng.normals(count)
        for gamma in [nil, rng.normals(features, mean: 1, std: 0.3)] {
            let what = "gate [\(rows), \(features)] γ \(gamma != nil)"
            let rms = try RMSNormalization(rows: rows, features: features, threading: threading)
            let (_, saved) = try rms.forward(x, gate: gate, scale: gamma)
            let fused = try rms.backward(x, gate: gate, gradOutput: dy, saved: saved, scale: gamma)
            let z = try rms.forward(x, scale: gamma).output
            expectBitwise(fused.gate, (0..<count).map { dy[$0] * z[$0] }, "\(what) d gate")
            let plain = try rms.backward(x, gradOutput: (0..<count).map { dy[$0] * gate[$0] }, saved: saved, scale: gamma)
            expectBitwise(fused.input, plain.input!, "\(what) dx")
            if gamma != nil { expectBitwise(fused.scale!, plain.scale!, "\(what) dγ") }
            // In place: dx over dy, d gate over the gate; then dx over x.
            var dyBuffer = dy, gateBuffer = gate, xBuffer = x
            try withOptionalBuffer(gamma) { g in
                try x.withUnsafeBufferPointer { xb in
                    try dyBuffer.withUnsafeMutableBufferPointer { d in
                        try gateBuffer.withUnsafeMutableBufferPointer { gt in
                            try rms.backward(input: xb, gate: UnsafeBufferPointer(gt), gradOutput: UnsafeBufferPointer(d),
                                             saved: saved, scale: g, gradInput: d, gradGate: gt)
                        }
                    }
                }
                try gate.withUnsafeBufferPointer { gt in
                    try dy.withUnsafeBufferPointer { d in
                        try xBuffer.withUnsafeMutableBufferPointer { xb in
                            try rms.backward(input: UnsafeBufferPointer(xb), gate: gt, gradOutput: d, saved: saved,
                                             scale: g, gradInput: xb)
                        }
                    }
                }
            }
            expectBitwise(dyBuffer, fused.input, "\(what) dx in place over dy")
            expectBitwise(gateBuffer, fused.gate, "\(what) d gate in place over the gate")
            expectBitwise(xBuffer, fused.input, "\(what) dx in place over x")
        }
    }

    @Test("residual backward in place: dx over dy, dx over s; without dx, d bias alone", arguments: FusedRowKind.allCases)
    func residualBackwardInPlace(kind: FusedRowKind) throws {
        let rows = 9, features = 300, count = rows * features
        let c = ResidualCase(rows: rows, features: features, affine: .both, bias: false, seed: 41)
        var rng = streams.generator(41)
        let dy = rng.normals(count), ds = rng.normals(count)
        let (_, s, saved) = try residualForward(kind, rows: rows, features: features, c, threading: .serial)
        let expected = try NormKernelsTests.residualBackward(kind, rows: rows, features: features, sum: s, dy: dy, ds: ds,
                                                             saved: saved, gamma: c.gamma, threading: .serial)
        let ln = try LayerNormalization(rows: rows, features: features)
        let rms = try RMSNormalization(rows: rows, features: features)
        func run(_ s: UnsafeBufferPointer<Float>, _ dy: UnsafeBufferPointer<Float>, _ ds: UnsafeBufferPointer<Float>,
                 _ dx: UnsafeMutableBufferPointer<Float>?, _ dib: UnsafeMutableBufferPointer<Float>?) throws {
            try c.gamma!.withUnsafeBufferPointer { g in
                if kind == .layer {
                    try ln.backward(sum: s, gradOutput: dy, gradSum: ds, saved: saved, scale: g, gradInput: dx,
                                    gradInputBias: dib)
                } else {
                    try rms.backward(sum: s, gradOutput: dy, gradSum: ds, saved: saved, scale: g, gradInput: dx,
                                     gradInputBias: dib)
                }
            }
        }
        var overDy = dy, overS = s, inputBias = [Float](repeating: .nan, count: features)
        try s.withUnsafeBufferPointer { sb in
            try ds.withUnsafeBufferPointer { dsb in
                try overDy.withUnsafeMutableBufferPointer { d in try run(sb, UnsafeBufferPointer(d), dsb, d, nil) }
                try dy.withUnsafeBufferPointer { d in
                    try inputBias.withUnsafeMutableBufferPointer { try run(sb, d, dsb, nil, $0) }
                }
            }
        }
        try dy.withUnsafeBufferPointer { d in
            try ds.withUnsafeBufferPointer { dsb in
                try overS.withUnsafeMutableBufferPointer { sb in try run(UnsafeBufferPointer(sb), d, dsb, sb, nil) }
            }
        }
        expectBitwise(overDy, expected.input!, "\(kind) dx over dy")
        expectBitwise(overS, expected.input!, "\(kind) dx over s")
        expectBitwise(inputBias, expected.inputBias!, "\(kind) d bias without dx")
    }

    @Test("residual and gated backward: the same bits for any thread count",
          arguments: FusedRowKind.allCases, [100, 1000, 20000])
    func backwardDeterminism(kind: FusedRowKind, features: Int) throws {
        let rows = features == 20000 ? 3 : 300
        let count = rows * features
        let c = ResidualCase(rows: rows, features: features, affine: .both, bias: true, seed: 7)
        var rng = streams.generator(8)
        let dy = rng.normals(count), ds = rng.normals(count)
        let (_, s, saved) = try residualForward(kind, rows: rows, features: features, c, threading: .serial)
        try expectGradientsDeterministic("\(kind) residual [\(rows), \(features)]") { threading in
            let g = try NormKernelsTests.residualBackward(kind, rows: rows, features: features, sum: s, dy: dy, ds: ds,
                                                          saved: saved, gamma: c.gamma, threading: threading)
            return kind == .layer ? [g.input, g.scale, g.bias, g.inputBias] : [g.input, g.scale, g.inputBias]
        }
        guard kind == .rms else { return }
        let rms0 = try RMSNormalization(rows: rows, features: features)
        let (_, gateSaved) = try rms0.forward(c.x, gate: c.r, scale: c.gamma)
        try expectGradientsDeterministic("gate [\(rows), \(features)]") { threading in
            let g = try RMSNormalization(rows: rows, features: features, threading: threading)
                .backward(c.x, gate: c.r, gradOutput: dy, saved: gateSaved, scale: c.gamma)
            return [g.input, g.gate, g.scale]
        }
    }
}

// MARK: - Finite differences

extension FusedRowTests {
    @Test("residual LayerNorm/RMSNorm: dx (= d residual), dγ, dβ, d bias by finite differences, with ds",
          arguments: FusedRowKind.allCases, [5, 11, 24])
    func residualGradientCheck(kind: FusedRowKind, features: Int) throws {
        let rows = 4, count = rows * features, eps = kind == .layer ? 1e-5 : Double(Float.ulpOfOne)
        let gs = SeededStreams.gradientCheck
        let x = gs.uniforms(count, seed: 21, -2...2), r = gs.uniforms(count, seed: 22, -1...1)
        let gamma = gs.uniforms(features, seed: 23, 0.5...1.5), beta = gs.uniforms(features, seed: 24, -0.3...0.3)
        let bias = gs.uniforms(features, seed: 25, -0.5...0.5)
        let dy = gs.uniforms(count, seed: 26), ds = gs.uniforms(count, seed: 27)
        let c = ResidualCase(x: x, r: r, gamma: gamma, beta: kind == .layer ? beta : nil, inputBias: bias)
        let (_, s, saved) = try residualForward(kind, rows: rows, features: features, c, threading: .serial)
        let g = try NormKernelsTests.residualBackward(kind, rows: rows, features: features, sum: s, dy: dy, ds: ds,
                                                      saved: saved, gamma: gamma, threading: .serial)
        // L = Σ dy·y + Σ ds·s, all in Float64.
        func loss(_ x: [Double], _ gm: [Double], _ bt: [Double], _ b: [Double]) -> Double {
            var total = 0.0
            for row in 0..<rows {
                let v = (0..<features).map { x[row * features + $0] + Double(r[row * features + $0]) + b[$0] }
                let mean = kind == .layer ? v.reduce(0, +) / Double(features) : 0
                let rr = 1 / (v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(features) + eps).squareRoot()
                for i in 0..<features {
                    let y = (v[i] - mean) * rr * gm[i] + (kind == .layer ? bt[i] : 0)
                    total += y * Double(dy[row * features + i]) + v[i] * Double(ds[row * features + i])
                }
            }
            return total
        }
        let xd = x.map(Double.init), gd = gamma.map(Double.init), bd = beta.map(Double.init), ib = bias.map(Double.init)
        let what = "\(kind) residual [\(rows), \(features)]"
        expectMatchesNumeric(g.input, Reference.numericGradient(xd) { loss($0, gd, bd, ib) }, "\(what) dx")
        expectMatchesNumeric(g.scale, Reference.numericGradient(gd) { loss(xd, $0, bd, ib) }, "\(what) dγ")
        if kind == .layer { expectMatchesNumeric(g.bias, Reference.numericGradient(bd) { loss(xd, gd, $0, ib) }, "\(what) dβ") }
        expectMatchesNumeric(g.inputBias, Reference.numericGradient(ib) { loss(xd, gd, bd, $0) }, "\(what) d bias")
    }

    @Test("RMSNorm × gate: dx, d gate, dγ by finite differences", arguments: [5, 11, 24])
    func gateGradientCheck(features: Int) throws {
        let rows = 4, count = rows * features, eps = Double(Float.ulpOfOne)
        let gs = SeededStreams.gradientCheck
        let x = gs.uniforms(count, seed: 31, -2...2), gate = gs.uniforms(count, seed: 32, -1.5...1.5)
        let gamma = gs.uniforms(features, seed: 33, 0.5...1.5), dy = gs.uniforms(count, seed: 34)
        let rms = try RMSNormalization(rows: rows, features: features, threading: .serial)
        let (_, saved) = try rms.forward(x, gate: gate, scale: gamma)
        let g = try rms.backward(x, gate: gate, gradOutput: dy, saved: saved, scale: gamma)
        func loss(_ x: [Double], _ gt: [Double], _ gm: [Double]) -> Double {
            var total = 0.0
            for row in 0..<rows {
                let v = x[(row * features)..<((row + 1) * features)]
                let rr = 1 / (v.reduce(0) { $0 + $1 * $1 } / Double(features) + eps).squareRoot()
                for i in 0..<features {
                    let o = row * features + i
                    total += x[o] * rr * gm[i] * gt[o] * Double(dy[o])
                }
            }
            return total
        }
        let xd = x.map(Double.init), gd = gate.map(Double.init), md = gamma.map(Double.init)
        expectMatchesNumeric(g.input, Reference.numericGradient(xd) { loss($0, gd, md) }, "gate \(features) dx")
        expectMatchesNumeric(g.gate, Reference.numericGradient(gd) { loss(xd, $0, md) }, "gate \(features) d gate")
        expectMatchesNumeric(g.scale, Reference.numericGradient(md) { loss(xd, gd, $0) }, "gate \(features) dγ")
    }
}

// MARK: - Block by block

extension FusedRowTests {
    /// Rows for 9 full row blocks and a partial one of 1024 features (the block
    /// size comes from the L2 size), so 2 threads go block by block.
    static func blockwiseRows() throws -> Int {
        9 * (try LayerNormalization(rows: 1 << 20, features: 1024).backwardPlan.rowBlock) + 5
    }

    @Test("block-by-block backward (residual, gate): the plain backward's bits, the same on 1–8 threads",
          arguments: FusedRowKind.allCases)
    func blockwiseBackward(kind: FusedRowKind) throws {
        let rows = try Self.blockwiseRows(), features = 1024, count = rows * features
        let probe = try LayerNormalization(rows: rows, features: features, threading: Threading(threads: 2))
        let steps = BlockwiseRowBackward(plan: probe.backwardPlan, mean: nil, invStd: [], gamma: nil, gradScale: nil,
                                         gradBias: nil)
        #expect(steps.blockwise(Threading(threads: 2)), "[\(rows), \(features)] does not go block by block")
        let c = ResidualCase(rows: rows, features: features, affine: .both, bias: true, seed: 12)
        var rng = streams.generator(13)
        let dy = rng.normals(count), ds = rng.normals(count)
        let threading = Threading(threads: 2)
        let (_, s, saved) = try residualForward(kind, rows: rows, features: features, c, threading: threading)
        let fused = try NormKernelsTests.residualBackward(kind, rows: rows, features: features, sum: s, dy: dy, ds: ds,
                                                          saved: saved, gamma: c.gamma, threading: threading)
        let plain = try plainBackward(kind, rows: rows, features: features, s, dy, saved, gamma: c.gamma,
                                      threading: threading)
        expectBitwise(fused.input!, (0..<count).map { plain.input![$0] + ds[$0] }, "\(kind) blockwise dx")
        expectBitwise(fused.scale!, plain.scale!, "\(kind) blockwise dγ")
        if kind == .layer { expectBitwise(fused.bias!, plain.bias!, "\(kind) blockwise dβ") }
        try expectGradientsDeterministic("\(kind) blockwise residual") { threading in
            let g = try NormKernelsTests.residualBackward(kind, rows: rows, features: features, sum: s, dy: dy, ds: ds,
                                                          saved: saved, gamma: c.gamma, threading: threading)
            return [g.input, g.scale, g.inputBias] + (kind == .layer ? [g.bias] : [])
        }
        guard kind == .rms else { return }
        let rms = try RMSNormalization(rows: rows, features: features, threading: threading)
        let (_, gateSaved) = try rms.forward(c.x, gate: c.r, scale: c.gamma)
        let gated = try rms.backward(c.x, gate: c.r, gradOutput: dy, saved: gateSaved, scale: c.gamma)
        let plainGated = try rms.backward(c.x, gradOutput: (0..<count).map { dy[$0] * c.r[$0] }, saved: gateSaved,
                                          scale: c.gamma)
        expectBitwise(gated.input, plainGated.input!, "gate blockwise dx")
        expectBitwise(gated.scale!, plainGated.scale!, "gate blockwise dγ")
        try expectGradientsDeterministic("gate blockwise") { threading in
            let g = try RMSNormalization(rows: rows, features: features, threading: threading)
                .backward(c.x, gate: c.r, gradOutput: dy, saved: gateSaved, scale: c.gamma)
            return [g.input, g.gate, g.scale]
        }
    }
}
