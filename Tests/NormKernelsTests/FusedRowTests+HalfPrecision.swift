// Residual LayerNorm/RMSNorm and RMSNorm × gate on Float16 and BFloat16
// (`RowNormalization+FusedHalfPrecision.swift`). The semantics are our unfused
// 16-bit sequence, so every relation is exact:
//
//     s16 = E((x + r) + b);   y16, saved = the plain 16-bit forward on s16
//     dx16 = E(E(plain 16-bit backward on s16) + ds);  dγ, dβ its bits;  d bias = Σ dx16 (Float64, tree order)
//     gate: y16 = E(z16·gate);  d gate = E(dy·z16);  dx, dγ = the plain backward given E(dy·gate)
//
// for every row-engine strategy, any thread count, in place; plus errors with
// nothing written and sums near Float16's largest finite value.

import Testing
@testable import NormKernels

/// The fused residual forward of `kind` on 16-bit (or any) tensors, through the generic entry point.
func halfResidualForward<E: NormElement>(
    _ kind: FusedRowKind, rows: Int, features: Int, x: [E], r: [E], gamma: [Float]?, beta: [Float]?,
    inputBias: [Float]?, threading: Threading = .serial, writeSum: Bool = true
) throws -> (output: [E], sum: [E], saved: SavedStatistics) {
    var y = x, s = x
    let saved = try x.withUnsafeBufferPointer { xp in
        try r.withUnsafeBufferPointer { rp in
            try y.withUnsafeMutableBufferPointer { yp in
                try s.withUnsafeMutableBufferPointer { sp in
                    try withBuffers(gamma ?? [], beta, inputBias) { gammaBuffer, b, ib in
                        let g = gamma == nil ? nil : gammaBuffer
                        switch kind {
                        case .layer:
                            return try LayerNormalization(rows: rows, features: features, threading: threading)
                                .forward(input: xp, residual: rp, output: yp, sum: writeSum ? sp : nil, scale: g,
                                         bias: b, inputBias: ib)
                        case .rms:
                            return try RMSNormalization(rows: rows, features: features, threading: threading)
                                .forward(input: xp, residual: rp, output: yp, sum: writeSum ? sp : nil, scale: g,
                                         inputBias: ib)
                        }
                    }
                }
            }
        }
    }
    return (y, s, saved)
}

/// The fused residual backward on 16-bit tensors: (dx, dγ, dβ, d bias).
func halfResidualBackward<E: NormElement>(
    _ kind: FusedRowKind, rows: Int, features: Int, s: [E], dy: [E], ds: [E]?, saved: SavedStatistics,
    gamma: [Float], threading: Threading = .serial
) throws -> (dx: [E], dgamma: [Float], dbeta: [Float], dbias: [Float]) {
    var dx = dy
    var dg = [Float](repeating: 0, count: features), db = dg, dib = dg
    try s.withUnsafeBufferPointer { sp in
        try dy.withUnsafeBufferPointer { dyp in
            try withOptionalElements(ds) { dsp in
                try gamma.withUnsafeBufferPointer { g in
                    try dx.withUnsafeMutableBufferPointer { dxp in
                        try dg.withUnsafeMutableBufferPointer { dgp in
                            try db.withUnsafeMutableBufferPointer { dbp in
                                try dib.withUnsafeMutableBufferPointer { dibp in
                                    switch kind {
                                    case .layer:
                                        try LayerNormalization(rows: rows, features: features, threading: threading)
                                            .backward(sum: sp, gradOutput: dyp, gradSum: dsp, saved: saved, scale: g,
                                                      gradInput: dxp, gradScale: dgp, gradBias: dbp, gradInputBias: dibp)
                                    case .rms:
                                        try RMSNormalization(rows: rows, features: features, threading: threading)
                                            .backward(sum: sp, gradOutput: dyp, gradSum: dsp, saved: saved, scale: g,
                                                      gradInput: dxp, gradScale: dgp, gradInputBias: dibp)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    return (dx, dg, db, dib)
}

func expectSameElements<E: SixteenBitElement>(_ a: [E], _ b: [E], _ what: String,
                                              sourceLocation: SourceLocation = #_sourceLocation) {
    let first = a.indices.first { a[$0].bits != b[$0].bits }
    let message = first.map { "\(what): [\($0)] \(E.widen(a[$0])) vs \(E.widen(b[$0]))" } ?? ""
    #expect(a.count == b.count && first == nil, Comment(rawValue: message), sourceLocation: sourceLocation)
}

extension FusedRowKind {
    var op: RowOp { self == .layer ? .layerNorm : .rmsNorm }
}

@Suite("16-bit tensors: residual LayerNorm/RMSNorm and RMSNorm × gate")
struct FusedRowHalfTests {
    /// x, r, dy, ds (16-bit), γ, β, b of one case.
    static func inputs<E: SixteenBitElement>(_: E.Type, rows: Int, features: Int, _ label: String)
        -> (x: [E], r: [E], dy: [E], ds: [E], gamma: [Float], beta: [Float], bias: [Float]) {
        let n = { (tag: String, c: ClosedRange<Double>) in
            rowValues(rows, features, "\(label) \(tag)", center: c).map { E.narrow($0) }
        }
        let p = halfParameters(features, "\(label) γβ")
        let bias = rowValues(1, features, "\(label) b", center: -0.5...0.5)
        return (n("x", -2...2), n("r", -1...1), n("dy", -0.5...0.5), n("ds", -0.5...0.5), p.gamma, p.beta, bias)
    }

    @Test("residual forward: s16 = E((x + r) + b), y16 and saved the plain 16-bit forward on s16; every strategy",
          arguments: FusedRowKind.allCases, fusedRowLengths)
    func residualForward(kind: FusedRowKind, features: Int) throws {
        func check<E: SixteenBitElement>(_: E.Type) throws {
            let rows = fusedRows(features)
            let c = Self.inputs(E.self, rows: rows, features: features, "half residual \(kind) \(features)")
            let threading = Threading(threads: 2, parallelThreshold: 1)
            for bias in [false, true] {
                let what = "\(E.typeName) \(kind) [\(rows), \(features)] bias \(bias)"
                let b = bias ? c.bias : nil
                let fused = try halfResidualForward(kind, rows: rows, features: features, x: c.x, r: c.r,
                                                    gamma: c.gamma, beta: c.beta, inputBias: b, threading: threading)
                let expectedSum = (0..<c.x.count).map { i -> E in
                    let v = E.widen(c.x[i]) + E.widen(c.r[i])
                    return E.narrow(b.map { v + $0[i % features] } ?? v)
                }
                expectSameElements(fused.sum, expectedSum, "\(what) sum")
                let beta = kind == .layer ? c.beta : nil
                let plain = try runRows(kind.op, rows: rows, features: features, expectedSum, gamma: c.gamma,
                                        beta: beta, threading: threading)
                expectSameElements(fused.output, plain.output, "\(what) vs unfused")
                #expect(fused.saved == plain.saved, "\(what) saved")
                // Without the sum output: the same output (s re-formed where the plan reads it twice).
                let noSum = try halfResidualForward(kind, rows: rows, features: features, x: c.x, r: c.r,
                                                    gamma: c.gamma, beta: c.beta, inputBias: b, threading: threading,
                                                    writeSum: false)
                expectSameElements(noSum.output, plain.output, "\(what) without sum")
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("residual backward: dx16 = E(E(plain dx16) + ds), dγ/dβ the plain bits, d bias = Σ dx16",
          arguments: FusedRowKind.allCases, fusedRowLengths)
    func residualBackward(kind: FusedRowKind, features: Int) throws {
        func check<E: SixteenBitElement>(_: E.Type) throws {
            let rows = fusedRows(features)
            let c = Self.inputs(E.self, rows: rows, features: features, "half residual bw \(kind) \(features)")
            let threading = Threading(threads: 2, parallelThreshold: 1)
            let fwd = try halfResidualForward(kind, rows: rows, features: features, x: c.x, r: c.r, gamma: c.gamma,
                                              beta: c.beta, inputBias: c.bias)
            let plain = try backwardRows(kind.op, rows: rows, features: features, x: fwd.sum, dy: c.dy,
                                         saved: fwd.saved, gamma: c.gamma, threading: threading)
            for ds in [nil, c.ds] {
                let what = "\(E.typeName) \(kind) [\(rows), \(features)] ds \(ds != nil)"
                let got = try halfResidualBackward(kind, rows: rows, features: features, s: fwd.sum, dy: c.dy, ds: ds,
                                                   saved: fwd.saved, gamma: c.gamma, threading: threading)
                let expected = ds.map { ds in
                    (0..<ds.count).map { E.narrow(E.widen(plain.input![$0]) + E.widen(ds[$0])) }
                } ?? plain.input!
                expectSameElements(got.dx, expected, "\(what) dx")
                #expect(bitPatterns(got.dgamma) == bitPatterns(plain.scale), "\(what) dγ")
                if kind == .layer { #expect(bitPatterns(got.dbeta) == bitPatterns(plain.bias), "\(what) dβ") }
                for i in 0..<features {
                    let sum = (0..<rows).reduce(0.0) { $0 + Double(E.widen(expected[$1 * features + i])) }
                    #expect(abs(Double(got.dbias[i]) - sum) <= 1e-6 * (1 + abs(sum)), "\(what) d bias[\(i)]")
                }
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("residual forward and backward: the same bits on 1–4 threads", arguments: FusedRowKind.allCases, [13, 1000, 20000])
    func determinism(kind: FusedRowKind, features: Int) throws {
        func check<E: SixteenBitElement>(_: E.Type) throws {
            let rows = features == 20000 ? 3 : (features == 13 ? 300 : 70)
            let c = Self.inputs(E.self, rows: rows, features: features, "half det \(kind) \(features)")
            let widen = { (a: [E]) in a.map { E.widen($0) } }
            try expectGradientsDeterministic("\(E.typeName) \(kind) [\(rows), \(features)]") { threading in
                let f = try halfResidualForward(kind, rows: rows, features: features, x: c.x, r: c.r, gamma: c.gamma,
                                                beta: c.beta, inputBias: c.bias, threading: threading)
                let b = try halfResidualBackward(kind, rows: rows, features: features, s: f.sum, dy: c.dy, ds: c.ds,
                                                 saved: f.saved, gamma: c.gamma, threading: threading)
                return [widen(f.output), widen(f.sum), doubleBits(f.saved.mean) + doubleBits(f.saved.invStd),
                        widen(b.dx), b.dgamma, b.dbeta, b.dbias]
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }
}
