// The array conveniences of the fused kernels for 16-bit tensors
// (API/FusedArrays+HalfPrecision.swift) and BatchNorm + add + ReLU's Float
// backward arrays against the pointer entry points, bit for bit: residual
// LayerNorm/RMSNorm forward and backward (with and without the upstream gradient
// of s and the input bias), RMSNorm × gate, GroupNorm + SiLU backward with the
// modulation, BatchNorm + add + ReLU backward (training and inference).

import Testing
@testable import NormKernels

extension HalfPrecisionAPITests {
    @Test("residual LayerNorm/RMSNorm and RMSNorm × gate, forward and backward")
    func fusedRows() throws {
        func check<E: NormElement>(_: E.Type) throws {
            let rows = 5, features = 24, count = rows * features, what = "\(E.self) fused rows"
            var rng = SplitMix64(what)
            let ln = try LayerNormalization(rows: rows, features: features)
            let rms = try RMSNormalization(rows: rows, features: features)
            let x: [E] = elements(&rng, count), r: [E] = elements(&rng, count), dy: [E] = elements(&rng, count)
            let ds: [E] = elements(&rng, count), gate: [E] = elements(&rng, count)
            let g = rng.uniforms(features, 0.5...2), b = rng.uniforms(features, -1...1)
            let ib = rng.uniforms(features, -0.5...0.5)
            let a = PointerArena()

            // Forward: y, s and the saved statistics.
            var y: UnsafeMutableBufferPointer<E> = a.zeros(count)!, s: UnsafeMutableBufferPointer<E> = a.zeros(count)!
            let lnSaved = try ln.forward(input: a.input(x), residual: a.input(r), output: y, sum: s,
                                         scale: a.input(g), bias: a.input(b), inputBias: a.input(ib))
            let lnArray = try ln.forward(x, residual: r, scale: g, bias: b, inputBias: ib)
            #expect(elementBytes(lnArray.output) == elementBytes(y) && elementBytes(lnArray.sum) == elementBytes(s),
                    "\(what): LayerNorm forward")
            expectIdentical(lnArray.saved, lnSaved, "\(what): LayerNorm forward")
            y = a.zeros(count)!
            s = a.zeros(count)!
            let rmsSaved = try rms.forward(input: a.input(x), residual: a.input(r), output: y, sum: s, scale: a.input(g))
            let rmsArray = try rms.forward(x, residual: r, scale: g)
            #expect(elementBytes(rmsArray.output) == elementBytes(y) && elementBytes(rmsArray.sum) == elementBytes(s),
                    "\(what): RMSNorm forward")
            expectIdentical(rmsArray.saved, rmsSaved, "\(what): RMSNorm forward")

            // Backward, with and without ds and d(input bias).
            for (withSum, wantBias) in product([false, true], [false, true]) {
                let gradSum: [E]? = withSum ? ds : nil, context = "\(what) ds \(withSum) dib \(wantBias)"
                let dx: UnsafeMutableBufferPointer<E> = a.zeros(count)!
                let dg: UnsafeMutableBufferPointer<Float> = a.zeros(features)!
                let db: UnsafeMutableBufferPointer<Float> = a.zeros(features)!
                let dib: UnsafeMutableBufferPointer<Float>? = a.zeros(features, wantBias)
                try ln.backward(sum: a.input(lnArray.sum), gradOutput: a.input(dy), gradSum: a.optional(gradSum),
                                saved: lnSaved, scale: a.input(g), gradInput: dx, gradScale: dg, gradBias: db,
                                gradInputBias: dib)
                let lnGrads = try ln.backward(sum: lnArray.sum, gradOutput: dy, gradSum: gradSum, saved: lnSaved,
                                              scale: g, inputBias: wantBias)
                #expect(elementBytes(lnGrads.input) == elementBytes(dx), "\(context): LayerNorm dx")
                #expect(elementBytes(lnGrads.scale) == elementBytes(dg) && elementBytes(lnGrads.bias) == elementBytes(db),
                        "\(context): LayerNorm dγ, dβ")
                #expect(elementBytes(lnGrads.inputBias) == elementBytes(dib), "\(context): LayerNorm d input bias")

                let rdx: UnsafeMutableBufferPointer<E> = a.zeros(count)!
                let rdg: UnsafeMutableBufferPointer<Float> = a.zeros(features)!
                let rdib: UnsafeMutableBufferPointer<Float>? = a.zeros(features, wantBias)
                try rms.backward(sum: a.input(rmsArray.sum), gradOutput: a.input(dy), gradSum: a.optional(gradSum),
                                 saved: rmsSaved, scale: a.input(g), gradInput: rdx, gradScale: rdg, gradInputBias: rdib)
                let rmsGrads = try rms.backward(sum: rmsArray.sum, gradOutput: dy, gradSum: gradSum, saved: rmsSaved,
                                                scale: g, inputBias: wantBias)
                #expect(elementBytes(rmsGrads.input) == elementBytes(rdx), "\(context): RMSNorm dx")
                #expect(elementBytes(rmsGrads.scale) == elementBytes(rdg) && rmsGrads.bias == nil, "\(context): RMSNorm dγ")
                #expect(elementBytes(rmsGrads.inputBias) == elementBytes(rdib), "\(context): RMSNorm d input bias")
            }

            // RMSNorm × gate, with and without γ.
            for scale in [g, nil] {
                let context = "\(what) gate γ \(scale != nil)"
                let gy: UnsafeMutableBufferPointer<E> = a.zeros(count)!
                let gateSaved = try rms.forward(input: a.input(x), gate: a.input(gate), output: gy, scale: a.optional(scale))
                let gateArray = try rms.forward(x, gate: gate, scale: scale)
                #expect(elementBytes(gateArray.output) == elementBytes(gy), "\(context): forward")
                expectIdentical(gateArray.saved, gateSaved, context)
                let dx: UnsafeMutableBufferPointer<E> = a.zeros(count)!, dgate: UnsafeMutableBufferPointer<E> = a.zeros(count)!
                let dg: UnsafeMutableBufferPointer<Float>? = a.zeros(features, scale != nil)
                try rms.backward(input: a.input(x), gate: a.input(gate), gradOutput: a.input(dy), saved: gateSaved,
                                 scale: a.optional(scale), gradInput: dx, gradGate: dgate, gradScale: dg)
                let grads = try rms.backward(x, gate: gate, gradOutput: dy, saved: gateSaved, scale: scale)
                #expect(elementBytes(grads.input) == elementBytes(dx) && elementBytes(grads.gate) == elementBytes(dgate),
                        "\(context): dx, d gate")
                #expect(elementBytes(grads.scale) == elementBytes(dg), "\(context): dγ")
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("GroupNorm + SiLU backward with the modulation")
    func groupNormSiLU() throws {
        func check<E: NormElement>(_: E.Type) throws {
            for layout in [Layout.nchw, .nhwc] {
                let shape = Self.shape.with(layout: layout), what = "\(E.self) GroupNorm + SiLU \(layout)"
                var rng = SplitMix64(what)
                let gn = try GroupNormalization(shape: shape, groups: 2)
                let x: [E] = elements(&rng, shape.count), dy: [E] = elements(&rng, shape.count)
                let g = rng.uniforms(shape.c, 0.5...2), b = rng.uniforms(shape.c, -1...1)
                let ms = rng.uniforms(shape.n * shape.c, -0.5...0.5), mt = rng.uniforms(shape.n * shape.c, -1...1)
                let saved = try gn.forwardSiLU(x, scale: g, bias: b, modulationScale: ms, modulationShift: mt).saved
                for (selection, modulation) in product(Self.selections, [false, true]) {
                    let a = PointerArena(), context = "\(what) \(selection.rawValue) modulation \(modulation)"
                    let dx: UnsafeMutableBufferPointer<E>? = a.zeros(shape.count, selection.contains(.input))
                    let dg: UnsafeMutableBufferPointer<Float>? = a.zeros(shape.c, selection.contains(.scale))
                    let db: UnsafeMutableBufferPointer<Float>? = a.zeros(shape.c, selection.contains(.bias))
                    let dms: UnsafeMutableBufferPointer<Float>? = a.zeros(shape.n * shape.c, modulation)
                    let dmt: UnsafeMutableBufferPointer<Float>? = a.zeros(shape.n * shape.c, modulation)
                    try gn.backwardSiLU(input: a.input(x), gradOutput: a.input(dy), saved: saved, scale: a.input(g),
                                        bias: a.input(b), modulationScale: a.input(ms), modulationShift: a.input(mt),
                                        gradInput: dx, gradScale: dg, gradBias: db,
                                        gradModulationScale: dms, gradModulationShift: dmt)
                    let array = try gn.backwardSiLU(x, gradOutput: dy, saved: saved, scale: g, bias: b,
                                                    modulationScale: ms, modulationShift: mt, computing: selection,
                                                    modulationGradients: modulation)
                    expectSameGradients(array.norm, dx, dg, db, context)
                    #expect(elementBytes(array.modulationScale) == elementBytes(dms)
                                && elementBytes(array.modulationShift) == elementBytes(dmt), "\(context): modulation")
                }
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("BatchNorm + add + ReLU backward on arrays: 16-bit and Float")
    func batchNormResidual() throws {
        func check<E: NormElement>(_: E.Type) throws {
            for (fused, layout) in product([false, true], [Layout.nchw, .nhwc]) {
                let shape = Self.shape.with(layout: layout), what = "\(E.self) BN + add relu \(fused) \(layout)"
                var rng = SplitMix64(what)
                let bn = try BatchNormalization(shape: shape, fusedReLU: fused)
                let x: [E] = elements(&rng, shape.count), r: [E] = elements(&rng, shape.count)
                let dy: [E] = elements(&rng, shape.count), g = rng.uniforms(shape.c, 0.5...2)
                let running = try RunningStatistics(channels: shape.c, mean: rng.uniforms(shape.c, -1...1),
                                                    variance: rng.uniforms(shape.c, 0.5...2))
                let (y, saved) = try bn.forwardTraining(x, identity: r, scale: g)
                for (selection, wantIdentity) in product(Self.selections, [false, true]) {
                    let context = "\(what) \(selection.rawValue) identity \(wantIdentity)"
                    for inference in [false, true] {
                        let a = PointerArena()
                        let dx: UnsafeMutableBufferPointer<E>? = a.zeros(shape.count, selection.contains(.input))
                        let dg: UnsafeMutableBufferPointer<Float>? = a.zeros(shape.c, selection.contains(.scale))
                        let db: UnsafeMutableBufferPointer<Float>? = a.zeros(shape.c, selection.contains(.bias))
                        let dr: UnsafeMutableBufferPointer<E>? = a.zeros(shape.count, wantIdentity)
                        let array: (norm: ElementGradients<E>, identity: [E]?)
                        if inference {
                            try bn.backwardInference(input: a.input(x), gradOutput: a.input(dy), running: running,
                                                     scale: a.input(g), output: a.input(y), gradInput: dx,
                                                     gradIdentity: dr, gradScale: dg, gradBias: db)
                            array = try bn.backwardInference(x, gradOutput: dy, running: running, scale: g, output: y,
                                                             computing: selection, gradIdentity: wantIdentity)
                        } else {
                            try bn.backwardTraining(input: a.input(x), gradOutput: a.input(dy), saved: saved,
                                                    scale: a.input(g), output: a.input(y), gradInput: dx,
                                                    gradIdentity: dr, gradScale: dg, gradBias: db)
                            array = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: g, output: y,
                                                            computing: selection, gradIdentity: wantIdentity)
                        }
                        expectSameGradients(array.norm, dx, dg, db, "\(context) inference \(inference)")
                        #expect(elementBytes(array.identity) == elementBytes(dr), "\(context) inference \(inference): d identity")
                    }
                }
            }
        }
        try check(Float.self)
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif

        // The Float overloads (concrete, picked for [Float]) give the same bits as the generic ones.
        let shape = Self.shape, bn = try BatchNormalization(shape: shape, fusedReLU: true)
        var rng = SplitMix64("Float BN + add + ReLU arrays")
        let x = rng.normals(shape.count), r = rng.normals(shape.count), dy = rng.normals(shape.count)
        let (y, saved) = try bn.forwardTraining(x, identity: r)
        let concrete: (norm: NormGradients, identity: [Float]?) =
            try bn.backwardTraining(x, gradOutput: dy, saved: saved, output: y, gradIdentity: true)
        let a = PointerArena()
        let dx: UnsafeMutableBufferPointer<Float> = a.zeros(shape.count)!, dr: UnsafeMutableBufferPointer<Float> = a.zeros(shape.count)!
        let dg: UnsafeMutableBufferPointer<Float> = a.zeros(shape.c)!, db: UnsafeMutableBufferPointer<Float> = a.zeros(shape.c)!
        try bn.backwardTraining(input: a.input(x), gradOutput: a.input(dy), saved: saved, output: a.input(y),
                                gradInput: dx, gradIdentity: dr, gradScale: dg, gradBias: db)
        #expect(elementBytes(concrete.norm.input) == elementBytes(dx) && elementBytes(concrete.identity) == elementBytes(dr))
        #expect(elementBytes(concrete.norm.scale) == elementBytes(dg) && elementBytes(concrete.norm.bias) == elementBytes(db))
    }
}
