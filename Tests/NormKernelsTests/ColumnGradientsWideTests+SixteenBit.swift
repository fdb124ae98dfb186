// The AVX-512 column loops on Float16 and BFloat16 tensors
// (nk_col512_*_f16 / _bf16, ColumnGradientsWide.swift) against the loops they
// replace, bit for bit:
// - the two passes alone (`BlockGradients.columns`, `applyColumns`) on hard
//   inputs: random 16-bit patterns (NaN with payloads, ±∞, subnormals, ±0) and
//   coefficients over 2⁻⁶⁰…2⁶⁰, so dx overflows, lands on subnormals and
//   rounds NaNs; finite values over the whole exponent range for the sums;
//   with and without the mask, streaming or not, row stride = columns or more;
// - BatchNorm NHWC (with and without the fused ReLU, a mask with NaN, −0 and
//   subnormals), InstanceNorm NHWC and GroupNorm NHWC backward, 1 and 3 threads.
// Each wide run is compared with the same call with the column loops off
// (`nk_avx512_columns_set(0)`: the Swift loops, and for BFloat16 dx on an
// AVX-512 BF16 CPU the hardware-rounded C loop) and with the BFloat16 rounding
// hardware off as well (all Swift). The wide runs must call the C loops (the
// thread-local count) exactly where `runs` takes the columns; the others never.

import CNormSupport
import Foundation
import Testing
@testable import NormKernels

extension ColumnGradientsWideTests {
    /// `body` three ways: wide (column loops on), Swift (off), plain (off, and
    /// the AVX-512 BF16 rounding off too), with the C loop calls of each.
    func threeWays<R>(_ body: () throws -> R) rethrows -> [(result: R, calls: UInt64)] {
        bfloat16RoundingSwitch.lock()
        defer { _ = nk_avx512_columns_set(1); _ = nk_avx512bf16_set(1); bfloat16RoundingSwitch.unlock() }
        var out: [(R, UInt64)] = []
        for (columns, hardware) in [(1, 1), (0, 1), (0, 0)] as [(Int32, Int32)] {
            _ = nk_avx512_columns_set(columns)
            _ = nk_avx512bf16_set(hardware)
            let c0 = nk_col512_thread_calls()
            let r = try body()
            out.append((r, nk_col512_thread_calls() - c0))
        }
        return out
    }

    /// Random 16-bit patterns: NaN (with payloads), ±∞, subnormals, ±0 among them.
    func randomPatterns<E: NormElement>(_: E.Type, _ count: Int, _ rng: inout SplitMix64) -> [E] {
        (0..<count).map { _ in unsafeBitCast(UInt16(truncatingIfNeeded: rng.next()), to: E.self) }
    }

    /// Finite values ±(1 + u)·2ᵏ over `exponents` (rounded to E: some to 0 or ±∞ at the ends).
    func spread<E: NormElement>(_: E.Type, _ count: Int, _ exponents: ClosedRange<Int>,
                                _ rng: inout SplitMix64) -> [E] {
        (0..<count).map { _ in
            let sign: Float = rng.next() & 1 == 0 ? 1 : -1
            let k = exponents.lowerBound + Int(rng.next() % UInt64(exponents.count))
            return E.narrow(sign * Float(1 + rng.unit()) * Float(sign: .plus, exponent: k, significand: 1))
        }
    }

    func coefficients(_ count: Int, _ exponents: ClosedRange<Int>, _ rng: inout SplitMix64) -> [Float] {
        spread(Float.self, count, exponents, &rng)
    }

    func bytes<T>(_ a: [T]) -> [UInt8] { a.withUnsafeBytes { Array($0) } }

    /// Bytes that differ (a count, so that a failure prints a number, not the arrays).
    func differing(_ a: [UInt8], _ b: [UInt8]) -> Int {
        a.count == b.count ? zip(a, b).filter { $0 != $1 }.count : max(a.count, b.count)
    }

    /// The finite exponent range of E's normal and subnormal values.
    func exponents<E: NormElement>(_: E.Type) -> ClosedRange<Int> {
        E.self == BFloat16.self ? -133...127 : -24...15
    }

    func passes<E: NormElement>(_: E.Type) throws {
        let name = "\(E.self)"
        for columns in [16, 48, 64, 80, 128, 72] {
            for stride in [columns, columns + 24] {
                let rows = 300  // three Float32 accumulation blocks of the sums (128 + 128 + 44 rows)
                var rng = SplitMix64("wide columns 16-bit \(name) \(columns) \(stride)")
                let takes = columns % 16 == 0
                let context = "\(name) [\(rows), \(columns)] stride \(stride)"
                // dx: any patterns.
                let x = randomPatterns(E.self, rows * stride, &rng), dy = randomPatterns(E.self, rows * stride, &rng)
                let mask = randomPatterns(E.self, rows * stride, &rng)
                let pool = WorkspacePool(), arena = pool.take()
                defer { pool.recycle(arena) }
                let table = GradientTable(count: columns, in: arena)
                let a = coefficients(columns, -60...60, &rng), b = coefficients(columns, -60...60, &rng)
                let c = coefficients(columns, -60...60, &rng), p = coefficients(columns, -8...8, &rng)
                for j in 0..<columns { table.pivot[j] = p[j]; table.a[j] = a[j]; table.b[j] = b[j]; table.c[j] = c[j] }
                for masked in [false, true] {
                    for streaming in [false, true] {
                        let ways = threeWays { () -> [E] in
                            var dx = [E](repeating: E.narrow(.nan), count: rows * stride)
                            x.withUnsafeBufferPointer { xp in
                                dy.withUnsafeBufferPointer { dp in
                                    mask.withUnsafeBufferPointer { mp in
                                        dx.withUnsafeMutableBufferPointer { dxp in
                                            BlockGradients.applyColumns(
                                                x: xp.baseAddress!, dy: dp.baseAddress!,
                                                mask: masked ? mp.baseAddress! : nil, dxp.baseAddress!,
                                                rows: rows, columns: columns, stride: stride, table: table, slot: 0,
                                                streaming: streaming)
                                        }
                                    }
                                }
                            }
                            return dx
                        }
                        let what = "\(context) dx masked \(masked) streaming \(streaming)"
                        #expect(differing(bytes(ways[0].result), bytes(ways[1].result)) == 0, "\(what): wide vs columns off")
                        #expect(differing(bytes(ways[0].result), bytes(ways[2].result)) == 0, "\(what): wide vs all Swift")
                        #expect((ways[0].calls > 0) == takes, "\(what): \(ways[0].calls) C loop calls")
                        #expect(ways[1].calls == 0 && ways[2].calls == 0, "\(what): Swift runs called the C loops")
                    }
                }
                // Sums: finite values over the whole range, a few specials in two columns.
                var xs = spread(E.self, rows * stride, exponents(E.self), &rng)
                let dys = spread(E.self, rows * stride, exponents(E.self), &rng)
                xs[5 * stride + 3] = E.narrow(.infinity)
                xs[7 * stride + columns - 1] = E.narrow(.nan)
                let scale = coefficients(columns, -40...40, &rng), shift = coefficients(columns, -40...40, &rng)
                for masked in [false, true] {
                    let ways = threeWays { () -> [GradientSums] in
                        let out = UnsafeMutablePointer<GradientSums>.allocate(capacity: columns)
                        defer { out.deallocate() }
                        xs.withUnsafeBufferPointer { xp in
                            dys.withUnsafeBufferPointer { dp in
                                mask.withUnsafeBufferPointer { mp in
                                    BlockGradients.columns(xp.baseAddress!, dp.baseAddress!,
                                                           mask: masked ? mp.baseAddress! : nil,
                                                           rows: rows, columns: columns, stride: stride,
                                                           pivot: table.pivot, scale: scale, shift: shift, into: out)
                                }
                            }
                        }
                        return Array(UnsafeBufferPointer(start: out, count: columns))
                    }
                    let what = "\(context) sums masked \(masked)"
                    #expect(differing(bytes(ways[0].result), bytes(ways[1].result)) == 0, "\(what): wide vs columns off")
                    #expect(differing(bytes(ways[0].result), bytes(ways[2].result)) == 0, "\(what): wide vs all Swift")
                    #expect((ways[0].calls > 0) == takes, "\(what): \(ways[0].calls) C loop calls")
                    #expect(ways[1].calls == 0 && ways[2].calls == 0, "\(what): Swift runs called the C loops")
                }
            }
        }
    }

    @Test("16-bit column passes: AVX-512 loops == Swift loops bit for bit on NaN/∞/subnormal patterns, 16...128 columns",
          .enabled(if: columnsBuildFuses, "build without FMA (-Xcc -march=x86-64-v3): the AVX-512 column loops are never chosen"),
          .enabled(if: columnsCPUSupports, "CPU without AVX-512 F/VL/BW/DQ: the AVX-512 column loops are never chosen"),
          .enabled(if: columnsNotSwitchedOff, "NORMKERNELS_AVX512_COLUMNS=never: the AVX-512 column loops are off"))
    func sixteenBitPasses() throws {
        avx512ColumnsSwitch.lock()
        defer { avx512ColumnsSwitch.unlock() }
        try passes(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try passes(Float16.self)
        #endif
    }

    @Test("BFloat16 dx rounded by vcvtneps2bf16 in the AVX-512 column loop: Float32-subnormal dx takes the formula (dx = dy exactly)",
          .enabled(if: columnsBuildFuses, "build without FMA (-Xcc -march=x86-64-v3): the AVX-512 column loops are never chosen"),
          .enabled(if: columnsCPUSupports, "CPU without AVX-512 F/VL/BW/DQ: the AVX-512 column loops are never chosen"),
          .enabled(if: columnsNotSwitchedOff, "NORMKERNELS_AVX512_COLUMNS=never: the AVX-512 column loops are off"))
    func bfloat16HardwareSubnormalDx() throws {
        // a = 1, b = c = p = 0: dx = fma(1, dy, fma(0, x, 0)) = dy + 0 = dy exactly, so
        // BFloat16 subnormal dy (Float32 subnormals, which vcvtneps2bf16 flushes to
        // ±0) must come back unchanged; every fourth vector holds normal values
        // only, so both the instruction and the formula run.
        avx512ColumnsSwitch.lock()
        defer { avx512ColumnsSwitch.unlock() }
        let rows = 40, columns = 64
        var rng = SplitMix64("bf16 hardware subnormal dx")
        let x = spread(BFloat16.self, rows * columns, -20...20, &rng)
        let dy: [BFloat16] = (0..<rows * columns).map { i in
            let sign: UInt16 = rng.next() & 1 == 0 ? 0 : 0x8000
            let magnitude = (i / 16) % 4 == 3 ? UInt16(0x3F80 + rng.next() % 0x7F) : UInt16(1 + rng.next() % 0x7F)
            return unsafeBitCast(sign | magnitude, to: BFloat16.self)
        }
        let pool = WorkspacePool(), arena = pool.take()
        defer { pool.recycle(arena) }
        let table = GradientTable(count: columns, in: arena)
        for j in 0..<columns { table.pivot[j] = 0; table.a[j] = 1; table.b[j] = 0; table.c[j] = 0 }
        bfloat16RoundingSwitch.lock()
        defer { _ = nk_avx512bf16_set(1); bfloat16RoundingSwitch.unlock() }
        for hardware in [1, 0] as [Int32] {
            let rounds = nk_avx512bf16_set(hardware)
            for streaming in [false, true] {
                var dx = [BFloat16](repeating: BFloat16(Float.nan), count: rows * columns)
                let c0 = nk_col512_thread_calls(), h0 = nk_col512_bf16_hardware_thread_calls()
                x.withUnsafeBufferPointer { xp in
                    dy.withUnsafeBufferPointer { dp in
                        dx.withUnsafeMutableBufferPointer { dxp in
                            BlockGradients.applyColumns(x: xp.baseAddress!, dy: dp.baseAddress!, mask: nil,
                                                        dxp.baseAddress!, rows: rows, columns: columns,
                                                        stride: columns, table: table, slot: 0, streaming: streaming)
                        }
                    }
                }
                let what = "hardware rounding \(rounds) streaming \(streaming)"
                #expect(differing(bytes(dx), bytes(dy)) == 0, "\(what): dx != dy")
                #expect(nk_col512_thread_calls() > c0, "\(what): the C loop did not run")
                #expect((nk_col512_bf16_hardware_thread_calls() > h0) == (rounds == 1),
                        "\(what): hardware-rounded calls \(nk_col512_bf16_hardware_thread_calls() - h0)")
            }
        }
    }

    /// dx, dγ, dβ of BatchNorm (ReLU or not), InstanceNorm and GroupNorm NHWC backward on E.
    func backwards<E: NormElement>(_: E.Type) throws {
        let name = "\(E.self)"
        let cases = [(16, 2, 9), (48, 1, 13), (64, 3, 30), (80, 2, 7), (128, 2, 23), (72, 1, 11)]
        let big: Float = E.self == BFloat16.self ? 1e30 : 30000
        for (channels, n, side) in cases {
            let shape = TensorShape(n: n, c: channels, h: side, w: side, layout: .nhwc)
            var rng = SplitMix64("column gradients wide 16-bit \(name) \(shape)")
            var x32 = rng.normals(shape.count, mean: 3, std: 2)
            for k in Swift.stride(from: 5, to: x32.count, by: 97) { x32[k] = Float(rng.uniform(-40...40)) }
            let x = x32.map { E.narrow($0) }
            // dy over 2⁻²⁰…2⁴ with a few large values: dx overflows (Float16) and reaches subnormals.
            var dy = spread(E.self, shape.count, -20...4, &rng)
            for k in Swift.stride(from: 11, to: dy.count, by: 101) { dy[k] = E.narrow(k & 1 == 0 ? big : -big) }
            let gamma = rng.uniforms(channels, 0.5...4), beta = rng.uniforms(channels, -1...1)
            let takes = channels % 16 == 0
            for op in ["BatchNorm", "BatchNorm+ReLU", "InstanceNorm", "GroupNorm"] {
                var first: [[UInt8]]?
                for threads in [1, 3] {
                    let context = "\(name) \(op) \(shape) \(threads) threads"
                    let threading = Threading(threads: threads, parallelThreshold: 1024, spinMicroseconds: 0)
                    let body: () throws -> [[UInt8]]
                    switch op {
                    case "InstanceNorm":
                        let norm = try InstanceNormalization(shape: shape, threading: threading)
                        let saved = try norm.forwardTraining(x, scale: gamma, bias: beta).saved
                        body = {
                            let g = try norm.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma)
                            return [self.bytes(g.input!), self.bytes(g.scale!), self.bytes(g.bias!)]
                        }
                    case "GroupNorm":
                        let norm = try GroupNormalization(shape: shape, groups: channels / 8, threading: threading)
                        let saved = try norm.forward(x, scale: gamma, bias: beta).saved
                        body = {
                            let g = try norm.backward(x, gradOutput: dy, saved: saved, scale: gamma)
                            return [self.bytes(g.input!), self.bytes(g.scale!), self.bytes(g.bias!)]
                        }
                    default:
                        let relu = op == "BatchNorm+ReLU"
                        let norm = try BatchNormalization(shape: shape, fusedReLU: relu, threading: threading)
                        let forward = try norm.forwardTraining(x, scale: gamma, bias: beta)
                        var y = forward.output
                        let saved = forward.saved
                        if relu {
                            // The mask (the output): NaN keeps dy, −0 and subnormals as they compare.
                            for k in Swift.stride(from: 3, to: y.count, by: 53) { y[k] = E.narrow(.nan) }
                            for k in Swift.stride(from: 7, to: y.count, by: 59) { y[k] = E.narrow(-0.0) }
                            for k in Swift.stride(from: 13, to: y.count, by: 61) {
                                y[k] = unsafeBitCast(UInt16(k & 1 == 0 ? 0x0001 : 0x8001), to: E.self)
                            }
                        }
                        body = {
                            let g = try norm.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma,
                                                              output: relu ? y : nil)
                            return [self.bytes(g.input!), self.bytes(g.scale!), self.bytes(g.bias!)]
                        }
                    }
                    let ways = try threeWays(body)
                    #expect(differing(ways[0].result.flatMap { $0 }, ways[1].result.flatMap { $0 }) == 0, "\(context): wide vs columns off")
                    #expect(differing(ways[0].result.flatMap { $0 }, ways[2].result.flatMap { $0 }) == 0, "\(context): wide vs all Swift")
                    #expect(ways[1].calls == 0 && ways[2].calls == 0, "\(context): Swift runs called the C loops")
                    if threads == 1 {
                        #expect((ways[0].calls > 0) == takes, "\(context): \(ways[0].calls) C loop calls")
                    }
                    if let first { #expect(differing(ways[0].result.flatMap { $0 }, first.flatMap { $0 }) == 0, "\(context): 1 vs \(threads) threads") }
                    first = first ?? ways[0].result
                }
            }
        }
    }

    @Test("16-bit NHWC backward (BatchNorm ± ReLU, InstanceNorm, GroupNorm): AVX-512 loops == Swift bit for bit, 1 and 3 threads",
          .enabled(if: columnsBuildFuses, "build without FMA (-Xcc -march=x86-64-v3): the AVX-512 column loops are never chosen"),
          .enabled(if: columnsCPUSupports, "CPU without AVX-512 F/VL/BW/DQ: the AVX-512 column loops are never chosen"),
          .enabled(if: columnsNotSwitchedOff, "NORMKERNELS_AVX512_COLUMNS=never: the AVX-512 column loops are off"))
    func sixteenBitBackward() throws {
        avx512ColumnsSwitch.lock()
        defer { avx512ColumnsSwitch.unlock() }
        try backwards(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try backwards(Float16.self)
        #endif
    }
}
