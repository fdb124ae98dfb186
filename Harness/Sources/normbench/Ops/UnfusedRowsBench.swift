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
    let dtypes = DType.allCases

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

    /// `dst[i] = E(a[i] ∘ b[i])` over `range`, eight values per step (the 16-bit
    /// conversions vectorized, as a caller's elementwise pass would be).
    @inline(__always)
    static func combine<E: NormElement>(_ a: UnsafePointer<E>, _ b: UnsafePointer<E>, _ dst: UnsafeMutablePointer<E>,
                                        _ range: Range<Int>, _ op: (SIMD8<Float>, SIMD8<Float>) -> SIMD8<Float>) {
        var i = range.lowerBound
        while i + 8 <= range.upperBound { E.store8(op(E.load8(a + i), E.load8(b + i)), dst + i); i += 8 }
        while i < range.upperBound {
            dst[i] = E.narrow(op(SIMD8(repeating: E.widen(a[i])), SIMD8(repeating: E.widen(b[i])))[0])
            i += 1
        }
    }

    static func forward(_ v: Variant, _ w: Workload, _ t: Threading) throws -> Repetition {
        let s = w.key.shape, n = w.x.count, threads = t.threads
        let sum = Buffer(count: n, dtype: w.key.dtype)
        func make<E: NormElement>(_: E.Type) throws -> Repetition {
            let x = w.x.elements(E.self).baseAddress!, other = w.style!.elements(E.self).baseAddress!
            let out = w.out.mutableElements(E.self), sp = sum.mutableElements(E.self)
            switch v {
            case .layerResidual, .rmsResidual:
                let add = { [sum] in
                    withExtendedLifetime(sum) { elementwise(n, threads) { r in combine(x, other, sp.baseAddress!, r, +) } }
                }
                if v == .layerResidual {
                    let k = try LayerNormalization(rows: s.n, features: s.features, epsilon: Workload.epsilon, threading: t)
                    return { add(); _ = try k.forward(input: UnsafeBufferPointer(sp), output: out, scale: w.gamma.readOnly,
                                                      bias: w.beta.readOnly) }
                }
                let k = try RMSNormalization(rows: s.n, features: s.features, threading: t)
                return { add(); _ = try k.forward(input: UnsafeBufferPointer(sp), output: out, scale: w.gamma.readOnly) }
            case .rmsGate:
                let k = try RMSNormalization(rows: s.n, features: s.features, threading: t)
                return {
                    _ = try k.forward(input: UnsafeBufferPointer(start: x, count: n), output: out, scale: w.gamma.readOnly)
                    elementwise(n, threads) { r in combine(UnsafePointer(out.baseAddress!), other, out.baseAddress!, r, *) }
                }
            }
        }
        return try w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }

    static func backward(_ v: Variant, _ w: Workload, _ t: Threading) throws -> Repetition {
        let s = w.key.shape, n = w.x.count, threads = t.threads, dtype = w.key.dtype
        let dGamma = w.gradGamma!.mutable
        func make<E: NormElement>(_: E.Type) throws -> Repetition {
            let x = w.x.elements(E.self), other = w.style!.elements(E.self), out = w.out.mutableElements(E.self)
            let dy = w.dy!.elements(E.self)
            switch v {
            case .layerResidual, .rmsResidual:
                let sum = Buffer(count: n, dtype: dtype), ds = ResidualRows.copy(w.dy!)
                let sp = sum.mutableElements(E.self)
                combine(x.baseAddress!, other.baseAddress!, sp.baseAddress!, 0..<n, +)
                let dsp = ds.elements(E.self).baseAddress!, dx = out.baseAddress!
                // The capture list keeps ds alive as long as the repetition (dsp points into it).
                let addGradient = { [ds] in
                    withExtendedLifetime(ds) { elementwise(n, threads) { r in combine(UnsafePointer(dx), dsp, dx, r, +) } }
                }
                let input = UnsafeBufferPointer(sp)
                if v == .layerResidual {
                    let k = try LayerNormalization(rows: s.n, features: s.features, epsilon: Workload.epsilon, threading: t)
                    let saved = try k.forward(input: input, output: out, scale: w.gamma.readOnly, bias: w.beta.readOnly)
                    let dBeta = w.gradBeta!.mutable
                    return { [sum] in
                        try withExtendedLifetime(sum) {
                            try k.backward(input: input, gradOutput: dy, saved: saved, scale: w.gamma.readOnly,
                                           gradInput: out, gradScale: dGamma, gradBias: dBeta)
                        }
                        addGradient()
                    }
                }
                let k = try RMSNormalization(rows: s.n, features: s.features, threading: t)
                let saved = try k.forward(input: input, output: out, scale: w.gamma.readOnly)
                return { [sum] in
                    try withExtendedLifetime(sum) {
                        try k.backward(input: input, gradOutput: dy, saved: saved, scale: w.gamma.readOnly,
                                       gradInput: out, gradScale: dGamma)
                    }
                    addGradient()
                }
            case .rmsGate:
                let k = try RMSNormalization(rows: s.n, features: s.features, threading: t)
                let z = Buffer(count: n, dtype: dtype), g = Buffer(count: n, dtype: dtype)
                let dGate = Buffer(count: n, dtype: dtype)
                let zp = z.mutableElements(E.self), gp = g.mutableElements(E.self).baseAddress!
                let dgp = dGate.mutableElements(E.self).baseAddress!
                let saved = try k.forward(input: x, output: zp, scale: w.gamma.readOnly)
                let dyp = dy.baseAddress!, zb = UnsafePointer(zp.baseAddress!), op = other.baseAddress!
                return { [z, g, dGate] in
                    withExtendedLifetime((z, dGate)) {
                        elementwise(n, threads) { r in
                            // One pass: d gate = dy ⊙ z, g = dy ⊙ gate.
                            var i = r.lowerBound
                            while i + 8 <= r.upperBound {
                                let d = E.load8(dyp + i)
                                E.store8(d * E.load8(zb + i), dgp + i)
                                E.store8(d * E.load8(op + i), gp + i)
                                i += 8
                            }
                            while i < r.upperBound {
                                let d = E.widen(dyp[i])
                                dgp[i] = E.narrow(d * E.widen(zb[i]))
                                gp[i] = E.narrow(d * E.widen(op[i]))
                                i += 1
                            }
                        }
                    }
                    try withExtendedLifetime(g) {
                        try k.backward(input: x, gradOutput: UnsafeBufferPointer(start: gp, count: n), saved: saved,
                                       scale: w.gamma.readOnly, gradInput: out, gradScale: dGamma)
                    }
                }
            }
        }
        return try w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }
}
