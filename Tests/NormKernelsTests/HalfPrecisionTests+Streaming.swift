// Streaming (non-temporal) stores of 16-bit outputs: `E.stream8` writes the bits
// `E.store8` writes, and the output loops give the same bits whether their
// store policy streams or not, at every alignment of the output (the scalar
// prologue up to the 16-byte boundary, the 8-value body, the scalar tail). The
// plans stream only tensors larger than the last-level cache; these tests call
// the loops directly with `streaming: true` on small rows.

import CNormSupport
import Testing
@testable import NormKernels

extension HalfPrecisionTests {
    @Test("streaming stores: E.stream8 == E.store8, and the output loops' bits do not depend on streaming")
    func streamingStores() throws {
        func check<E: SixteenBitElement>(_: E.Type) throws {
            // stream8 against store8 on rounding boundaries, NaN, ±inf, subnormals.
            let specials: [Float] = [0, -0, 1, -1, .infinity, -.infinity, .nan, 65504, 65520, 0x1p-25, 0x1p-130,
                                     1 + 0x1p-8, 1 + 0x1p-11, 3.14159, -2.71828, .greatestFiniteMagnitude]
            let aligned = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
            defer { aligned.deallocate() }
            let p = aligned.bindMemory(to: E.self, capacity: 32)
            for start in stride(from: 0, to: specials.count, by: 8) {
                let v = SIMD8<Float>((0..<8).map { specials[(start + $0) % specials.count] })
                E.store8(v, p)
                E.stream8(v, p + 8)
                nk_stream_fence()
                #expect((0..<8).allSatisfy { p[$0].bits == p[8 + $0].bits }, "\(E.typeName) stream8 \(v)")
            }

            // Apply.elementwise (LayerNorm/RMSNorm forward) and Apply.affine, every γ/β
            // combination, output offsets 0…9 elements from a 64-byte boundary.
            let n = 203
            let x = rowValues(1, n, "stream x \(E.typeName)").map { E.narrow($0) }
            let (gamma, beta) = halfParameters(n, "stream γβ")
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 2 * (n + 32) * MemoryLayout<E>.stride, alignment: 64)
            defer { buffer.deallocate() }
            let out = buffer.bindMemory(to: E.self, capacity: 2 * (n + 32))
            try x.withUnsafeBufferPointer { xp in
                for offset in 0..<10 {
                    for (g, b) in [(true, true), (true, false), (false, true), (false, false)] {
                        let cached = out + offset, streamed = out + n + 16 + offset
                        try gamma.withUnsafeBufferPointer { gp in
                            try beta.withUnsafeBufferPointer { bp in
                                for (dst, streaming) in [(cached, false), (streamed, true)] {
                                    Apply.elementwise(xp.baseAddress!, dst, n, pivot: 0.25, invStd: 1.5, shift: -0.125,
                                                      gamma: g ? gp.baseAddress! : nil, beta: b ? bp.baseAddress! : nil,
                                                      streaming: streaming)
                                }
                                nk_stream_fence()
                                let same = (0..<n).allSatisfy { cached[$0].bits == streamed[$0].bits }
                                try #require(same, "\(E.typeName) elementwise offset \(offset) γ \(g) β \(b)")
                            }
                        }
                    }
                    let c = AffineCoefficients(pivot: 0.25, scale: 1.5, shift: -0.125)
                    for relu in [false, true] {
                        Apply.affine(xp.baseAddress!, out + offset, n, c, relu: relu, streaming: false)
                        Apply.affine(xp.baseAddress!, out + n + 16 + offset, n, c, relu: relu, streaming: true)
                        nk_stream_fence()
                        let same = (0..<n).allSatisfy { out[offset + $0].bits == out[n + 16 + offset + $0].bits }
                        #expect(same, "\(E.typeName) affine offset \(offset) relu \(relu)")
                    }
                }
            }

            // The short-row backward (LayerNorm/RMSNorm dx), rows of whole 8-value
            // groups and a 16-byte aligned dx: streamed and cached dx agree.
            let rows = 11, length = 96
            let bx = rowValues(rows, length, "stream bx").map { E.narrow($0) }
            let bdy = rowValues(rows, length, "stream bdy", center: -0.5...0.5).map { E.narrow($0) }
            let mean = (0..<rows).map { Double($0) * 0.1 }, invStd = (0..<rows).map { 1 + Double($0) * 0.05 }
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * length)
            defer { scratch.deallocate() }
            let dxBuffer = UnsafeMutableRawPointer.allocate(byteCount: 2 * rows * length * MemoryLayout<E>.stride,
                                                            alignment: 64)
            defer { dxBuffer.deallocate() }
            let dx = dxBuffer.bindMemory(to: E.self, capacity: 2 * rows * length)
            bx.withUnsafeBufferPointer { xp in
                bdy.withUnsafeBufferPointer { dyp in
                    gamma.withUnsafeBufferPointer { gp in
                        for (centered, g) in [(true, true), (false, false)] {
                            for (dst, streaming) in [(dx, false), (dx + rows * length, true)] {
                                ShortRowsBackward.rowBlock(x: xp.baseAddress!, dy: dyp.baseAddress!, dx: dst,
                                                           gamma: g ? gp.baseAddress! : nil, rows: rows, length: length,
                                                           firstRow: 0, mean: centered ? mean : nil, invStd: invStd,
                                                           columnSums: nil, scratch: scratch, streaming: streaming)
                            }
                            nk_stream_fence()
                            let same = (0..<(rows * length)).allSatisfy { dx[$0].bits == dx[rows * length + $0].bits }
                            #expect(same, "\(E.typeName) short-row backward centered \(centered)")
                        }
                    }
                }
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }
}
