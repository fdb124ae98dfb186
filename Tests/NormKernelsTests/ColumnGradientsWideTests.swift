// BatchNorm NHWC backward with the 16-lane AVX-512 column loops
// (ColumnGradientsWide.swift, ColumnGradientsAVX512.h) against the 8-lane Swift
// loops they replace: the same inputs through both (`nk_avx512_columns_set(0)`
// takes the Swift loops), the same bits for dx, dγ and dβ, with and without the
// fused ReLU, on channel counts the C loops take (16...128 in steps of 16) and
// one they leave to Swift, on 1 and 3 threads, with enough rows for several
// row blocks. The wide runs must call the C loops (a thread-local call count,
// read on 1 thread) and the Swift runs must not. Skipped, with the reason, in a
// build without FMA or on a CPU without AVX-512 F/VL/BW/DQ.
// Serialized, so that one test's switch does not fall inside another's wide run;
// tests of other suites that switch the column loops take `avx512ColumnsSwitch`.
// The 16-bit cases: ColumnGradientsWideTests+SixteenBit.swift.

import CNormSupport
import Foundation
import Testing
@testable import NormKernels

let columnsBuildFuses = nk_build_has_fma() != 0
let columnsCPUSupports = nk_cpu_has_avx512() != 0
let columnsNotSwitchedOff = ProcessInfo.processInfo.environment["NORMKERNELS_AVX512_COLUMNS"] != "never"

/// Held while a test switches the AVX-512 column loops (nk_avx512_columns_set)
/// and runs with them, so that a switch in one suite does not fall inside
/// another's counted wide run. Taken before `bfloat16RoundingSwitch` when both are.
let avx512ColumnsSwitch = NSLock()

@Suite(.serialized) struct ColumnGradientsWideTests {
    /// dx, dγ, dβ of one backward, as raw bytes, and the C loop calls it made on this thread.
    private func run(_ bn: BatchNormalization, _ x: [Float], _ dy: [Float], _ y: [Float], _ gamma: [Float],
                     _ saved: SavedStatistics) throws -> (bits: [[UInt8]], calls: UInt64) {
        var dx = [Float](repeating: .nan, count: x.count)
        var dgamma = [Float](repeating: .nan, count: gamma.count), dbeta = dgamma
        let c0 = nk_col512_thread_calls()
        try x.withUnsafeBufferPointer { xp in
            try dy.withUnsafeBufferPointer { dyp in
                try y.withUnsafeBufferPointer { yp in
                    try gamma.withUnsafeBufferPointer { gp in
                        try dx.withUnsafeMutableBufferPointer { dxp in
                            try dgamma.withUnsafeMutableBufferPointer { dgp in
                                try dbeta.withUnsafeMutableBufferPointer { dbp in
                                    try bn.backwardTraining(input: xp, gradOutput: dyp, saved: saved, scale: gp,
                                                            output: yp, gradInput: dxp, gradScale: dgp, gradBias: dbp)
                                }
                            }
                        }
                    }
                }
            }
        }
        let calls = nk_col512_thread_calls() - c0
        let bits = [dx, dgamma, dbeta].map { v in v.withUnsafeBytes { Array($0) } }
        return (bits, calls)
    }

    @Test("BatchNorm NHWC backward: AVX-512 column loops == Swift loops bit for bit, 16...128 channels, ReLU, 1 and 3 threads",
          .enabled(if: columnsBuildFuses, "build without FMA (-Xcc -march=x86-64-v3): the AVX-512 column loops are never chosen"),
          .enabled(if: columnsCPUSupports, "CPU without AVX-512 F/VL/BW/DQ: the AVX-512 column loops are never chosen"),
          .enabled(if: columnsNotSwitchedOff, "NORMKERNELS_AVX512_COLUMNS=never: the AVX-512 column loops are off"))
    func batchNormNHWC() throws {
        avx512ColumnsSwitch.lock()
        defer { avx512ColumnsSwitch.unlock() }
        // (channels, N, H = W): 64 channels over 2700 rows is two row blocks (2048 + 652);
        // 72 is not a multiple of 16: Swift both ways, no calls.
        let cases = [(16, 2, 9), (48, 1, 13), (64, 3, 30), (80, 2, 7), (128, 2, 23), (72, 1, 11)]
        for (channels, n, side) in cases {
            let shape = TensorShape(n: n, c: channels, h: side, w: side, layout: .nhwc)
            var rng = SplitMix64("column gradients wide \(shape)")
            var x = rng.normals(shape.count, mean: 3, std: 2)
            for k in Swift.stride(from: 5, to: x.count, by: 97) { x[k] = Float(rng.uniform(-40...40)) }
            let dy = rng.normals(shape.count), gamma = rng.uniforms(channels, 0.5...2)
            let beta = rng.uniforms(channels, -1...1)
            let takes = channels % 16 == 0
            for relu in [false, true] {
                var first: [[UInt8]]?
                for threads in [1, 3] {
                    let context = "\(shape) relu \(relu) \(threads) threads"
                    let threading = Threading(threads: threads, parallelThreshold: 1024, spinMicroseconds: 0)
                    let bn = try BatchNormalization(shape: shape, fusedReLU: relu, threading: threading)
                    var y = [Float](repeating: 0, count: x.count)
                    let saved = try x.withUnsafeBufferPointer { xp in
                        try y.withUnsafeMutableBufferPointer { yp in
                            try gamma.withUnsafeBufferPointer { gp in
                                try beta.withUnsafeBufferPointer { bp in
                                    try bn.forwardTraining(input: xp, output: yp, scale: gp, bias: bp)
                                }
                            }
                        }
                    }
                    _ = nk_avx512_columns_set(1)
                    defer { _ = nk_avx512_columns_set(1) }
                    let wide = try run(bn, x, dy, y, gamma, saved)
                    _ = nk_avx512_columns_set(0)
                    let swift = try run(bn, x, dy, y, gamma, saved)
                    _ = nk_avx512_columns_set(1)
                    #expect(wide.bits == swift.bits, "\(context): AVX-512 vs Swift")
                    #expect(swift.calls == 0, "\(context): Swift run called the C loops")
                    if threads == 1 {
                        #expect((wide.calls > 0) == takes, "\(context): \(wide.calls) C loop calls")
                    }
                    if let first { #expect(wide.bits == first, "\(context): 1 vs \(threads) threads") }
                    first = first ?? wide.bits
                }
            }
        }
    }

    /// Runs in every build: says which way the loops go here, and that the switch turns them off.
    @Test("AVX-512 column loops: chosen exactly where the build and CPU allow, and the switch turns them off")
    func selection() {
        avx512ColumnsSwitch.lock()
        defer { avx512ColumnsSwitch.unlock() }
        let expected = columnsBuildFuses && columnsCPUSupports && columnsNotSwitchedOff
        #expect((nk_avx512_columns_set(1) != 0) == expected,
                "build fuses \(columnsBuildFuses), CPU supports \(columnsCPUSupports), switch on \(columnsNotSwitchedOff)")
        #expect(ColumnGradientsWide.runs(Float.self, Float.self, columns: 64) == expected)
        #expect(!ColumnGradientsWide.runs(Float.self, Float.self, columns: 72))
        #expect(!ColumnGradientsWide.runs(Float.self, Float.self, columns: 144))
        #expect(ColumnGradientsWide.runs(BFloat16.self, BFloat16.self, columns: 64) == expected)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        #expect(ColumnGradientsWide.runs(Float16.self, Float16.self, columns: 128) == expected)
        #expect(!ColumnGradientsWide.runs(Float16.self, Float16.self, columns: 136))
        #endif
        #expect(!ColumnGradientsWide.runs(BFloat16.self, Float.self, columns: 64))
        #expect(!ColumnGradientsWide.runs(Float.self, BFloat16.self, columns: 64))
        #expect(nk_avx512_columns_set(0) == 0 && !ColumnGradientsWide.runs(Float.self, Float.self, columns: 64))
        _ = nk_avx512_columns_set(1)
    }
}
