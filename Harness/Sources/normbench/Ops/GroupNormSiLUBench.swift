import Dispatch
import CNormSupport
import Foundation
import NormKernels

/// GroupNorm + SiLU (issue 21), the diffusion form:
/// `y = silu((GN(x)·γ + β)·(1 + scale) + shift)` with per-(n, c) scale and shift
/// (deterministic values, `modulation(_:)`), as `GroupNormalization.forwardSiLU`.
/// Traffic is what the fused op must move: GroupNorm's, plus the 2·N·C
/// modulation values (forward); backward x, dy read, dx written, γ, β read,
/// dγ, dβ written, scale and shift read, their gradients written.
struct GroupNormSiLUBench: BenchOp {
    let name = "groupnorm-silu"
    let hasLayout = true
    let hasGroups = true
    let dtypes = DType.allCases

    func operands(_ s: Shape) -> Operands { Operands(gamma: s.c, beta: s.c) }
    func cannotRun(_ key: CaseKey) -> String? { GroupNormBench().cannotRun(key) }

    func pass(_ direction: Direction) -> Pass? {
        switch direction {
        case .forwardTraining:
            return Pass(traffic: { .forward($0, parameters: 2 * $0.c + 2 * $0.n * $0.c) },
                        reference: Self.forwardReference, make: Self.forward)
        case .forwardInference:
            return nil
        case .backward:
            return Pass(traffic: { .backward($0, parameters: 4 * $0.c + 4 * $0.n * $0.c) },
                        reference: Self.backwardReference, make: Self.backward)
        }
    }

    func unitCount(_ key: CaseKey) -> Int { GroupNormBench().unitCount(key) }
    func unit(_ key: CaseKey, _ u: Int) -> Unit { GroupNormBench().unit(key, u) }
    func plan(_ key: CaseKey, threading: Threading) throws -> PlanDescription { try GroupNormBench().plan(key, threading: threading) }

    /// (scale, shift) of (n, c) slot k: small values around 0 (a timestep embedding's projection).
    static func modulation(_ k: Int) -> (scale: Float, shift: Float) {
        (0.25 * Deterministic.symmetric(seed: 7, index: k), 0.25 * Deterministic.symmetric(seed: 8, index: k))
    }

    static func modulationBuffers(_ s: Shape) -> (scale: Buffer, shift: Buffer) {
        let scale = Buffer(count: s.n * s.c), shift = Buffer(count: s.n * s.c)
        for k in 0..<(s.n * s.c) { (scale[k], shift[k]) = modulation(k) }
        return (scale, shift)
    }

    /// z of the unit's elements (Float64) and the per-element m = 1 + scale, GN·γ + β.
    static func preActivation(_ w: Workload, _ unit: Unit) -> (z: [Double], m: [Double], v: [Double], xhat: [Double], r: Double) {
        let eps = Double(Workload.epsilon), s = w.key.shape
        let (mean, variance) = Reference.moments(w.x, unit.offsets)
        let r = 1 / (variance + eps).squareRoot()
        var z: [Double] = [], m: [Double] = [], v: [Double] = [], xhat: [Double] = []
        for i in unit.offsets.indices {
            let o = unit.offsets[i], n = o / (s.c * s.h * s.w), k = n * s.c + unit.parameters[i]
            let (scale, shift) = modulation(k)
            let h = (Double(w.x[o]) - mean) * r, gn = h * w.scale(unit, i) + w.shift(unit, i)
            xhat.append(h); v.append(gn); m.append(1 + Double(scale))
            z.append(gn * (1 + Double(scale)) + Double(shift))
        }
        return (z, m, v, xhat, r)
    }

    static func sigmoid(_ z: Double) -> Double { z >= 0 ? 1 / (1 + Foundation.exp(-z)) : Foundation.exp(z) / (1 + Foundation.exp(z)) }

    static func forwardReference(_ w: Workload, _ unit: Unit) -> Expected {
        let p = preActivation(w, unit)
        return Expected(values: p.z.map { $0 * sigmoid($0) }, terms: p.z.map { 1 + abs($0) })
    }

    static func backwardReference(_ w: Workload, _ unit: Unit) -> Expected {
        let p = preActivation(w, unit), dy = w.dy!
        let g = unit.offsets.indices.map { i -> Double in
            let s = sigmoid(p.z[i])
            return Double(dy[unit.offsets[i]]) * s * (1 + p.z[i] * (1 - s)) * p.m[i] * w.scale(unit, i)
        }
        return Reference.centred(p.xhat, g, r: p.r, subtractMean: true)
    }

    /// One maker for every dtype (as `LayerNormBench`): x, y in the case's type.
    static func forward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try GroupNormalization(shape: w.tensorShape, groups: w.key.groups ?? 1, epsilon: Workload.epsilon, threading: t)
        let (scale, shift) = modulationBuffers(w.key.shape)
        func make<E: NormElement>(_: E.Type) -> Repetition {
            let x = w.x.elements(E.self), y = w.out.mutableElements(E.self)
            return {
                _ = try k.forwardSiLU(input: x, output: y, scale: w.gamma.readOnly, bias: w.beta.readOnly,
                                      modulationScale: scale.readOnly, modulationShift: shift.readOnly)
            }
        }
        return w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }

    /// dx (checked), dγ, dβ, d scale, d shift from one untimed forward.
    static func backward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try GroupNormalization(shape: w.tensorShape, groups: w.key.groups ?? 1, epsilon: Workload.epsilon, threading: t)
        let (scale, shift) = modulationBuffers(w.key.shape)
        let dGamma = w.gradGamma!, dBeta = w.gradBeta!
        let dScale = Buffer(count: scale.count), dShift = Buffer(count: shift.count)
        func make<E: NormElement>(_: E.Type) throws -> Repetition {
            let x = w.x.elements(E.self), dy = w.dy!.elements(E.self), dx = w.out.mutableElements(E.self)
            let saved = try k.forwardSiLU(input: x, output: dx, scale: w.gamma.readOnly, bias: w.beta.readOnly,
                                          modulationScale: scale.readOnly, modulationShift: shift.readOnly)
            return {
                try k.backwardSiLU(input: x, gradOutput: dy, saved: saved, scale: w.gamma.readOnly,
                                   bias: w.beta.readOnly, modulationScale: scale.readOnly, modulationShift: shift.readOnly,
                                   gradInput: dx, gradScale: dGamma.mutable, gradBias: dBeta.mutable,
                                   gradModulationScale: dScale.mutable, gradModulationShift: dShift.mutable)
            }
        }
        return try w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }
}

/// Our unfused sequence of the same op, forward only: GroupNorm into y, then one
/// more pass `y = silu(y·(1 + scale) + shift)` (8-lane SiLU, the work split over
/// the same threads). The baseline the fused op must beat by ≥ 1.4× (issue 21).
struct GroupNormThenSiLUBench: BenchOp {
    let name = "groupnorm-then-silu"
    let hasLayout = true
    let hasGroups = true

    func operands(_ s: Shape) -> Operands { Operands(gamma: s.c, beta: s.c) }
    func cannotRun(_ key: CaseKey) -> String? { GroupNormBench().cannotRun(key) }

    func pass(_ direction: Direction) -> Pass? {
        guard direction == .forwardTraining else { return nil }
        return Pass(traffic: { .forward($0, parameters: 2 * $0.c + 2 * $0.n * $0.c) },
                    reference: GroupNormSiLUBench.forwardReference, make: Self.forward)
    }

    func unitCount(_ key: CaseKey) -> Int { GroupNormBench().unitCount(key) }
    func unit(_ key: CaseKey, _ u: Int) -> Unit { GroupNormBench().unit(key, u) }
    func plan(_ key: CaseKey, threading: Threading) throws -> PlanDescription { try GroupNormBench().plan(key, threading: threading) }

    static func forward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let s = w.key.shape, nchw = w.key.memoryLayout == .nchw
        let k = try GroupNormalization(shape: w.tensorShape, groups: w.key.groups ?? 1, epsilon: Workload.epsilon, threading: t)
        let (scale, shift) = GroupNormSiLUBench.modulationBuffers(s)
        let threads = max(1, t.threads), hw = s.h * s.w
        return {
            _ = try k.forward(input: w.x.readOnly, output: w.out.mutable, scale: w.gamma.readOnly, bias: w.beta.readOnly)
            nonisolated(unsafe) let y = w.out.pointer, m = scale.pointer, b = shift.pointer
            // Work items: (n, c) planes (NCHW) or positions (NHWC), split evenly over the threads.
            let items = nchw ? s.n * s.c : s.n * hw
            DispatchQueue.concurrentPerform(iterations: threads) { part in
                for item in (items * part / threads)..<(items * (part + 1) / threads) {
                    if nchw {
                        siluRun(y + item * hw, hw, 1 + m[item], b[item])
                    } else {
                        let row = y + item * s.c, slot = (item / hw) * s.c
                        siluRow(row, s.c, m + slot, b + slot)
                    }
                }
            }
        }
    }

    static func siluRun(_ v: UnsafeMutablePointer<Float>, _ n: Int, _ m: Float, _ t: Float) {
        var i = 0
        while i + 8 <= n {
            let z = loadLanes(v + i) * m + t
            storeLanes(silu8(z), v + i)
            i += 8
        }
        while i < n { let z = v[i] * m + t; v[i] = z / (1 + Foundation.exp(-z)); i += 1 }
    }

    static func siluRow(_ v: UnsafeMutablePointer<Float>, _ n: Int, _ m: UnsafePointer<Float>, _ t: UnsafePointer<Float>) {
        var i = 0
        while i + 8 <= n {
            let z = loadLanes(v + i) * (1 + loadLanes(UnsafeMutablePointer(mutating: m) + i)) + loadLanes(UnsafeMutablePointer(mutating: t) + i)
            storeLanes(silu8(z), v + i)
            i += 8
        }
        while i < n { let z = v[i] * (1 + m[i]) + t[i]; v[i] = z / (1 + Foundation.exp(-z)); i += 1 }
    }
}

private typealias Lanes = SIMD8<Float>
@inline(__always) private func loadLanes(_ p: UnsafeMutablePointer<Float>) -> Lanes { UnsafeRawPointer(p).loadUnaligned(as: Lanes.self) }
@inline(__always) private func storeLanes(_ v: Lanes, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Lanes.self) }

/// z·σ(z) in 8 lanes, the library's scheme (`SiLU.swift`): e = e^(−|z|) as
/// 2^q·2^(k/8)·(1 + t + t²·(c₂ + c₃t)) (the 2^(k/8) table through
/// `nk_lookup8`), σ = (z < 0 ? e : 1)/(1 + e), e = 0 below −87.3365 (separate
/// multiplies and adds: SIMD `addingProduct` runs lane by lane).
@inline(__always) private func silu8(_ z: Lanes) -> Lanes {
    let bits = unsafeBitCast(z, to: SIMD8<Int32>.self)
    let v = unsafeBitCast(bits | SIMD8<Int32>(repeating: Int32.min), to: Lanes.self)
    let magic = Lanes(repeating: 0x1.8007F0p23)
    let biased = v * 0x1.715476p3 + magic
    let biasedBits = unsafeBitCast(biased, to: SIMD8<Int32>.self)
    let table = unsafeBitCast(SIMD8<Int32>(0, -289_342, -509_968, -655_657, -719_629, -694_486, -572_163, -343_865),
                              to: Lanes.self)
    let fraction = unsafeBitCast(nk_lookup8(table, biasedBits), to: SIMD8<Int32>.self)
    let scale = unsafeBitCast((biasedBits &<< 20) &+ fraction, to: Lanes.self)
    let n = biased - magic
    let t = (v - n * 0x1.63p-4) + n * 0x1.bd0106p-16
    let p = t * 0x1.55565ep-3 + 0x1.0008cap-1
    let e = ((p * (t * t) + t) * scale + scale).replacing(with: Lanes(), where: v .< Lanes(repeating: -0x1.5D589Ep+6))
    return z * e.replacing(with: Lanes(repeating: 1), where: bits .>= SIMD8<Int32>()) / (e + Lanes(repeating: 1))
}
