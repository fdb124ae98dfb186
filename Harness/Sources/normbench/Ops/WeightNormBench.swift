import NormKernels

/// Weight normalization of a convolution weight `v = [out N, in C, kH H, kW W]`
/// with `dim = 0`: one norm per output row of C·H·W values, g one per row. The
/// weight is row-major, so the op has no layout.
struct WeightNormBench: BenchOp {
    let name = "weightnorm"
    let hasLayout = false
    let dtypes = DType.allCases

    func operands(_ s: Shape) -> Operands { Operands(gamma: s.n, beta: 0) }

    func pass(_ direction: Direction) -> Pass? {
        switch direction {
        case .forwardTraining:
            // + g (N)
            return Pass(traffic: { .forward($0, parameters: $0.n) }, reference: Self.forwardReference,
                        make: Self.forward)
        case .forwardInference:
            return nil  // no running statistics
        case .backward:
            // + g read, dg written (2N)
            return Pass(traffic: { .backward($0, parameters: 2 * $0.n) }, reference: Self.backwardReference,
                        make: Self.backward)
        }
    }

    func unitCount(_ key: CaseKey) -> Int { key.shape.n }

    func unit(_ key: CaseKey, _ u: Int) -> Unit { .row(key, u, parameterPerRow: true) }

    func plan(_ key: CaseKey, threading: Threading) throws -> PlanDescription {
        let s = key.shape
        return try WeightNormalization(shape: [s.n, s.c, s.h, s.w], dim: 0, threading: threading).plan()
    }

    /// w = g · v / ‖v‖
    static func forwardReference(_ w: Workload, _ unit: Unit) -> Expected {
        let norm = Reference.sumOfSquares(w.x, unit.offsets).squareRoot()
        return Expected(values: unit.offsets.indices.map { i in w.scale(unit, i) * Double(w.x[unit.offsets[i]]) / norm })
    }

    /// dv = (g / ‖v‖) · (dw − x̂ · Σ dw·x̂), x̂ = v/‖v‖
    static func backwardReference(_ w: Workload, _ unit: Unit) -> Expected {
        let norm = Reference.sumOfSquares(w.x, unit.offsets).squareRoot(), g = w.scale(unit, 0), dy = w.dy!
        let xhat = unit.offsets.map { Double(w.x[$0]) / norm }
        let dys = unit.offsets.map { Double(dy[$0]) }
        let dot = zip(dys, xhat).reduce(0) { $0 + $1.0 * $1.1 }
        return Expected(values: xhat.indices.map { g / norm * (dys[$0] - xhat[$0] * dot) }, terms: dys.map { g / norm * $0 })
    }

    static func forward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let s = w.key.shape
        let k = try WeightNormalization(shape: [s.n, s.c, s.h, s.w], dim: 0, threading: t)
        func make<E: NormElement>(_: E.Type) -> Repetition {
            let v = w.x.elements(E.self), out = w.out.mutableElements(E.self)
            return { _ = try k.forward(v: v, g: w.gamma.readOnly, output: out) }
        }
        return w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }

    /// dv and dg from the norms of one untimed forward.
    static func backward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let s = w.key.shape
        let k = try WeightNormalization(shape: [s.n, s.c, s.h, s.w], dim: 0, threading: t)
        let dG = w.gradGamma!
        func make<E: NormElement>(_: E.Type) throws -> Repetition {
            let v = w.x.elements(E.self), dw = w.dy!.elements(E.self), dv = w.out.mutableElements(E.self)
            let norms = try k.forward(v: v, g: w.gamma.readOnly, output: dv)
            return {
                try k.backward(v: v, g: w.gamma.readOnly, gradWeight: dw, norms: norms, gradV: dv, gradG: dG.mutable)
            }
        }
        return try w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }
}
