// GroupNorm + SiLU (`GroupNormalization+SiLU.swift`), forward:
// y = silu((GN(x)·γ + β)·(1 + scale) + shift), modulation per (n, c).
//
// Relations tested: without modulation the fused output is bitwise `silu` of
// our GroupNorm output (the same coefficients, SiLU as the output's epilogue);
// with it, equal to our unfused Float32 sequence (GroupNorm, then
// v·(1 + scale) + shift, then a scalar SiLU loop with Foundation's exp) within
// rounding; against the Float64 composed op |y − ref| ≤ 3e-5·(1 + |z|).
import Foundation
import Testing
@testable import NormKernels

private let streams = SeededStreams(salt: 0x6E51_1021)

/// A GroupNorm + SiLU case: shape, groups, and the `GroupNormPlan` path it takes.
struct SiLUCase: CustomStringConvertible, Sendable {
    var shape: TensorShape
    var groups: Int
    var path: String
    var description: String { "\(shape) G=\(groups) (\(path))" }
}

/// Every `GroupNormPlan` path, both layouts, channels per group 1, sizes not
/// filling a vector, the NHWC strips (C ≥ 1024), `[2, 320, 64, 64]`-like maps.
let siluCases: [SiLUCase] = [
    SiLUCase(shape: TensorShape(n: 2, c: 40, h: 16, w: 16, layout: .nchw), groups: 8, path: "channelGroups"),
    SiLUCase(shape: TensorShape(n: 2, c: 32, h: 8, w: 8, layout: .nchw), groups: 8, path: "channelGroups"),
    SiLUCase(shape: TensorShape(n: 1, c: 6, h: 9, w: 9, layout: .nchw), groups: 6, path: "channelGroups"),
    SiLUCase(shape: TensorShape(n: 2, c: 40, h: 16, w: 16, layout: .nhwc), groups: 8, path: "channelGroups"),
    SiLUCase(shape: TensorShape(n: 2, c: 12, h: 5, w: 5, layout: .nhwc), groups: 12, path: "channelGroups"),
    SiLUCase(shape: TensorShape(n: 1, c: 1024, h: 5, w: 5, layout: .nhwc), groups: 32, path: "channelGroups"),
    SiLUCase(shape: TensorShape(n: 4, c: 24, h: 1, w: 1, layout: .nchw), groups: 6, path: "featureVectors"),
    SiLUCase(shape: TensorShape(n: 3, c: 20, h: 1, w: 1, layout: .nhwc), groups: 4, path: "featureVectors"),
    SiLUCase(shape: TensorShape(n: 2, c: 16, h: 4, w: 4, layout: .nchw), groups: 4, path: "expandedAffine"),
    SiLUCase(shape: TensorShape(n: 2, c: 12, h: 3, w: 5, layout: .nchw), groups: 12, path: "expandedAffine"),
    SiLUCase(shape: TensorShape(n: 2, c: 32, h: 3, w: 3, layout: .nhwc), groups: 4, path: "groupSegments"),
]

func pathName(_ gn: GroupNormalization) -> String {
    switch gn.path {
    case .featureVectors: "featureVectors"
    case .expandedAffine: "expandedAffine"
    case .groupSegments: "groupSegments"
    case .channelGroups: "channelGroups"
    }
}

/// Inputs of one case: x, γ, β, per-(n, c) scale and shift.
struct SiLUInputs {
    var x: [Float], gamma: [Float]?, beta: [Float]?, scale: [Float]?, shift: [Float]?

    init(_ shape: TensorShape, seed: UInt64, affine: Affine = .both, modulated: Bool = true, gammaSpread: Double = 2) {
        var rng = streams.generator(seed)
        x = activations(shape, &rng)
        let p = affine.parameters(shape.c, &rng)
        gamma = p.scale.map { $0.map { $0 * Float(gammaSpread / 2) } }
        beta = p.bias
        scale = modulated ? rng.uniforms(shape.n * shape.c, -0.9...0.9) : nil
        shift = modulated ? rng.uniforms(shape.n * shape.c, -1...1) : nil
    }
}

/// σ and SiLU in Float64.
func sigmoid64(_ z: Double) -> Double { z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z)) }

/// The composed op in Float64: z per element (memory order) and y = silu(z).
func referenceGroupNormSiLU(_ x: [Float], _ shape: TensorShape, groups: Int, _ i: SiLUInputs)
    -> (z: [Double], y: [Double]) {
    let gn = Reference.groupNorm(x, shape, groups: groups, scale: i.gamma, bias: i.beta).output
    var z = gn
    for n in 0..<shape.n {
        for c in 0..<shape.c {
            let k = n * shape.c + c
            let m = 1 + Double(i.scale?[k] ?? 0), t = Double(i.shift?[k] ?? 0)
            for s in 0..<shape.spatial { let o = shape.offset(n, c, s); z[o] = gn[o] * m + t }
        }
    }
    return (z, z.map { $0 * sigmoid64($0) })
}

/// Our unfused Float32 sequence: GroupNorm, v·(1 + scale) + shift, a scalar SiLU loop.
func unfusedGroupNormSiLU(_ gn: GroupNormalization, _ i: SiLUInputs) throws -> [Float] {
    let shape = gn.shape
    var v = try gn.forward(i.x, scale: i.gamma, bias: i.beta).output
    for n in 0..<shape.n {
        for c in 0..<shape.c {
            let k = n * shape.c + c
            let m: Float = 1 + (i.scale?[k] ?? 0), t = i.shift?[k] ?? 0
            for s in 0..<shape.spatial {
                let o = shape.offset(n, c, s)
                let z = i.scale == nil && i.shift == nil ? v[o] : v[o] * m + t
                v[o] = z / (1 + Foundation.exp(-z))
            }
        }
    }
    return v
}

extension GroupNormalization {
    func forwardSiLU(_ i: SiLUInputs) throws -> (output: [Float], saved: SavedStatistics) {
        try forwardSiLU(i.x, scale: i.gamma, bias: i.beta, modulationScale: i.scale, modulationShift: i.shift)
    }
}

struct FusedGroupNormTests {
    @Test("every case takes the path it names", arguments: siluCases)
    func paths(_ c: SiLUCase) throws {
        let gn = try GroupNormalization(shape: c.shape, groups: c.groups)
        #expect(pathName(gn) == c.path)
        #expect(!gn.plan().description.isEmpty)
    }

    @Test("forward: Float64 composed op, our unfused sequence, saved statistics as GroupNorm", arguments: siluCases)
    func forward(_ c: SiLUCase) throws {
        let threading = Threading(threads: 2, parallelThreshold: 1)
        let gn = try GroupNormalization(shape: c.shape, groups: c.groups, threading: threading)
        for (affine, modulated) in product(Affine.allCases, [false, true]) {
            let i = SiLUInputs(c.shape, seed: UInt64(c.shape.count + c.groups), affine: affine, modulated: modulated)
            let (y, saved) = try gn.forwardSiLU(i)
            let what = "\(c) \(affine) modulated \(modulated)"
            let plain = try gn.forward(i.x, scale: i.gamma, bias: i.beta)
            expectIdentical(saved, plain.saved, what)
            if !modulated {
                expectBitwise(y, plain.output.map { SiLUActivation.apply($0) }, "\(what) vs silu(GroupNorm)")
            }
            let unfused = try unfusedGroupNormSiLU(gn, i)
            let ref = referenceGroupNormSiLU(i.x, c.shape, groups: c.groups, i)
            var worst = 0.0, worstUnfused = 0.0
            for k in y.indices {
                worst = max(worst, abs(Double(y[k]) - ref.y[k]) / (1 + abs(ref.z[k])))
                worstUnfused = max(worstUnfused, abs(Double(y[k]) - Double(unfused[k])) / (1 + abs(ref.z[k])))
            }
            #expect(worst <= 3e-5, "\(what): error \(worst) against Float64")
            #expect(worstUnfused <= 3e-5, "\(what): \(worstUnfused) from our unfused sequence")
        }
    }

    @Test("forward: large |z| (γ up to ±400): no NaN, silu → z or −0 as in Float64", arguments: [
        siluCases[0], siluCases[3], siluCases[6], siluCases[8], siluCases[10]])
    func largeActivations(_ c: SiLUCase) throws {
        let gn = try GroupNormalization(shape: c.shape, groups: c.groups)
        let i = SiLUInputs(c.shape, seed: 77, gammaSpread: 400)
        let y = try gn.forwardSiLU(i).output
        let ref = referenceGroupNormSiLU(i.x, c.shape, groups: c.groups, i)
        #expect(ref.z.contains { $0 < -100 } && ref.z.contains { $0 > 100 }, "\(c): the case reaches large |z|")
        var worst = 0.0
        for k in y.indices {
            #expect(!y[k].isNaN, "\(c): NaN at \(k)")
            worst = max(worst, abs(Double(y[k]) - ref.y[k]) / (1 + abs(ref.z[k])))
        }
        #expect(worst <= 3e-5, "\(c): error \(worst) against Float64")
    }

    @Test("SiLU lanes: exp within 2 ulp, σ at ±large, NaN kept")
    func siluLanes() {
        var worst: Float = 0
        for k in stride(from: -87.0, through: 88.0, by: 0.0137) {
            let v = Float(k), e = exp8(F8(repeating: v))[0], ref = Foundation.exp(Double(v))
            worst = max(worst, Float(abs(Double(e) - ref) / Double(Float(ref).ulp)))
        }
        #expect(worst <= 2, "exp8: \(worst) ulp")
        #expect(SiLUActivation.apply(Float(-1000)) == 0 && SiLUActivation.apply(Float(1000)) == 1000)
        #expect(SiLUActivation.apply(Float(-90)).magnitude < 1e-30 && SiLUActivation.apply(Float(90)) == 90)
        #expect(siluGradient8(F8(repeating: -1000), F8(repeating: 1))[0] == 0)
        #expect(siluGradient8(F8(repeating: 1000), F8(repeating: 1))[0] == 1)
        #expect(SiLUActivation.apply(Float.nan).isNaN)
    }

    @Test("forward: bitwise identical across thread counts 1–16", arguments: [
        siluCases[0], siluCases[3], siluCases[5], siluCases[6], siluCases[8], siluCases[10]])
    func determinism(_ c: SiLUCase) throws {
        let i = SiLUInputs(c.shape, seed: 5)
        try expectSameBitsForAnyThreading("\(c)") { threading in
            let gn = try GroupNormalization(shape: c.shape, groups: c.groups, threading: threading)
            let (y, saved) = try gn.forwardSiLU(i)
            return y + doubleBits(saved.mean) + doubleBits(saved.invStd)
        }
    }

    @Test("forward in place over x: bitwise the out-of-place result", arguments: siluCases)
    func inPlace(_ c: SiLUCase) throws {
        let gn = try GroupNormalization(shape: c.shape, groups: c.groups, threading: Threading(threads: 2, parallelThreshold: 1))
        let i = SiLUInputs(c.shape, seed: 9)
        let expected = try gn.forwardSiLU(i)
        var buffer = i.x
        let saved = try buffer.withUnsafeMutableBufferPointer { b in
            try withBuffers(i.x, i.scale, i.shift) { _, s, t in
                try withBuffers(i.x, i.gamma, i.beta) { _, g, be in
                    try gn.forwardSiLU(input: UnsafeBufferPointer(b), output: b, scale: g, bias: be,
                                       modulationScale: s, modulationShift: t)
                }
            }
        }
        expectBitwise(buffer, expected.output, "\(c) in place")
        expectIdentical(saved, expected.saved, "\(c) in place")
    }
}
