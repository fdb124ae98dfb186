import NormKernels

/// RMSNorm: N rows of C·H·W, γ per feature, no β, ε = Float32 machine epsilon
/// (PyTorch `eps=None`, the library's default). No layout, as LayerNorm.
struct RMSNormBench: BenchOp {
    let name = "rmsnorm"
    let hasLayout = false
    let dtypes = DType.allCases

    /// ε of RMSNorm in the reference: Float32 machine epsilon.
    static let epsilon = Double(Float.ulpOfOne)

    func operands(_ s: Shape) -> Operands { Operands(gamma: s.features, beta: 0) }

    func pass(_ direction: Direction) -> Pass? {
        switch direction {
        case .forwardTraining:
            // + γ (C·H·W)
            return Pass(traffic: { .forward($0, parameters: $0.features) }, reference: Self.forwardReference,
                        make: Self.forward)
        case .forwardInference:
            return nil  // no running statistics
        case .backward:
            // + γ read, dγ written (2·C·H·W)
            return Pass(traffic: { .backward($0, parameters: 2 * $0.features) }, reference: Self.backwardReference,
                        make: Self.backward)
        }
    }

    func unitCount(_ key: CaseKey) -> Int { key.shape.n }

    func unit(_ key: CaseKey, _ u: Int) -> Unit { .row(key, u) }

    func plan(_ key: CaseKey, threading: Threading) throws -> PlanDescription {
        let s = key.shape
        return try RMSNormalization(rows: s.n, features: s.features, threading: threading).plan()
    }

    /// r = 1 / √(mean(x²) + ε) over the row.
    static func reciprocal(_ w: Workload, _ unit: Unit) -> Double {
        1 / (Reference.sumOfSquares(w.x, unit.offsets) / Double(unit.offsets.count) + epsilon).squareRoot()
    }

    /// y = x · r · γ
    static func forwardReference(_ w: Workload, _ unit: Unit) -> Expected {
        let r = reciprocal(w, unit)
        return Expected(values: unit.offsets.indices.map { i in Double(w.x[unit.offsets[i]]) * r * w.scale(unit, i) })
    }

    /// dx = r · (g − x̂ · mean(g·x̂)), g = dy·γ, x̂ = x·r (see `Reference.centred`).
    static func backwardReference(_ w: Workload, _ unit: Unit) -> Expected {
        let r = reciprocal(w, unit), dy = w.dy!
        let xhat = unit.offsets.map { Double(w.x[$0]) * r }
        let g = unit.offsets.indices.map { Double(dy[unit.offsets[$0]]) * w.scale(unit, $0) }
        return Reference.centred(xhat, g, r: r, subtractMean: false)
    }

    /// One maker for every dtype, as LayerNorm's.
    static func forward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let s = w.key.shape
        // ε = Float32 machine epsilon, the library's default (see `epsilon`).
        let k = try RMSNormalization(rows: s.n, features: s.features, threading: t)
        func make<E: NormElement>(_: E.Type) -> Repetition {
            let x = w.x.elements(E.self), y = w.out.mutableElements(E.self)
            return { _ = try k.forward(input: x, output: y, scale: w.gamma.readOnly) }
        }
        return w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }

    /// dx and dγ from the saved statistics of one untimed forward.
    static func backward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let s = w.key.shape
        let k = try RMSNormalization(rows: s.n, features: s.features, threading: t)
        let dGamma = w.gradGamma!
        func make<E: NormElement>(_: E.Type) throws -> Repetition {
            let x = w.x.elements(E.self), dy = w.dy!.elements(E.self), dx = w.out.mutableElements(E.self)
            let saved = try k.forward(input: x, output: dx, scale: w.gamma.readOnly)
            return {
                try k.backward(input: x, gradOutput: dy, saved: saved, scale: w.gamma.readOnly,
                               gradInput: dx, gradScale: dGamma.mutable)
            }
        }
        return try w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }
}
