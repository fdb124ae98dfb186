// Residual LayerNorm/RMSNorm and RMSNorm × gate (`RowNormalization+Fused.swift`,
// `RowNormalization+Residual.swift`, `RMSNormalization+Gate.swift`), forward.
//
// The exact relations tested: s is bitwise (x + r) + b in Float32; the fused
// output and saved statistics are bitwise those of the plain forward on s (our
// unfused sequence), and the gated output is bitwise the plain RMSNorm output
// times the gate in Float32 — for every row-engine strategy (8 rows per vector,
// row by row, the rows geometry with one and several blocks per row) and any
// thread count. Against Float64 references of the composed ops:
// |y − ref| ≤ 2e-5·(1 + |ref|).
import Testing
@testable import NormKernels

private let streams = SeededStreams(salt: 0xF05E_D0E5)

enum FusedRowKind: String, CaseIterable, CustomStringConvertible {
    case layer, rms
    var description: String { rawValue }
}

/// Row lengths reaching every strategy of both kinds (LayerNorm: 8 per vector up
/// to 128, row by row to 16 384, then the geometry; RMSNorm: 8 per vector below
/// 16, row by row to 256, then the geometry), with lengths that leave a partial
/// vector; rows not a multiple of 8.
let fusedRowLengths = [3, 13, 100, 1000, 20000]

func fusedRows(_ features: Int) -> Int { max(2, min(37, 60_000 / features)) }

/// The strategy name of a row plan, for the coverage checks.
func strategyName(_ plan: RowPlan) -> String {
    switch plan.strategy {
    case .eightPerVector: return "eightPerVector"
    case .rowByRow: return "rowByRow"
    case .geometry(let g): return g.blocksPerUnit > 1 ? "geometry (blocks)" : "geometry"
    }
}

/// s = (x + r) + b in Float32, the first step of our unfused sequence.
func residualSum(_ x: [Float], _ r: [Float], _ b: [Float]?, features: Int) -> [Float] {
    (0..<x.count).map { i in
        let s = x[i] + r[i]
        return b.map { s + $0[i % features] } ?? s
    }
}

/// The inputs of one residual case.
struct ResidualCase {
    var x: [Float], r: [Float], gamma: [Float]?, beta: [Float]?, inputBias: [Float]?

    init(x: [Float], r: [Float], gamma: [Float]?, beta: [Float]?, inputBias: [Float]?) {
        (self.x, self.r, self.gamma, self.beta, self.inputBias) = (x, r, gamma, beta, inputBias)
    }

    init(rows: Int, features: Int, affine: Affine, bias: Bool, seed: UInt64) {
        var rng = streams.generator(seed)
        x = rng.normals(rows * features, mean: 0.5, std: 2)
        r = rng.normals(rows * features, mean: -0.25, std: 1.5)
        (gamma, beta) = affine.parameters(features, &rng)
        inputBias = bias ? rng.normals(features, std: 0.5) : nil
    }
}

/// Runs the fused residual forward of `kind`; returns (y, s, saved).
func residualForward(_ kind: FusedRowKind, rows: Int, features: Int, _ c: ResidualCase,
                     threading: Threading) throws -> (output: [Float], sum: [Float], saved: SavedStatistics) {
    switch kind {
    case .layer:
        return try LayerNormalization(rows: rows, features: features, threading: threading)
            .forward(c.x, residual: c.r, scale: c.gamma, bias: c.beta, inputBias: c.inputBias)
    case .rms:
        return try RMSNormalization(rows: rows, features: features, threading: threading)
            .forward(c.x, residual: c.r, scale: c.gamma, inputBias: c.inputBias)
    }
}

/// The plain forward of `kind` on s (β dropped for RMSNorm).
func plainForward(_ kind: FusedRowKind, rows: Int, features: Int, _ s: [Float], gamma: [Float]?, beta: [Float]?,
                  threading: Threading) throws -> (output: [Float], saved: SavedStatistics) {
    switch kind {
    case .layer:
        return try LayerNormalization(rows: rows, features: features, threading: threading)
            .forward(s, scale: gamma, bias: beta)
    case .rms:
        return try RMSNormalization(rows: rows, features: features, threading: threading).forward(s, scale: gamma)
    }
}

/// The Float64 composed op: s = x + r + b in Float64, then the reference normalization.
func residualReference(_ kind: FusedRowKind, rows: Int, features: Int, _ c: ResidualCase) -> [Double] {
    let s = (0..<c.x.count).map { i in Double(c.x[i]) + Double(c.r[i]) + Double(c.inputBias?[i % features] ?? 0) }
    var y = [Double](repeating: 0, count: s.count)
    for row in 0..<rows {
        let v = s[(row * features)..<((row + 1) * features)]
        let mean = kind == .layer ? v.reduce(0, +) / Double(features) : 0
        let second = v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(features)
        let eps = kind == .layer ? 1e-5 : Double(Float.ulpOfOne)
        let r = 1 / (second + eps).squareRoot()
        for i in 0..<features {
            let beta = kind == .layer ? Double(c.beta?[i] ?? 0) : 0
            y[row * features + i] = (v[v.startIndex + i] - mean) * r * Double(c.gamma?[i] ?? 1) + beta
        }
    }
    return y
}

func worstRelative(_ y: [Float], _ reference: [Double]) -> Double {
    (0..<y.count).map { abs(Double(y[$0]) - reference[$0]) / (1 + abs(reference[$0])) }.max() ?? 0
}

struct FusedRowTests {
    @Test("residual forward: s bitwise, y and saved bitwise the plain forward on s, close to Float64; every strategy",
          arguments: FusedRowKind.allCases, fusedRowLengths)
    func residual(kind: FusedRowKind, features: Int) throws {
        let rows = fusedRows(features)
        let threading = Threading(threads: 2, parallelThreshold: 1)
        for (affine, bias) in product(Affine.allCases, [false, true]) {
            let c = ResidualCase(rows: rows, features: features, affine: affine, bias: bias,
                                 seed: UInt64(features * 7 + (bias ? 1 : 0)))
            let what = "\(kind) [\(rows), \(features)] \(affine) bias \(bias)"
            let (y, s, saved) = try residualForward(kind, rows: rows, features: features, c, threading: threading)
            let expectedSum = residualSum(c.x, c.r, c.inputBias, features: features)
            expectBitwise(s, expectedSum, "\(what) sum")
            let plain = try plainForward(kind, rows: rows, features: features, expectedSum, gamma: c.gamma,
                                         beta: c.beta, threading: threading)
            expectBitwise(y, plain.output, "\(what) vs unfused")
            #expect(saved == plain.saved, "\(what) saved statistics")
            let worst = worstRelative(y, residualReference(kind, rows: rows, features: features, c))
            #expect(worst <= 2e-5, "\(what): error \(worst) against Float64")
        }
    }

    @Test("every row-engine strategy is reached by the fused tests")
    func strategies() throws {
        var seen = Set<String>()
        for features in fusedRowLengths {
            let rows = fusedRows(features)
            seen.insert("layer " + strategyName(try LayerNormalization(rows: rows, features: features).forwardPlan))
            seen.insert("rms " + strategyName(try RMSNormalization(rows: rows, features: features).forwardPlan))
        }
        for name in ["eightPerVector", "rowByRow", "geometry", "geometry (blocks)"] {
            #expect(seen.contains("rms " + name), "RMSNorm \(name) not reached: \(seen)")
            if name != "geometry" { #expect(seen.contains("layer " + name), "LayerNorm \(name) not reached: \(seen)") }
        }
    }

    @Test("residual forward without a sum output, and in place over x or the residual: the same bits",
          arguments: FusedRowKind.allCases, fusedRowLengths)
    func inPlace(kind: FusedRowKind, features: Int) throws {
        let rows = fusedRows(features), count = rows * features
        let c = ResidualCase(rows: rows, features: features, affine: .both, bias: true, seed: UInt64(features))
        let threading = Threading(threads: 3, parallelThreshold: 1)
        let expected = try residualForward(kind, rows: rows, features: features, c, threading: threading)
        let ln = try LayerNormalization(rows: rows, features: features, threading: threading)
        let rms = try RMSNormalization(rows: rows, features: features, threading: threading)
        func run(_ x: UnsafeBufferPointer<Float>, _ r: UnsafeBufferPointer<Float>, _ y: UnsafeMutableBufferPointer<Float>,
                 _ s: UnsafeMutableBufferPointer<Float>?) throws -> SavedStatistics {
            try withBuffers(c.gamma!, c.beta, c.inputBias) { g, b, ib in
                kind == .layer
                    ? try ln.forward(input: x, residual: r, output: y, sum: s, scale: g, bias: b, inputBias: ib)
                    : try rms.forward(input: x, residual: r, output: y, sum: s, scale: g, inputBias: ib)
            }
        }
        // (output over, sum over): 0 = fresh, 1 = x, 2 = residual; sum nil when -1.
        for (outputOver, sumOver) in [(0, -1), (1, -1), (2, -1), (1, 2), (2, 1), (0, 2), (0, 1), (1, 0)] {
            var x = c.x, r = c.r, y = [Float](repeating: .nan, count: count), s = [Float](repeating: .nan, count: count)
            let what = "\(kind) \(features) output over \(outputOver), sum over \(sumOver)"
            let saved = try x.withUnsafeMutableBufferPointer { xb in
                try r.withUnsafeMutableBufferPointer { rb in
                    try y.withUnsafeMutableBufferPointer { yb in
                        try s.withUnsafeMutableBufferPointer { sb in
                            let pick = [yb, xb, rb]
                            let out = pick[outputOver]
                            let sum: UnsafeMutableBufferPointer<Float>? = sumOver < 0 ? nil : (sumOver == 0 ? sb : pick[sumOver])
                            return try run(UnsafeBufferPointer(xb), UnsafeBufferPointer(rb), out, sum)
                        }
                    }
                }
            }
            let output = [y, x, r][outputOver]
            expectBitwise(output, expected.output, "\(what) output")
            if sumOver >= 0 { expectBitwise([s, x, r][sumOver], expected.sum, "\(what) sum") }
            #expect(saved == expected.saved, "\(what) saved")
        }
    }

    @Test("residual forward: bitwise the same for any thread count", arguments: FusedRowKind.allCases, [13, 1000, 20000])
    func determinism(kind: FusedRowKind, features: Int) throws {
        let rows = features == 20000 ? 3 : 70
        let c = ResidualCase(rows: rows, features: features, affine: .both, bias: true, seed: 99)
        try expectSameBitsForAnyThreading("\(kind) [\(rows), \(features)]") { threading in
            let (y, s, saved) = try residualForward(kind, rows: rows, features: features, c, threading: threading)
            return y + s + doubleBits(saved.mean) + doubleBits(saved.invStd)
        }
    }

    @Test("RMSNorm × gate forward: bitwise the plain output times the gate, close to Float64, any thread count",
          arguments: fusedRowLengths)
    func gate(features: Int) throws {
        let rows = fusedRows(features)
        var rng = streams.generator(UInt64(features) + 17)
        let x = rng.normals(rows * features, std: 2), gate = rng.normals(rows * features, std: 1.5)
        for gamma in [nil, rng.normals(features, mean: 1, std: 0.3)] {
            let what = "gate [\(rows), \(features)] γ \(gamma != nil)"
            let rms = try RMSNormalization(rows: rows, features: features, threading: Threading(threads: 2, parallelThreshold: 1))
            let (y, saved) = try rms.forward(x, gate: gate, scale: gamma)
            let plain = try rms.forward(x, scale: gamma)
            expectBitwise(y, (0..<y.count).map { plain.output[$0] * gate[$0] }, "\(what) vs unfused")
            #expect(saved == plain.saved, "\(what) saved")
            let reference = Reference.rmsNorm(x, rows: rows, features: features, scale: gamma).output
            #expect(worstRelative(y, (0..<y.count).map { reference[$0] * Double(gate[$0]) }) <= 2e-5, "\(what) Float64")
            // In place over the gate and over x.
            var overGate = gate, overX = x
            _ = try x.withUnsafeBufferPointer { xb in
                try overGate.withUnsafeMutableBufferPointer { g in
                    try withOptionalBuffer(gamma) { try rms.forward(input: xb, gate: UnsafeBufferPointer(g), output: g, scale: $0) }
                }
            }
            _ = try gate.withUnsafeBufferPointer { gb in
                try overX.withUnsafeMutableBufferPointer { xb in
                    try withOptionalBuffer(gamma) { try rms.forward(input: UnsafeBufferPointer(xb), gate: gb, output: xb, scale: $0) }
                }
            }
            expectBitwise(overGate, y, "\(what) in place over the gate")
            expectBitwise(overX, y, "\(what) in place over x")
        }
        if features == 1000 || features == 20000 {
            let rows = features == 20000 ? 3 : 30
            try expectSameBitsForAnyThreading("gate [\(rows), \(features)]") { threading in
                let rms = try RMSNormalization(rows: rows, features: features, threading: threading)
                let n = rows * features
                return try rms.forward(Array(x[0..<n]), gate: Array(gate[0..<n])).output
            }
        }
    }
}

extension FusedRowTests {
    @Test("huge sums: the Float64 redo of overflowing Float32 statistics, as the plain forward on s",
          arguments: FusedRowKind.allCases, [13, 100, 1000, 20000])
    func hugeSums(kind: FusedRowKind, features: Int) throws {
        let rows = fusedRows(features)
        var c = ResidualCase(rows: rows, features: features, affine: .both, bias: false, seed: 5)
        // |s| up to ~4e18: Σs² (and M2) overflow Float32 for rows of ≥ ~10 values.
        c.x = c.x.map { $0 * 1e18 }
        c.r = c.r.map { $0 * 1e18 }
        let threading = Threading(threads: 2, parallelThreshold: 1)
        let (y, s, saved) = try residualForward(kind, rows: rows, features: features, c, threading: threading)
        let plain = try plainForward(kind, rows: rows, features: features, s, gamma: c.gamma, beta: c.beta,
                                     threading: threading)
        expectBitwise(y, plain.output, "\(kind) \(features) huge vs unfused")
        #expect(saved == plain.saved && y.allSatisfy(\.isFinite), "\(kind) \(features) huge: finite, same statistics")
        let worst = worstRelative(y, residualReference(kind, rows: rows, features: features, c))
        #expect(worst <= 2e-5, "\(kind) \(features) huge: error \(worst) against Float64")
    }
}
