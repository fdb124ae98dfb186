// BFloat16 LayerNorm rows taken one at a time run their sums and outputs in
// pairs (BFloat16PairRows.swift): these cases put NaN and ±∞ where the
// pair-order rounding takes its NaN branch for some lanes of a vector only
// (a NaN in γ: one column; a NaN or ∞ in x: a whole row), on row lengths with
// and without a tail of n mod 16 values, and check the outputs against the
// Float32 kernel on the widened input: the same bits (NaN: NaN), on 1 and 2
// threads.

import Testing
@testable import NormKernels

@Suite struct BFloat16PairTests {
    @Test(arguments: [(9, 160), (6, 1000), (5, 1030), (4, 4096)])
    func rowsMatchFloat32(rows: Int, features: Int) throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15 &+ UInt64(features)
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2_000_001 - 1_000_000) / 250_000 + 3
        }
        var x = (0..<rows * features).map { _ in BFloat16(next()) }
        x[1 * features + 17] = .nan
        x[2 * features + 3] = .infinity
        var gamma = (0..<features).map { _ in next() / 4 }, beta = (0..<features).map { _ in next() }
        gamma[5] = .nan
        beta[features - 1] = -.infinity
        let wide = x.map { Float($0) }
        for (g, b) in [(true, true), (true, false), (false, true), (false, false)] {
            for threading in [Threading.serial, Threading(threads: 2, parallelThreshold: 1)] {
                let half = try runRows(.layerNorm, rows: rows, features: features, x, gamma: g ? gamma : nil,
                                       beta: b ? beta : nil, threading: threading)
                let full = try runRows(.layerNorm, rows: rows, features: features, wide, gamma: g ? gamma : nil,
                                       beta: b ? beta : nil, threading: threading)
                #expect(half.path == HalfPaths.rowByRow)
                var mismatches = 0
                for i in 0..<x.count {
                    let expected = BFloat16(full.output[i]), got = half.output[i]
                    let same = expected.isNaN ? got.isNaN : expected.bitPattern == got.bitPattern
                    if !same { mismatches += 1 }
                }
                #expect(mismatches == 0, "[\(rows), \(features)] γ \(g) β \(b) \(threading): \(mismatches) differ")
            }
        }
    }
}
