// The BFloat16 output and dx loops that round with AVX-512 BF16 at run time
// (BFloat16Hardware.h) against the Swift loops they replace: the same inputs
// through both (`nk_avx512bf16_set(0)` takes the Swift loops), the same
// bits, NaN payloads included. The inputs are random bit patterns (NaN, ±∞,
// subnormals) and the coefficients spread over 2⁻⁶⁰…2⁶⁰, so outputs include
// Float32 subnormals, which the instruction would flush and the loops send
// to the integer formula. Where the build or CPU has no
// hardware rounding both runs take the Swift loops (and still must agree).
// The kernels' own tests (y16 == narrow(y32)) cover the paths end to end;
// these reach the column loops (C a multiple of 16) their shapes do not.
// Serialized, so that one test's switch does not fall inside another's
// hardware run; other suites running meanwhile only change loops, never a result
// (the suites that count hardware roundings take `bfloat16RoundingSwitch`).

import CNormSupport
import Foundation
import Testing
@testable import NormKernels

/// Held while a test switches the AVX-512 BF16 rounding (nk_avx512bf16_set) and
/// runs with it, by the tests whose expectations count the hardware roundings
/// (`SiLUWideTests`) or switch it: another suite's switch would otherwise fall
/// inside their runs.
let bfloat16RoundingSwitch = NSLock()

@Suite(.serialized) struct BFloat16HardwareTests {
    /// `body` once with the hardware loops allowed (as detected) and once with
    /// the Swift loops; returns both results.
    func bothPaths<R>(_ body: () -> R) -> (hardware: R, swift: R) {
        bfloat16RoundingSwitch.lock()
        defer { bfloat16RoundingSwitch.unlock() }
        _ = nk_avx512bf16_set(1)
        let h = body()
        _ = nk_avx512bf16_set(0)
        let s = body()
        _ = nk_avx512bf16_set(1)
        return (h, s)
    }

    func randomBits(_ count: Int, _ rng: inout SplitMix64) -> [BFloat16] {
        (0..<count).map { _ in BFloat16(bitPattern: UInt16(truncatingIfNeeded: rng.next())) }
    }

    func coefficients(_ count: Int, _ rng: inout SplitMix64) -> [Float] {
        (0..<count).map { _ in
            let sign: Float = rng.next() & 1 == 0 ? 1 : -1
            return sign * Float(1 + rng.unit()) * Float(sign: .plus, exponent: Int(rng.next() % 120) - 60,
                                                         significand: 1)
        }
    }

    func mismatches(_ a: [BFloat16], _ b: [BFloat16]) -> Int {
        zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count
    }

    @Test(arguments: [16, 272, 1000, 4096])
    func affineRuns(n: Int) {
        var rng = SplitMix64("bf16 hardware affine \(n)")
        let x = randomBits(n + 3, &rng), r = randomBits(n + 3, &rng)
        let k = coefficients(3, &rng)
        let c = AffineCoefficients(pivot: Float(x[0]).isFinite ? Float(x[0]) : 1, scale: k[0], shift: k[1])
        for relu in [false, true] {
            for residual in [false, true] {
                for streaming in [false, true] {
                    let out = bothPaths { () -> [BFloat16] in
                        var y = [BFloat16](repeating: 0, count: n + 3)
                        x.withUnsafeBufferPointer { xp in
                            r.withUnsafeBufferPointer { rp in
                                y.withUnsafeMutableBufferPointer { yp in
                                    // Offsets 1 and 3: a head before the aligned body, and a tail.
                                    Apply.affine(xp.baseAddress! + 1, yp.baseAddress! + 1, n, c, relu: relu,
                                                 streaming: streaming, residual: residual ? rp.baseAddress! + 1 : nil)
                                }
                            }
                        }
                        return y
                    }
                    #expect(mismatches(out.hardware, out.swift) == 0,
                            "n \(n) relu \(relu) residual \(residual) streaming \(streaming)")
                }
            }
        }
    }

    @Test(arguments: [(33, 16), (20, 64), (5, 1024)])
    func columns(rows: Int, columns: Int) {
        var rng = SplitMix64("bf16 hardware columns \(rows)x\(columns)")
        let stride = columns + 16
        let x = randomBits(rows * stride, &rng), r = randomBits(rows * stride, &rng)
        let pivot = (0..<columns).map { _ in Float(BFloat16(bitPattern: UInt16(truncatingIfNeeded: rng.next()) & 0x3FFF)) }
        let scale = coefficients(columns, &rng), shift = coefficients(columns, &rng)
        for relu in [false, true] {
            for residual in [false, true] {
                for streaming in [false, true] {
                    let out = bothPaths { () -> [BFloat16] in
                        var y = [BFloat16](repeating: 0, count: rows * stride)
                        x.withUnsafeBufferPointer { xp in
                            r.withUnsafeBufferPointer { rp in
                                y.withUnsafeMutableBufferPointer { yp in
                                    Apply.columns(xp.baseAddress!, yp.baseAddress!, rows: rows, columns: columns,
                                                  stride: stride, pivot: pivot, scale: scale, shift: shift,
                                                  relu: relu, streaming: streaming,
                                                  residual: residual ? rp.baseAddress! : nil)
                                }
                            }
                        }
                        return y
                    }
                    #expect(mismatches(out.hardware, out.swift) == 0,
                            "[\(rows), \(columns)] relu \(relu) residual \(residual) streaming \(streaming)")
                }
            }
        }
    }

    @Test(arguments: [16, 272, 4096])
    func gradientRuns(n: Int) {
        var rng = SplitMix64("bf16 hardware gradient \(n)")
        let x = randomBits(n + 3, &rng), dy = randomBits(n + 3, &rng), mask = randomBits(n + 3, &rng)
        let k = coefficients(3, &rng)
        let g = GradientCoefficients(pivot: 0.5, a: k[0], b: k[1], c: k[2])
        for masked in [false, true] {
            for streaming in [false, true] {
                let out = bothPaths { () -> [BFloat16] in
                    var y = [BFloat16](repeating: 0, count: n + 3)
                    x.withUnsafeBufferPointer { xp in
                        dy.withUnsafeBufferPointer { dp in
                            mask.withUnsafeBufferPointer { mp in
                                y.withUnsafeMutableBufferPointer { yp in
                                    BlockGradients.apply(x: xp.baseAddress! + 1, dy: dp.baseAddress! + 1,
                                                         mask: masked ? mp.baseAddress! + 1 : nil, gamma: nil,
                                                         yp.baseAddress! + 1, n, g, streaming: streaming)
                                }
                            }
                        }
                    }
                    return y
                }
                #expect(mismatches(out.hardware, out.swift) == 0, "n \(n) masked \(masked) streaming \(streaming)")
            }
        }
    }

    @Test(arguments: [(33, 16), (20, 64), (3, 1024)])
    func gradientColumns(rows: Int, columns: Int) {
        // 16...128 columns would take the AVX-512 column loops (ColumnGradientsWide)
        // both ways: off here, so the hardware-rounded loop is what runs.
        avx512ColumnsSwitch.lock()
        _ = nk_avx512_columns_set(0)
        defer { _ = nk_avx512_columns_set(1); avx512ColumnsSwitch.unlock() }
        var rng = SplitMix64("bf16 hardware gradient columns \(rows)x\(columns)")
        let stride = columns + 8
        let x = randomBits(rows * stride, &rng), dy = randomBits(rows * stride, &rng)
        let mask = randomBits(rows * stride, &rng)
        let pool = WorkspacePool(), arena = pool.take()
        defer { pool.recycle(arena) }
        let table = GradientTable(count: columns, in: arena)
        let a = coefficients(columns, &rng), b = coefficients(columns, &rng), c = coefficients(columns, &rng)
        for j in 0..<columns { table.pivot[j] = 0.25 * Float(j); table.a[j] = a[j]; table.b[j] = b[j]; table.c[j] = c[j] }
        for masked in [false, true] {
            for streaming in [false, true] {
                let out = bothPaths { () -> [BFloat16] in
                    var y = [BFloat16](repeating: 0, count: rows * stride)
                    x.withUnsafeBufferPointer { xp in
                        dy.withUnsafeBufferPointer { dp in
                            mask.withUnsafeBufferPointer { mp in
                                y.withUnsafeMutableBufferPointer { yp in
                                    BlockGradients.applyColumns(x: xp.baseAddress!, dy: dp.baseAddress!,
                                                                mask: masked ? mp.baseAddress! : nil, yp.baseAddress!,
                                                                rows: rows, columns: columns, stride: stride,
                                                                table: table, slot: 0, streaming: streaming)
                                }
                            }
                        }
                    }
                    return y
                }
                #expect(mismatches(out.hardware, out.swift) == 0,
                        "[\(rows), \(columns)] masked \(masked) streaming \(streaming)")
            }
        }
    }
}
