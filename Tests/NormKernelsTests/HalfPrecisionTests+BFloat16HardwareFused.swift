// The fused row engine's BFloat16 rounding in C (`fusedRowOutput`'s blocks:
// `nk_bf16_hw_narrow`, `nk_bf16_hw_gate`; the residual sum:
// `nk_bf16_hw_residual_sum`) against the Swift loops' integer rounding,
// through `bothPaths`: the same bits. Residual LayerNorm and RMSNorm (with
// and without the residual's bias and the affine), RMSNorm × gate, and
// GroupNorm + SiLU on feature vectors (the default epilogue after a SiLU), at
// 1 and 2 threads, on row lengths that reach row by row and the rows geometry
// (with and without blocks) and leave a tail of n mod 16 values; rows under
// `fusedRoundingMinimum` (128 values) keep the Swift output loop, and 100
// checks that edge. γ spread over 2⁻¹⁴⁰…2¹⁰⁰ so that outputs include Float32
// subnormals (which the instruction flushes and `nk_hw_round16` sends to the
// integer formula) and ±∞. On a CPU without AVX-512 BF16 both runs take the
// Swift loops (the suite's other files say the same).

import Testing
@testable import NormKernels

extension BFloat16HardwareTests {
    @Test("Fused row outputs: BFloat16 rounded in C == the Swift loop, every strategy, 1 and 2 threads",
          arguments: [100, 128, 1000, 1030, 20000])
    func fusedRowOutputs(features: Int) throws {
        var rng = SplitMix64("bf16 hardware fused rows \(features)")
        let rows = fusedRows(features)
        let x = rowValues(rows, features, &rng), r = rowValues(rows, features, &rng)
        let gate = rowValues(rows, features, &rng)
        let gamma = spread(features, &rng), beta = spread(features, &rng)
        let inputBias = (0..<features).map { _ in Float(rng.uniform(-1...1)) }
        var strategies = Set<String>()
        for threading in [Threading.serial, Threading(threads: 2, parallelThreshold: 1)] {
            let context = "[\(rows), \(features)] \(threading)"
            let rms = try RMSNormalization(rows: rows, features: features, threading: threading)
            let ln = try LayerNormalization(rows: rows, features: features, threading: threading)
            strategies.insert(strategyName(rms.forwardPlan))
            for affine in [false, true] {
                for bias in [false, true] {
                    let g = affine ? gamma : nil, ib = bias ? inputBias : nil
                    let residualRMS = bothPaths { try? rms.forward(x, residual: r, scale: g, inputBias: ib) }
                    let residualLN = bothPaths {
                        try? ln.forward(x, residual: r, scale: g, bias: affine ? beta : nil, inputBias: ib)
                    }
                    for (name, out) in [("residual RMSNorm", residualRMS), ("residual LayerNorm", residualLN)] {
                        guard let h = out.hardware, let s = out.swift else {
                            Issue.record("\(name) \(context): threw"); continue
                        }
                        #expect(mismatches(h.output, s.output) == 0, "\(name) y \(context) γ \(affine) b \(bias)")
                        #expect(mismatches(h.sum, s.sum) == 0, "\(name) sum \(context) γ \(affine) b \(bias)")
                    }
                }
                let gated = bothPaths { try? rms.forward(x, gate: gate, scale: affine ? gamma : nil) }
                guard let h = gated.hardware, let s = gated.swift else {
                    Issue.record("gate \(context): threw"); continue
                }
                #expect(mismatches(h.output, s.output) == 0, "gate y \(context) γ \(affine)")
            }
        }
        if features == 128 { #expect(strategies.contains("rowByRow"), "\(strategies)") }
        if features == 1000 { #expect(strategies.contains("geometry"), "\(strategies)") }
        if features == 20000 { #expect(strategies.contains("geometry (blocks)"), "\(strategies)") }
    }

    @Test("GroupNorm + SiLU on feature vectors: BFloat16 rounded in C == the Swift loop")
    func fusedSiLUFeatureVectors() throws {
        var rng = SplitMix64("bf16 hardware fused silu")
        let n = 7, c = 32 * 160   // rows of 160 values: past the C minimum
        let x = rowValues(n, c, &rng)
        let gamma = spread(c, &rng), beta = spread(c, &rng)
        let modulation = (0..<n * c).map { _ in Float(rng.uniform(-1...1)) }
        for threading in [Threading.serial, Threading(threads: 2, parallelThreshold: 1)] {
            let gn = try GroupNormalization(shape: TensorShape(n: n, c: c), groups: 32, threading: threading)
            for modulated in [false, true] {
                let out = bothPaths {
                    try? gn.forwardSiLU(x, scale: gamma, bias: beta, modulationScale: modulated ? modulation : nil,
                                        modulationShift: modulated ? Array(modulation.reversed()) : nil)
                }
                guard let h = out.hardware, let s = out.swift else {
                    Issue.record("GroupNorm + SiLU \(threading): threw"); continue
                }
                #expect(mismatches(h.output, s.output) == 0, "GroupNorm + SiLU \(threading) modulated \(modulated)")
            }
        }
    }
}
