// The pipelined LayerNorm forward of Float16 rows of whole 16-value steps runs each work
// item's whole loop in one C call (`nk_f16_hw_layernorm_rows`, the BFloat16 item loop with
// Float16 loads and rounding) where the build fuses `muladd`, converts with F16C and the CPU
// has AVX-512. Against the Swift loop (`pipelinedRows`, the C loop switched off with
// `nk_f16_rows_set(0)`): the same output bits and saved mean and 1/σ, at 1, 2 and 3 threads
// (and 1–4 through the public API), every γ/β combination, cached and streamed stores,
// several items per call, and rows whose finish the C loop hands to Swift's
// `ShiftedRowSums.moments` (recentred; non-finite sums: NaN, ±∞) next to constant rows,
// values near ±60000, subnormal inputs, outputs that round to Float16 subnormals or
// overflow to ±∞ (γ from 2⁻³⁰ to 2²⁰), and random bit patterns. The calling thread's call
// counter shows the C loop ran (and did not, when switched off).

import CNormSupport
import Foundation
import Testing
@testable import NormKernels

#if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))

/// Held while a test switches the Float16 item loop (nk_f16_rows_set) and runs with it.
let float16ItemRowsSwitch = NSLock()

@Suite(.serialized) struct Float16ItemRowTests {
    /// `body` once with the C item loop allowed (as detected) and once with the Swift loop.
    func bothPaths<R>(_ body: () -> R) -> (c: R, swift: R) {
        float16ItemRowsSwitch.lock()
        defer { float16ItemRowsSwitch.unlock() }
        _ = nk_f16_rows_set(1)
        let c = body()
        _ = nk_f16_rows_set(0)
        let s = body()
        _ = nk_f16_rows_set(1)
        return (c, s)
    }

    func mismatches(_ a: [Float16], _ b: [Float16]) -> Int {
        a.count != b.count ? max(a.count, b.count) : zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count
    }

    /// γ or β: ±(1…2)·2^k, k in −30…20.
    func coefficients(_ count: Int, _ rng: inout SplitMix64) -> [Float] {
        (0..<count).map { _ in
            let sign: Float = rng.next() & 1 == 0 ? 1 : -1
            return sign * Float(1 + rng.unit()) * Float(sign: .plus, exponent: Int(rng.next() % 51) - 30,
                                                         significand: 1)
        }
    }

    /// Rows of n values, by row mod 9: 3 ± 4; 1000 ± 4; first 32 values 60 above the rest
    /// (recentred); ±60000; Float16 subnormals (±2⁻¹⁴ and below); constant; a NaN first
    /// (the pivot NaN); a +∞ inside (non-finite sums: the Float64 fallback); random bits.
    func itemRows(_ rows: Int, _ n: Int, _ rng: inout SplitMix64) -> [Float16] {
        (0..<rows * n).map { i in
            let j = i % n
            switch (i / n) % 9 {
            case 0: return Float16(3 + rng.uniform(-4...4))
            case 1: return Float16(1000 + rng.uniform(-4...4))
            case 2: return Float16((j < 32 ? 60 : 0) + rng.uniform(-1...1))
            case 3: return Float16(60000 * rng.uniform(-1...1))
            case 4: return Float16(bitPattern: UInt16(truncatingIfNeeded: rng.next()) & 0x83FF)
            case 5: return Float16(-2.5)
            case 6: return j == 0 ? Float16.nan : Float16(rng.uniform(-1...1))
            case 7: return j == n / 2 ? Float16.infinity : Float16(rng.uniform(-1...1))
            default: return Float16(bitPattern: UInt16(truncatingIfNeeded: rng.next()))
            }
        }
    }

    /// The bits an output starts with: a signaling NaN, which no narrowing produces.
    let unwritten: UInt16 = 0x7D01

    /// One pipelined forward (`normalizeMomentRowsPipelined`) into a 64-byte aligned
    /// output, `streaming` as asked; its output, saved statistics and the C item loop's
    /// calls on this thread.
    func pipelinedForward(_ x: [Float16], rows: Int, features: Int, gamma: [Float]?, beta: [Float]?,
                          threading: Threading, streaming: Bool) throws
        -> (output: [Float16], saved: SavedStatistics, calls: UInt64) {
        let plan = try LayerNormalization(rows: rows, features: features, threading: threading).forwardPlan
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 2 * rows * features, alignment: 64)
        defer { raw.deallocate() }
        let y = raw.bindMemory(to: Float16.self, capacity: rows * features)
        // A signaling NaN: every narrowing to Float16 (vcvtps2ph, or the software
        // conversion of a build without F16C) quiets a NaN, so no written output has
        // these bits (a quiet 0x7E01 did: a NaN row's output in the default build).
        y.initialize(repeating: Float16(bitPattern: unwritten), count: rows * features)
        let before = nk_f16_hw_layernorm_rows_thread_calls()
        let saved = x.withUnsafeBufferPointer { xp in
            withOptionalBuffer(gamma) { g in
                withOptionalBuffer(beta) { b in
                    normalizeMomentRowsPipelined(plan, xp.baseAddress!, y, epsilon: 1e-5, gamma: g?.baseAddress,
                                                 beta: b?.baseAddress, streaming: streaming)
                }
            }
        }
        nk_stream_fence()
        let calls = nk_f16_hw_layernorm_rows_thread_calls() - before
        return (Array(UnsafeBufferPointer(start: y, count: rows * features)), saved, calls)
    }

    @Test(arguments: [(100, 768), (70, 1024), (24, 4096), (600, 16), (530, 48)])
    func itemLoopGivesTheSwiftBits(rows: Int, features: Int) throws {
        var rng = SplitMix64("f16 item rows \(rows)x\(features)")
        let x = itemRows(rows, features, &rng)
        let gamma = coefficients(features, &rng), beta = coefficients(features, &rng)
        // Several items per call, or the items' edges go untested.
        #expect(rows > ChunkSchedule.pipelinedRowChunk(rows: rows, length: features))
        for (g, b) in [(true, true), (true, false), (false, true), (false, false)] {
            for threading in [Threading.serial, Threading(threads: 2, parallelThreshold: 1),
                              Threading(threads: 3, parallelThreshold: 1)] {
                for streaming in [false, true] {
                    let context = "[\(rows), \(features)] γ \(g) β \(b) \(threading) streaming \(streaming)"
                    let out = bothPaths { () -> (result: (output: [Float16], saved: SavedStatistics, calls: UInt64)?,
                                                 inC: Bool) in
                        (try? pipelinedForward(x, rows: rows, features: features, gamma: g ? gamma : nil,
                                               beta: b ? beta : nil, threading: threading, streaming: streaming),
                         Float16ItemRows.available)
                    }
                    guard let c = out.c.result, let swift = out.swift.result else {
                        Issue.record("\(context): threw")
                        continue
                    }
                    #expect(mismatches(c.output, swift.output) == 0, "\(context)")
                    expectIdentical(c.saved, swift.saved, context)
                    #expect(!c.output.contains { $0.bitPattern == unwritten }, "\(context): an output left unwritten")
                    #expect(swift.calls == 0, "\(context): the Swift path called the C item loop")
                    if out.c.inC && threading.threads == 1 {
                        #expect(c.calls > 0, "\(context): the C item loop did not run")
                    }
                }
            }
        }
    }

    /// Through the public API (the plan's own store choice) at 1…4 threads, against the
    /// Swift loop at 1 thread.
    @Test(arguments: [(130, 768), (66, 1024), (45, 4096)])
    func itemLoopThreadCounts(rows: Int, features: Int) throws {
        var rng = SplitMix64("f16 item rows api \(rows)x\(features)")
        let x = itemRows(rows, features, &rng)
        let gamma = coefficients(features, &rng), beta = coefficients(features, &rng)
        let out = bothPaths { () -> [RowResult<Float16>?] in
            (1...4).map { threads in
                try? runRows(.layerNorm, rows: rows, features: features, x, gamma: gamma, beta: beta,
                             threading: threads == 1 ? .serial : Threading(threads: threads, parallelThreshold: 1))
            }
        }
        guard let reference = out.swift[0] else {
            Issue.record("[\(rows), \(features)]: threw")
            return
        }
        for (i, result) in out.c.enumerated() {
            let context = "[\(rows), \(features)] \(i + 1) threads"
            guard let result else {
                Issue.record("\(context): threw")
                continue
            }
            #expect(mismatches(result.output, reference.output) == 0, "\(context)")
            expectIdentical(result.saved, reference.saved, context)
        }
    }

    /// The C loop runs where the build and CPU allow it (an AVX-512 CPU in an F16C + FMA
    /// build), so that the tests above compare two different loops there.
    @Test func itemLoopIsTakenWhereAvailable() throws {
        let cpu = nk_cpu_has_avx512() != 0 && ProcessInfo.processInfo.environment["NORMKERNELS_F16_ROWS"] != "never"
        let build = nk_build_has_fma() != 0 && nk_build_has_f16c() != 0
        float16ItemRowsSwitch.lock()
        defer { float16ItemRowsSwitch.unlock() }
        _ = nk_f16_rows_set(1)
        #expect(Float16ItemRows.available == (cpu && build))
        var rng = SplitMix64("f16 item rows taken")
        let x = itemRows(40, 768, &rng)
        let before = nk_f16_hw_layernorm_rows_thread_calls()
        _ = try runRows(.layerNorm, rows: 40, features: 768, x, gamma: nil, beta: nil)
        let calls = nk_f16_hw_layernorm_rows_thread_calls() - before
        #expect((calls > 0) == (cpu && build), "calls \(calls)")
    }
}

#endif
