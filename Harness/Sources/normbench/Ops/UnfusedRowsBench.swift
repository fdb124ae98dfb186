import Dispatch
import NormKernels

/// Our own unfused sequences that the fused row ops replace (issue 21), for
/// comparison: the plain kernel plus a separate elementwise pass, split over
/// the same thread count with `concurrentPerform` (what a caller without the
/// fused kernels would write). Same references and byte counts as the fused
/// ops, so GB/s compare the same work.
///
/// - `layernorm-residual-unfused` / `rmsnorm-residual-unfused`: s = x + r (one
///   pass), then the plain forward on s; backward: the plain backward on s, then
///   dx += ds (one pass).
/// - `rmsnorm-gate-unfused`: z = RMSNorm(x)·γ, then y = z ⊙ gate; backward:
///   d gate = dy ⊙ z and g = dy ⊙ gate (one pass, z kept from the forward), then
///   the plain backward with g.
struct UnfusedRowsBench: BenchOp {
    enum Variant: Sendable { case layerResidual, rmsResidual, rmsGate }
    let variant: Variant
    let hasLayout = false

    var name: String {
        switch variant {
        case .layerResidual: return "layernorm-residual-unfused"
        case .rmsResidual: return "rmsnorm-residual-unfused"
        case .rmsGate: return "rmsnorm-gate-unfused"
        }
    }

    private var fused: any BenchOp {
        switch variant {
        case .layerResidual: return ResidualLayerNormBench()
        case .rmsResidual: return ResidualRMSNormBench()
        case .rmsGate: return GatedRMSNormBench()
        }
    }

    func operands(_ s: Shape) -> Operands { fused.operands(s) }

    func pass(_ direction: Direction) -> Pass? {
        guard var pass = fused.pass(direction) else { return nil }
        let variant = self.variant
        pass.make = { w, t in
            switch direction {
            case .forwardTraining: return try Self.forward(variant, w, t)
            case .forwardInference: return {}
            case .backward: return try Self.backward(variant, w, t)
            }
        }
        return pass
    }

    func unitCount(_ key: CaseKey) -> Int { key.shape.n }
    func unit(_ key: CaseKey, _ u: Int) -> Unit { .row(key, u) }
    func plan(_ key: CaseKey, threading: Threading) throws -> PlanDescription { try fused.plan(key, threading: threading) }

    /// `body(range)` over `count` elements in `threads` contiguous ranges.
    static func elementwise(_ count: Int, _ threads: Int, _ body: (Range<Int>) -> Void) {
        let parts = max(1, min(threads, count / 65_536))
        if parts == 1 { return body(0..<count) }
        let chunk = (count + parts - 1) / parts
        // The parts write disjoint ranges; the join orders them.
        withoutActuallyEscaping(body) { body in
            nonisolated(unsafe) let body = body
            DispatchQueue.concurrentPerform(iterations: parts) { p in body((p * chunk)..<min(count, (p + 1) * chunk)) }
        }
    }

    static func forward(_ v: Variant, _ w: Workload, _ t: Threading) throws -> Repetition {
        let s = w.key.shape, n = w.x.count
        let x = w.x.readOnly, other = w.style!.readOnly, out = w.out.mutable, threads = t.threads
        switch v {
        case .layerResidual, .rmsResidual:
            let sum = Buffer(count: n), sp = sum.mutable
            let add = { [sum] in withExtendedLifetime(sum) { elementwise(n, threads) { r in for i in r { sp[i] = x[i] + other[i] } } } }
            if v == .layerResidual {
                let k = try LayerNormalization(rows: s.n, features: s.features, epsilon: Workload.epsilon, threading: t)
                return { add(); _ = try k.forward(input: sum.readOnly, output: out, scale: w.gamma.readOnly,
                                                  bias: w.beta.readOnly) }
            }
            let k = try RMSNormalization(rows: s.n, features: s.features, threading: t)
            return { add(); _ = try k.forward(input: sum.readOnly, output: out, scale: w.gamma.readOnly) }
        case .rmsGate:
            let k = try RMSNormalization(rows: s.n, features: s.features, threading: t)
            return {
                _ = try k.forward(input: x, output: out, scale: w.gamma.readOnly)
                elementwise(n, threads) { r in for i in r { out[i] *= other[i] } }
            }
        }
    }

    static func backward(_ v: Variant, _ w: Workload, _ t: Threading) throws -> Repetition {
        let s = w.key.shape, n = w.x.count
        let x = w.x.readOnly, other = w.style!.readOnly, out = w.out.mutable, threads = t.threads
        let dy = w.dy!.readOnly, dGamma = w.gradGamma!.mutable
        switch v {
        case .layerResidual, .rmsResidual:
            let sum = Buffer(count: n), ds = ResidualRows.copy(w.dy!)
            for i in 0..<n { sum.mutable[i] = x[i] + other[i] }
            let dsp = ds.readOnly
            // The capture list keeps ds alive as long as the repetition (dsp points into it).
            let addGradient = { [ds] in
                withExtendedLifetime(ds) { elementwise(n, threads) { r in for i in r { out[i] += dsp[i] } } }
            }
            if v == .layerResidual {
                let k = try LayerNormalization(rows: s.n, features: s.features, epsilon: Workload.epsilon, threading: t)
                let saved = try k.forward(input: sum.readOnly, output: out, scale: w.gamma.readOnly, bias: w.beta.readOnly)
                let dBeta = w.gradBeta!.mutable
                return {
                    try k.backward(input: sum.readOnly, gradOutput: dy, saved: saved, scale: w.gamma.readOnly,
                                   gradInput: out, gradScale: dGamma, gradBias: dBeta)
                    addGradient()
                }
            }
            let k = try RMSNormalization(rows: s.n, features: s.features, threading: t)
            let saved = try k.forward(input: sum.readOnly, output: out, scale: w.gamma.readOnly)
            return {
                try k.backward(input: sum.readOnly, gradOutput: dy, saved: saved, scale: w.gamma.readOnly,
                               gradInput: out, gradScale: dGamma)
                addGradient()
            }
        case .rmsGate:
            let k = try RMSNormalization(rows: s.n, features: s.features, threading: t)
            let z = Buffer(count: n), g = Buffer(count: n), dGate = Buffer(count: n)
            let saved = try k.forward(input: x, output: z.mutable, scale: w.gamma.readOnly)
            let zp = z.readOnly, gp = g.mutable, dgp = dGate.mutable
            return { [z, dGate] in
                withExtendedLifetime((z, dGate)) {
                    elementwise(n, threads) { r in for i in r { dgp[i] = dy[i] * zp[i]; gp[i] = dy[i] * other[i] } }
                }
                try k.backward(input: x, gradOutput: g.readOnly, saved: saved, scale: w.gamma.readOnly,
                               gradInput: out, gradScale: dGamma)
            }
        }
    }
}
