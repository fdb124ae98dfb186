// Streaming (non-temporal) stores of the channel kernels' 16-bit outputs
// (BatchNorm, GroupNorm, InstanceNorm, AdaIN, weight norm): where their plan
// streams, 16-bit y and dx go out through `E.stream8` as Float32 ones do.
// (a) The channel output loops give the same bits streamed or not, at every
//     alignment of the output: per-channel coefficients over NHWC rows
//     (`Apply.columns`, with ReLU and the residual), dx over NCHW runs
//     (`BlockGradients.apply`) and NHWC rows (`BlockGradients.applyColumns`).
// (b) Under NORMKERNELS_STREAMING=always (tools/test.sh's second and third
//     runs) each channel kernel's store decision streams 16-bit buffers, so the
//     16-bit tests of those kernels (y16 == E.narrow(y32), dx16 == E.narrow(dx32))
//     run their streamed path there; the plans stream by default only past the
//     last-level cache, which no test tensor reaches.

import CNormSupport
import Foundation
import Testing
@testable import NormKernels

extension HalfPrecisionTests {
    @Test("streaming stores: the channel output loops' 16-bit bits do not depend on streaming")
    func channelStreamingLoops() throws {
        func check<E: SixteenBitElement>(_: E.Type) throws {
            let rows = 7, stride = 72
            let x = rowValues(rows, stride, "chan stream x \(E.typeName)").map { E.narrow($0) }
            let dy = rowValues(rows, stride, "chan stream dy \(E.typeName)", center: -0.5...0.5).map { E.narrow($0) }
            let id = rowValues(rows, stride, "chan stream id \(E.typeName)").map { E.narrow($0) }
            let (pivot, scale) = halfParameters(stride, "chan stream p")
            let (shift, slope) = halfParameters(stride, "chan stream s")
            let total = rows * stride + 32
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 2 * total * MemoryLayout<E>.stride, alignment: 64)
            defer { buffer.deallocate() }
            let out = buffer.bindMemory(to: E.self, capacity: 2 * total)
            // Rows narrower than the stride leave gaps: the same bits in both halves.
            out.initialize(repeating: E.narrow(0), count: 2 * total)
            let workspace = Arena()
            let table = GradientTable(count: stride, in: workspace)
            for j in 0..<stride {
                table.pivot[j] = pivot[j]; table.a[j] = scale[j]; table.b[j] = 0.5 * slope[j]; table.c[j] = 0.1 * shift[j]
            }
            func same(_ what: String, _ write: (UnsafeMutablePointer<E>, Bool) -> Void) {
                // Output offsets 0…9 values from a 64-byte boundary: aligned, 16-byte
                // aligned (16-bit), and misaligned starts.
                for offset in 0..<10 {
                    let cached = out + offset, streamed = out + total + offset
                    write(cached, false)
                    write(streamed, true)
                    nk_stream_fence()
                    let equal = (0..<(rows * stride)).allSatisfy { cached[$0].bits == streamed[$0].bits }
                    #expect(equal, "\(E.typeName) \(what), output offset \(offset)")
                }
            }
            try x.withUnsafeBufferPointer { xp in
                try dy.withUnsafeBufferPointer { dyp in
                    try id.withUnsafeBufferPointer { idp in
                        let x = try #require(xp.baseAddress), dy = try #require(dyp.baseAddress)
                        let id = try #require(idp.baseAddress)
                        // NHWC forward rows: 64 channels (strips) and 13 of 72 (row loop, scalar tail).
                        for (columns, relu, residual) in [(64, false, false), (64, true, true), (13, true, false),
                                                          (72, false, true)] {
                            same("Apply.columns \(columns) of \(stride), relu \(relu), residual \(residual)") { y, s in
                                Apply.columns(x, y, rows: rows, columns: columns, stride: stride, pivot: pivot,
                                              scale: scale, shift: shift, relu: relu, streaming: s,
                                              residual: residual ? id : nil)
                            }
                        }
                        // NCHW dx runs (the whole buffer as one run of rows · stride values).
                        for (useX, mask) in [(true, false), (true, true), (false, false)] {
                            let k = GradientCoefficients(pivot: 0.25, a: 1.5, b: -0.75, c: 0.0625)
                            same("BlockGradients.apply x \(useX) mask \(mask)") { dx, s in
                                BlockGradients.apply(x: useX ? x : nil, dy: dy, mask: mask ? id : nil, gamma: nil, dx,
                                                     rows * stride, k, streaming: s)
                            }
                        }
                        // NHWC dx rows.
                        for columns in [72, 64, 13] {
                            same("BlockGradients.applyColumns \(columns) of \(stride)") { dx, s in
                                BlockGradients.applyColumns(x: x, dy: dy, mask: nil, dx, rows: rows, columns: columns,
                                                            stride: stride, table: table, slot: 0, streaming: s)
                            }
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

    @Test("streaming stores: under NORMKERNELS_STREAMING=always the channel kernels stream 16-bit outputs",
          .enabled(if: ProcessInfo.processInfo.environment["NORMKERNELS_STREAMING"] == "always"))
    func channelStreamingDecisions() throws {
        func check<E: SixteenBitElement>(_: E.Type) throws {
            let count = 4096
            let x = UnsafeMutablePointer<E>.allocate(capacity: count), y = UnsafeMutablePointer<E>.allocate(capacity: count)
            defer { x.deallocate(); y.deallocate() }
            let input = UnsafePointer(x)
            for layout in [Layout.nchw, .nhwc] {
                let shape = TensorShape(n: 4, c: 8, h: 8, w: 16, layout: layout)
                let bn = try BatchNormalization(shape: shape)
                #expect(bn.paths.training.streaming(output: y, reading: input), "\(E.typeName) BatchNorm \(layout)")
                #expect(bn.paths.inference.streaming(output: y, reading: input), "\(E.typeName) BatchNorm \(layout) inference")
                let instance = try InstanceNormalization(shape: shape)
                #expect(instance.paths.channelGroups.store.streaming(output: y, reading: input),
                        "\(E.typeName) InstanceNorm \(layout)")
                let adain = try AdaptiveInstanceNormalization(content: shape, style: shape)
                #expect(adain.contentPlan.store.streaming(output: y, reading: input, input), "\(E.typeName) AdaIN \(layout)")
                // A map of smallMapSpatial positions: the channel-groups path, either layout.
                let map = TensorShape(n: 2, c: 8, h: GroupNormalization.smallMapSpatial, w: 1, layout: layout)
                let group = try GroupNormalization(shape: map, groups: 4)
                if case .channelGroups(let plan) = group.path {
                    #expect(plan.store.streaming(output: y, reading: input), "\(E.typeName) GroupNorm \(layout)")
                } else {
                    Issue.record("\(E.typeName) GroupNorm \(map): not the channel-groups path")
                }
            }
            let weight = try WeightNormalization(shape: [64, 64], dim: 0)
            #expect(weight.store.streaming(output: y, reading: input), "\(E.typeName) weight norm")
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }
}
