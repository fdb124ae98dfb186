// 16-bit GroupNorm + SiLU (issues 20 and 21), every path of `GroupNormPlan`,
// modulated or not: (a) y16 == E.narrow(y32), dx16 == E.narrow(dx32); saved
// statistics, dγ, dβ and the modulation's gradients identical (Float32 kernel
// on the widened tensors); (b) y within 1 ulp of the Float64 composed op of the
// 16-bit inputs; (c) the same bits on 1–4 threads and in place; typed errors
// before any write; large |z| and Float16's range.

import CNormSupport
import Testing
@testable import NormKernels

/// dx (in the element type) and the Float32 gradients of one backward call.
struct SiLUGradients16<E> {
    var dx: [E]?
    var dgamma: [Float]?, dbeta: [Float]?, dscale: [Float]?, dshift: [Float]?
}

/// The public generic forward (for `Float` it resolves to the `Float` overload).
func runGroupNormSiLU<E: NormElement>(_ gn: GroupNormalization, x: [E], _ i: SiLUInputs,
                                      inPlace: Bool = false) throws -> (y: [E], saved: SavedStatistics) {
    var y = x, input = x
    var saved = SavedStatistics(mean: [], invStd: [])
    func call(_ xp: UnsafeBufferPointer<E>, _ yp: UnsafeMutableBufferPointer<E>) throws {
        try withOptionalBuffer(i.gamma) { g in
            try withOptionalBuffer(i.beta) { b in
                try withOptionalBuffer(i.scale) { s in
                    try withOptionalBuffer(i.shift) { t in
                        saved = try gn.forwardSiLU(input: xp, output: yp, scale: g, bias: b, modulationScale: s,
                                                   modulationShift: t)
                    }
                }
            }
        }
    }
    if inPlace {
        try input.withUnsafeMutableBufferPointer { try call(UnsafeBufferPointer($0), $0) }
        y = input
    } else {
        try x.withUnsafeBufferPointer { xp in try y.withUnsafeMutableBufferPointer { try call(xp, $0) } }
    }
    return (y, saved)
}

enum SiLUBackwardPlace { case separate, overGradOutput, overInput }

/// The public generic backward, every gradient requested that `wants` names.
func runGroupNormSiLUBackward<E: NormElement>(
    _ gn: GroupNormalization, x: [E], dy: [E], saved: SavedStatistics, _ i: SiLUInputs,
    dx wantsDx: Bool = true, parameters: Bool = true, modulation: Bool = true,
    place: SiLUBackwardPlace = .separate
) throws -> SiLUGradients16<E> {
    let perSample = gn.shape.n * gn.shape.c
    var xs = x, dys = dy, dx = dy
    var dg = [Float](repeating: 0, count: gn.shape.c), db = dg
    var ds = [Float](repeating: 0, count: perSample), dt = ds
    try withOptionalBuffer(i.gamma) { g in
        try withOptionalBuffer(i.beta) { b in
            try withOptionalBuffer(i.scale) { s in
                try withOptionalBuffer(i.shift) { t in
                    try dg.withUnsafeMutableBufferPointer { dgp in
                        try db.withUnsafeMutableBufferPointer { dbp in
                            try ds.withUnsafeMutableBufferPointer { dsp in
                                try dt.withUnsafeMutableBufferPointer { dtp in
                                    func call(_ xp: UnsafeBufferPointer<E>, _ dyp: UnsafeBufferPointer<E>,
                                              _ dxp: UnsafeMutableBufferPointer<E>?) throws {
                                        try gn.backwardSiLU(
                                            input: xp, gradOutput: dyp, saved: saved, scale: g, bias: b,
                                            modulationScale: s, modulationShift: t, gradInput: wantsDx ? dxp : nil,
                                            gradScale: parameters ? dgp : nil, gradBias: parameters ? dbp : nil,
                                            gradModulationScale: modulation && s != nil ? dsp : nil,
                                            gradModulationShift: modulation && t != nil ? dtp : nil)
                                    }
                                    switch place {
                                    case .separate:
                                        try xs.withUnsafeBufferPointer { xp in
                                            try dys.withUnsafeBufferPointer { dyp in
                                                try dx.withUnsafeMutableBufferPointer { try call(xp, dyp, $0) }
                                            }
                                        }
                                    case .overGradOutput:
                                        try xs.withUnsafeBufferPointer { xp in
                                            try dys.withUnsafeMutableBufferPointer { try call(xp, UnsafeBufferPointer($0), $0) }
                                        }
                                        dx = dys
                                    case .overInput:
                                        try dys.withUnsafeBufferPointer { dyp in
                                            try xs.withUnsafeMutableBufferPointer { try call(UnsafeBufferPointer($0), dyp, $0) }
                                        }
                                        dx = xs
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    return SiLUGradients16(dx: wantsDx ? dx : nil, dgamma: parameters ? dg : nil, dbeta: parameters ? db : nil,
                           dscale: modulation && i.scale != nil ? ds : nil,
                           dshift: modulation && i.shift != nil ? dt : nil)
}

func expectSameGradients<E: SixteenBitElement>(_ half: SiLUGradients16<E>, _ single: SiLUGradients16<Float>,
                                               _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(half.dx?.map(\.bits) == single.dx?.map { E.narrow($0).bits }, "\(what): dx", sourceLocation: sourceLocation)
    #expect(bitPatterns(half.dgamma) == bitPatterns(single.dgamma), "\(what): dγ", sourceLocation: sourceLocation)
    #expect(bitPatterns(half.dbeta) == bitPatterns(single.dbeta), "\(what): dβ", sourceLocation: sourceLocation)
    #expect(bitPatterns(half.dscale) == bitPatterns(single.dscale), "\(what): d scale", sourceLocation: sourceLocation)
    #expect(bitPatterns(half.dshift) == bitPatterns(single.dshift), "\(what): d shift", sourceLocation: sourceLocation)
}

/// 16-bit inputs of one case: x and dy rounded to E, the Float32 parameters of `SiLUInputs`.
func siluInputs16<E: NormElement>(_: E.Type, _ shape: TensorShape, _ label: String, modulated: Bool = true,
                                  gammaSpread: Double = 2) -> (x: [E], dy: [E], inputs: SiLUInputs) {
    var i = SiLUInputs(shape, seed: UInt64(shape.count) &* 31 &+ UInt64(label.utf8.count), modulated: modulated,
                       gammaSpread: gammaSpread)
    let x = channelValues(shape, "silu x \(label)").map { E.narrow($0) }
    let dy = channelValues(shape, "silu dy \(label)", center: -0.5...0.5).map { E.narrow($0) }
    i.x = x.map { E.widen($0) }
    return (x, dy, i)
}

extension HalfPrecisionTests {
    @Test("GroupNorm + SiLU (a, b): every path, modulated or not, one rounding of Float32, near Float64; in place")
    func groupNormSiLUEveryPath() throws {
        func check<E: SixteenBitElement>(_: E.Type) throws {
            for (c, modulated) in product(siluCases, [true, false]) {
                let gn = try GroupNormalization(shape: c.shape, groups: c.groups)
                let context = "\(E.typeName) GroupNorm + SiLU \(c)\(modulated ? " modulated" : "")"
                let (x16, dy16, i) = siluInputs16(E.self, c.shape, context, modulated: modulated)
                let x32 = i.x, dy32 = dy16.map { E.widen($0) }
                let half = try runGroupNormSiLU(gn, x: x16, i)
                let single = try runGroupNormSiLU(gn, x: x32, i)
                #expect(half.y.map(\.bits) == single.y.map { E.narrow($0).bits }, "\(context): y")
                expectIdentical(half.saved, single.saved, context)
                let inPlace = try runGroupNormSiLU(gn, x: x16, i, inPlace: true)
                #expect(inPlace.y.map(\.bits) == half.y.map(\.bits), "\(context): in place")
                expectIdentical(inPlace.saved, half.saved, "\(context): in place")
                let reference = referenceGroupNormSiLU(x32, c.shape, groups: c.groups, i).y
                expectNearReference(half.y, reference, beta: nil, features: c.shape.count, context)

                for (wantsDx, parameters, modulation) in [(true, true, true), (true, false, false),
                                                          (false, true, false), (false, false, true)] {
                    let h = try runGroupNormSiLUBackward(gn, x: x16, dy: dy16, saved: half.saved, i, dx: wantsDx,
                                                         parameters: parameters, modulation: modulation)
                    let s = try runGroupNormSiLUBackward(gn, x: x32, dy: dy32, saved: half.saved, i, dx: wantsDx,
                                                         parameters: parameters, modulation: modulation)
                    expectSameGradients(h, s, "\(context) backward dx \(wantsDx) dγβ \(parameters) ds dt \(modulation)")
                }
                let all = try runGroupNormSiLUBackward(gn, x: x16, dy: dy16, saved: half.saved, i)
                for place in [SiLUBackwardPlace.overGradOutput, .overInput] {
                    let r = try runGroupNormSiLUBackward(gn, x: x16, dy: dy16, saved: half.saved, i, place: place)
                    #expect(r.dx?.map(\.bits) == all.dx?.map(\.bits), "\(context): backward in place \(place)")
                    #expect(bitPatterns(r.dgamma) == bitPatterns(all.dgamma), "\(context): \(place) dγ")
                    #expect(bitPatterns(r.dscale) == bitPatterns(all.dscale), "\(context): \(place) d scale")
                }
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("GroupNorm + SiLU (c): the same bits on 1, 2, 3 and 4 threads; array convenience; the generic entry on Float")
    func groupNormSiLUThreads() throws {
        func check<E: SixteenBitElement>(_: E.Type) throws {
            for (shape, groups) in [(TensorShape(n: 2, c: 64, h: 16, w: 16), 8),
                                    (TensorShape(n: 2, c: 64, h: 16, w: 16, layout: .nhwc), 8),
                                    (TensorShape(n: 3, c: 1024, h: 3, w: 3, layout: .nhwc), 32),
                                    (TensorShape.matrix(512, 256), 8), (TensorShape(n: 16, c: 32, h: 6, w: 6), 4)] {
                let context = "\(E.typeName) GroupNorm + SiLU threads \(shape) G=\(groups)"
                let (x, dy, i) = siluInputs16(E.self, shape, context)
                func run(_ t: Int) throws -> ([E], SavedStatistics, SiLUGradients16<E>) {
                    let threading = Threading(threads: t, parallelThreshold: 4096, spinMicroseconds: 0)
                    let gn = try GroupNormalization(shape: shape, groups: groups, threading: threading)
                    let f = try runGroupNormSiLU(gn, x: x, i)
                    return (f.y, f.saved, try runGroupNormSiLUBackward(gn, x: x, dy: dy, saved: f.saved, i))
                }
                let one = try run(1)
                for t in 2...4 {
                    let r = try run(t)
                    #expect(r.0.map(\.bits) == one.0.map(\.bits), "\(context): \(t) threads, y")
                    expectIdentical(r.1, one.1, "\(context): \(t) threads")
                    #expect(r.2.dx?.map(\.bits) == one.2.dx?.map(\.bits), "\(context): \(t) threads, dx")
                    #expect(bitPatterns(r.2.dgamma) == bitPatterns(one.2.dgamma), "\(context): \(t) threads, dγ")
                    #expect(bitPatterns(r.2.dbeta) == bitPatterns(one.2.dbeta), "\(context): \(t) threads, dβ")
                    #expect(bitPatterns(r.2.dscale) == bitPatterns(one.2.dscale), "\(context): \(t) threads, ds")
                    #expect(bitPatterns(r.2.dshift) == bitPatterns(one.2.dshift), "\(context): \(t) threads, dt")
                }
                let gn = try GroupNormalization(shape: shape, groups: groups)
                let (y, saved) = try gn.forwardSiLU(x, scale: i.gamma, bias: i.beta, modulationScale: i.scale,
                                                    modulationShift: i.shift)
                #expect(y.map(\.bits) == one.0.map(\.bits), "\(context): array")
                expectIdentical(saved, one.1, "\(context): array")
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
        // The generic entry reached with Float gives the Float overloads' bits.
        for c in [siluCases[0], siluCases[3], siluCases[6]] {
            let gn = try GroupNormalization(shape: c.shape, groups: c.groups)
            let i = SiLUInputs(c.shape, seed: 3)
            let generic = try runGroupNormSiLU(gn, x: i.x, i)
            let direct = try gn.forwardSiLU(i)
            #expect(bitPatterns(generic.y) == bitPatterns(direct.output), "\(c): generic Float forward")
        }
    }

    @Test("GroupNorm + SiLU: large |z| (silu → z or −0), Float16 near its limits, mean 1e3 std 1e-1")
    func groupNormSiLUHardCases() throws {
        func check<E: SixteenBitElement>(_: E.Type, x: [Float], gammaSpread: Double, _ c: SiLUCase, _ label: String) throws {
            let gn = try GroupNormalization(shape: c.shape, groups: c.groups)
            let base = siluInputs16(E.self, c.shape, label, gammaSpread: gammaSpread)
            let dy16 = base.dy
            var i = base.inputs
            let x16 = x.map { E.narrow($0) }
            i.x = x16.map { E.widen($0) }
            let context = "\(E.typeName) \(c) \(label)"
            let half = try runGroupNormSiLU(gn, x: x16, i)
            let single = try runGroupNormSiLU(gn, x: i.x, i)
            #expect(half.y.map(\.bits) == single.y.map { E.narrow($0).bits }, "\(context): y")
            #expect(!half.y.contains { E.widen($0).isNaN }, "\(context): no NaN")
            let reference = referenceGroupNormSiLU(i.x, c.shape, groups: c.groups, i)
            if gammaSpread > 2 {
                // z = γ·x̂ + β from terms of ±400 (cancelling to small z): the Float32
                // kernel's own bound (|y − ref| ≤ 3e-5·(1 + |z|), `FusedGroupNormTests`)
                // where the 16-bit grid is finer than it.
                let bad = half.y.indices.first { k in
                    let r = reference.y[k], target = E.narrow(Float(E.format.rounded(r))).bits
                    return abs(ulpPosition(half.y[k].bits) - ulpPosition(target)) > 1
                        && abs(Double(E.widen(half.y[k])) - r) > 3e-5 * (1 + abs(reference.z[k]))
                }
                #expect(bad == nil, "\(context): y[\(bad ?? 0)] = \(E.widen(half.y[bad ?? 0])), reference \(reference.y[bad ?? 0])")
            } else {
                expectNearReference(half.y, reference.y, beta: nil, features: c.shape.count, context)
            }
            let h = try runGroupNormSiLUBackward(gn, x: x16, dy: dy16, saved: half.saved, i)
            let s = try runGroupNormSiLUBackward(gn, x: i.x, dy: dy16.map { E.widen($0) }, saved: half.saved, i)
            expectSameGradients(h, s, "\(context) backward")
            #expect(!(h.dx ?? []).contains { E.widen($0).isNaN }, "\(context): no NaN in dx")
        }
        for c in [siluCases[0], siluCases[3], siluCases[6], siluCases[8], siluCases[10]] {
            let normal = channelValues(c.shape, "hard \(c)")
            try check(BFloat16.self, x: normal, gammaSpread: 400, c, "γ up to ±400")
            #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
            try check(Float16.self, x: normal, gammaSpread: 400, c, "γ up to ±400")
            try check(Float16.self, x: channelValues(c.shape, "near max \(c)", center: 6e4...6.2e4, spread: 100...400),
                      gammaSpread: 2, c, "near 65504")
            try check(Float16.self, x: channelValues(c.shape, "offset \(c)", center: 1e3...1e3, spread: 0.1...0.1),
                      gammaSpread: 2, c, "mean 1e3 std 1e-1")
            #endif
        }
    }

    @Test("GroupNorm + SiLU errors: lengths and overlaps counted in 16-bit elements; nothing written")
    func groupNormSiLUErrors() throws {
        let c = siluCases[3], shape = c.shape, count = shape.count, perSample = shape.n * shape.c
        let gn = try GroupNormalization(shape: shape, groups: c.groups)
        var memory = [BFloat16](repeating: BFloat16(0), count: 3 * count + 16)
        for k in memory.indices { memory[k] = BFloat16(Float(k % 7) - 3) }
        let before = memory.map(\.bits)
        var dgamma = [Float](repeating: 7, count: shape.c), dscale = [Float](repeating: 7, count: perSample)
        let scale = [Float](repeating: 0.5, count: perSample)
        memory.withUnsafeMutableBufferPointer { m in
            let base = m.baseAddress!
            let x = UnsafeBufferPointer(start: base, count: count)
            let dy = UnsafeBufferPointer(start: base + count, count: count)
            let y = UnsafeMutableBufferPointer(start: base + 2 * count + 8, count: count)
            scale.withUnsafeBufferPointer { s in
                #expect(throws: NormError.lengthMismatch(argument: "output", expected: count, actual: count - 1)) {
                    try gn.forwardSiLU(input: x, output: UnsafeMutableBufferPointer(rebasing: y[1...]))
                }
                #expect(throws: NormError.lengthMismatch(argument: "modulationScale", expected: perSample,
                                                         actual: perSample - 1)) {
                    try gn.forwardSiLU(input: x, output: y, modulationScale: UnsafeBufferPointer(rebasing: s[1...]))
                }
                #expect(throws: NormError.partialOverlap(argument: "output")) {
                    try gn.forwardSiLU(input: x, output: UnsafeMutableBufferPointer(start: base + 1, count: count))
                }
                let saved = SavedStatistics(mean: [Double](repeating: 0, count: shape.n * c.groups),
                                            invStd: [Double](repeating: 1, count: shape.n * c.groups))
                dgamma.withUnsafeMutableBufferPointer { dg in
                    dscale.withUnsafeMutableBufferPointer { ds in
                        #expect(throws: NormError.self) {
                            try gn.backwardSiLU(input: x, gradOutput: dy, saved: saved, modulationScale: s,
                                                gradInput: UnsafeMutableBufferPointer(start: base + count + 3, count: count),
                                                gradScale: dg, gradModulationScale: ds)
                        }
                        #expect(throws: NormError.lengthMismatch(argument: "gradInput", expected: count, actual: count - 1)) {
                            try gn.backwardSiLU(input: x, gradOutput: dy, saved: saved, modulationScale: s,
                                                gradInput: UnsafeMutableBufferPointer(rebasing: y[1...]),
                                                gradScale: dg, gradModulationScale: ds)
                        }
                    }
                }
            }
        }
        #expect(memory.map(\.bits) == before, "memory after the failed calls")
        #expect(dgamma.allSatisfy { $0 == 7 } && dscale.allSatisfy { $0 == 7 }, "gradients after the failed calls")
    }

    @Test("GroupNorm + SiLU output loops: the same bits streaming or not, at every output alignment")
    func groupNormSiLUStreaming() throws {
        func check<E: SixteenBitElement>(_: E.Type) throws {
            let n = 203, rows = 8, columns = 24
            let x = rowValues(1, n, "silu stream x \(E.typeName)").map { E.narrow($0) }
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 2 * 256 * MemoryLayout<E>.stride, alignment: 64)
            defer { buffer.deallocate() }
            let out = buffer.bindMemory(to: E.self, capacity: 512)
            let c = AffineCoefficients(pivot: 0.25, scale: 1.5, shift: -0.125)
            let (gamma, beta) = halfParameters(columns, "silu stream γβ")
            let pivot = [Float](repeating: 0.5, count: columns)
            x.withUnsafeBufferPointer { xp in
                // Runs (NCHW): the scalar prologue up to the 16-byte boundary, the body, the tail.
                for offset in 0..<10 {
                    Apply.affine(xp.baseAddress!, out + offset, n, c, streaming: false, activation: SiLUActivation.self)
                    Apply.affine(xp.baseAddress!, out + 256 + offset, n, c, streaming: true,
                                 activation: SiLUActivation.self)
                    nk_stream_fence()
                    #expect((0..<n).allSatisfy { out[offset + $0].bits == out[256 + offset + $0].bits },
                            "\(E.typeName) SiLU run at offset \(offset)")
                }
                // Columns (NHWC): rows of 24 values (48 bytes), every row 16-byte aligned.
                pivot.withUnsafeBufferPointer { p in
                    gamma.withUnsafeBufferPointer { s in
                        beta.withUnsafeBufferPointer { t in
                            for (dst, streaming) in [(out, false), (out + 256, true)] {
                                Apply.columns(xp.baseAddress!, dst, rows: rows, columns: columns, stride: columns,
                                              pivot: p.baseAddress!, scale: s.baseAddress!, shift: t.baseAddress!,
                                              streaming: streaming, activation: SiLUActivation.self)
                            }
                        }
                    }
                }
                nk_stream_fence()
                #expect((0..<(rows * columns)).allSatisfy { out[$0].bits == out[256 + $0].bits },
                        "\(E.typeName) SiLU columns")
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }
}
