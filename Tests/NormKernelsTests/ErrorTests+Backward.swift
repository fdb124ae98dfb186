// Backward kernels reject bad arguments (lengths, saved statistics, overlaps,
// partial overlaps, a missing ReLU mask) with the right NormError and write
// nothing: gradient buffers hold a NaN sentinel that must survive the call.
import Testing
@testable import NormKernels

/// Seeds 1, 2, … of the backward streams (the data these tests were tuned on).
private let streams = SeededStreams.backward

@Suite("Errors: backward calls reject bad buffers and write nothing")
struct BackwardErrorTests {
    @Test("BatchNorm backward rejects bad arguments before writing anything")
    func batchNormErrors() throws {
        let shape = TensorShape(n: 2, c: 3, h: 4, w: 4)
        let count = shape.count
        let x = streams.uniforms(count, seed: 41), dy = streams.uniforms(count, seed: 42)
        let bn = try BatchNormalization(shape: shape)
        let (_, saved) = try bn.forwardTraining(x)
        let relu = try BatchNormalization(shape: shape, fusedReLU: true)
        // One allocation holding dx, dγ, dβ and spare room, so overlaps can be built.
        let storage = UnsafeMutableBufferPointer<Float>.allocate(capacity: 2 * count + 16)
        defer { storage.deallocate() }
        let dx = UnsafeMutableBufferPointer(rebasing: storage[0..<count])
        let dg = UnsafeMutableBufferPointer(rebasing: storage[count..<(count + 3)])
        let db = UnsafeMutableBufferPointer(rebasing: storage[(count + 3)..<(count + 6)])
        let all = [dx, dg, db]
        try x.withUnsafeBufferPointer { xp in
            try dy.withUnsafeBufferPointer { dyp in
                let shortDy = UnsafeBufferPointer(rebasing: dyp[1...])
                expectGradientsRejected(.lengthMismatch(argument: "gradOutput", expected: count, actual: count - 1), all) {
                    try bn.backwardTraining(input: xp, gradOutput: shortDy, saved: saved, gradInput: dx, gradScale: dg, gradBias: db)
                }
                let badSaved = SavedStatistics(mean: Array(saved.mean.prefix(2)), invStd: saved.invStd)
                expectGradientsRejected(.lengthMismatch(argument: "saved.mean", expected: 3, actual: 2), all) {
                    try bn.backwardTraining(input: xp, gradOutput: dyp, saved: badSaved, gradInput: dx, gradScale: dg, gradBias: db)
                }
                let noStats = SavedStatistics(mean: saved.mean, invStd: [])
                expectGradientsRejected(.lengthMismatch(argument: "saved.invStd", expected: 3, actual: 0), all) {
                    try bn.backwardTraining(input: xp, gradOutput: dyp, saved: noStats, gradInput: dx, gradScale: dg, gradBias: db)
                }
                let longScale = UnsafeMutableBufferPointer(rebasing: storage[count..<(count + 4)])
                expectGradientsRejected(.lengthMismatch(argument: "gradScale (dγ)", expected: 3, actual: 4), [dx, longScale]) {
                    try bn.backwardTraining(input: xp, gradOutput: dyp, saved: saved, gradInput: dx, gradScale: longScale)
                }
                let shortDx = UnsafeMutableBufferPointer(rebasing: storage[0..<(count - 1)])
                expectGradientsRejected(.lengthMismatch(argument: "gradInput", expected: count, actual: count - 1), [shortDx, dg]) {
                    try bn.backwardTraining(input: xp, gradOutput: dyp, saved: saved, gradInput: shortDx, gradScale: dg)
                }
                let gamma2 = [Float](repeating: 1, count: 2)
                gamma2.withUnsafeBufferPointer { gp in
                    expectGradientsRejected(.lengthMismatch(argument: "scale (γ)", expected: 3, actual: 2), all) {
                        try bn.backwardTraining(input: xp, gradOutput: dyp, saved: saved, scale: gp, gradInput: dx, gradScale: dg, gradBias: db)
                    }
                }
                expectGradientsRejected(.invalidArgument(argument: "output", reason: "fusedReLU backward needs the forward output (the ReLU mask)"), all) {
                    try relu.backwardTraining(input: xp, gradOutput: dyp, saved: saved, gradInput: dx, gradScale: dg, gradBias: db)
                }
                expectGradientsRejected(.overlappingBuffers(argument: "gradScale", other: "gradBias"), [dx, dg]) {
                    try bn.backwardTraining(input: xp, gradOutput: dyp, saved: saved, gradInput: dx, gradScale: dg, gradBias: dg)
                }
                let straddling = UnsafeMutableBufferPointer(rebasing: storage[(count - 1)..<(count + 2)])
                expectGradientsRejected(.overlappingBuffers(argument: "gradInput", other: "gradScale"), [dx, straddling]) {
                    try bn.backwardTraining(input: xp, gradOutput: dyp, saved: saved, gradInput: dx, gradScale: straddling)
                }
                let running = try RunningStatistics(channels: 4)
                expectGradientsRejected(.lengthMismatch(argument: "running statistics channels", expected: 3, actual: 4), all) {
                    try bn.backwardInference(input: xp, gradOutput: dyp, running: running, gradInput: dx, gradScale: dg, gradBias: db)
                }
            }
        }
        // gradInput partially overlapping gradOutput (shifted by one value).
        let shared = UnsafeMutableBufferPointer<Float>.allocate(capacity: count + 1)
        defer { shared.deallocate() }
        shared.initialize(repeating: 0.5)
        let sharedDy = UnsafeBufferPointer(rebasing: shared[0..<count])
        let shiftedDx = UnsafeMutableBufferPointer(rebasing: shared[1...])
        try x.withUnsafeBufferPointer { xp in
            do {
                try bn.backwardTraining(input: xp, gradOutput: sharedDy, saved: saved, gradInput: shiftedDx)
                Issue.record("partial overlap of gradInput and gradOutput was accepted")
            } catch let error as NormError {
                #expect(error == .partialOverlap(argument: "gradInput (against gradOutput)"))
            }
            #expect(shared.allSatisfy { $0 == 0.5 }, "nothing written on partial overlap")
        }
    }

    @Test("Every other backward rejects bad arguments before writing anything")
    func otherErrors() throws {
        // LayerNorm: wrong dy, wrong saved, wrong dγ length, dx partially over x.
        let (rows, features) = (4, 10)
        let x = streams.uniforms(rows * features, seed: 43), dy = streams.uniforms(rows * features, seed: 44)
        let ln = try LayerNormalization(rows: rows, features: features)
        let (_, saved) = try ln.forward(x)
        var dxArray = [Float](repeating: 0, count: rows * features), dgArray = [Float](repeating: 0, count: features + 1)
        try x.withUnsafeBufferPointer { xp in
            try dy.withUnsafeBufferPointer { dyp in
                try dxArray.withUnsafeMutableBufferPointer { dx in
                    try dgArray.withUnsafeMutableBufferPointer { dgAll in
                        let dg = UnsafeMutableBufferPointer(rebasing: dgAll[0..<features])
                        expectGradientsRejected(.lengthMismatch(argument: "gradOutput", expected: 40, actual: 39), [dx, dg]) {
                            try ln.backward(input: xp, gradOutput: UnsafeBufferPointer(rebasing: dyp[1...]), saved: saved, gradInput: dx, gradScale: dg)
                        }
                        expectGradientsRejected(.lengthMismatch(argument: "saved.mean", expected: 4, actual: 3),  [dx, dg]) {
                            try ln.backward(input: xp, gradOutput: dyp, saved: SavedStatistics(mean: [0, 0, 0], invStd: saved.invStd), gradInput: dx, gradScale: dg)
                        }
                        expectGradientsRejected(.lengthMismatch(argument: "gradScale (dγ)", expected: 10, actual: 11), [dx, dgAll]) {
                            try ln.backward(input: xp, gradOutput: dyp, saved: saved, gradInput: dx, gradScale: dgAll)
                        }
                        let rms = try RMSNormalization(rows: rows, features: features)
                        expectGradientsRejected(.lengthMismatch(argument: "saved.invStd", expected: 4, actual: 5), [dx, dg]) {
                            try rms.backward(input: xp, gradOutput: dyp, saved: SavedStatistics(mean: [], invStd: [1, 1, 1, 1, 1]), gradInput: dx, gradScale: dg)
                        }
                    }
                }
            }
        }
        // dx partially over x (shifted by one value): documented as in place or
        // disjoint only, so the call must throw before writing dx, dγ or x.
        var shared = [Float](repeating: 0, count: rows * features + 1)
        shared.replaceSubrange(0..<(rows * features), with: x)
        let sharedBefore = shared
        var partialDg = [Float](repeating: gradientSentinel, count: features)
        try dy.withUnsafeBufferPointer { dyp in
            try partialDg.withUnsafeMutableBufferPointer { dg in
                try shared.withUnsafeMutableBufferPointer { all in
                    let input = UnsafeBufferPointer(rebasing: all[0..<(rows * features)])
                    let gradInput = UnsafeMutableBufferPointer(rebasing: all[1...])
                    do {
                        try ln.backward(input: input, gradOutput: dyp, saved: saved, gradInput: gradInput, gradScale: dg)
                        Issue.record("LayerNorm dx partially over x was accepted")
                    } catch let error as NormError {
                        #expect(error == .partialOverlap(argument: "gradInput (against input)"), "LN dx partially over x: \(error)")
                    }
                    #expect(untouched(dg), "LN dx partially over x: dγ written before the error")
                    #expect(bitPatterns(Array(all)) == bitPatterns(sharedBefore), "LN dx partially over x: x or dx written before the error")
                }
            }
        }
        // GroupNorm / InstanceNorm: saved per (n, g) / (n, c).
        let shape = TensorShape(n: 2, c: 6, h: 3, w: 3, layout: .nhwc)
        let gx = streams.uniforms(shape.count, seed: 45), gdy = streams.uniforms(shape.count, seed: 46)
        let gn = try GroupNormalization(shape: shape, groups: 3)
        let (_, gsaved) = try gn.forward(gx)
        let inorm = try InstanceNormalization(shape: shape)
        var gdx = [Float](repeating: 0, count: shape.count), gdb = [Float](repeating: 0, count: 6)
        gx.withUnsafeBufferPointer { xp in
            gdy.withUnsafeBufferPointer { dyp in
                gdx.withUnsafeMutableBufferPointer { dx in
                    gdb.withUnsafeMutableBufferPointer { db in
                        expectGradientsRejected(.lengthMismatch(argument: "saved.mean", expected: 12, actual: 6), [dx, db]) {
                            try inorm.backwardTraining(input: xp, gradOutput: dyp, saved: gsaved, gradInput: dx, gradBias: db)
                        }
                        expectGradientsRejected(.overlappingBuffers(argument: "gradInput", other: "gradBias"), [dx]) {
                            try gn.backward(input: xp, gradOutput: dyp, saved: gsaved, gradInput: dx,
                                            gradBias: UnsafeMutableBufferPointer(rebasing: dx[0..<6]))
                        }
                    }
                }
            }
        }
        // AdaIN: wrong style length, dstyle sharing the content.
        let content = TensorShape(n: 1, c: 2, h: 3, w: 3), style = TensorShape(n: 1, c: 2, h: 2, w: 2)
        let ada = try AdaptiveInstanceNormalization(content: content, style: style)
        let cx = streams.uniforms(content.count, seed: 47), sx = streams.uniforms(style.count, seed: 48), cdy = streams.uniforms(content.count, seed: 49)
        let (_, asaved) = try ada.forward(content: cx, style: sx)
        var adx = [Float](repeating: 0, count: content.count), ads = [Float](repeating: 0, count: style.count)
        var contentCopy = cx
        try cdy.withUnsafeBufferPointer { dyp in
            try sx.withUnsafeBufferPointer { sp in
                try adx.withUnsafeMutableBufferPointer { dc in
                    try ads.withUnsafeMutableBufferPointer { ds in
                        try contentCopy.withUnsafeMutableBufferPointer { cm in
                            let cp = UnsafeBufferPointer(cm)
                            expectGradientsRejected(.lengthMismatch(argument: "style", expected: 8, actual: 7), [dc, ds]) {
                                try ada.backward(content: cp, style: UnsafeBufferPointer(rebasing: sp[1...]), gradOutput: dyp,
                                                 saved: asaved, gradContent: dc, gradStyle: ds)
                            }
                            expectGradientsRejected(.lengthMismatch(argument: "saved.styleStd", expected: 2, actual: 1), [dc, ds]) {
                                var bad = asaved
                                bad.styleStd = [1]
                                try ada.backward(content: cp, style: sp, gradOutput: dyp, saved: bad, gradContent: dc, gradStyle: ds)
                            }
                            let dsInContent = UnsafeMutableBufferPointer(rebasing: cm[0..<8])
                            let before = Array(cm)
                            do {
                                try ada.backward(content: cp, style: sp, gradOutput: dyp, saved: asaved, gradContent: dc, gradStyle: dsInContent)
                                Issue.record("dstyle inside the content was accepted")
                            } catch let error as NormError {
                                #expect(error == .overlappingBuffers(argument: "gradStyle", other: "content"))
                            }
                            #expect(Array(cm) == before)
                        }
                    }
                }
            }
        }
        // WeightNorm: wrong norms, wrong dw.
        let wn = try WeightNormalization(shape: [3, 4], dim: 0)
        let v = streams.uniforms(12, seed: 50), g = streams.uniforms(3, seed: 51), dw = streams.uniforms(12, seed: 52)
        let (_, norms) = try wn.forward(v: v, g: g)
        var dv = [Float](repeating: 0, count: 12), dgw = [Float](repeating: 0, count: 3)
        v.withUnsafeBufferPointer { vp in
            g.withUnsafeBufferPointer { gp in
                dw.withUnsafeBufferPointer { dwp in
                    dv.withUnsafeMutableBufferPointer { dvp in
                        dgw.withUnsafeMutableBufferPointer { dgp in
                            expectGradientsRejected(.lengthMismatch(argument: "norms", expected: 3, actual: 2), [dvp, dgp]) {
                                try wn.backward(v: vp, g: gp, gradWeight: dwp, norms: Array(norms.prefix(2)), gradV: dvp, gradG: dgp)
                            }
                            expectGradientsRejected(.lengthMismatch(argument: "gradWeight", expected: 12, actual: 11), [dvp, dgp]) {
                                try wn.backward(v: vp, g: gp, gradWeight: UnsafeBufferPointer(rebasing: dwp[1...]), norms: norms,
                                                gradV: dvp, gradG: dgp)
                            }
                        }
                    }
                }
            }
        }
    }
}
