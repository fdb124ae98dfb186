// The pipelined LayerNorm forward of BFloat16 rows of whole 16-value steps runs each
// work item's whole loop in one C call (`nk_bf16_hw_layernorm_rows`) where the CPU has
// AVX-512 BF16: pivots, sums, the per-row finish (Float64 division, √, division) and
// the outputs. Against the Swift loops (`bothPaths`, the AVX-512 BF16 loops off): the
// same output bits and saved mean and 1/σ, at 1, 2 and 3 threads, every γ/β
// combination, cached and streamed stores, several items per call (their first two
// rows summed alone, their last two written alone), and rows whose finish the C loop
// hands to Swift's `ShiftedRowSums.moments` (recentred: the first 32 values far from
// the mean; Float64 fallback: squares beyond Float32) next to constant rows
// (variance 0). The calling thread's call counter shows the C loop ran.

import CNormSupport
import Testing
@testable import NormKernels

extension BFloat16HardwareTests {
    /// Rows of n values, by row mod 5: 3 ± 4; 1e4 ± 4; first 32 values 60 above the
    /// rest (recentred); ±1e30 (Float32 squares overflow: Float64 fallback); constant.
    private func itemRows(_ rows: Int, _ n: Int, _ rng: inout SplitMix64) -> [BFloat16] {
        (0..<rows * n).map { i in
            switch (i / n) % 5 {
            case 0: return BFloat16(3 + rng.uniform(-4...4))
            case 1: return BFloat16(1e4 + rng.uniform(-4...4))
            case 2: return BFloat16((i % n < 32 ? 60 : 0) + rng.uniform(-1...1))
            case 3: return BFloat16(1e30 * rng.uniform(-1...1))
            default: return BFloat16(-2.5)
            }
        }
    }

    /// One pipelined forward (`normalizeMomentRowsPipelined`) into a 64-byte aligned
    /// output, `streaming` as asked; its output, saved statistics and the C item
    /// loop's calls on this thread.
    private func pipelinedForward(_ x: [BFloat16], rows: Int, features: Int, gamma: [Float]?, beta: [Float]?,
                                  threading: Threading, streaming: Bool) throws
        -> (output: [BFloat16], saved: SavedStatistics, calls: UInt64) {
        let plan = try LayerNormalization(rows: rows, features: features, threading: threading).forwardPlan
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 2 * rows * features, alignment: 64)
        defer { raw.deallocate() }
        let y = raw.bindMemory(to: BFloat16.self, capacity: rows * features)
        y.initialize(repeating: BFloat16(bitPattern: 0x7FC1), count: rows * features)
        let before = nk_bf16_hw_layernorm_rows_thread_calls()
        let saved = x.withUnsafeBufferPointer { xp in
            withOptionalBuffer(gamma) { g in
                withOptionalBuffer(beta) { b in
                    normalizeMomentRowsPipelined(plan, xp.baseAddress!, y, epsilon: 1e-5, gamma: g?.baseAddress,
                                                 beta: b?.baseAddress, streaming: streaming)
                }
            }
        }
        nk_stream_fence()
        let calls = nk_bf16_hw_layernorm_rows_thread_calls() - before
        return (Array(UnsafeBufferPointer(start: y, count: rows * features)), saved, calls)
    }

    @Test(arguments: [(100, 768), (70, 1024), (600, 16), (530, 48)])
    func itemLoopGivesTheSwiftBits(rows: Int, features: Int) throws {
        var rng = SplitMix64("bf16 item rows \(rows)x\(features)")
        let x = itemRows(rows, features, &rng)
        let gamma = spread(features, &rng), beta = spread(features, &rng)
        // Several items per call, or the items' edges go untested.
        #expect(rows > ChunkSchedule.pipelinedRowChunk(rows: rows, length: features))
        for (g, b) in [(true, true), (true, false), (false, true), (false, false)] {
            for threading in [Threading.serial, Threading(threads: 2, parallelThreshold: 1),
                              Threading(threads: 3, parallelThreshold: 1)] {
                for streaming in [false, true] {
                    let context = "[\(rows), \(features)] γ \(g) β \(b) \(threading) streaming \(streaming)"
                    let out = bothPaths { () -> (result: (output: [BFloat16], saved: SavedStatistics, calls: UInt64)?,
                                                 hardware: Bool) in
                        (try? pipelinedForward(x, rows: rows, features: features, gamma: g ? gamma : nil,
                                               beta: b ? beta : nil, threading: threading, streaming: streaming),
                         BFloat16Hardware.available)
                    }
                    guard let hardware = out.hardware.result, let swift = out.swift.result else {
                        Issue.record("\(context): threw")
                        continue
                    }
                    #expect(mismatches(hardware.output, swift.output) == 0, "\(context)")
                    expectIdentical(hardware.saved, swift.saved, context)
                    #expect(swift.calls == 0, "\(context): the Swift path called the C item loop")
                    if out.hardware.hardware && threading.threads == 1 {
                        #expect(hardware.calls > 0, "\(context): the C item loop did not run")
                    }
                }
            }
        }
    }

    /// Through the public API (the plan's own store choice) at 1…4 threads, against
    /// the Swift loops at 1 thread.
    @Test(arguments: [(130, 768), (66, 1024)])
    func itemLoopThreadCounts(rows: Int, features: Int) throws {
        var rng = SplitMix64("bf16 item rows api \(rows)x\(features)")
        let x = itemRows(rows, features, &rng)
        let gamma = spread(features, &rng), beta = spread(features, &rng)
        let out = bothPaths { () -> [RowResult<BFloat16>?] in
            (1...4).map { threads in
                try? runRows(.layerNorm, rows: rows, features: features, x, gamma: gamma, beta: beta,
                             threading: threads == 1 ? .serial : Threading(threads: threads, parallelThreshold: 1))
            }
        }
        guard let reference = out.swift[0] else {
            Issue.record("[\(rows), \(features)]: threw")
            return
        }
        for (i, result) in out.hardware.enumerated() {
            let context = "[\(rows), \(features)] \(i + 1) threads"
            guard let result else {
                Issue.record("\(context): threw")
                continue
            }
            #expect(mismatches(result.output, reference.output) == 0, "\(context)")
            expectIdentical(result.saved, reference.saved, context)
        }
    }
}
