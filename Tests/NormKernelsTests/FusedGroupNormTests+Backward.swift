// GroupNorm + SiLU backward (`GroupNormalization+SiLUBackward.swift`): dx, dγ, dβ,
// d scale, d shift against the Float64 composed op's gradients (themselves
// checked by central differences of the Float64 forward), against our unfused
// sequence (dz in a scalar Float32 loop, then GroupNorm's backward), bitwise
// across thread counts, and in place over dy or x.
import Foundation
import Testing
@testable import NormKernels

/// The composed op's gradients in Float64 (file comment of
/// `GroupNormalization+SiLUBackward.swift`): dx, dγ, dβ, d scale, d shift.
func referenceGroupNormSiLUBackward(_ shape: TensorShape, groups: Int, _ i: SiLUInputs, dy: [Float])
    -> (dx: [Double], dGamma: [Double], dBeta: [Double], dScale: [Double], dShift: [Double]) {
    let size = shape.c / groups, count = Double(size * shape.spatial)
    let norm = Reference.groupNorm(i.x, shape, groups: groups)
    let xhat = norm.output, invStd = norm.invStd
    var dx = [Double](repeating: 0, count: shape.count)
    var dGamma = [Double](repeating: 0, count: shape.c), dBeta = dGamma
    var dScale = [Double](repeating: 0, count: shape.n * shape.c), dShift = dScale
    for n in 0..<shape.n {
        for g in 0..<groups {
            var gh = [Int: Double](), m1 = 0.0, m2 = 0.0
            for c in (g * size)..<((g + 1) * size) {
                let k = n * shape.c + c
                let gamma = Double(i.gamma?[c] ?? 1), beta = Double(i.beta?[c] ?? 0)
                let m = 1 + Double(i.scale?[k] ?? 0), t = Double(i.shift?[k] ?? 0)
                for s in 0..<shape.spatial {
                    let o = shape.offset(n, c, s)
                    let z = (xhat[o] * gamma + beta) * m + t, sg = sigmoid64(z)
                    let dz = Double(dy[o]) * sg * (1 + z * (1 - sg))
                    dShift[k] += dz
                    dScale[k] += dz * (xhat[o] * gamma + beta)
                    dGamma[c] += dz * m * xhat[o]
                    dBeta[c] += dz * m
                    gh[o] = dz * m * gamma
                    m1 += dz * m * gamma
                    m2 += dz * m * gamma * xhat[o]
                }
            }
            let r = invStd[n * groups + g]
            for (o, v) in gh { dx[o] = r * (v - m1 / count - xhat[o] * m2 / count) }
        }
    }
    return (dx, dGamma, dBeta, dScale, dShift)
}

extension FusedGroupNormTests {
    @Test("the Float64 reference gradients match central differences of the Float64 forward")
    func referenceByFiniteDifferences() {
        let shape = TensorShape(n: 2, c: 6, h: 2, w: 3, layout: .nhwc), groups = 3
        let i = SiLUInputs(shape, seed: 31)
        var rng = SeededStreams(salt: 0x6E51_1022).generator(1)
        let dy = rng.normals(shape.count)
        let grads = referenceGroupNormSiLUBackward(shape, groups: groups, i, dy: dy)
        // L = Σ dy·y in Float64 of Float64 perturbations: perturb via Double inputs.
        func loss(_ x: [Double], _ gamma: [Double], _ beta: [Double], _ scale: [Double], _ shift: [Double]) -> Double {
            let size = shape.c / groups
            var total = 0.0
            for n in 0..<shape.n {
                for g in 0..<groups {
                    var values: [Int] = []
                    for c in (g * size)..<((g + 1) * size) { for s in 0..<shape.spatial { values.append(shape.offset(n, c, s)) } }
                    let mean = values.map { x[$0] }.reduce(0, +) / Double(values.count)
                    let variance = values.map { (x[$0] - mean) * (x[$0] - mean) }.reduce(0, +) / Double(values.count)
                    let r = 1 / (variance + 1e-5).squareRoot()
                    for o in values {
                        let c = shape.channel(at: o), k = n * shape.c + c
                        let z = (((x[o] - mean) * r) * gamma[c] + beta[c]) * (1 + scale[k]) + shift[k]
                        total += Double(dy[o]) * z * sigmoid64(z)
                    }
                }
            }
            return total
        }
        let x = i.x.map(Double.init), gamma = i.gamma!.map(Double.init), beta = i.beta!.map(Double.init)
        let scale = i.scale!.map(Double.init), shift = i.shift!.map(Double.init)
        let h = 1e-6
        func check(_ name: String, _ values: [Double], _ analytic: [Double], _ perturb: ([Double]) -> Double) {
            for j in values.indices {
                var up = values, down = values
                up[j] += h; down[j] -= h
                let numeric = (perturb(up) - perturb(down)) / (2 * h)
                #expect(abs(numeric - analytic[j]) <= 1e-6 * (1 + abs(numeric)), "\(name)[\(j)]: \(numeric) vs \(analytic[j])")
            }
        }
        check("dx", x, grads.dx) { loss($0, gamma, beta, scale, shift) }
        check("dγ", gamma, grads.dGamma) { loss(x, $0, beta, scale, shift) }
        check("dβ", beta, grads.dBeta) { loss(x, gamma, $0, scale, shift) }
        check("d scale", scale, grads.dScale) { loss(x, gamma, beta, $0, shift) }
        check("d shift", shift, grads.dShift) { loss(x, gamma, beta, scale, $0) }
    }

    @Test("backward: Float64 composed op's gradients and our unfused sequence", arguments: siluCases)
    func backward(_ c: SiLUCase) throws {
        let gn = try GroupNormalization(shape: c.shape, groups: c.groups, threading: Threading(threads: 2, parallelThreshold: 1))
        for (affine, modulated) in product(Affine.allCases, [false, true]) {
            let i = SiLUInputs(c.shape, seed: UInt64(c.shape.count * 3 + c.groups), affine: affine, modulated: modulated)
            var rng = SeededStreams(salt: 0x6E51_1023).generator(UInt64(c.shape.count))
            let dy = rng.normals(c.shape.count)
            let saved = try gn.forwardSiLU(i).saved
            let ours = try gn.backwardSiLU(i.x, gradOutput: dy, saved: saved, scale: i.gamma, bias: i.beta,
                                           modulationScale: i.scale, modulationShift: i.shift)
            let ref = referenceGroupNormSiLUBackward(c.shape, groups: c.groups, i, dy: dy)
            let what = "\(c) \(affine) modulated \(modulated)"
            expectNormwiseClose(ours.norm.input, ref.dx, tolerance: 1e-4, scaleFloor: 1e-3, "\(what) dx")
            expectNormwiseClose(ours.norm.scale, ref.dGamma, tolerance: 1e-4, scaleFloor: 1e-3, "\(what) dγ")
            expectNormwiseClose(ours.norm.bias, ref.dBeta, tolerance: 1e-4, scaleFloor: 1e-3, "\(what) dβ")
            if modulated {
                expectNormwiseClose(ours.modulationScale, ref.dScale, tolerance: 1e-4, scaleFloor: 1e-3, "\(what) d scale")
                expectNormwiseClose(ours.modulationShift, ref.dShift, tolerance: 1e-4, scaleFloor: 1e-3, "\(what) d shift")
            }
            // Our unfused sequence: z from our GroupNorm output, dz·m in scalar Float32, GroupNorm's backward.
            let v = try gn.forward(i.x, scale: i.gamma, bias: i.beta).output
            var g = dy
            for k in g.indices {
                let n = k / (c.shape.count / c.shape.n), ch = c.shape.channel(at: k), slot = n * c.shape.c + ch
                let m: Float = 1 + (i.scale?[slot] ?? 0), z = v[k] * m + (i.shift?[slot] ?? 0)
                let s = 1 / (1 + Foundation.exp(-z))
                g[k] = dy[k] * s * (1 + z * (1 - s)) * m
            }
            let unfused = try gn.backward(i.x, gradOutput: g, saved: saved, scale: i.gamma)
            expectNormwiseClose(ours.norm.input, unfused.input!.map(Double.init), tolerance: 1e-4, scaleFloor: 1e-3,
                                "\(what) dx vs unfused")
            expectNormwiseClose(ours.norm.scale, unfused.scale!.map(Double.init), tolerance: 1e-4, scaleFloor: 1e-3,
                                "\(what) dγ vs unfused")
        }
    }

    @Test("backward: large |z|, finite gradients close to Float64", arguments: [siluCases[0], siluCases[3], siluCases[8]])
    func backwardLarge(_ c: SiLUCase) throws {
        let gn = try GroupNormalization(shape: c.shape, groups: c.groups)
        let i = SiLUInputs(c.shape, seed: 78, gammaSpread: 400)
        var rng = SeededStreams(salt: 0x6E51_1024).generator(2)
        let dy = rng.normals(c.shape.count)
        let saved = try gn.forwardSiLU(i).saved
        let ours = try gn.backwardSiLU(i.x, gradOutput: dy, saved: saved, scale: i.gamma, bias: i.beta,
                                       modulationScale: i.scale, modulationShift: i.shift)
        let ref = referenceGroupNormSiLUBackward(c.shape, groups: c.groups, i, dy: dy)
        let finite = ours.norm.input!.allSatisfy { $0.isFinite }
        #expect(finite, "\(c): dx finite")
        expectNormwiseClose(ours.norm.input, ref.dx, tolerance: 1e-3, scaleFloor: 1e-3, "\(c) dx")
        expectNormwiseClose(ours.modulationScale, ref.dScale, tolerance: 1e-4, scaleFloor: 1e-3, "\(c) d scale")
        expectNormwiseClose(ours.norm.scale, ref.dGamma, tolerance: 1e-4, scaleFloor: 1e-3, "\(c) dγ")
    }

    @Test("backward: bitwise identical across thread counts; subsets equal the full call", arguments: [
        siluCases[0], siluCases[3], siluCases[5], siluCases[6], siluCases[8], siluCases[10]])
    func backwardDeterminism(_ c: SiLUCase) throws {
        let i = SiLUInputs(c.shape, seed: 6)
        var rng = SeededStreams(salt: 0x6E51_1025).generator(3)
        let dy = rng.normals(c.shape.count)
        let saved = try GroupNormalization(shape: c.shape, groups: c.groups).forwardSiLU(i).saved
        try expectGradientsDeterministic("\(c)") { threading in
            let gn = try GroupNormalization(shape: c.shape, groups: c.groups, threading: threading)
            let r = try gn.backwardSiLU(i.x, gradOutput: dy, saved: saved, scale: i.gamma, bias: i.beta,
                                        modulationScale: i.scale, modulationShift: i.shift)
            return [r.norm.input, r.norm.scale, r.norm.bias, r.modulationScale, r.modulationShift]
        }
        let gn = try GroupNormalization(shape: c.shape, groups: c.groups)
        let all = try gn.backwardSiLU(i.x, gradOutput: dy, saved: saved, scale: i.gamma, bias: i.beta,
                                      modulationScale: i.scale, modulationShift: i.shift)
        let parameters = try gn.backwardSiLU(i.x, gradOutput: dy, saved: saved, scale: i.gamma, bias: i.beta,
                                             modulationScale: i.scale, modulationShift: i.shift,
                                             computing: .parameters, modulationGradients: false)
        let modulation = try gn.backwardSiLU(i.x, gradOutput: dy, saved: saved, scale: i.gamma, bias: i.beta,
                                             modulationScale: i.scale, modulationShift: i.shift, computing: [])
        #expect(bitPatterns(parameters.norm.scale) == bitPatterns(all.norm.scale) && parameters.norm.input == nil)
        #expect(bitPatterns(modulation.modulationScale) == bitPatterns(all.modulationScale))
        #expect(bitPatterns(modulation.modulationShift) == bitPatterns(all.modulationShift))
    }

    @Test("backward in place: gradInput over dy, over x; bitwise the out-of-place result", arguments: siluCases)
    func backwardInPlace(_ c: SiLUCase) throws {
        let gn = try GroupNormalization(shape: c.shape, groups: c.groups, threading: Threading(threads: 2, parallelThreshold: 1))
        let i = SiLUInputs(c.shape, seed: 12)
        var rng = SeededStreams(salt: 0x6E51_1026).generator(4)
        let dy = rng.normals(c.shape.count)
        let saved = try gn.forwardSiLU(i).saved
        let expected = try gn.backwardSiLU(i.x, gradOutput: dy, saved: saved, scale: i.gamma, bias: i.beta,
                                           modulationScale: i.scale, modulationShift: i.shift)
        for overX in [false, true] {
            var buffer = overX ? i.x : dy
            var dγ = [Float](repeating: 0, count: c.shape.c), ds = [Float](repeating: 0, count: c.shape.n * c.shape.c)
            try buffer.withUnsafeMutableBufferPointer { b in
                try withBuffers(overX ? dy : i.x, i.gamma, i.beta) { other, g, be in
                    try withBuffers(i.x, i.scale, i.shift) { _, s, t in
                        try dγ.withUnsafeMutableBufferPointer { dg in
                            try ds.withUnsafeMutableBufferPointer { dsp in
                                let mine = UnsafeBufferPointer(b)
                                try gn.backwardSiLU(input: overX ? mine : other, gradOutput: overX ? other : mine,
                                                    saved: saved, scale: g, bias: be, modulationScale: s,
                                                    modulationShift: t, gradInput: b, gradScale: dg,
                                                    gradModulationScale: dsp)
                            }
                        }
                    }
                }
            }
            expectBitwise(buffer, expected.norm.input!, "\(c) dx in place over \(overX ? "x" : "dy")")
            expectBitwise(dγ, expected.norm.scale!, "\(c) dγ in place over \(overX ? "x" : "dy")")
            expectBitwise(ds, expected.modulationScale!, "\(c) d scale in place over \(overX ? "x" : "dy")")
        }
    }
}
