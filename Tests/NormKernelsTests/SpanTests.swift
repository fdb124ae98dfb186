// The Span / MutableSpan overloads (API/Spans.swift) against the array API,
// which forwards to the pointer API: every overload, bit-identical results,
// and a rejected call that throws the pointer API's error and writes nothing.

import Testing
@testable import NormKernels

/// Calls `body` with a mutable span over `array`.
private func withSpan(_ array: inout [Float], _ body: (inout MutableSpan<Float>) throws -> Void) rethrows {
    var span = array.mutableSpan
    try body(&span)
}

/// Calls `body` with a mutable span over `array`, or nil.
private func withSpan(_ array: inout [Float]?, _ body: (inout MutableSpan<Float>?) throws -> Void) rethrows {
    if array != nil {
        var span: MutableSpan<Float>? = array!.mutableSpan
        try body(&span)
    } else {
        var span: MutableSpan<Float>? = nil
        try body(&span)
    }
}

/// Span-API gradients: zero-filled buffers for the selected ones, as the array API allocates.
private func spanGradients(
    _ selection: GradientSelection, input: Int, parameters: Int, hasBias: Bool = true,
    _ body: (inout MutableSpan<Float>?, inout MutableSpan<Float>?, inout MutableSpan<Float>?) throws -> Void
) rethrows -> NormGradients {
    var dx: [Float]? = selection.contains(.input) ? [Float](repeating: 0, count: input) : nil
    var dγ: [Float]? = selection.contains(.scale) ? [Float](repeating: 0, count: parameters) : nil
    var dβ: [Float]? = hasBias && selection.contains(.bias) ? [Float](repeating: 0, count: parameters) : nil
    try withSpan(&dx) { x in try withSpan(&dγ) { g in try withSpan(&dβ) { b in try body(&x, &g, &b) } } }
    return NormGradients(input: dx, scale: dγ, bias: dβ)
}

private func runningPair(_ channels: Int, _ rng: inout SplitMix64) throws -> (RunningStatistics, RunningStatistics) {
    let mean = rng.uniforms(channels, -1...1), variance = rng.uniforms(channels, 0.5...2)
    return (try RunningStatistics(channels: channels, mean: mean, variance: variance),
            try RunningStatistics(channels: channels, mean: mean, variance: variance))
}

@Suite("Span overloads: bit-identical to the pointer API, same errors")
struct SpanTests {
    static let shape = TensorShape(n: 2, c: 3, h: 4, w: 5)
    static let selections: [GradientSelection] = [.all, .input, .parameters, .scale]

    @Test("BatchNorm: forwardTraining, forwardInference, backwardTraining, backwardInference (plain and fusedReLU)")
    func batchNorm() throws {
        for (fused, layout) in product([false, true], [Layout.nchw, .nhwc]) {
            let shape = Self.shape.with(layout: layout)
            let what = "BatchNorm fusedReLU \(fused) \(layout)"
            var rng = SplitMix64(what)
            let bn = try BatchNormalization(shape: shape, fusedReLU: fused)
            let x = rng.normals(shape.count), dy = rng.normals(shape.count)
            let g = rng.uniforms(shape.c, 0.5...2), b = rng.uniforms(shape.c, -1...1)
            let (r1, r2) = try runningPair(shape.c, &rng)

            let (yArray, savedArray) = try bn.forwardTraining(x, scale: g, bias: b, running: r1)
            var y = [Float](repeating: -7, count: shape.count)
            var saved = SavedStatistics(mean: [], invStd: [])
            try withSpan(&y) { out in
                saved = try bn.forwardTraining(input: x.span, output: &out, scale: g.span, bias: b.span, running: r2)
            }
            #expect(bitPatterns(y) == bitPatterns(yArray), "\(what): forwardTraining")
            expectIdentical(saved, savedArray, what)
            #expect(bitPatterns(r1.mean) == bitPatterns(r2.mean) && bitPatterns(r1.variance) == bitPatterns(r2.variance), "\(what): running")

            let yInfArray = try bn.forwardInference(x, scale: g, bias: b, running: r1)
            var yInf = [Float](repeating: -7, count: shape.count)
            try withSpan(&yInf) { out in
                try bn.forwardInference(input: x.span, output: &out, scale: g.span, bias: b.span, running: r2)
            }
            #expect(bitPatterns(yInf) == bitPatterns(yInfArray), "\(what): forwardInference")

            let output: [Float]? = fused ? y : nil
            for selection in Self.selections {
                let array = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: g, output: output,
                                                    computing: selection)
                let spans = try spanGradients(selection, input: shape.count, parameters: shape.c) { dx, dγ, dβ in
                    try bn.backwardTraining(input: x.span, gradOutput: dy.span, saved: saved, scale: g.span,
                                            output: output?.span, gradInput: &dx, gradScale: &dγ, gradBias: &dβ)
                }
                expectIdentical(spans, array, "\(what): backwardTraining \(selection.rawValue)")

                let arrayInf = try bn.backwardInference(x, gradOutput: dy, running: r1, scale: g, output: output,
                                                        computing: selection)
                let spansInf = try spanGradients(selection, input: shape.count, parameters: shape.c) { dx, dγ, dβ in
                    try bn.backwardInference(input: x.span, gradOutput: dy.span, running: r2, scale: g.span,
                                             output: output?.span, gradInput: &dx, gradScale: &dγ, gradBias: &dβ)
                }
                expectIdentical(spansInf, arrayInf, "\(what): backwardInference \(selection.rawValue)")
            }
        }
    }

    @Test("InstanceNorm: forwardTraining, forwardInference, backwardTraining, backwardInference")
    func instanceNorm() throws {
        let shape = Self.shape
        var rng = SplitMix64("span instance norm")
        let k = try InstanceNormalization(shape: shape)
        let x = rng.normals(shape.count), dy = rng.normals(shape.count)
        let g = rng.uniforms(shape.c, 0.5...2), b = rng.uniforms(shape.c, -1...1)
        let (r1, r2) = try runningPair(shape.c, &rng)

        let (yArray, savedArray) = try k.forwardTraining(x, scale: g, bias: b, running: r1)
        var y = [Float](repeating: -7, count: shape.count)
        var saved = SavedStatistics(mean: [], invStd: [])
        try withSpan(&y) { out in
            saved = try k.forwardTraining(input: x.span, output: &out, scale: g.span, bias: b.span, running: r2)
        }
        #expect(bitPatterns(y) == bitPatterns(yArray))
        expectIdentical(saved, savedArray, "InstanceNorm")
        #expect(bitPatterns(r1.mean) == bitPatterns(r2.mean) && bitPatterns(r1.variance) == bitPatterns(r2.variance))

        // Without γ and β (nil spans).
        let yPlainArray = try k.forwardInference(x, running: r1)
        var yPlain = [Float](repeating: -7, count: shape.count)
        try withSpan(&yPlain) { out in try k.forwardInference(input: x.span, output: &out, running: r2) }
        #expect(bitPatterns(yPlain) == bitPatterns(yPlainArray))

        for selection in Self.selections {
            let array = try k.backwardTraining(x, gradOutput: dy, saved: saved, scale: g, computing: selection)
            let spans = try spanGradients(selection, input: shape.count, parameters: shape.c) { dx, dγ, dβ in
                try k.backwardTraining(input: x.span, gradOutput: dy.span, saved: saved, scale: g.span,
                                       gradInput: &dx, gradScale: &dγ, gradBias: &dβ)
            }
            expectIdentical(spans, array, "InstanceNorm backwardTraining \(selection.rawValue)")

            let arrayInf = try k.backwardInference(x, gradOutput: dy, running: r1, scale: g, computing: selection)
            let spansInf = try spanGradients(selection, input: shape.count, parameters: shape.c) { dx, dγ, dβ in
                try k.backwardInference(input: x.span, gradOutput: dy.span, running: r2, scale: g.span,
                                        gradInput: &dx, gradScale: &dγ, gradBias: &dβ)
            }
            expectIdentical(spansInf, arrayInf, "InstanceNorm backwardInference \(selection.rawValue)")
        }
    }

    @Test("GroupNorm and LayerNorm: forward and backward")
    func groupAndLayerNorm() throws {
        let shape = TensorShape(n: 2, c: 6, h: 3, w: 3)
        var rng = SplitMix64("span group and layer norm")
        let x = rng.normals(shape.count), dy = rng.normals(shape.count)
        let gn = try GroupNormalization(shape: shape, groups: 3)
        let gc = rng.uniforms(shape.c, 0.5...2), bc = rng.uniforms(shape.c, -1...1)

        let (yArray, savedArray) = try gn.forward(x, scale: gc, bias: bc)
        var y = [Float](repeating: -7, count: shape.count)
        var saved = SavedStatistics(mean: [], invStd: [])
        try withSpan(&y) { out in saved = try gn.forward(input: x.span, output: &out, scale: gc.span, bias: bc.span) }
        #expect(bitPatterns(y) == bitPatterns(yArray))
        expectIdentical(saved, savedArray, "GroupNorm")
        for selection in Self.selections {
            let array = try gn.backward(x, gradOutput: dy, saved: saved, scale: gc, computing: selection)
            let spans = try spanGradients(selection, input: shape.count, parameters: shape.c) { dx, dγ, dβ in
                try gn.backward(input: x.span, gradOutput: dy.span, saved: saved, scale: gc.span,
                                gradInput: &dx, gradScale: &dγ, gradBias: &dβ)
            }
            expectIdentical(spans, array, "GroupNorm backward \(selection.rawValue)")
        }

        let rows = 6, features = shape.count / rows
        let ln = try LayerNormalization(rows: rows, features: features)
        let gf = rng.uniforms(features, 0.5...2), bf = rng.uniforms(features, -1...1)
        let (zArray, lnSavedArray) = try ln.forward(x, scale: gf, bias: bf)
        var z = [Float](repeating: -7, count: shape.count)
        var lnSaved = SavedStatistics(mean: [], invStd: [])
        try withSpan(&z) { out in lnSaved = try ln.forward(input: x.span, output: &out, scale: gf.span, bias: bf.span) }
        #expect(bitPatterns(z) == bitPatterns(zArray))
        expectIdentical(lnSaved, lnSavedArray, "LayerNorm")
        for selection in Self.selections {
            let array = try ln.backward(x, gradOutput: dy, saved: lnSaved, scale: gf, computing: selection)
            let spans = try spanGradients(selection, input: shape.count, parameters: features) { dx, dγ, dβ in
                try ln.backward(input: x.span, gradOutput: dy.span, saved: lnSaved, scale: gf.span,
                                gradInput: &dx, gradScale: &dγ, gradBias: &dβ)
            }
            expectIdentical(spans, array, "LayerNorm backward \(selection.rawValue)")
        }
    }

    @Test("RMSNorm: forward and backward")
    func rmsNorm() throws {
        let rows = 5, features = 24
        var rng = SplitMix64("span rms norm")
        let k = try RMSNormalization(rows: rows, features: features)
        let x = rng.normals(rows * features), dy = rng.normals(rows * features), g = rng.uniforms(features, 0.5...2)
        let (yArray, savedArray) = try k.forward(x, scale: g)
        var y = [Float](repeating: -7, count: x.count)
        var saved = SavedStatistics(mean: [], invStd: [])
        try withSpan(&y) { out in saved = try k.forward(input: x.span, output: &out, scale: g.span) }
        #expect(bitPatterns(y) == bitPatterns(yArray))
        expectIdentical(saved, savedArray, "RMSNorm")
        for selection in Self.selections {
            let array = try k.backward(x, gradOutput: dy, saved: saved, scale: g, computing: selection)
            let spans = try spanGradients(selection, input: x.count, parameters: features, hasBias: false) { dx, dγ, _ in
                try k.backward(input: x.span, gradOutput: dy.span, saved: saved, scale: g.span,
                               gradInput: &dx, gradScale: &dγ)
            }
            expectIdentical(spans, array, "RMSNorm backward \(selection.rawValue)")
        }
    }

    @Test("AdaIN: forward and backward")
    func adaIN() throws {
        let content = TensorShape(n: 2, c: 3, h: 4, w: 4), style = TensorShape(n: 2, c: 3, h: 3, w: 5)
        var rng = SplitMix64("span adain")
        let k = try AdaptiveInstanceNormalization(content: content, style: style)
        let x = rng.normals(content.count), s = rng.normals(style.count, mean: 1, std: 2)
        let dy = rng.normals(content.count)
        let (yArray, savedArray) = try k.forward(content: x, style: s)
        var y = [Float](repeating: -7, count: content.count)
        var saved: AdaptiveInstanceNormalization.Saved?
        try withSpan(&y) { out in saved = try k.forward(content: x.span, style: s.span, output: &out) }
        #expect(bitPatterns(y) == bitPatterns(yArray))
        #expect(saved == savedArray)
        for (wantContent, wantStyle) in [(true, true), (true, false), (false, true)] {
            let array = try k.backward(content: x, style: s, gradOutput: dy, saved: savedArray,
                                       gradContent: wantContent, gradStyle: wantStyle)
            var dc: [Float]? = wantContent ? [Float](repeating: 0, count: content.count) : nil
            var ds: [Float]? = wantStyle ? [Float](repeating: 0, count: style.count) : nil
            try withSpan(&dc) { dcs in
                try withSpan(&ds) { dss in
                    try k.backward(content: x.span, style: s.span, gradOutput: dy.span, saved: savedArray,
                                   gradContent: &dcs, gradStyle: &dss)
                }
            }
            #expect(bitPatterns(dc) == bitPatterns(array.content), "AdaIN dcontent \(wantContent) \(wantStyle)")
            #expect(bitPatterns(ds) == bitPatterns(array.style), "AdaIN dstyle \(wantContent) \(wantStyle)")
        }
    }

    @Test("WeightNorm: forward and backward")
    func weightNorm() throws {
        let shapeW = [6, 4, 3]
        var rng = SplitMix64("span weight norm")
        let k = try WeightNormalization(shape: shapeW, dim: 0)
        let v = rng.normals(k.count), g = rng.uniforms(k.normCount, 0.5...2), dw = rng.normals(k.count)
        let (wArray, normsArray) = try k.forward(v: v, g: g)
        var w = [Float](repeating: -7, count: k.count)
        var norms: [Double] = []
        try withSpan(&w) { out in norms = try k.forward(v: v.span, g: g.span, output: &out) }
        #expect(bitPatterns(w) == bitPatterns(wArray))
        #expect(bitPatterns(norms) == bitPatterns(normsArray))
        for (wantV, wantG) in [(true, true), (true, false), (false, true)] {
            let array = try k.backward(v: v, g: g, gradWeight: dw, norms: norms, gradV: wantV, gradG: wantG)
            var dv: [Float]? = wantV ? [Float](repeating: 0, count: k.count) : nil
            var dg: [Float]? = wantG ? [Float](repeating: 0, count: k.normCount) : nil
            try withSpan(&dv) { dvs in
                try withSpan(&dg) { dgs in
                    try k.backward(v: v.span, g: g.span, gradWeight: dw.span, norms: norms, gradV: &dvs, gradG: &dgs)
                }
            }
            #expect(bitPatterns(dv) == bitPatterns(array.v), "WeightNorm dv \(wantV) \(wantG)")
            #expect(bitPatterns(dg) == bitPatterns(array.g), "WeightNorm dg \(wantV) \(wantG)")
        }
    }

    @Test("BatchNormFolding.fold, with and without bias, scale and shift")
    func fold() throws {
        let outChannels = 4
        var rng = SplitMix64("span fold")
        let weight = rng.normals(outChannels * 6)
        let bias = rng.normals(outChannels), g = rng.uniforms(outChannels, 0.5...2), t = rng.uniforms(outChannels, -1...1)
        let (running, _) = try runningPair(outChannels, &rng)
        for withParameters in [false, true] {
            let b: [Float]? = withParameters ? bias : nil
            let sc: [Float]? = withParameters ? g : nil, sh: [Float]? = withParameters ? t : nil
            let array = try BatchNormFolding.fold(weight: weight, bias: b, outChannels: outChannels, running: running,
                                                  scale: sc, shift: sh)
            var w = weight
            var folded: [Float] = []
            try withSpan(&w) { ws in
                folded = try BatchNormFolding.fold(weight: &ws, bias: b?.span, outChannels: outChannels, running: running,
                                                   scale: sc?.span, shift: sh?.span)
            }
            #expect(bitPatterns(w) == bitPatterns(array.weight), "fold weight, parameters \(withParameters)")
            #expect(bitPatterns(folded) == bitPatterns(array.bias), "fold bias, parameters \(withParameters)")
        }
    }

    @Test("a wrong length throws the pointer API's error and writes nothing")
    func rejected() throws {
        let rows = 4, features = 8
        var rng = SplitMix64("span rejected")
        let ln = try LayerNormalization(rows: rows, features: features)
        let x = rng.normals(rows * features + 1), g = rng.uniforms(features, 0.5...2)
        let sentinel: Float = -7

        // Forward: input one too long.
        var pointerError: NormError?
        var pointerOut = [Float](repeating: sentinel, count: rows * features)
        do {
            try x.withUnsafeBufferPointer { xp in
                try pointerOut.withUnsafeMutableBufferPointer { yp in _ = try ln.forward(input: xp, output: yp) }
            }
        } catch let error as NormError { pointerError = error }
        var spanError: NormError?
        var spanOut = [Float](repeating: sentinel, count: rows * features)
        do {
            try withSpan(&spanOut) { out in _ = try ln.forward(input: x.span, output: &out, scale: g.span) }
        } catch let error as NormError { spanError = error }
        #expect(pointerError == .lengthMismatch(argument: "input", expected: rows * features, actual: rows * features + 1))
        #expect(spanError == pointerError)
        #expect(spanOut.allSatisfy { $0.bitPattern == sentinel.bitPattern })
        #expect(pointerOut.allSatisfy { $0.bitPattern == sentinel.bitPattern })

        // Backward: dγ one too short; dx and dβ keep their sentinel.
        let xs = Array(x.prefix(rows * features)), dy = rng.normals(rows * features)
        let (_, saved) = try ln.forward(xs, scale: g)
        var dx: [Float]? = [Float](repeating: sentinel, count: rows * features)
        var dγ: [Float]? = [Float](repeating: sentinel, count: features - 1)
        var dβ: [Float]? = [Float](repeating: sentinel, count: features)
        var backwardError: NormError?
        do {
            try withSpan(&dx) { dxs in
                try withSpan(&dγ) { dγs in
                    try withSpan(&dβ) { dβs in
                        try ln.backward(input: xs.span, gradOutput: dy.span, saved: saved, scale: g.span,
                                        gradInput: &dxs, gradScale: &dγs, gradBias: &dβs)
                    }
                }
            }
        } catch let error as NormError { backwardError = error }
        #expect(backwardError == .lengthMismatch(argument: "gradScale (dγ)", expected: features, actual: features - 1))
        for buffer in [dx, dγ, dβ] { #expect(buffer!.allSatisfy { $0.bitPattern == sentinel.bitPattern }) }
    }
}
