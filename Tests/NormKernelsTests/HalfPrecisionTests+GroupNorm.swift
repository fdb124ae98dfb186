// 16-bit GroupNorm (issue 20), every path of `GroupNormPlan` (feature vectors,
// expanded affine, group segments, channel groups on rows and on columns):
// (a) y16 == E.narrow(y32), dx16 == E.narrow(dx32), saved statistics, dγ, dβ
// identical (Float32 kernel on the widened tensors); (b) within 1 ulp (y) and 2
// ulps (dx) of the Float64 reference of the 16-bit inputs; (c) the same bits on
// 1–4 threads and in place.

import Testing
@testable import NormKernels

/// The public GroupNorm overloads of one element type.
protocol GroupNormCalls: NormElement {
    static func gnForward(_ gn: GroupNormalization, _ x: UnsafeBufferPointer<Self>, _ y: UnsafeMutableBufferPointer<Self>,
                          _ g: UnsafeBufferPointer<Float>?, _ b: UnsafeBufferPointer<Float>?) throws -> SavedStatistics
    static func gnBackward(_ gn: GroupNormalization, _ x: UnsafeBufferPointer<Self>, _ dy: UnsafeBufferPointer<Self>,
                           _ saved: SavedStatistics, _ g: UnsafeBufferPointer<Float>?,
                           _ dx: UnsafeMutableBufferPointer<Self>?, _ dg: UnsafeMutableBufferPointer<Float>?,
                           _ db: UnsafeMutableBufferPointer<Float>?) throws
}

extension Float: GroupNormCalls {
    static func gnForward(_ gn: GroupNormalization, _ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableBufferPointer<Float>,
                          _ g: UnsafeBufferPointer<Float>?, _ b: UnsafeBufferPointer<Float>?) throws -> SavedStatistics {
        try gn.forward(input: x, output: y, scale: g, bias: b)
    }
    static func gnBackward(_ gn: GroupNormalization, _ x: UnsafeBufferPointer<Float>, _ dy: UnsafeBufferPointer<Float>,
                           _ saved: SavedStatistics, _ g: UnsafeBufferPointer<Float>?,
                           _ dx: UnsafeMutableBufferPointer<Float>?, _ dg: UnsafeMutableBufferPointer<Float>?,
                           _ db: UnsafeMutableBufferPointer<Float>?) throws {
        try gn.backward(input: x, gradOutput: dy, saved: saved, scale: g, gradInput: dx, gradScale: dg, gradBias: db)
    }
}

extension BFloat16: GroupNormCalls {
    static func gnForward(_ gn: GroupNormalization, _ x: UnsafeBufferPointer<BFloat16>, _ y: UnsafeMutableBufferPointer<BFloat16>,
                          _ g: UnsafeBufferPointer<Float>?, _ b: UnsafeBufferPointer<Float>?) throws -> SavedStatistics {
        try gn.forward(input: x, output: y, scale: g, bias: b)
    }
    static func gnBackward(_ gn: GroupNormalization, _ x: UnsafeBufferPointer<BFloat16>, _ dy: UnsafeBufferPointer<BFloat16>,
                           _ saved: SavedStatistics, _ g: UnsafeBufferPointer<Float>?,
                           _ dx: UnsafeMutableBufferPointer<BFloat16>?, _ dg: UnsafeMutableBufferPointer<Float>?,
                           _ db: UnsafeMutableBufferPointer<Float>?) throws {
        try gn.backward(input: x, gradOutput: dy, saved: saved, scale: g, gradInput: dx, gradScale: dg, gradBias: db)
    }
}

#if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
extension Float16: GroupNormCalls {
    static func gnForward(_ gn: GroupNormalization, _ x: UnsafeBufferPointer<Float16>, _ y: UnsafeMutableBufferPointer<Float16>,
                          _ g: UnsafeBufferPointer<Float>?, _ b: UnsafeBufferPointer<Float>?) throws -> SavedStatistics {
        try gn.forward(input: x, output: y, scale: g, bias: b)
    }
    static func gnBackward(_ gn: GroupNormalization, _ x: UnsafeBufferPointer<Float16>, _ dy: UnsafeBufferPointer<Float16>,
                           _ saved: SavedStatistics, _ g: UnsafeBufferPointer<Float>?,
                           _ dx: UnsafeMutableBufferPointer<Float16>?, _ dg: UnsafeMutableBufferPointer<Float>?,
                           _ db: UnsafeMutableBufferPointer<Float>?) throws {
        try gn.backward(input: x, gradOutput: dy, saved: saved, scale: g, gradInput: dx, gradScale: dg, gradBias: db)
    }
}
#endif

/// (shape, groups) reaching every GroupNorm path.
let halfGroupNormCases: [(TensorShape, Int)] = [
    (TensorShape.matrix(37, 24), 4),                           // feature vectors (H·W = 1)
    (TensorShape(n: 3, c: 8, h: 5, w: 5), 2),                  // expanded affine (NCHW small maps)
    (TensorShape(n: 3, c: 32, h: 3, w: 4, layout: .nhwc), 4),  // group segments (NHWC small maps)
    (TensorShape(n: 2, c: 6, h: 9, w: 9), 3),                  // channel groups, rows
    (TensorShape(n: 2, c: 40, h: 6, w: 6, layout: .nhwc), 5),  // channel groups, columns
    (TensorShape(n: 2, c: 12, h: 4, w: 4, layout: .nhwc), 6),  // channel groups, columns, 2 channels a group
]

func runGroupNorm<E: GroupNormCalls>(_ gn: GroupNormalization, x: [E], gamma: [Float]?, beta: [Float]?,
                                     inPlace: Bool = false) throws -> (y: [E], saved: SavedStatistics) {
    var y = x, input = x
    var saved = SavedStatistics(mean: [], invStd: [])
    func call(_ xp: UnsafeBufferPointer<E>, _ yp: UnsafeMutableBufferPointer<E>) throws {
        try withOptionalBuffer(gamma) { g in try withOptionalBuffer(beta) { b in saved = try E.gnForward(gn, xp, yp, g, b) } }
    }
    if inPlace {
        try input.withUnsafeMutableBufferPointer { try call(UnsafeBufferPointer($0), $0) }
        y = input
    } else {
        try x.withUnsafeBufferPointer { xp in try y.withUnsafeMutableBufferPointer { try call(xp, $0) } }
    }
    return (y, saved)
}

func runGroupNormBackward<E: GroupNormCalls>(_ gn: GroupNormalization, x: [E], dy: [E], saved: SavedStatistics,
                                             gamma: [Float]?, input wantsDx: Bool = true, parameters: Bool = true,
                                             inPlace: Bool = false) throws -> BatchNormGradients<E> {
    var dx = dy, dyCopy = dy
    var dg = [Float](repeating: 0, count: gn.shape.c), db = dg
    try x.withUnsafeBufferPointer { xp in
        try withOptionalBuffer(gamma) { g in
            try dg.withUnsafeMutableBufferPointer { dgp in
                try db.withUnsafeMutableBufferPointer { dbp in
                    func call(_ dyp: UnsafeBufferPointer<E>, _ dxp: UnsafeMutableBufferPointer<E>?) throws {
                        try E.gnBackward(gn, xp, dyp, saved, g, dxp, parameters ? dgp : nil, parameters ? dbp : nil)
                    }
                    if inPlace {
                        try dyCopy.withUnsafeMutableBufferPointer { try call(UnsafeBufferPointer($0), $0) }
                    } else {
                        try dy.withUnsafeBufferPointer { dyp in
                            try dx.withUnsafeMutableBufferPointer { try call(dyp, wantsDx ? $0 : nil) }
                        }
                    }
                }
            }
        }
    }
    return BatchNormGradients(dx: wantsDx ? (inPlace ? dyCopy : dx) : nil, dIdentity: nil,
                              dgamma: parameters ? dg : nil, dbeta: parameters ? db : nil)
}

extension HalfPrecisionTests {
    @Test("GroupNorm (a, b): every path, forward and backward, one rounding of Float32, near Float64")
    func groupNormEveryPath() throws {
        func check<E: SixteenBitElement & GroupNormCalls>(_: E.Type) throws {
            for ((shape, groups), affine) in product(halfGroupNormCases, [true, false]) {
                let gn = try GroupNormalization(shape: shape, groups: groups)
                let context = "\(E.typeName) GroupNorm \(shape) G=\(groups)\(affine ? " γβ" : "") (\(gn.plan().strategy))"
                let x16 = channelValues(shape, "gn x \(context)").map { E.narrow($0) }, x32 = x16.map { E.widen($0) }
                let dy16 = channelValues(shape, "gn dy \(context)", center: -0.5...0.5).map { E.narrow($0) }
                let dy32 = dy16.map { E.widen($0) }
                let p = halfParameters(shape.c, "gn γβ \(context)")
                let (gamma, beta) = affine ? (Optional(p.gamma), Optional(p.beta)) : (nil, nil)
                let half = try runGroupNorm(gn, x: x16, gamma: gamma, beta: beta)
                let single = try runGroupNorm(gn, x: x32, gamma: gamma, beta: beta)
                #expect(half.y.map(\.bits) == single.y.map { E.narrow($0).bits }, "\(context): y")
                expectIdentical(half.saved, single.saved, context)
                let inPlace = try runGroupNorm(gn, x: x16, gamma: gamma, beta: beta, inPlace: true)
                #expect(inPlace.y.map(\.bits) == half.y.map(\.bits), "\(context): in place")
                let reference = Reference.groupNorm(x32, shape, groups: groups, scale: gamma, bias: beta).output
                let shift = (0..<shape.count).map { beta?[channelOf(shape, $0)] ?? 0 }
                expectNearReference(half.y, reference, beta: shift, features: shape.count, context)
                for (wantsDx, parameters) in [(true, true), (true, false), (false, true)] {
                    let h = try runGroupNormBackward(gn, x: x16, dy: dy16, saved: half.saved, gamma: gamma,
                                                     input: wantsDx, parameters: parameters)
                    let s = try runGroupNormBackward(gn, x: x32, dy: dy32, saved: half.saved, gamma: gamma,
                                                     input: wantsDx, parameters: parameters)
                    let what = "\(context) backward dx \(wantsDx) dγ/dβ \(parameters)"
                    #expect(h.dx?.map(\.bits) == s.dx?.map { E.narrow($0).bits }, "\(what): dx")
                    #expect(bitPatterns(h.dgamma) == bitPatterns(s.dgamma), "\(what): dγ")
                    #expect(bitPatterns(h.dbeta) == bitPatterns(s.dbeta), "\(what): dβ")
                }
                let dx = try runGroupNormBackward(gn, x: x16, dy: dy16, saved: half.saved, gamma: gamma).dx!
                let dxInPlace = try runGroupNormBackward(gn, x: x16, dy: dy16, saved: half.saved, gamma: gamma,
                                                         parameters: false, inPlace: true).dx!
                #expect(dxInPlace.map(\.bits) == dx.map(\.bits), "\(context): backward in place")
                let slots = Reference.slots(shape, groupSize: shape.c / groups)
                let dxReference = Reference.centeredBackward(x32, dy32, slots, eps: Double(Float(1e-5))) {
                    Double(gamma?[channelOf(shape, $0)] ?? 1)
                }
                expectNearGradient(dx, dxReference, context)
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("GroupNorm (c): the same bits on 1, 2, 3 and 4 threads; array convenience")
    func groupNormThreads() throws {
        func check<E: SixteenBitElement & GroupNormCalls>(_: E.Type) throws {
            for (shape, groups) in [(TensorShape(n: 8, c: 64, h: 16, w: 16), 8),
                                    (TensorShape(n: 8, c: 64, h: 16, w: 16, layout: .nhwc), 8),
                                    (TensorShape.matrix(2048, 256), 8), (TensorShape(n: 64, c: 32, h: 6, w: 6), 4)] {
                let context = "\(E.typeName) GroupNorm threads \(shape) G=\(groups)"
                let x = channelValues(shape, "gnt x \(context)").map { E.narrow($0) }
                let dy = channelValues(shape, "gnt dy \(context)").map { E.narrow($0) }
                let p = halfParameters(shape.c, "gnt γβ \(context)")
                func run(_ t: Int) throws -> ([E], SavedStatistics, BatchNormGradients<E>) {
                    let threading = Threading(threads: t, parallelThreshold: 4096, spinMicroseconds: 0)
                    let gn = try GroupNormalization(shape: shape, groups: groups, threading: threading)
                    let f = try runGroupNorm(gn, x: x, gamma: p.gamma, beta: p.beta)
                    return (f.y, f.saved, try runGroupNormBackward(gn, x: x, dy: dy, saved: f.saved, gamma: p.gamma))
                }
                let one = try run(1)
                for t in 2...4 {
                    let r = try run(t)
                    #expect(r.0.map(\.bits) == one.0.map(\.bits), "\(context): \(t) threads, y")
                    expectIdentical(r.1, one.1, "\(context): \(t) threads")
                    #expect(r.2.dx?.map(\.bits) == one.2.dx?.map(\.bits), "\(context): \(t) threads, dx")
                    #expect(bitPatterns(r.2.dgamma) == bitPatterns(one.2.dgamma), "\(context): \(t) threads, dγ")
                    #expect(bitPatterns(r.2.dbeta) == bitPatterns(one.2.dbeta), "\(context): \(t) threads, dβ")
                }
                let gn = try GroupNormalization(shape: shape, groups: groups)
                let (y, saved) = try gn.forward(x, scale: p.gamma, bias: p.beta)
                #expect(y.map(\.bits) == one.0.map(\.bits), "\(context): array")
                expectIdentical(saved, one.1, "\(context): array")
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }
}
