// 16-bit residual rows and RMSNorm × gate, continued (FusedRowHalfTests): the
// gate's exact relations to our unfused 16-bit sequence, in place, errors with
// nothing written, and sums near Float16's largest finite value (65504).

import Testing
@testable import NormKernels

/// RMSNorm × gate forward on 16-bit tensors through the generic entry point.
func halfGateForward<E: NormElement>(rows: Int, features: Int, x: [E], gate: [E], gamma: [Float]?,
                                     threading: Threading = .serial) throws -> (output: [E], saved: SavedStatistics) {
    var y = x
    let rms = try RMSNormalization(rows: rows, features: features, threading: threading)
    let saved = try x.withUnsafeBufferPointer { xp in
        try gate.withUnsafeBufferPointer { gp in
            try y.withUnsafeMutableBufferPointer { yp in
                try withOptionalBuffer(gamma) { try rms.forward(input: xp, gate: gp, output: yp, scale: $0) }
            }
        }
    }
    return (y, saved)
}

/// The gated backward on 16-bit tensors: (dx, d gate, dγ).
func halfGateBackward<E: NormElement>(rows: Int, features: Int, x: [E], gate: [E], dy: [E], saved: SavedStatistics,
                                      gamma: [Float], threading: Threading = .serial) throws
    -> (dx: [E], dgate: [E], dgamma: [Float]) {
    var dx = dy, dgate = dy, dg = [Float](repeating: 0, count: features)
    let rms = try RMSNormalization(rows: rows, features: features, threading: threading)
    try x.withUnsafeBufferPointer { xp in
        try gate.withUnsafeBufferPointer { gp in
            try dy.withUnsafeBufferPointer { dyp in
                try gamma.withUnsafeBufferPointer { g in
                    try dx.withUnsafeMutableBufferPointer { dxp in
                        try dgate.withUnsafeMutableBufferPointer { dgp in
                            try dg.withUnsafeMutableBufferPointer { dgammap in
                                try rms.backward(input: xp, gate: gp, gradOutput: dyp, saved: saved, scale: g,
                                                 gradInput: dxp, gradGate: dgp, gradScale: dgammap)
                            }
                        }
                    }
                }
            }
        }
    }
    return (dx, dgate, dg)
}

extension FusedRowHalfTests {
    @Test("RMSNorm × gate: y16 = E(z16·gate), d gate = E(dy·z16), dx/dγ the plain backward given E(dy·gate); 1–4 threads",
          arguments: fusedRowLengths)
    func gate(features: Int) throws {
        func check<E: SixteenBitElement>(_: E.Type) throws {
            let rows = fusedRows(features)
            let c = Self.inputs(E.self, rows: rows, features: features, "half gate \(features)")
            let gate = c.r
            let threading = Threading(threads: 2, parallelThreshold: 1)
            let what = "\(E.typeName) gate [\(rows), \(features)]"
            let plain = try runRows(.rmsNorm, rows: rows, features: features, c.x, gamma: c.gamma, beta: nil,
                                    threading: threading)
            let fused = try halfGateForward(rows: rows, features: features, x: c.x, gate: gate, gamma: c.gamma,
                                            threading: threading)
            expectSameElements(fused.output, (0..<gate.count).map { E.narrow(E.widen(plain.output[$0]) * E.widen(gate[$0])) },
                               "\(what) forward vs unfused")
            #expect(fused.saved == plain.saved, "\(what) saved")
            let back = try halfGateBackward(rows: rows, features: features, x: c.x, gate: gate, dy: c.dy,
                                            saved: fused.saved, gamma: c.gamma, threading: threading)
            let gated = (0..<gate.count).map { E.narrow(E.widen(c.dy[$0]) * E.widen(gate[$0])) }
            let dgate = (0..<gate.count).map { E.narrow(E.widen(c.dy[$0]) * E.widen(plain.output[$0])) }
            let rmsBack = try backwardRows(.rmsNorm, rows: rows, features: features, x: c.x, dy: gated,
                                           saved: fused.saved, gamma: c.gamma, threading: threading)
            expectSameElements(back.dgate, dgate, "\(what) d gate")
            expectSameElements(back.dx, rmsBack.input!, "\(what) dx")
            #expect(bitPatterns(back.dgamma) == bitPatterns(rmsBack.scale), "\(what) dγ")
            if features == 1000 || features == 20000 {
                let widen = { (a: [E]) in a.map { E.widen($0) } }
                try expectGradientsDeterministic(what) { threading in
                    let f = try halfGateForward(rows: rows, features: features, x: c.x, gate: gate, gamma: c.gamma,
                                                threading: threading)
                    let b = try halfGateBackward(rows: rows, features: features, x: c.x, gate: gate, dy: c.dy,
                                                 saved: f.saved, gamma: c.gamma, threading: threading)
                    return [widen(f.output), widen(b.dx), widen(b.dgate), b.dgamma]
                }
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("residual 16-bit in place: output over x or the residual, sum over the other; dx over dy or s",
          arguments: FusedRowKind.allCases, [13, 1000, 20000])
    func inPlace(kind: FusedRowKind, features: Int) throws {
        func check<E: SixteenBitElement>(_: E.Type) throws {
            let rows = fusedRows(features), threading = Threading(threads: 3, parallelThreshold: 1)
            let c = Self.inputs(E.self, rows: rows, features: features, "half in place \(kind) \(features)")
            let expected = try halfResidualForward(kind, rows: rows, features: features, x: c.x, r: c.r,
                                                   gamma: c.gamma, beta: c.beta, inputBias: c.bias, threading: threading)
            let ln = try LayerNormalization(rows: rows, features: features, threading: threading)
            let rms = try RMSNormalization(rows: rows, features: features, threading: threading)
            for outputOverX in [true, false] {
                var x = c.x, r = c.r
                try x.withUnsafeMutableBufferPointer { xb in
                    try r.withUnsafeMutableBufferPointer { rb in
                        try withBuffers(c.gamma, c.beta, c.bias) { g, b, ib in
                            let (y, s) = outputOverX ? (xb, rb) : (rb, xb)
                            _ = kind == .layer
                                ? try ln.forward(input: UnsafeBufferPointer(xb), residual: UnsafeBufferPointer(rb),
                                                 output: y, sum: s, scale: g, bias: b, inputBias: ib)
                                : try rms.forward(input: UnsafeBufferPointer(xb), residual: UnsafeBufferPointer(rb),
                                                  output: y, sum: s, scale: g, inputBias: ib)
                        }
                    }
                }
                let what = "\(E.typeName) \(kind) \(features) output over \(outputOverX ? "x" : "residual")"
                expectSameElements(outputOverX ? x : r, expected.output, "\(what): output")
                expectSameElements(outputOverX ? r : x, expected.sum, "\(what): sum")
            }
            let back = try halfResidualBackward(kind, rows: rows, features: features, s: expected.sum, dy: c.dy,
                                                ds: c.ds, saved: expected.saved, gamma: c.gamma, threading: threading)
            for overDy in [true, false] {
                var buffer = overDy ? c.dy : expected.sum
                try buffer.withUnsafeMutableBufferPointer { dx in
                    try withOptionalElements(overDy ? expected.sum : c.dy) { other in
                        try withOptionalElements(c.ds) { ds in
                            try c.gamma.withUnsafeBufferPointer { g in
                                let (s, dy) = overDy ? (other!, UnsafeBufferPointer(dx)) : (UnsafeBufferPointer(dx), other!)
                                if kind == .layer {
                                    try ln.backward(sum: s, gradOutput: dy, gradSum: ds, saved: expected.saved,
                                                    scale: g, gradInput: dx)
                                } else {
                                    try rms.backward(sum: s, gradOutput: dy, gradSum: ds, saved: expected.saved,
                                                     scale: g, gradInput: dx)
                                }
                            }
                        }
                    }
                }
                expectSameElements(buffer, back.dx, "\(E.typeName) \(kind) \(features) dx over \(overDy ? "dy" : "s")")
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("16-bit fused errors: wrong lengths and overlaps throw, nothing written")
    func errors() throws {
        let rows = 3, features = 10, count = rows * features
        let ln = try LayerNormalization(rows: rows, features: features)
        let rms = try RMSNormalization(rows: rows, features: features)
        var memory = (0..<(5 * count)).map { BFloat16(Float($0 % 7) - 3) }
        let before = memory.map(\.bitPattern)
        let gamma = [Float](repeating: 1, count: features)
        gamma.withUnsafeBufferPointer { g in
            memory.withUnsafeMutableBufferPointer { m in
                let base = m.baseAddress!
                let x = UnsafeBufferPointer(start: base, count: count)
                let r = UnsafeBufferPointer(start: base + count, count: count)
                let y = UnsafeMutableBufferPointer(start: base + 2 * count, count: count)
                let s = UnsafeMutableBufferPointer(start: base + 3 * count, count: count)
                let short = UnsafeBufferPointer(start: base + count, count: count - 1)
                #expect(throws: NormError.lengthMismatch(argument: "residual", expected: count, actual: count - 1)) {
                    try ln.forward(input: x, residual: short, output: y, sum: s, scale: g)
                }
                #expect(throws: NormError.overlappingBuffers(argument: "output", other: "sum")) {
                    try rms.forward(input: x, residual: r, output: y, sum: y, scale: g)
                }
                #expect(throws: NormError.partialOverlap(argument: "output (against input)")) {
                    try rms.forward(input: x, gate: UnsafeBufferPointer(s), output: UnsafeMutableBufferPointer(start: base + 2, count: count))
                }
                let saved = SavedStatistics(mean: [Double](repeating: 0, count: rows),
                                            invStd: [Double](repeating: 1, count: rows))
                #expect(throws: NormError.lengthMismatch(argument: "gradSum", expected: count, actual: count - 1)) {
                    try ln.backward(sum: x, gradOutput: r, gradSum: short, saved: saved, gradInput: y)
                }
                #expect(throws: NormError.lengthMismatch(argument: "gate", expected: count, actual: count - 1)) {
                    try rms.backward(input: x, gate: short, gradOutput: r, saved: saved, gradInput: y, gradGate: s)
                }
            }
        }
        #expect(memory.map(\.bitPattern) == before, "memory after the failed calls")
    }

    #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
    @Test("Float16 sums near 65504: s16 exact, y16 the unfused sequence and within 1 ulp of Float64 on s16",
          arguments: FusedRowKind.allCases, [13, 1000, 20000])
    func nearLimit(kind: FusedRowKind, features: Int) throws {
        let rows = fusedRows(features)
        // x, r in [29 000, 32 500]: s up to 65 000, just under Float16's 65 504.
        let x = rowValues(rows, features, "near \(kind) x", center: 30_500...31_000, spread: 300...500)
            .map { Float16(min(max($0, 29_000), 32_500)) }
        let r = rowValues(rows, features, "near \(kind) r", center: 30_500...31_000, spread: 300...500)
            .map { Float16(min(max($0, 29_000), 32_500)) }
        let p = halfParameters(features, "near γβ")
        let beta = kind == .layer ? p.beta : nil
        let fused = try halfResidualForward(kind, rows: rows, features: features, x: x, r: r, gamma: p.gamma,
                                            beta: beta, inputBias: nil, threading: Threading(threads: 2, parallelThreshold: 1))
        let s = (0..<x.count).map { Float16(Float(x[$0]) + Float(r[$0])) }
        expectSameElements(fused.sum, s, "\(kind) \(features) near 65504: sum")
        #expect(s.allSatisfy { $0.isFinite }, "\(kind) \(features): finite sums")
        let plain = try runRows(kind.op, rows: rows, features: features, s, gamma: p.gamma, beta: beta)
        expectSameElements(fused.output, plain.output, "\(kind) \(features) near 65504 vs unfused")
        let reference = referenceRows(kind.op, rows: rows, features: features, s.map { Float($0) }, gamma: p.gamma,
                                      beta: beta)
        expectNearReference(fused.output, reference, beta: beta, features: features, "\(kind) \(features) near 65504")
    }
    #endif
}
