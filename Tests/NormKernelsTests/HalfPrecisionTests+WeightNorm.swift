// 16-bit weight normalization (issue 20): w16 == E.narrow(w32), dv16 ==
// E.narrow(dv32), the norms and dg identical (Float32 kernel on the widened
// tensors); w within 1 ulp of the Float64 reference; the same bits on 1–4 threads.

import Testing
@testable import NormKernels

/// The public weight-normalization overloads of one element type.
protocol WeightNormCalls: NormElement {
    static func wnForward(_ w: WeightNormalization, _ v: UnsafeBufferPointer<Self>, _ g: UnsafeBufferPointer<Float>,
                          _ out: UnsafeMutableBufferPointer<Self>) throws -> [Double]
    static func wnBackward(_ w: WeightNormalization, _ v: UnsafeBufferPointer<Self>, _ g: UnsafeBufferPointer<Float>,
                           _ dw: UnsafeBufferPointer<Self>, _ norms: [Double], _ dv: UnsafeMutableBufferPointer<Self>?,
                           _ dg: UnsafeMutableBufferPointer<Float>?) throws
}

extension Float: WeightNormCalls {
    static func wnForward(_ w: WeightNormalization, _ v: UnsafeBufferPointer<Float>, _ g: UnsafeBufferPointer<Float>,
                          _ out: UnsafeMutableBufferPointer<Float>) throws -> [Double] {
        try w.forward(v: v, g: g, output: out)
    }
    static func wnBackward(_ w: WeightNormalization, _ v: UnsafeBufferPointer<Float>, _ g: UnsafeBufferPointer<Float>,
                           _ dw: UnsafeBufferPointer<Float>, _ norms: [Double], _ dv: UnsafeMutableBufferPointer<Float>?,
                           _ dg: UnsafeMutableBufferPointer<Float>?) throws {
        try w.backward(v: v, g: g, gradWeight: dw, norms: norms, gradV: dv, gradG: dg)
    }
}

extension BFloat16: WeightNormCalls {
    static func wnForward(_ w: WeightNormalization, _ v: UnsafeBufferPointer<BFloat16>, _ g: UnsafeBufferPointer<Float>,
                          _ out: UnsafeMutableBufferPointer<BFloat16>) throws -> [Double] {
        try w.forward(v: v, g: g, output: out)
    }
    static func wnBackward(_ w: WeightNormalization, _ v: UnsafeBufferPointer<BFloat16>, _ g: UnsafeBufferPointer<Float>,
                           _ dw: UnsafeBufferPointer<BFloat16>, _ norms: [Double], _ dv: UnsafeMutableBufferPointer<BFloat16>?,
                           _ dg: UnsafeMutableBufferPointer<Float>?) throws {
        try w.backward(v: v, g: g, gradWeight: dw, norms: norms, gradV: dv, gradG: dg)
    }
}

#if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
extension Float16: WeightNormCalls {
    static func wnForward(_ w: WeightNormalization, _ v: UnsafeBufferPointer<Float16>, _ g: UnsafeBufferPointer<Float>,
                          _ out: UnsafeMutableBufferPointer<Float16>) throws -> [Double] {
        try w.forward(v: v, g: g, output: out)
    }
    static func wnBackward(_ w: WeightNormalization, _ v: UnsafeBufferPointer<Float16>, _ g: UnsafeBufferPointer<Float>,
                           _ dw: UnsafeBufferPointer<Float16>, _ norms: [Double], _ dv: UnsafeMutableBufferPointer<Float16>?,
                           _ dg: UnsafeMutableBufferPointer<Float>?) throws {
        try w.backward(v: v, g: g, gradWeight: dw, norms: norms, gradV: dv, gradG: dg)
    }
}
#endif

/// Forward then backward of `w` on `v` (and dw), through the overloads of `E`.
func runWeightNorm<E: WeightNormCalls>(_ w: WeightNormalization, v: [E], g: [Float], dw: [E])
    throws -> (w: [E], norms: [Double], dv: [E], dg: [Float]) {
    var out = v, dv = v
    var dg = [Float](repeating: 0, count: g.count)
    var norms: [Double] = []
    try v.withUnsafeBufferPointer { vp in
        try g.withUnsafeBufferPointer { gp in
            try out.withUnsafeMutableBufferPointer { norms = try E.wnForward(w, vp, gp, $0) }
            try dw.withUnsafeBufferPointer { dwp in
                try dv.withUnsafeMutableBufferPointer { dvp in
                    try dg.withUnsafeMutableBufferPointer { try E.wnBackward(w, vp, gp, dwp, norms, dvp, $0) }
                }
            }
        }
    }
    return (out, norms, dv, dg)
}

extension HalfPrecisionTests {
    @Test("weight normalization: one rounding of Float32, near Float64, the same bits on 1-4 threads")
    func weightNorm() throws {
        func check<E: SixteenBitElement & WeightNormCalls>(_: E.Type) throws {
            for (shape, dim) in [([64, 3, 3, 3], Optional(0)), ([20, 300], 1), ([7, 9, 5], nil), ([512, 512], 0)] {
                let context = "\(E.typeName) weight norm \(shape) dim \(dim.map(String.init) ?? "nil")"
                let wn = try WeightNormalization(shape: shape, dim: dim)
                var rng = SplitMix64("wn \(context)")
                let v16 = rng.normals(wn.count).map { E.narrow($0) }, v32 = v16.map { E.widen($0) }
                let dw16 = rng.normals(wn.count).map { E.narrow($0) }, dw32 = dw16.map { E.widen($0) }
                let g = rng.uniforms(wn.normCount, 0.5...2)
                let half = try runWeightNorm(wn, v: v16, g: g, dw: dw16)
                let single = try runWeightNorm(wn, v: v32, g: g, dw: dw32)
                #expect(half.w.map(\.bits) == single.w.map { E.narrow($0).bits }, "\(context): w")
                #expect(bitPatterns(half.norms) == bitPatterns(single.norms), "\(context): norms")
                #expect(half.dv.map(\.bits) == single.dv.map { E.narrow($0).bits }, "\(context): dv")
                #expect(bitPatterns(half.dg) == bitPatterns(single.dg), "\(context): dg")
                let reference = Reference.weightNorm(v32, shape: shape, dim: dim, g: g).weight
                expectNearReference(half.w, reference, beta: nil, features: 1, context)
                for t in 2...4 {
                    let threading = Threading(threads: t, parallelThreshold: 4096, spinMicroseconds: 0)
                    let r = try runWeightNorm(WeightNormalization(shape: shape, dim: dim, threading: threading),
                                              v: v16, g: g, dw: dw16)
                    #expect(r.w.map(\.bits) == half.w.map(\.bits) && r.dv.map(\.bits) == half.dv.map(\.bits)
                            && bitPatterns(r.dg) == bitPatterns(half.dg), "\(context): \(t) threads")
                }
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }
}
