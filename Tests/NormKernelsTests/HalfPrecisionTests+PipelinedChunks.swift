// The pipelined LayerNorm forward of 16-bit rows takes items of
// `ChunkSchedule.pipelinedRowChunk` rows (up to 4 × `rowChunk`, chosen from the
// row count), each item starting its pipeline with two rows summed alone and
// ending with two rows written alone. A row's outputs and saved statistics must
// not depend on where items begin: the same tensor normalized whole (serial, 2
// and 3 threads) and as two calls of half the rows (another item size, so other
// first and last rows) gives the same bits. BFloat16 runs with the AVX-512 BF16
// loops where the CPU has them and with the Swift loops (`bothPaths`); Float16
// runs its Swift loop (with the prefetch of `ShiftedRowSums.sweep`).

import Testing
@testable import NormKernels

extension BFloat16HardwareTests {
    /// Rows of values around 3 with spread ±4, every third row far from zero.
    private func pipelinedRows(_ rows: Int, _ features: Int, seed: String) -> [Double] {
        var rng = SplitMix64(seed)
        return (0..<rows * features).map { i in
            ((i / features) % 3 == 2 ? 1e4 : 3) + rng.uniform(-4...4)
        }
    }

    /// The values' bits, through the exact widening to Float (one Float per 16-bit value).
    private func bits<E: NormElement>(_ v: [E]) -> [UInt32] { v.map { E.widen($0).bitPattern } }

    /// Whole-tensor calls (serial, 2 and 3 threads) and two half calls: identical.
    private func expectChunkIndependent<E: NormElement>(_ x: [E], rows: Int, features: Int, gamma: [Float],
                                                        beta: [Float], _ context: String) throws {
        let whole = try runRows(.layerNorm, rows: rows, features: features, x, gamma: gamma, beta: beta)
        #expect(whole.path == HalfPaths.rowByRow, "\(context): path \(whole.path)")
        for threads in [2, 3] {
            let t = try runRows(.layerNorm, rows: rows, features: features, x, gamma: gamma, beta: beta,
                                threading: Threading(threads: threads, parallelThreshold: 1))
            #expect(bits(t.output) == bits(whole.output), "\(context): \(threads) threads")
            expectIdentical(t.saved, whole.saved, "\(context): \(threads) threads")
        }
        let half = rows / 2
        let a = try runRows(.layerNorm, rows: half, features: features, Array(x[..<(half * features)]),
                            gamma: gamma, beta: beta)
        let b = try runRows(.layerNorm, rows: rows - half, features: features, Array(x[(half * features)...]),
                            gamma: gamma, beta: beta)
        #expect(bits(a.output) + bits(b.output) == bits(whole.output), "\(context): halves")
        #expect((a.saved.mean + b.saved.mean).map(\.bitPattern) == whole.saved.mean.map(\.bitPattern),
                "\(context): halves, saved mean")
        #expect((a.saved.invStd + b.saved.invStd).map(\.bitPattern) == whole.saved.invStd.map(\.bitPattern),
                "\(context): halves, saved 1/σ")
    }

    @Test(arguments: [(1100, 768), (700, 1024), (600, 1000)])
    func pipelinedChunksGiveTheSameBits(rows: Int, features: Int) throws {
        // The half calls must take another item size, or the test proves nothing.
        #expect(ChunkSchedule.pipelinedRowChunk(rows: rows, length: features)
                != ChunkSchedule.pipelinedRowChunk(rows: rows / 2, length: features))
        let values = pipelinedRows(rows, features, seed: "pipelined chunks \(rows)x\(features)")
        var rng = SplitMix64("pipelined chunks affine \(features)")
        let gamma = rng.uniforms(features, 0.5...1.5), beta = rng.uniforms(features, -1...1)
        let bf16 = values.map { BFloat16($0) }
        let out = bothPaths { () -> [String] in
            do {
                try expectChunkIndependent(bf16, rows: rows, features: features, gamma: gamma, beta: beta,
                                           "bf16 [\(rows), \(features)]")
                return []
            } catch { return ["\(error)"] }
        }
        #expect(out.hardware.isEmpty && out.swift.isEmpty, "bf16 threw: \(out)")
        let f16 = values.map { Float16($0) }
        try expectChunkIndependent(f16, rows: rows, features: features, gamma: gamma, beta: beta,
                                   "f16 [\(rows), \(features)]")
    }
}
