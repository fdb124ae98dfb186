// The 16-bit Span overloads (API/Spans+HalfPrecision.swift,
// Spans+HalfPrecisionRows.swift) against the generic pointer entry points, for
// BFloat16 and Float16: every output, gradient and statistic bit for bit.

import Testing
@testable import NormKernels

/// Calls `body` with a mutable span over `array`, or nil.
func withOptionalSpan<E>(_ array: inout [E]?, _ body: (inout MutableSpan<E>?) throws -> Void) rethrows {
    if array != nil {
        var span: MutableSpan<E>? = array!.mutableSpan
        try body(&span)
    } else {
        var span: MutableSpan<E>? = nil
        try body(&span)
    }
}

/// Zero-filled arrays for the selected gradients, passed to `body` as optional mutable spans.
func spanElementGradients<E: NormElement>(
    _ selection: GradientSelection, input: Int, parameters: Int,
    _ body: (inout MutableSpan<E>?, inout MutableSpan<Float>?, inout MutableSpan<Float>?) throws -> Void
) rethrows -> ElementGradients<E> {
    var dx: [E]? = selection.contains(.input) ? [E](repeating: E.narrow(0), count: input) : nil
    var dγ: [Float]? = selection.contains(.scale) ? [Float](repeating: 0, count: parameters) : nil
    var dβ: [Float]? = selection.contains(.bias) ? [Float](repeating: 0, count: parameters) : nil
    try withOptionalSpan(&dx) { x in try withOptionalSpan(&dγ) { g in try withOptionalSpan(&dβ) { b in try body(&x, &g, &b) } } }
    return ElementGradients(input: dx, scale: dγ, bias: dβ)
}

/// The same selected gradients through pointer buffers, for the reference call.
func pointerElementGradients<E: NormElement>(
    _ selection: GradientSelection, input: Int, parameters: Int,
    _ body: (UnsafeMutableBufferPointer<E>?, UnsafeMutableBufferPointer<Float>?,
             UnsafeMutableBufferPointer<Float>?) throws -> Void
) rethrows -> ElementGradients<E> {
    let a = PointerArena()
    let dx: UnsafeMutableBufferPointer<E>? = a.zeros(input, selection.contains(.input))
    let dγ: UnsafeMutableBufferPointer<Float>? = a.zeros(parameters, selection.contains(.scale))
    let dβ: UnsafeMutableBufferPointer<Float>? = a.zeros(parameters, selection.contains(.bias))
    try body(dx, dγ, dβ)
    return ElementGradients(input: dx.map { Array($0) }, scale: dγ.map { Array($0) }, bias: dβ.map { Array($0) })
}

func expectSameGradients<E>(_ a: ElementGradients<E>, _ b: ElementGradients<E>, _ what: String,
                            sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(elementBytes(a.input) == elementBytes(b.input), "\(what): dx", sourceLocation: sourceLocation)
    #expect(elementBytes(a.scale) == elementBytes(b.scale), "\(what): dγ", sourceLocation: sourceLocation)
    #expect(elementBytes(a.bias) == elementBytes(b.bias), "\(what): dβ", sourceLocation: sourceLocation)
}

/// A forward through a mutable span over a zero-filled array of `count` elements.
func spanForward<E: NormElement, R>(_ count: Int, _ body: (inout MutableSpan<E>) throws -> R) rethrows -> ([E], R) {
    var y = [E](repeating: E.narrow(0), count: count)
    let result = try withMutableSpan(&y, body)
    return (y, result)
}

func withMutableSpan<E, R>(_ array: inout [E], _ body: (inout MutableSpan<E>) throws -> R) rethrows -> R {
    var span = array.mutableSpan
    return try body(&span)
}

extension HalfPrecisionAPITests {
    @Test("Span overloads of BatchNorm (with the residual forward), InstanceNorm and GroupNorm")
    func channelSpans() throws {
        func check<E: NormElement>(_: E.Type) throws {
            for fused in [false, true] {
                let shape = Self.shape, what = "\(E.self) spans relu \(fused)"
                var rng = SplitMix64(what)
                let bn = try BatchNormalization(shape: shape, fusedReLU: fused)
                let k = try InstanceNormalization(shape: shape), gn = try GroupNormalization(shape: shape, groups: 2)
                let x: [E] = elements(&rng, shape.count), r: [E] = elements(&rng, shape.count)
                let dy: [E] = elements(&rng, shape.count)
                let g = rng.uniforms(shape.c, 0.5...2), b = rng.uniforms(shape.c, -1...1)
                let mean = rng.uniforms(shape.c, -1...1), variance = rng.uniforms(shape.c, 0.5...2)
                let r1 = try RunningStatistics(channels: shape.c, mean: mean, variance: variance)
                let r2 = try RunningStatistics(channels: shape.c, mean: mean, variance: variance)
                let a = PointerArena(), n = shape.count, c = shape.c

                // Forwards: output and statistics (and the running update) as the pointer call's.
                let y: UnsafeMutableBufferPointer<E> = a.zeros(n)!
                let saved = try bn.forwardTraining(input: a.input(x), output: y, scale: a.input(g), bias: a.input(b),
                                                   running: r1)
                let (ys, savedSpan) = try spanForward(n) { (out: inout MutableSpan<E>) in
                    try bn.forwardTraining(input: x.span, output: &out, scale: g.span, bias: b.span, running: r2)
                }
                #expect(elementBytes(ys) == elementBytes(y), "\(what): BN forwardTraining")
                expectIdentical(savedSpan, saved, what)
                #expect(bitPatterns(r1.mean) == bitPatterns(r2.mean) && bitPatterns(r1.variance) == bitPatterns(r2.variance))
                let yi: UnsafeMutableBufferPointer<E> = a.zeros(n)!
                try bn.forwardInference(input: a.input(x), output: yi, scale: a.input(g), running: r1)
                let yis = try spanForward(n) { (out: inout MutableSpan<E>) in
                    try bn.forwardInference(input: x.span, output: &out, scale: g.span, running: r2)
                }.0
                #expect(elementBytes(yis) == elementBytes(yi), "\(what): BN forwardInference")
                let yr: UnsafeMutableBufferPointer<E> = a.zeros(n)!
                let savedResidual = try bn.forwardTraining(input: a.input(x), identity: a.input(r), output: yr)
                let (yrs, savedResidualSpan) = try spanForward(n) { (out: inout MutableSpan<E>) in
                    try bn.forwardTraining(input: x.span, identity: r.span, output: &out)
                }
                #expect(elementBytes(yrs) == elementBytes(yr), "\(what): BN + add forwardTraining")
                expectIdentical(savedResidualSpan, savedResidual, "\(what): BN + add")
                let yri: UnsafeMutableBufferPointer<E> = a.zeros(n)!
                try bn.forwardInference(input: a.input(x), identity: a.input(r), output: yri, bias: a.input(b), running: r1)
                let yris = try spanForward(n) { (out: inout MutableSpan<E>) in
                    try bn.forwardInference(input: x.span, identity: r.span, output: &out, bias: b.span, running: r2)
                }.0
                #expect(elementBytes(yris) == elementBytes(yri), "\(what): BN + add forwardInference")

                // Backwards, BatchNorm with its output as the mask.
                let mask = Array(y), output: [E]? = fused ? mask : nil
                for selection in Self.selections {
                    let context = "\(what) \(selection.rawValue)"
                    expectSameGradients(
                        try spanElementGradients(selection, input: n, parameters: c) { dx, dγ, dβ in
                            try bn.backwardTraining(input: x.span, gradOutput: dy.span, saved: saved, scale: g.span,
                                                    output: output?.span, gradInput: &dx, gradScale: &dγ, gradBias: &dβ)
                        },
                        try pointerElementGradients(selection, input: n, parameters: c) { dx, dγ, dβ in
                            try bn.backwardTraining(input: a.input(x), gradOutput: a.input(dy), saved: saved,
                                                    scale: a.input(g), output: a.optional(output),
                                                    gradInput: dx, gradScale: dγ, gradBias: dβ)
                        }, "\(context): BN backwardTraining")
                    expectSameGradients(
                        try spanElementGradients(selection, input: n, parameters: c) { dx, dγ, dβ in
                            try bn.backwardInference(input: x.span, gradOutput: dy.span, running: r2, scale: g.span,
                                                     output: output?.span, gradInput: &dx, gradScale: &dγ, gradBias: &dβ)
                        },
                        try pointerElementGradients(selection, input: n, parameters: c) { dx, dγ, dβ in
                            try bn.backwardInference(input: a.input(x), gradOutput: a.input(dy), running: r1,
                                                     scale: a.input(g), output: a.optional(output),
                                                     gradInput: dx, gradScale: dγ, gradBias: dβ)
                        }, "\(context): BN backwardInference")
                }
                guard !fused else { continue }

                // InstanceNorm and GroupNorm.
                let yk: UnsafeMutableBufferPointer<E> = a.zeros(n)!
                let kSaved = try k.forwardTraining(input: a.input(x), output: yk, scale: a.input(g), bias: a.input(b))
                let (yks, kSavedSpan) = try spanForward(n) { (out: inout MutableSpan<E>) in
                    try k.forwardTraining(input: x.span, output: &out, scale: g.span, bias: b.span)
                }
                #expect(elementBytes(yks) == elementBytes(yk), "\(what): IN forwardTraining")
                expectIdentical(kSavedSpan, kSaved, "\(what): IN")
                let yki: UnsafeMutableBufferPointer<E> = a.zeros(n)!
                try k.forwardInference(input: a.input(x), output: yki, running: r1)
                let ykis = try spanForward(n) { (out: inout MutableSpan<E>) in
                    try k.forwardInference(input: x.span, output: &out, running: r2)
                }.0
                #expect(elementBytes(ykis) == elementBytes(yki), "\(what): IN forwardInference")
                let yg: UnsafeMutableBufferPointer<E> = a.zeros(n)!
                let gSaved = try gn.forward(input: a.input(x), output: yg, scale: a.input(g), bias: a.input(b))
                let (ygs, gSavedSpan) = try spanForward(n) { (out: inout MutableSpan<E>) in
                    try gn.forward(input: x.span, output: &out, scale: g.span, bias: b.span)
                }
                #expect(elementBytes(ygs) == elementBytes(yg), "\(what): GN forward")
                expectIdentical(gSavedSpan, gSaved, "\(what): GN")
                for selection in Self.selections {
                    let context = "\(what) \(selection.rawValue)"
                    expectSameGradients(
                        try spanElementGradients(selection, input: n, parameters: c) { dx, dγ, dβ in
                            try k.backwardTraining(input: x.span, gradOutput: dy.span, saved: kSaved, scale: g.span,
                                                   gradInput: &dx, gradScale: &dγ, gradBias: &dβ)
                        },
                        try pointerElementGradients(selection, input: n, parameters: c) { dx, dγ, dβ in
                            try k.backwardTraining(input: a.input(x), gradOutput: a.input(dy), saved: kSaved,
                                                   scale: a.input(g), gradInput: dx, gradScale: dγ, gradBias: dβ)
                        }, "\(context): IN backwardTraining")
                    expectSameGradients(
                        try spanElementGradients(selection, input: n, parameters: c) { dx, dγ, dβ in
                            try k.backwardInference(input: x.span, gradOutput: dy.span, running: r2, scale: g.span,
                                                    gradInput: &dx, gradScale: &dγ, gradBias: &dβ)
                        },
                        try pointerElementGradients(selection, input: n, parameters: c) { dx, dγ, dβ in
                            try k.backwardInference(input: a.input(x), gradOutput: a.input(dy), running: r1,
                                                    scale: a.input(g), gradInput: dx, gradScale: dγ, gradBias: dβ)
                        }, "\(context): IN backwardInference")
                    expectSameGradients(
                        try spanElementGradients(selection, input: n, parameters: c) { dx, dγ, dβ in
                            try gn.backward(input: x.span, gradOutput: dy.span, saved: gSaved, scale: g.span,
                                            gradInput: &dx, gradScale: &dγ, gradBias: &dβ)
                        },
                        try pointerElementGradients(selection, input: n, parameters: c) { dx, dγ, dβ in
                            try gn.backward(input: a.input(x), gradOutput: a.input(dy), saved: gSaved,
                                            scale: a.input(g), gradInput: dx, gradScale: dγ, gradBias: dβ)
                        }, "\(context): GN backward")
                }
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("Span overloads of LayerNorm, RMSNorm, AdaIN and weight normalization")
    func rowSpans() throws {
        func check<E: NormElement>(_: E.Type) throws {
            let rows = 6, features = 40, n = rows * features, what = "\(E.self) row spans"
            var rng = SplitMix64(what)
            let ln = try LayerNormalization(rows: rows, features: features)
            let rms = try RMSNormalization(rows: rows, features: features)
            let x: [E] = elements(&rng, n), dy: [E] = elements(&rng, n)
            let g = rng.uniforms(features, 0.5...2), b = rng.uniforms(features, -1...1)
            let a = PointerArena()

            let y: UnsafeMutableBufferPointer<E> = a.zeros(n)!
            let lnSaved = try ln.forward(input: a.input(x), output: y, scale: a.input(g), bias: a.input(b))
            let (ys, lnSavedSpan) = try spanForward(n) { (out: inout MutableSpan<E>) in
                try ln.forward(input: x.span, output: &out, scale: g.span, bias: b.span)
            }
            #expect(elementBytes(ys) == elementBytes(y), "\(what): LN forward")
            expectIdentical(lnSavedSpan, lnSaved, "\(what): LN")
            let yr: UnsafeMutableBufferPointer<E> = a.zeros(n)!
            let rmsSaved = try rms.forward(input: a.input(x), output: yr, scale: a.input(g))
            let (yrs, rmsSavedSpan) = try spanForward(n) { (out: inout MutableSpan<E>) in
                try rms.forward(input: x.span, output: &out, scale: g.span)
            }
            #expect(elementBytes(yrs) == elementBytes(yr), "\(what): RMS forward")
            expectIdentical(rmsSavedSpan, rmsSaved, "\(what): RMS")
            for selection in Self.selections {
                let context = "\(what) \(selection.rawValue)"
                expectSameGradients(
                    try spanElementGradients(selection, input: n, parameters: features) { dx, dγ, dβ in
                        try ln.backward(input: x.span, gradOutput: dy.span, saved: lnSaved, scale: g.span,
                                        gradInput: &dx, gradScale: &dγ, gradBias: &dβ)
                    },
                    try pointerElementGradients(selection, input: n, parameters: features) { dx, dγ, dβ in
                        try ln.backward(input: a.input(x), gradOutput: a.input(dy), saved: lnSaved, scale: a.input(g),
                                        gradInput: dx, gradScale: dγ, gradBias: dβ)
                    }, "\(context): LN backward")
                let rmsSelection = selection.subtracting(.bias)
                expectSameGradients(
                    try spanElementGradients(rmsSelection, input: n, parameters: features) { dx, dγ, _ in
                        try rms.backward(input: x.span, gradOutput: dy.span, saved: rmsSaved, scale: g.span,
                                         gradInput: &dx, gradScale: &dγ)
                    },
                    try pointerElementGradients(rmsSelection, input: n, parameters: features) { dx, dγ, _ in
                        try rms.backward(input: a.input(x), gradOutput: a.input(dy), saved: rmsSaved, scale: a.input(g),
                                         gradInput: dx, gradScale: dγ)
                    }, "\(context): RMS backward")
            }

            // AdaIN: content and style in E.
            let content = Self.shape, style = TensorShape(n: 2, c: 4, h: 2, w: 3)
            let ada = try AdaptiveInstanceNormalization(content: content, style: style)
            let cx: [E] = elements(&rng, content.count), sx: [E] = elements(&rng, style.count, mean: 1, std: 2)
            let cdy: [E] = elements(&rng, content.count)
            let ya: UnsafeMutableBufferPointer<E> = a.zeros(content.count)!
            let adaSaved = try ada.forward(content: a.input(cx), style: a.input(sx), output: ya)
            let (yas, adaSavedSpan) = try spanForward(content.count) { (out: inout MutableSpan<E>) in
                try ada.forward(content: cx.span, style: sx.span, output: &out)
            }
            #expect(elementBytes(yas) == elementBytes(ya) && adaSavedSpan == adaSaved, "\(what): AdaIN forward")
            let dc: UnsafeMutableBufferPointer<E> = a.zeros(content.count)!, ds: UnsafeMutableBufferPointer<E> = a.zeros(style.count)!
            try ada.backward(content: a.input(cx), style: a.input(sx), gradOutput: a.input(cdy), saved: adaSaved,
                             gradContent: dc, gradStyle: ds)
            var dcs: [E]? = [E](repeating: E.narrow(0), count: content.count)
            var dss: [E]? = [E](repeating: E.narrow(0), count: style.count)
            try withOptionalSpan(&dcs) { gc in
                try withOptionalSpan(&dss) { gs in
                    try ada.backward(content: cx.span, style: sx.span, gradOutput: cdy.span, saved: adaSaved,
                                     gradContent: &gc, gradStyle: &gs)
                }
            }
            #expect(elementBytes(dcs) == elementBytes(dc) && elementBytes(dss) == elementBytes(ds), "\(what): AdaIN backward")

            // Weight normalization: v, w, dw, dv in E; g, dg in Float.
            let wn = try WeightNormalization(shape: [4, 3, 5], dim: 0)
            let v: [E] = elements(&rng, wn.count), dw: [E] = elements(&rng, wn.count)
            let wg = rng.uniforms(wn.normCount, 0.5...2)
            let w: UnsafeMutableBufferPointer<E> = a.zeros(wn.count)!
            let norms = try wn.forward(v: a.input(v), g: a.input(wg), output: w)
            let (ws, normsSpan) = try spanForward(wn.count) { (out: inout MutableSpan<E>) in
                try wn.forward(v: v.span, g: wg.span, output: &out)
            }
            #expect(elementBytes(ws) == elementBytes(w) && bitPatterns(normsSpan) == bitPatterns(norms), "\(what): WN forward")
            let dv: UnsafeMutableBufferPointer<E> = a.zeros(wn.count)!, dg: UnsafeMutableBufferPointer<Float> = a.zeros(wn.normCount)!
            try wn.backward(v: a.input(v), g: a.input(wg), gradWeight: a.input(dw), norms: norms, gradV: dv, gradG: dg)
            var dvs: [E]? = [E](repeating: E.narrow(0), count: wn.count)
            var dgs: [Float]? = [Float](repeating: 0, count: wn.normCount)
            try withOptionalSpan(&dvs) { sv in
                try withOptionalSpan(&dgs) { sg in
                    try wn.backward(v: v.span, g: wg.span, gradWeight: dw.span, norms: norms, gradV: &sv, gradG: &sg)
                }
            }
            #expect(elementBytes(dvs) == elementBytes(dv) && elementBytes(dgs) == elementBytes(dg), "\(what): WN backward")
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }
}
