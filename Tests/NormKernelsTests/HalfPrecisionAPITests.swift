// The 16-bit array conveniences of the backward passes
// (API/Arrays+HalfPrecisionBackward.swift) against the generic pointer entry
// points: for BFloat16 and Float16, every result bit for bit the pointer
// call's (dx in the tensor's type, dγ, dβ in Float), for every gradient
// selection. The fused ones are in `+Fused`, the Span overloads in `+Spans`,
// the rejected calls in `+Errors`.

import Testing
@testable import NormKernels

/// Buffers for the pointer calls that the conveniences are checked against:
/// copies of arrays, or `count` copies of a fill value; freed with the arena.
final class PointerArena {
    private var allocations: [UnsafeMutableRawPointer] = []
    deinit { for p in allocations { p.deallocate() } }

    func input<E>(_ array: [E]) -> UnsafeBufferPointer<E> {
        UnsafeBufferPointer(mutableCopy(array))
    }

    func optional<E>(_ array: [E]?) -> UnsafeBufferPointer<E>? { array.map { input($0) } }

    func mutableCopy<E>(_ array: [E]) -> UnsafeMutableBufferPointer<E> {
        let p = UnsafeMutableBufferPointer<E>.allocate(capacity: max(array.count, 1))
        _ = p.initialize(from: array)
        allocations.append(UnsafeMutableRawPointer(p.baseAddress!))
        return UnsafeMutableBufferPointer(rebasing: p[0..<array.count])
    }

    /// `count` zero bits (+0), as the conveniences allocate their gradients; nil unless `wanted`.
    func zeros<E>(_ count: Int, _ wanted: Bool = true) -> UnsafeMutableBufferPointer<E>? {
        guard wanted else { return nil }
        let p = UnsafeMutableBufferPointer<E>.allocate(capacity: max(count, 1))
        UnsafeMutableRawBufferPointer(p).initializeMemory(as: UInt8.self, repeating: 0)
        allocations.append(UnsafeMutableRawPointer(p.baseAddress!))
        return UnsafeMutableBufferPointer(rebasing: p[0..<count])
    }
}

/// The bytes of an array (nil stays nil): a bitwise comparison for any element type.
func elementBytes<E>(_ array: [E]?) -> [UInt8]? { array.map { $0.withUnsafeBytes { Array($0) } } }

func elementBytes<E>(_ buffer: UnsafeMutableBufferPointer<E>?) -> [UInt8]? {
    buffer.map { Array(UnsafeRawBufferPointer($0)) }
}

/// `count` values of `E` rounded from normal samples.
func elements<E: NormElement>(_ rng: inout SplitMix64, _ count: Int, mean: Double = 0, std: Double = 1) -> [E] {
    rng.normals(count, mean: mean, std: std).map(E.narrow)
}

/// dx, dγ and dβ of a convenience against the pointer call's buffers, bit for bit.
func expectSameGradients<E>(
    _ array: ElementGradients<E>, _ dx: UnsafeMutableBufferPointer<E>?, _ dg: UnsafeMutableBufferPointer<Float>?,
    _ db: UnsafeMutableBufferPointer<Float>?, _ what: String, sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(elementBytes(array.input) == elementBytes(dx), "\(what): dx", sourceLocation: sourceLocation)
    #expect(elementBytes(array.scale) == elementBytes(dg), "\(what): dγ", sourceLocation: sourceLocation)
    #expect(elementBytes(array.bias) == elementBytes(db), "\(what): dβ", sourceLocation: sourceLocation)
}

@Suite("16-bit array conveniences of the backward passes: the pointer API's bits")
struct HalfPrecisionAPITests {
    static let shape = TensorShape(n: 2, c: 4, h: 3, w: 5)
    static let selections: [GradientSelection] = [.all, .input, .parameters, .scale]

    @Test("BatchNorm backwardTraining and backwardInference (plain and fused ReLU, NCHW and NHWC)")
    func batchNorm() throws {
        func check<E: NormElement>(_: E.Type) throws {
            for (fused, layout) in product([false, true], [Layout.nchw, .nhwc]) {
                let shape = Self.shape.with(layout: layout), what = "\(E.self) BatchNorm relu \(fused) \(layout)"
                var rng = SplitMix64(what)
                let bn = try BatchNormalization(shape: shape, fusedReLU: fused)
                let x: [E] = elements(&rng, shape.count), dy: [E] = elements(&rng, shape.count)
                let g = rng.uniforms(shape.c, 0.5...2), b = rng.uniforms(shape.c, -1...1)
                let running = try RunningStatistics(channels: shape.c, mean: rng.uniforms(shape.c, -1...1),
                                                    variance: rng.uniforms(shape.c, 0.5...2))
                let (y, saved) = try bn.forwardTraining(x, scale: g, bias: b)
                let output: [E]? = fused ? y : nil
                for selection in Self.selections {
                    let a = PointerArena()
                    var dx: UnsafeMutableBufferPointer<E>? = a.zeros(shape.count, selection.contains(.input))
                    var dg: UnsafeMutableBufferPointer<Float>? = a.zeros(shape.c, selection.contains(.scale))
                    var db: UnsafeMutableBufferPointer<Float>? = a.zeros(shape.c, selection.contains(.bias))
                    try bn.backwardTraining(input: a.input(x), gradOutput: a.input(dy), saved: saved, scale: a.input(g),
                                            output: a.optional(output), gradInput: dx, gradScale: dg, gradBias: db)
                    let train = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: g, output: output,
                                                        computing: selection)
                    expectSameGradients(train, dx, dg, db, "\(what) training \(selection.rawValue)")

                    dx = a.zeros(shape.count, selection.contains(.input))
                    dg = a.zeros(shape.c, selection.contains(.scale))
                    db = a.zeros(shape.c, selection.contains(.bias))
                    try bn.backwardInference(input: a.input(x), gradOutput: a.input(dy), running: running,
                                             scale: a.input(g), output: a.optional(output),
                                             gradInput: dx, gradScale: dg, gradBias: db)
                    let inference = try bn.backwardInference(x, gradOutput: dy, running: running, scale: g,
                                                             output: output, computing: selection)
                    expectSameGradients(inference, dx, dg, db, "\(what) inference \(selection.rawValue)")
                }
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("InstanceNorm backwardTraining and backwardInference, GroupNorm backward")
    func instanceAndGroupNorm() throws {
        func check<E: NormElement>(_: E.Type) throws {
            let shape = Self.shape, what = "\(E.self) InstanceNorm/GroupNorm"
            var rng = SplitMix64(what)
            let k = try InstanceNormalization(shape: shape), gn = try GroupNormalization(shape: shape, groups: 2)
            let x: [E] = elements(&rng, shape.count), dy: [E] = elements(&rng, shape.count)
            let g = rng.uniforms(shape.c, 0.5...2)
            let running = try RunningStatistics(channels: shape.c, mean: rng.uniforms(shape.c, -1...1),
                                                variance: rng.uniforms(shape.c, 0.5...2))
            let saved = try k.forwardTraining(x, scale: g).saved, gnSaved = try gn.forward(x, scale: g).saved
            for selection in Self.selections {
                let a = PointerArena(), count = shape.count, c = shape.c
                func buffers() -> (UnsafeMutableBufferPointer<E>?, UnsafeMutableBufferPointer<Float>?,
                                   UnsafeMutableBufferPointer<Float>?) {
                    (a.zeros(count, selection.contains(.input)), a.zeros(c, selection.contains(.scale)),
                     a.zeros(c, selection.contains(.bias)))
                }
                var (dx, dg, db) = buffers()
                try k.backwardTraining(input: a.input(x), gradOutput: a.input(dy), saved: saved, scale: a.input(g),
                                       gradInput: dx, gradScale: dg, gradBias: db)
                expectSameGradients(try k.backwardTraining(x, gradOutput: dy, saved: saved, scale: g, computing: selection),
                                    dx, dg, db, "\(what) instance training \(selection.rawValue)")
                (dx, dg, db) = buffers()
                try k.backwardInference(input: a.input(x), gradOutput: a.input(dy), running: running, scale: a.input(g),
                                        gradInput: dx, gradScale: dg, gradBias: db)
                expectSameGradients(try k.backwardInference(x, gradOutput: dy, running: running, scale: g,
                                                            computing: selection),
                                    dx, dg, db, "\(what) instance inference \(selection.rawValue)")
                (dx, dg, db) = buffers()
                try gn.backward(input: a.input(x), gradOutput: a.input(dy), saved: gnSaved, scale: a.input(g),
                                gradInput: dx, gradScale: dg, gradBias: db)
                expectSameGradients(try gn.backward(x, gradOutput: dy, saved: gnSaved, scale: g, computing: selection),
                                    dx, dg, db, "\(what) group \(selection.rawValue)")
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("LayerNorm and RMSNorm backward")
    func rows() throws {
        func check<E: NormElement>(_: E.Type) throws {
            let rows = 6, features = 40, what = "\(E.self) LayerNorm/RMSNorm"
            var rng = SplitMix64(what)
            let ln = try LayerNormalization(rows: rows, features: features)
            let rms = try RMSNormalization(rows: rows, features: features)
            let x: [E] = elements(&rng, rows * features), dy: [E] = elements(&rng, rows * features)
            let g = rng.uniforms(features, 0.5...2)
            let lnSaved = try ln.forward(x, scale: g).saved, rmsSaved = try rms.forward(x, scale: g).saved
            for selection in Self.selections {
                let a = PointerArena()
                var dx: UnsafeMutableBufferPointer<E>? = a.zeros(rows * features, selection.contains(.input))
                var dg: UnsafeMutableBufferPointer<Float>? = a.zeros(features, selection.contains(.scale))
                let db: UnsafeMutableBufferPointer<Float>? = a.zeros(features, selection.contains(.bias))
                try ln.backward(input: a.input(x), gradOutput: a.input(dy), saved: lnSaved, scale: a.input(g),
                                gradInput: dx, gradScale: dg, gradBias: db)
                expectSameGradients(try ln.backward(x, gradOutput: dy, saved: lnSaved, scale: g, computing: selection),
                                    dx, dg, db, "\(what) LayerNorm \(selection.rawValue)")
                dx = a.zeros(rows * features, selection.contains(.input))
                dg = a.zeros(features, selection.contains(.scale))
                try rms.backward(input: a.input(x), gradOutput: a.input(dy), saved: rmsSaved, scale: a.input(g),
                                 gradInput: dx, gradScale: dg)
                expectSameGradients(try rms.backward(x, gradOutput: dy, saved: rmsSaved, scale: g, computing: selection),
                                    dx, dg, nil, "\(what) RMSNorm \(selection.rawValue)")
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("AdaIN backward, weight norm forward and backward")
    func adaINAndWeightNorm() throws {
        func check<E: NormElement>(_: E.Type) throws {
            let what = "\(E.self) AdaIN/weight norm"
            var rng = SplitMix64(what)
            let content = Self.shape, style = TensorShape(n: 2, c: 4, h: 2, w: 3)
            let ada = try AdaptiveInstanceNormalization(content: content, style: style)
            let x: [E] = elements(&rng, content.count), s: [E] = elements(&rng, style.count, mean: 1, std: 2)
            let dy: [E] = elements(&rng, content.count)
            let saved = try ada.forward(content: x, style: s).saved
            for (wantContent, wantStyle) in [(true, true), (true, false), (false, true)] {
                let a = PointerArena()
                let dc: UnsafeMutableBufferPointer<E>? = a.zeros(content.count, wantContent)
                let ds: UnsafeMutableBufferPointer<E>? = a.zeros(style.count, wantStyle)
                try ada.backward(content: a.input(x), style: a.input(s), gradOutput: a.input(dy), saved: saved,
                                 gradContent: dc, gradStyle: ds)
                let array = try ada.backward(content: x, style: s, gradOutput: dy, saved: saved,
                                             gradContent: wantContent, gradStyle: wantStyle)
                #expect(elementBytes(array.content) == elementBytes(dc), "\(what): dcontent \(wantContent)")
                #expect(elementBytes(array.style) == elementBytes(ds), "\(what): dstyle \(wantStyle)")
            }

            let wn = try WeightNormalization(shape: [4, 3, 5], dim: 0)
            let v: [E] = elements(&rng, wn.count), dw: [E] = elements(&rng, wn.count)
            let g = rng.uniforms(wn.normCount, 0.5...2)
            let a = PointerArena()
            let w: UnsafeMutableBufferPointer<E> = a.zeros(wn.count)!
            let norms = try wn.forward(v: a.input(v), g: a.input(g), output: w)
            let (wArray, normsArray) = try wn.forward(v: v, g: g)
            #expect(elementBytes(wArray) == elementBytes(w), "\(what): w")
            #expect(bitPatterns(normsArray) == bitPatterns(norms), "\(what): norms")
            for (wantV, wantG) in [(true, true), (true, false), (false, true)] {
                let dv: UnsafeMutableBufferPointer<E>? = a.zeros(wn.count, wantV)
                let dg: UnsafeMutableBufferPointer<Float>? = a.zeros(wn.normCount, wantG)
                try wn.backward(v: a.input(v), g: a.input(g), gradWeight: a.input(dw), norms: norms, gradV: dv, gradG: dg)
                let array = try wn.backward(v: v, g: g, gradWeight: dw, norms: norms, gradV: wantV, gradG: wantG)
                #expect(elementBytes(array.v) == elementBytes(dv), "\(what): dv \(wantV)")
                #expect(elementBytes(array.g) == elementBytes(dg), "\(what): dg \(wantG)")
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }
}
