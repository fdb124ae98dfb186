// 16-bit LayerNorm and RMSNorm backward (HalfPrecisionTests): x, dy and dx in
// Float16 or BFloat16, dγ and dβ in Float. dx must be E.narrow of the Float32
// kernel's dx on the widened tensors and dγ, dβ its very bits; dx within 2 ulps
// of the Float64 closed form (or the Float32 arithmetic's error where the 16-bit
// grid is finer); the same bits on 1–4 threads and in place (dx over dy).

import Testing
@testable import NormKernels

struct RowGradients<E> {
    var input: [E]?
    var scale: [Float]?
    var bias: [Float]?
}

/// The backward of `op` on 16-bit or Float tensors, through the overload of the type.
func backwardRows<E: NormElement>(
    _ op: RowOp, rows: Int, features: Int, x: [E], dy: [E], saved: SavedStatistics, gamma: [Float],
    threading: Threading = .serial, input wantsInput: Bool = true, parameters: Bool = true, inPlace: Bool = false
) throws -> RowGradients<E> {
    var dx = dy, dgamma = [Float](repeating: 0, count: features), dbeta = dgamma
    var dyCopy = dy
    try x.withUnsafeBufferPointer { xp in
        try gamma.withUnsafeBufferPointer { g in
            try dgamma.withUnsafeMutableBufferPointer { dg in
                try dbeta.withUnsafeMutableBufferPointer { db in
                    func call(_ dyp: UnsafeBufferPointer<E>, _ dxp: UnsafeMutableBufferPointer<E>?) throws {
                        switch op {
                        case .layerNorm:
                            let ln = try LayerNormalization(rows: rows, features: features, threading: threading)
                            try ln.backwardAnyElement(input: xp, gradOutput: dyp, saved: saved, scale: g, gradInput: dxp,
                                                      gradScale: parameters ? dg : nil, gradBias: parameters ? db : nil)
                        case .rmsNorm:
                            let rms = try RMSNormalization(rows: rows, features: features, threading: threading)
                            try rms.backwardAnyElement(input: xp, gradOutput: dyp, saved: saved, scale: g, gradInput: dxp,
                                                       gradScale: parameters ? dg : nil)
                        }
                    }
                    if inPlace {
                        try dyCopy.withUnsafeMutableBufferPointer { try call(UnsafeBufferPointer($0), $0) }
                    } else {
                        try dy.withUnsafeBufferPointer { dyp in
                            try dx.withUnsafeMutableBufferPointer { try call(dyp, wantsInput ? $0 : nil) }
                        }
                    }
                }
            }
        }
    }
    return RowGradients(input: wantsInput ? (inPlace ? dyCopy : dx) : nil, scale: parameters ? dgamma : nil,
                        bias: parameters && op == .layerNorm ? dbeta : nil)
}

/// The Float64 dx of `op` per row: r·(g − mean(g) − x̂·mean(g·x̂)) (RMSNorm: no
/// mean(g), x̂ = x·r), with exact statistics.
func referenceRowGradient(_ op: RowOp, rows: Int, features: Int, _ x: [Float], _ dy: [Float],
                          gamma: [Float]) -> [Double] {
    if op == .layerNorm {
        let slots = (0..<rows).map { r in Array((r * features)..<((r + 1) * features)) }
        return Reference.centeredBackward(x, dy, slots, eps: Double(Float(1e-5))) { Double(gamma[$0 % features]) }
    }
    var dx = [Double](repeating: 0, count: x.count)
    for r in 0..<rows {
        let o = r * features
        var s = Reference.Sum()
        for i in 0..<features { s.add(Double(x[o + i]) * Double(x[o + i])) }
        let inv = 1 / (s.value / Double(features) + Double(Float.ulpOfOne)).squareRoot()
        var gx = Reference.Sum()
        for i in 0..<features { gx.add(Double(gamma[i]) * Double(dy[o + i]) * Double(x[o + i]) * inv) }
        let m2 = gx.value / Double(features)
        for i in 0..<features {
            dx[o + i] = inv * (Double(gamma[i]) * Double(dy[o + i]) - Double(x[o + i]) * inv * m2)
        }
    }
    return dx
}

extension HalfPrecisionTests {
    static let backwardShapes: [(RowOp, Int, Int)] = [
        (.layerNorm, 64, 13), (.layerNorm, 40, 300), (.layerNorm, 9, 1024), (.layerNorm, 3, 9001),
        (.layerNorm, 2048, 600),
        (.rmsNorm, 64, 13), (.rmsNorm, 40, 300), (.rmsNorm, 9, 1024), (.rmsNorm, 3, 9001),
    ]

    @Test("backward: dx one rounding of the Float32 dx, dγ and dβ its bits, within 2 ulps of Float64")
    func backwardExact() throws {
        func check<E: SixteenBitElement>(_: E.Type) throws {
            for (op, rows, features) in Self.backwardShapes {
                let context = "\(E.typeName) \(op) backward [\(rows), \(features)]"
                let x16 = rowValues(rows, features, "bw x \(context)").map { E.narrow($0) }
                let dy16 = rowValues(rows, features, "bw dy \(context)", center: -0.5...0.5).map { E.narrow($0) }
                let (x32, dy32) = (x16.map { E.widen($0) }, dy16.map { E.widen($0) })
                let gamma = halfParameters(features, "bw γ").gamma
                let saved = try runRows(op, rows: rows, features: features, x16, gamma: gamma, beta: nil).saved
                for (wantsInput, parameters) in [(true, true), (true, false), (false, true)] {
                    let half = try backwardRows(op, rows: rows, features: features, x: x16, dy: dy16, saved: saved,
                                                gamma: gamma, input: wantsInput, parameters: parameters)
                    let single = try backwardRows(op, rows: rows, features: features, x: x32, dy: dy32, saved: saved,
                                                  gamma: gamma, input: wantsInput, parameters: parameters)
                    let what = "\(context) dx \(wantsInput) dγ/dβ \(parameters)"
                    #expect(half.input?.map(\.bits) == single.input?.map { E.narrow($0).bits }, "\(what): dx")
                    #expect(bitPatterns(half.scale) == bitPatterns(single.scale), "\(what): dγ")
                    #expect(bitPatterns(half.bias) == bitPatterns(single.bias), "\(what): dβ")
                }
                // Float64: within 2 ulps, or the Float32 arithmetic's error (2⁻¹⁸ of the largest |dx|).
                let dx = try backwardRows(op, rows: rows, features: features, x: x16, dy: dy16, saved: saved,
                                          gamma: gamma).input!
                let reference = referenceRowGradient(op, rows: rows, features: features, x32, dy32, gamma: gamma)
                let floor = 0x1p-18 * reference.reduce(0) { max($0, abs($1)) }
                var worst = -1, floorUsed = 0
                for i in dx.indices {
                    let target = E.narrow(Float(E.format.rounded(reference[i]))).bits
                    if abs(ulpPosition(dx[i].bits) - ulpPosition(target)) <= 2 { continue }
                    if abs(Double(E.widen(dx[i])) - reference[i]) <= floor { floorUsed += 1; continue }
                    worst = i
                }
                let message = worst < 0 ? "" : "\(context): dx[\(worst)] = \(E.widen(dx[worst])), reference \(reference[worst])"
                #expect(worst < 0, Comment(rawValue: message))
                #expect(floorUsed * 20 <= dx.count, "\(context): \(floorUsed) of \(dx.count) dx needed the Float32 bound")
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("backward: the same bits on 1, 2, 3 and 4 threads, and in place")
    func backwardThreads() throws {
        func check<E: SixteenBitElement>(_: E.Type) throws {
            for (op, rows, features) in [(RowOp.layerNorm, 4096, 40), (.layerNorm, 3, 50001), (.layerNorm, 512, 1500),
                                         (.rmsNorm, 4096, 40), (.rmsNorm, 3, 50001)] {
                let context = "\(E.typeName) \(op) backward [\(rows), \(features)]"
                let x = rowValues(rows, features, "bwt x \(context)").map { E.narrow($0) }
                let dy = rowValues(rows, features, "bwt dy \(context)").map { E.narrow($0) }
                let gamma = halfParameters(features, "bwt γ").gamma
                let saved = try runRows(op, rows: rows, features: features, x, gamma: gamma, beta: nil).saved
                func run(_ t: Int, inPlace: Bool = false) throws -> RowGradients<E> {
                    try backwardRows(op, rows: rows, features: features, x: x, dy: dy, saved: saved, gamma: gamma,
                                     threading: Threading(threads: t, parallelThreshold: 4096, spinMicroseconds: 0),
                                     inPlace: inPlace)
                }
                let one = try run(1)
                for (t, inPlace) in [(2, false), (3, false), (4, false), (2, true)] {
                    let r = try run(t, inPlace: inPlace)
                    let what = "\(context): \(t) threads\(inPlace ? ", in place" : "")"
                    #expect(r.input?.map(\.bits) == one.input?.map(\.bits), "\(what): dx")
                    #expect(bitPatterns(r.scale) == bitPatterns(one.scale), "\(what): dγ")
                    #expect(bitPatterns(r.bias) == bitPatterns(one.bias), "\(what): dβ")
                }
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("backward errors: wrong lengths and overlaps throw, and nothing is written")
    func backwardErrors() throws {
        func check<E: SixteenBitElement>(_: E.Type) throws {
            let rows = 4, features = 40, total = 160
            let ln = try LayerNormalization(rows: rows, features: features)
            let x = (0..<total).map { E.narrow(Float($0 % 7) - 3) }
            let saved = try runRows(.layerNorm, rows: rows, features: features, x, gamma: nil, beta: nil).saved
            let mark = E(bits: 0x7E5A)
            var dx = [E](repeating: mark, count: total + 1)
            var dg = [Float](repeating: gradientSentinel, count: features)
            x.withUnsafeBufferPointer { xp in
                dx.withUnsafeMutableBufferPointer { dxp in
                    dg.withUnsafeMutableBufferPointer { dgp in
                        expectNormError(.lengthMismatch(argument: "gradInput", expected: total, actual: total + 1),
                                        mentions: ["gradInput"], "\(E.typeName) long dx") {
                            try ln.backwardAnyElement(input: xp, gradOutput: xp, saved: saved, scale: nil, gradInput: dxp,
                                                      gradScale: dgp, gradBias: nil)
                        }
                        // dx one element past dy: a partial overlap.
                        let shifted = UnsafeMutableBufferPointer(rebasing: dxp[1...])
                        let dyp = UnsafeBufferPointer(rebasing: dxp[0..<total])
                        expectNormError(.partialOverlap(argument: "gradInput (against gradOutput)"),
                                        mentions: ["gradInput"], "\(E.typeName) dx over dy") {
                            try ln.backwardAnyElement(input: xp, gradOutput: dyp, saved: saved, scale: nil,
                                                      gradInput: shifted, gradScale: dgp, gradBias: nil)
                        }
                    }
                }
            }
            #expect(dx.allSatisfy { $0.bits == mark.bits }, "\(E.typeName): dx written before the error")
            #expect(dg.allSatisfy { $0.bitPattern == gradientSentinel.bitPattern }, "\(E.typeName): dγ written")
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }
}
