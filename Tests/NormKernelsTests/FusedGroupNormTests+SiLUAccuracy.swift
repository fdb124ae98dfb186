// The SiLU lanes of GroupNorm + SiLU (`SiLU.swift`: σ from e^(−|z|), 2^n·e^t
// with a degree-5 polynomial) against Float64 on a dense sweep of Float32:
// every 97th bit pattern with |z| ≤ 200 (≈ 23 million values, every binade
// from the subnormals up), then the special values. The bounds are the
// measured maxima of `SiLU.swift`'s file comment (3.5 ulp, 4.2 ulp, 5.8) with
// some margin:
// - σ within 4 ulp, silu within 5 ulp where z ≥ −87.3365 (e^(−|z|) normal);
// - silu′ within 7·2^−24·(σ + |z·σ(1 − σ)|), the size of its two terms;
// - below −87.3365 σ = 0 and silu = −0 (the true values are < 1.2e−38 and
//   1.1e−36 in magnitude), silu′ = 0;
// - never NaN for a non-NaN finite z; σ ∈ [0, 1].
import Foundation
import Testing
@testable import NormKernels

struct SiLUAccuracyTests {
    @Test("σ, silu, silu′: dense sweep against Float64, saturation, ±∞, NaN, subnormals")
    func denseSweep() {
        let cutoff = -87.3365
        var worstSigmoid = 0.0, worstSiLU = 0.0, worstGradient = 0.0, swept = 0
        var pattern: UInt32 = 0
        while true {
            let z = Float(bitPattern: pattern)
            if z.isFinite && z.magnitude <= 200 {
                swept += 1
                let d = Double(z), s = 1 / (1 + Foundation.exp(-d))
                let lanes = F8(repeating: z)
                let sigma = sigmoid8(lanes)[0], y = silu8(lanes)[0]
                let g = siluGradient8(lanes, F8(repeating: 1))[0]
                #expect(!sigma.isNaN && !y.isNaN && !g.isNaN && sigma >= 0 && sigma <= 1, "z = \(z)")
                if d >= cutoff {
                    worstSigmoid = max(worstSigmoid, abs(Double(sigma) - s) / Double(Float(s).ulp))
                    worstSiLU = max(worstSiLU, abs(Double(y) - d * s) / Double(Float(d * s).ulp))
                    let a = s, b = d * s * (1 - s)
                    worstGradient = max(worstGradient, abs(Double(g) - (a + b)) / ((abs(a) + abs(b)) * 0x1p-24))
                } else {
                    #expect(sigma == 0 && y == 0 && y.sign == .minus && g == 0, "z = \(z)")
                }
            }
            if pattern > UInt32.max - 97 { break }
            pattern += 97
        }
        #expect(swept > 20_000_000)
        #expect(worstSigmoid <= 4, "σ: \(worstSigmoid) ulp")
        #expect(worstSiLU <= 5, "silu: \(worstSiLU) ulp")
        #expect(worstGradient <= 7, "silu′: \(worstGradient)·2^−24·(σ + |zσ(1 − σ)|)")

        // Saturation far out, both signs, up to the largest finite value.
        for z: Float in [100, 1e4, 1e30, .greatestFiniteMagnitude] {
            #expect(sigmoid8(F8(repeating: z))[0] == 1 && sigmoid8(F8(repeating: -z))[0] == 0, "\(z)")
            #expect(silu8(F8(repeating: z))[0] == z && silu8(F8(repeating: -z))[0] == 0, "\(z)")
            #expect(siluGradient8(F8(repeating: z), F8(repeating: 1))[0] == 1, "\(z)")
            #expect(siluGradient8(F8(repeating: -z), F8(repeating: 1))[0] == 0, "\(z)")
        }
        // ±∞ and NaN: σ(±∞) = 1, 0; silu(+∞) = +∞; silu(−∞) = −∞·0 = NaN as in
        // PyTorch's z/(1 + e^(−z)); NaN stays NaN in every lane function.
        #expect(sigmoid8(F8(repeating: .infinity))[0] == 1 && sigmoid8(F8(repeating: -.infinity))[0] == 0)
        #expect(silu8(F8(repeating: .infinity))[0] == .infinity && silu8(F8(repeating: -.infinity))[0].isNaN)
        for nan in [Float.nan, -Float.nan, Float.signalingNaN] {
            #expect(sigmoid8(F8(repeating: nan))[0].isNaN && silu8(F8(repeating: nan))[0].isNaN)
            #expect(siluGradient8(F8(repeating: nan), F8(repeating: 1))[0].isNaN && exp8(F8(repeating: nan))[0].isNaN)
        }
        // Zeros and subnormals: σ = 1/2 exactly, silu(z) = z/2, silu′ = 1/2.
        for z: Float in [0, -0.0, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, 1e-40, -1e-40,
                         .leastNormalMagnitude, -.leastNormalMagnitude] {
            #expect(sigmoid8(F8(repeating: z))[0] == 0.5, "\(z)")
            #expect(silu8(F8(repeating: z))[0] == z / 2, "\(z)")
            #expect(siluGradient8(F8(repeating: z), F8(repeating: 1))[0] == 0.5, "\(z)")
        }
        // Scalar entry point = lane 0 of the vector one, in every lane position.
        let mixed = F8(-90, -3.5, -0.25, 0, 0.5, 7, 88, 1e-42)
        let vector = silu8(mixed)
        for l in 0..<8 { #expect(SiLUActivation.apply(mixed[l]).bitPattern == vector[l].bitPattern, "lane \(l)") }
    }
}
