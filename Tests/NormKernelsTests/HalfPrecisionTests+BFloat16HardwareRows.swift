// The LayerNorm/RMSNorm row loops that round BFloat16 with AVX-512 BF16 at run
// time (`nk_bf16_hw_elementwise`, `nk_bf16_hw_shifted_sums`,
// `nk_bf16_hw_row_gradient`) against the Swift loops they replace, through
// `bothPaths` (BFloat16HardwareTests): the same bits. γ and β spread over
// 2⁻¹⁴⁰…2¹⁰⁰, so outputs include Float32 subnormals (which the instruction
// flushes and the loops send to the integer formula) and values that round
// to ±∞; row lengths with and without a tail of n mod 16 values, rows enough
// that the pipelined forward takes its first, middle and last rows; 1 and 2
// threads. x holds no NaN where a NaN could meet another NaN in one
// multiply-add (which NaN's payload comes out depends on the instruction form
// the compiler picks, in C and in Swift alike).

import Testing
@testable import NormKernels

extension BFloat16HardwareTests {
    /// Floats of either sign with exponents spread over −140 … 100.
    func spread(_ count: Int, _ rng: inout SplitMix64) -> [Float] {
        (0..<count).map { _ in
            let sign: Float = rng.next() & 1 == 0 ? 1 : -1
            return sign * Float(1 + rng.unit()) * Float(sign: .plus, exponent: Int(rng.next() % 241) - 140,
                                                         significand: 1)
        }
    }

    /// Finite BFloat16 rows: values around 3 with spread ±4, some rows far from zero.
    func rowValues(_ rows: Int, _ features: Int, _ rng: inout SplitMix64) -> [BFloat16] {
        (0..<rows * features).map { i in
            let offset: Double = (i / features) % 3 == 2 ? 1e4 : 3
            return BFloat16(offset + rng.uniform(-4...4))
        }
    }

    @Test(arguments: [16, 272, 1000, 4096])
    func elementwiseRuns(n: Int) {
        var rng = SplitMix64("bf16 hardware elementwise \(n)")
        let x = randomBits(n + 3, &rng)
        let k = coefficients(2, &rng), gamma = spread(n + 3, &rng), beta = spread(n + 3, &rng)
        let pivot = Float(x[0]).isFinite ? Float(x[0]) : 1
        for (g, b) in [(true, true), (true, false), (false, true), (false, false)] {
            for streaming in [false, true] {
                let out = bothPaths { () -> [BFloat16] in
                    var y = [BFloat16](repeating: 0, count: n + 3)
                    x.withUnsafeBufferPointer { xp in
                        gamma.withUnsafeBufferPointer { gp in
                            beta.withUnsafeBufferPointer { bp in
                                y.withUnsafeMutableBufferPointer { yp in
                                    // Offset 1: a head before the aligned body, and a tail.
                                    Apply.elementwise(xp.baseAddress! + 1, yp.baseAddress! + 1, n, pivot: pivot,
                                                      invStd: k[0], shift: k[1], gamma: g ? gp.baseAddress! + 1 : nil,
                                                      beta: b ? bp.baseAddress! + 1 : nil, streaming: streaming)
                                }
                            }
                        }
                    }
                    return y
                }
                #expect(mismatches(out.hardware, out.swift) == 0, "n \(n) γ \(g) β \(b) streaming \(streaming)")
            }
        }
    }

    /// LayerNorm forward rows taken one at a time (the pipelined loop: sums
    /// and outputs in `nk_bf16_hw_shifted_sums`, the last rows of a chunk in
    /// `nk_bf16_hw_elementwise`) and RMSNorm (the rows geometry's `Apply.elementwise`).
    @Test(arguments: [(9, 160), (7, 1000), (5, 1030), (4, 4096), (3, 16)])
    func rowForward(rows: Int, features: Int) throws {
        var rng = SplitMix64("bf16 hardware rows \(rows)x\(features)")
        let x = rowValues(rows, features, &rng)
        let gamma = spread(features, &rng), beta = spread(features, &rng)
        for op in RowOp.allCases {
            for (g, b) in [(true, true), (true, false), (false, true), (false, false)] where op == .layerNorm || !b {
                for threading in [Threading.serial, Threading(threads: 2, parallelThreshold: 1)] {
                    let out = bothPaths { () -> RowResult<BFloat16>? in
                        try? runRows(op, rows: rows, features: features, x, gamma: g ? gamma : nil,
                                     beta: b ? beta : nil, threading: threading)
                    }
                    let context = "\(op) [\(rows), \(features)] γ \(g) β \(b) \(threading)"
                    guard let hardware = out.hardware, let swift = out.swift else {
                        Issue.record("\(context): threw")
                        continue
                    }
                    #expect(mismatches(hardware.output, swift.output) == 0, "\(context)")
                    expectIdentical(hardware.saved, swift.saved, context)
                }
            }
        }
    }

    /// LayerNorm and RMSNorm backward (`ShortRowsBackward`'s dx loop in
    /// `nk_bf16_hw_row_gradient`), with and without γ.
    @Test(arguments: [(9, 160), (7, 1000), (5, 1030), (4, 4096)])
    func rowBackward(rows: Int, features: Int) throws {
        var rng = SplitMix64("bf16 hardware row gradients \(rows)x\(features)")
        let x = rowValues(rows, features, &rng)
        let dy = (0..<rows * features).map { _ in BFloat16(rng.uniform(-2...2)) }
        let gamma = spread(features, &rng)
        for op in RowOp.allCases {
            let saved = try runRows(op, rows: rows, features: features, x, gamma: nil, beta: nil).saved
            for withGamma in [true, false] {
                for threading in [Threading.serial, Threading(threads: 2, parallelThreshold: 1)] {
                    let out = bothPaths { () -> [[Float]]? in
                        try? gradients(op, rows: rows, features: features, x, dy, saved,
                                       gamma: withGamma ? gamma : nil, threading: threading)
                    }
                    let context = "\(op) [\(rows), \(features)] γ \(withGamma) \(threading)"
                    guard let hardware = out.hardware, let swift = out.swift else {
                        Issue.record("\(context): threw")
                        continue
                    }
                    for (part, (h, s)) in zip(["dx", "dγ", "dβ"], zip(hardware, swift)) {
                        let differ = zip(h, s).filter { $0.bitPattern != $1.bitPattern }.count
                        #expect(differ == 0, "\(context): \(part) \(differ) differ")
                    }
                }
            }
        }
    }

    /// dx (its bits as Floats), dγ and dβ of one backward call.
    private func gradients(_ op: RowOp, rows: Int, features: Int, _ x: [BFloat16], _ dy: [BFloat16],
                           _ saved: SavedStatistics, gamma: [Float]?, threading: Threading) throws -> [[Float]] {
        var dx = [BFloat16](repeating: 0, count: x.count)
        var dgamma = [Float](repeating: 0, count: features), dbeta = dgamma
        try x.withUnsafeBufferPointer { xp in
            try dy.withUnsafeBufferPointer { dyp in
                try withOptionalBuffer(gamma) { g in
                    try dx.withUnsafeMutableBufferPointer { dxp in
                        try dgamma.withUnsafeMutableBufferPointer { dg in
                            try dbeta.withUnsafeMutableBufferPointer { db in
                                switch op {
                                case .layerNorm:
                                    try LayerNormalization(rows: rows, features: features, threading: threading)
                                        .backward(input: xp, gradOutput: dyp, saved: saved, scale: g, gradInput: dxp,
                                                  gradScale: dg, gradBias: db)
                                case .rmsNorm:
                                    try RMSNormalization(rows: rows, features: features, threading: threading)
                                        .backward(input: xp, gradOutput: dyp, saved: saved, scale: g, gradInput: dxp,
                                                  gradScale: dg)
                                }
                            }
                        }
                    }
                }
            }
        }
        return [dx.map { Float(bitPattern: UInt32($0.bitPattern)) }, dgamma, dbeta]
    }
}
