// BatchNorm + add without ReLU, backward (issue 21): d identity = dy, written
// by BatchNorm's sums pass (`channelPasses` with a store and no mask) on the
// channel-runs and columns paths, by a separate copy on the short-runs path and
// when only d identity is wanted. Every way, d identity holds dy's bit patterns
// exactly (signaling NaNs included: a copy, not a widening and rounding), and
// dx, dγ, dβ are those of the call without d identity, bit for bit, in Float,
// BFloat16 and Float16, on 1 and 3 threads.

import Testing
@testable import NormKernels

private let streams = SeededStreams(salt: 0xF05E_1D0C)

extension FusedBatchNormTests {
    @Test("backward without ReLU: d identity is dy's bits (NaNs too), dx/dγ/dβ as without it, every path and type",
          arguments: fusedShapes)
    func identityCopy(shape: TensorShape) throws {
        func check<E: NormElement>(_: E.Type, _ signalingNaN: UInt32) throws {
            var rng = streams.generator(UInt64(shape.count) &+ 77)
            let x = activations(shape, &rng).map { E.narrow($0) }
            var dy = rng.normals(shape.count).map { E.narrow($0) }
            let (scale, _) = Affine.both.parameters(shape.c, &rng)
            for threads in [1, 3] {
                let bn = try BatchNormalization(shape: shape, fusedReLU: false,
                                                threading: Threading(threads: threads, parallelThreshold: 1))
                var y = x
                let saved = try x.withUnsafeBufferPointer { xp in
                    try y.withUnsafeMutableBufferPointer { try bn.forwardTraining(input: xp, output: $0) }
                }
                let what = "\(E.self) \(shape) \(threads) threads"
                for withNaN in [false, true] {
                    if withNaN {
                        // Signaling NaNs at a few places (dx, dγ, dβ then NaN in those channels).
                        for k in stride(from: 3, to: dy.count, by: max(1, dy.count / 5)) {
                            withUnsafeMutableBytes(of: &dy[k]) { raw in
                                if MemoryLayout<E>.size == 2 {
                                    raw.storeBytes(of: UInt16(truncatingIfNeeded: signalingNaN), as: UInt16.self)
                                } else {
                                    raw.storeBytes(of: signalingNaN, as: UInt32.self)
                                }
                            }
                        }
                    }
                    func run(identity: Bool, parameters: Bool = true)
                        throws -> (dx: [UInt8], id: [UInt8], dg: [Float], db: [Float]) {
                        var dx = x, di = x, dg = [Float](repeating: 0, count: shape.c), db = dg
                        try x.withUnsafeBufferPointer { xp in
                            try dy.withUnsafeBufferPointer { dyp in
                                try scale!.withUnsafeBufferPointer { g in
                                    try dx.withUnsafeMutableBufferPointer { dxp in
                                        try di.withUnsafeMutableBufferPointer { dip in
                                            try dg.withUnsafeMutableBufferPointer { dgp in
                                                try db.withUnsafeMutableBufferPointer { dbp in
                                                    try bn.backwardTraining(
                                                        input: xp, gradOutput: dyp, saved: saved, scale: g,
                                                        gradInput: dxp, gradIdentity: identity ? dip : nil,
                                                        gradScale: parameters ? dgp : nil,
                                                        gradBias: parameters ? dbp : nil)
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        return (dx.withUnsafeBytes { Array($0) }, di.withUnsafeBytes { Array($0) }, dg, db)
                    }
                    let dyBits = dy.withUnsafeBytes { Array($0) }
                    let fused = try run(identity: true), plain = try run(identity: false)
                    let context = "\(what)\(withNaN ? " with NaNs" : "")"
                    #expect(fused.id == dyBits, "\(context): d identity")
                    #expect(fused.dx == plain.dx, "\(context): dx")
                    #expect(bitPatterns(fused.dg) == bitPatterns(plain.dg), "\(context): dγ")
                    #expect(bitPatterns(fused.db) == bitPatterns(plain.db), "\(context): dβ")
                    let dxOnly = try run(identity: true, parameters: false)
                    #expect(dxOnly.id == dyBits, "\(context): d identity (dx alone)")
                    #expect(dxOnly.dx == plain.dx, "\(context): dx alone")
                }
            }
        }
        try check(Float.self, 0x7FA0_0000)
        try check(BFloat16.self, 0x7F81)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self, 0x7C01)
        #endif
    }
}
