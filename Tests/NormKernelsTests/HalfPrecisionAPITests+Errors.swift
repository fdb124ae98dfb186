// Rejected calls of the 16-bit array conveniences and Span overloads: each
// throws exactly the NormError of the same call on `Float` tensors (same case,
// argument, expected and actual values; the validation layer is shared), and a
// Span call leaves its output and the running statistics untouched.

import Testing
@testable import NormKernels

/// The NormError `body` throws, or nil.
func thrownNormError(_ body: () throws -> Void) -> NormError? {
    do { try body() } catch let error as NormError { return error } catch { return nil }
    return nil
}

/// The 16-bit call must throw a NormError, the same as the `Float` call's.
func expectSameRejection(_ what: String, sourceLocation: SourceLocation = #_sourceLocation,
                         float: () throws -> Void, _ sixteen: () throws -> Void) {
    let expected = thrownNormError(float), actual = thrownNormError(sixteen)
    #expect(expected != nil, "\(what): the Float call did not throw", sourceLocation: sourceLocation)
    #expect(actual == expected, "\(what): \(String(describing: actual)) instead of \(String(describing: expected))",
            sourceLocation: sourceLocation)
}

extension HalfPrecisionAPITests {
    @Test("rejected array calls throw the Float call's NormError")
    func arrayErrors() throws {
        func check<E: NormElement>(_: E.Type) throws {
            let shape = Self.shape, n = shape.count, c = shape.c, what = "\(E.self) arrays"
            var rng = SplitMix64(what)
            let xf = rng.normals(n), short = Array(xf.dropLast()), g = rng.uniforms(c, 0.5...2), badG = g + [1]
            let x = xf.map(E.narrow), shortE = short.map(E.narrow)
            let bn = try BatchNormalization(shape: shape), relu = try BatchNormalization(shape: shape, fusedReLU: true)
            let k = try InstanceNormalization(shape: shape), gn = try GroupNormalization(shape: shape, groups: 2)
            let running = try RunningStatistics(channels: c)
            let saved = try bn.forwardTraining(xf).saved, gnSaved = try gn.forward(xf).saved
            let badSaved = SavedStatistics(mean: [0], invStd: [1])
            expectSameRejection("\(what) BN backwardTraining dy", float: { _ = try bn.backwardTraining(xf, gradOutput: short, saved: saved) }) {
                _ = try bn.backwardTraining(x, gradOutput: shortE, saved: saved)
            }
            expectSameRejection("\(what) BN backwardInference γ", float: { _ = try bn.backwardInference(xf, gradOutput: xf, running: running, scale: badG) }) {
                _ = try bn.backwardInference(x, gradOutput: x, running: running, scale: badG)
            }
            expectSameRejection("\(what) BN relu without output", float: { _ = try relu.backwardTraining(xf, gradOutput: xf, saved: saved) }) {
                _ = try relu.backwardTraining(x, gradOutput: x, saved: saved)
            }
            expectSameRejection("\(what) BN + add backwardTraining", float: {
                _ = try relu.backwardTraining(xf, gradOutput: short, saved: saved, output: xf, gradIdentity: true)
            }) { _ = try relu.backwardTraining(x, gradOutput: shortE, saved: saved, output: x, gradIdentity: true) }
            expectSameRejection("\(what) BN + add backwardInference", float: {
                _ = try relu.backwardInference(xf, gradOutput: xf, running: running, output: short, gradIdentity: true)
            }) { _ = try relu.backwardInference(x, gradOutput: x, running: running, output: shortE, gradIdentity: true) }
            expectSameRejection("\(what) IN backwardTraining saved", float: { _ = try k.backwardTraining(xf, gradOutput: xf, saved: badSaved) }) {
                _ = try k.backwardTraining(x, gradOutput: x, saved: badSaved)
            }
            expectSameRejection("\(what) IN backwardInference x", float: { _ = try k.backwardInference(short, gradOutput: xf, running: running) }) {
                _ = try k.backwardInference(shortE, gradOutput: x, running: running)
            }
            expectSameRejection("\(what) GN backward dy", float: { _ = try gn.backward(xf, gradOutput: xf + [0], saved: gnSaved) }) {
                _ = try gn.backward(x, gradOutput: x + [E.narrow(0)], saved: gnSaved)
            }
            expectSameRejection("\(what) GN + SiLU backward modulation", float: {
                _ = try gn.backwardSiLU(xf, gradOutput: xf, saved: gnSaved, modulationScale: g)
            }) { _ = try gn.backwardSiLU(x, gradOutput: x, saved: gnSaved, modulationScale: g) }

            // Rows: plain, residual and gated.
            let ln = try LayerNormalization(rows: 6, features: 20), rms = try RMSNormalization(rows: 6, features: 20)
            let lnSaved = try ln.forward(xf).saved, rmsSaved = try rms.forward(xf).saved
            expectSameRejection("\(what) LN backward γ", float: { _ = try ln.backward(xf, gradOutput: xf, saved: lnSaved, scale: g) }) {
                _ = try ln.backward(x, gradOutput: x, saved: lnSaved, scale: g)
            }
            expectSameRejection("\(what) RMS backward x", float: { _ = try rms.backward(short, gradOutput: xf, saved: rmsSaved) }) {
                _ = try rms.backward(shortE, gradOutput: x, saved: rmsSaved)
            }
            expectSameRejection("\(what) LN residual forward", float: { _ = try ln.forward(xf, residual: short) }) {
                _ = try ln.forward(x, residual: shortE)
            }
            expectSameRejection("\(what) LN residual input bias", float: { _ = try ln.forward(xf, residual: xf, inputBias: g) }) {
                _ = try ln.forward(x, residual: x, inputBias: g)
            }
            expectSameRejection("\(what) LN residual backward ds", float: {
                _ = try ln.backward(sum: xf, gradOutput: xf, gradSum: short, saved: lnSaved)
            }) { _ = try ln.backward(sum: x, gradOutput: x, gradSum: shortE, saved: lnSaved) }
            expectSameRejection("\(what) RMS residual forward", float: { _ = try rms.forward(short, residual: xf) }) {
                _ = try rms.forward(shortE, residual: x)
            }
            expectSameRejection("\(what) RMS residual backward saved", float: {
                _ = try rms.backward(sum: xf, gradOutput: xf, saved: badSaved)
            }) { _ = try rms.backward(sum: x, gradOutput: x, saved: badSaved) }
            expectSameRejection("\(what) gate forward", float: { _ = try rms.forward(xf, gate: short) }) {
                _ = try rms.forward(x, gate: shortE)
            }
            expectSameRejection("\(what) gate backward", float: { _ = try rms.backward(xf, gate: xf, gradOutput: short, saved: rmsSaved) }) {
                _ = try rms.backward(x, gate: x, gradOutput: shortE, saved: rmsSaved)
            }

            // AdaIN and weight normalization.
            let ada = try AdaptiveInstanceNormalization(content: shape, style: shape)
            let adaSaved = try ada.forward(content: xf, style: xf).saved
            expectSameRejection("\(what) AdaIN backward style", float: {
                _ = try ada.backward(content: xf, style: short, gradOutput: xf, saved: adaSaved)
            }) { _ = try ada.backward(content: x, style: shortE, gradOutput: x, saved: adaSaved) }
            let wn = try WeightNormalization(shape: [4, 30], dim: 0)
            let norms = try wn.forward(v: xf, g: [1, 2, 3, 4]).norms
            expectSameRejection("\(what) WN forward g", float: { _ = try wn.forward(v: xf, g: g + g) }) {
                _ = try wn.forward(v: x, g: g + g)
            }
            expectSameRejection("\(what) WN backward dw", float: { _ = try wn.backward(v: xf, g: [1, 2, 3, 4], gradWeight: short, norms: norms) }) {
                _ = try wn.backward(v: x, g: [1, 2, 3, 4], gradWeight: shortE, norms: norms)
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("rejected Span calls throw the Float call's NormError and write nothing")
    func spanErrors() throws {
        func check<E: NormElement>(_: E.Type) throws {
            let shape = Self.shape, n = shape.count, c = shape.c, what = "\(E.self) spans"
            var rng = SplitMix64(what)
            let xf = rng.normals(n), short = Array(xf.dropLast()), g = rng.uniforms(c, 0.5...2), badG = g + [1]
            let x = xf.map(E.narrow), shortE = short.map(E.narrow)
            let bn = try BatchNormalization(shape: shape), k = try InstanceNormalization(shape: shape)
            let gn = try GroupNormalization(shape: shape, groups: 2)
            let running = try RunningStatistics(channels: c), before = RunningSnapshot(running)
            let saved = try bn.forwardTraining(xf).saved
            var yf = [Float](repeating: 0, count: n)
            var gf: [Float]? = [Float](repeating: 0, count: n)
            let sentinel = E.narrow(-777), untouched = elementBytes([E](repeating: sentinel, count: n))
            // A rejected backward: gradInput (or AdaIN's gradContent, weight norm's gradV) untouched.
            func rejected(_ name: String, _ float: (inout MutableSpan<Float>?) throws -> Void,
                          _ sixteen: (inout MutableSpan<E>?) throws -> Void) {
                expectSameRejection("\(what) \(name)", float: { try withOptionalSpan(&gf) { try float(&$0) } }) {
                    var output: [E]? = [E](repeating: E.narrow(0), count: n)
                    try withOptionalSpan(&output) { try sixteen(&$0) }
                }
                var output: [E]? = [E](repeating: sentinel, count: n)
                withOptionalSpan(&output) { span in
                    do { try sixteen(&span) } catch {}
                }
                #expect(elementBytes(output) == untouched, "\(what) \(name): written before the error")
            }
            // A rejected forward: the output untouched.
            func rejectedForward(_ name: String, _ float: (inout MutableSpan<Float>) throws -> Void,
                                 _ sixteen: (inout MutableSpan<E>) throws -> Void) {
                expectSameRejection("\(what) \(name)", float: { try withMutableSpan(&yf) { try float(&$0) } }) {
                    var output = [E](repeating: E.narrow(0), count: n)
                    try withMutableSpan(&output) { try sixteen(&$0) }
                }
                var output = [E](repeating: sentinel, count: n)
                withMutableSpan(&output) { span in
                    do { try sixteen(&span) } catch {}
                }
                #expect(elementBytes(output) == untouched, "\(what) \(name): written before the error")
            }
            var none: MutableSpan<Float>? = nil, none2: MutableSpan<Float>? = nil
            rejectedForward("BN forwardTraining x", { out in _ = try bn.forwardTraining(input: short.span, output: &out, running: running) }) {
                out in _ = try bn.forwardTraining(input: shortE.span, output: &out, running: running)
            }
            #expect(RunningSnapshot(running) == before, "\(what): running statistics changed before the error")
            rejectedForward("BN forwardInference γ", { out in
                try bn.forwardInference(input: xf.span, output: &out, scale: badG.span, running: running)
            }) { out in try bn.forwardInference(input: x.span, output: &out, scale: badG.span, running: running) }
            rejectedForward("BN + add forwardTraining identity", { out in
                _ = try bn.forwardTraining(input: xf.span, identity: short.span, output: &out)
            }) { out in _ = try bn.forwardTraining(input: x.span, identity: shortE.span, output: &out) }
            rejectedForward("BN + add forwardInference identity", { out in
                try bn.forwardInference(input: xf.span, identity: short.span, output: &out, running: running)
            }) { out in try bn.forwardInference(input: x.span, identity: shortE.span, output: &out, running: running) }
            rejected("BN backwardTraining dy", { dx in
                try bn.backwardTraining(input: xf.span, gradOutput: short.span, saved: saved, gradInput: &dx, gradScale: &none, gradBias: &none2)
            }) { dx in try bn.backwardTraining(input: x.span, gradOutput: shortE.span, saved: saved, gradInput: &dx, gradScale: &none, gradBias: &none2) }
            rejected("BN backwardInference γ", { dx in
                try bn.backwardInference(input: xf.span, gradOutput: xf.span, running: running, scale: badG.span, gradInput: &dx, gradScale: &none, gradBias: &none2)
            }) { dx in try bn.backwardInference(input: x.span, gradOutput: x.span, running: running, scale: badG.span, gradInput: &dx, gradScale: &none, gradBias: &none2) }
            rejectedForward("IN forwardTraining x", { out in _ = try k.forwardTraining(input: short.span, output: &out) }) {
                out in _ = try k.forwardTraining(input: shortE.span, output: &out)
            }
            rejectedForward("IN forwardInference γ", { out in
                try k.forwardInference(input: xf.span, output: &out, scale: badG.span, running: running)
            }) { out in try k.forwardInference(input: x.span, output: &out, scale: badG.span, running: running) }
            rejected("IN backwardTraining saved", { dx in
                try k.backwardTraining(input: xf.span, gradOutput: xf.span, saved: saved, gradInput: &dx, gradScale: &none, gradBias: &none2)
            }) { dx in try k.backwardTraining(input: x.span, gradOutput: x.span, saved: saved, gradInput: &dx, gradScale: &none, gradBias: &none2) }
            rejected("IN backwardInference dy", { dx in
                try k.backwardInference(input: xf.span, gradOutput: short.span, running: running, gradInput: &dx, gradScale: &none, gradBias: &none2)
            }) { dx in try k.backwardInference(input: x.span, gradOutput: shortE.span, running: running, gradInput: &dx, gradScale: &none, gradBias: &none2) }
            rejectedForward("GN forward γ", { out in _ = try gn.forward(input: xf.span, output: &out, scale: badG.span) }) {
                out in _ = try gn.forward(input: x.span, output: &out, scale: badG.span)
            }
            let badSaved = SavedStatistics(mean: [0], invStd: [1])
            rejected("GN backward saved", { dx in
                try gn.backward(input: xf.span, gradOutput: xf.span, saved: badSaved, gradInput: &dx, gradScale: &none, gradBias: &none2)
            }) { dx in try gn.backward(input: x.span, gradOutput: x.span, saved: badSaved, gradInput: &dx, gradScale: &none, gradBias: &none2) }

            let ln = try LayerNormalization(rows: 6, features: 20), rms = try RMSNormalization(rows: 6, features: 20)
            let rowSaved = try ln.forward(xf).saved
            rejectedForward("LN forward x", { out in _ = try ln.forward(input: short.span, output: &out) }) { out in
                _ = try ln.forward(input: shortE.span, output: &out)
            }
            rejected("LN backward γ", { dx in
                try ln.backward(input: xf.span, gradOutput: xf.span, saved: rowSaved, scale: g.span, gradInput: &dx, gradScale: &none, gradBias: &none2)
            }) { dx in try ln.backward(input: x.span, gradOutput: x.span, saved: rowSaved, scale: g.span, gradInput: &dx, gradScale: &none, gradBias: &none2) }
            rejectedForward("RMS forward γ", { out in _ = try rms.forward(input: xf.span, output: &out, scale: g.span) }) { out in
                _ = try rms.forward(input: x.span, output: &out, scale: g.span)
            }
            rejected("RMS backward dy", { dx in
                try rms.backward(input: xf.span, gradOutput: short.span, saved: rowSaved, gradInput: &dx, gradScale: &none)
            }) { dx in try rms.backward(input: x.span, gradOutput: shortE.span, saved: rowSaved, gradInput: &dx, gradScale: &none) }

            let ada = try AdaptiveInstanceNormalization(content: shape, style: shape)
            let adaSaved = try ada.forward(content: xf, style: xf).saved
            rejectedForward("AdaIN forward style", { out in _ = try ada.forward(content: xf.span, style: short.span, output: &out) }) {
                out in _ = try ada.forward(content: x.span, style: shortE.span, output: &out)
            }
            var noStyleF: MutableSpan<Float>? = nil, noStyle: MutableSpan<E>? = nil
            rejected("AdaIN backward dy", { dc in
                try ada.backward(content: xf.span, style: xf.span, gradOutput: short.span, saved: adaSaved, gradContent: &dc, gradStyle: &noStyleF)
            }) { dc in try ada.backward(content: x.span, style: x.span, gradOutput: shortE.span, saved: adaSaved, gradContent: &dc, gradStyle: &noStyle) }
            let wn = try WeightNormalization(shape: [4, 30], dim: 0), wg: [Float] = [1, 2, 3, 4]
            let norms = try wn.forward(v: xf, g: wg).norms
            rejectedForward("WN forward g", { out in _ = try wn.forward(v: xf.span, g: badG.span, output: &out) }) { out in
                _ = try wn.forward(v: x.span, g: badG.span, output: &out)
            }
            rejected("WN backward dw", { dv in
                try wn.backward(v: xf.span, g: wg.span, gradWeight: short.span, norms: norms, gradV: &dv, gradG: &none)
            }) { dv in try wn.backward(v: x.span, g: wg.span, gradWeight: shortE.span, norms: norms, gradV: &dv, gradG: &none) }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }
}
