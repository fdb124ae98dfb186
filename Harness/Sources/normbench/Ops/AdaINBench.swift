import NormKernels

/// Adaptive instance normalization: the content x takes the per-(n, c) mean and
/// standard deviation of a style tensor of the same shape and layout. No γ, β.
struct AdaINBench: BenchOp {
    let name = "adain"
    let hasLayout = true
    let dtypes = DType.allCases

    func operands(_ s: Shape) -> Operands { Operands(gamma: 0, beta: 0, style: true) }

    func pass(_ direction: Direction) -> Pass? {
        switch direction {
        case .forwardTraining:
            // + read the style tensor (T)
            return Pass(traffic: { Traffic(tensors: 3 * $0.count, parameters: 0) }, reference: Self.forwardReference,
                        make: Self.forward)
        case .forwardInference:
            return nil  // no running statistics
        case .backward:
            // the content gradient only, the style held constant
            return Pass(traffic: { .backward($0, parameters: 0) }, reference: Self.backwardReference,
                        make: Self.backward)
        }
    }

    func unitCount(_ key: CaseKey) -> Int { key.shape.n * key.shape.c }

    func unit(_ key: CaseKey, _ u: Int) -> Unit {
        let c = key.shape.c
        return .planes(key, n: u / c, channels: (u % c)..<(u % c + 1))
    }

    func plan(_ key: CaseKey, threading: Threading) throws -> PlanDescription {
        let shape = key.shape.tensor(key.memoryLayout)
        return try AdaptiveInstanceNormalization(content: shape, style: shape, threading: threading).plan()
    }

    /// y = σ_style · (x − μ_x) / σ_x + μ_style, σ = √(var + ε), var biased
    static func forwardReference(_ w: Workload, _ unit: Unit) -> Expected {
        let eps = Double(Workload.epsilon)
        let (mx, vx) = Reference.moments(w.x, unit.offsets), (ms, vs) = Reference.moments(w.style!, unit.offsets)
        let rx = 1 / (vx + eps).squareRoot(), sy = (vs + eps).squareRoot()
        return Expected(values: unit.offsets.map { sy * (Double(w.x[$0]) - mx) * rx + ms })
    }

    /// As the moments ops with γ = σ_style: the gradient with respect to the content.
    static func backwardReference(_ w: Workload, _ unit: Unit) -> Expected {
        let eps = Double(Workload.epsilon), dy = w.dy!
        let (mean, variance) = Reference.moments(w.x, unit.offsets), (_, vs) = Reference.moments(w.style!, unit.offsets)
        let r = 1 / (variance + eps).squareRoot(), sy = (vs + eps).squareRoot()
        let xhat = unit.offsets.map { (Double(w.x[$0]) - mean) * r }
        return Reference.centred(xhat, unit.offsets.map { Double(dy[$0]) * sy }, r: r, subtractMean: true)
    }

    static func forward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try AdaptiveInstanceNormalization(content: w.tensorShape, style: w.tensorShape,
                                                  epsilon: Workload.epsilon, threading: t)
        func make<E: NormElement>(_: E.Type) -> Repetition {
            let x = w.x.elements(E.self), style = w.style!.elements(E.self), y = w.out.mutableElements(E.self)
            return { _ = try k.forward(content: x, style: style, output: y) }
        }
        return w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }

    /// The content gradient from the saved statistics of one untimed forward.
    static func backward(_ w: Workload, _ t: Threading) throws -> Repetition {
        let k = try AdaptiveInstanceNormalization(content: w.tensorShape, style: w.tensorShape,
                                                  epsilon: Workload.epsilon, threading: t)
        func make<E: NormElement>(_: E.Type) throws -> Repetition {
            let x = w.x.elements(E.self), style = w.style!.elements(E.self), dy = w.dy!.elements(E.self)
            let dx = w.out.mutableElements(E.self)
            let saved = try k.forward(content: x, style: style, output: dx)
            return { try k.backward(content: x, style: style, gradOutput: dy, saved: saved, gradContent: dx) }
        }
        return try w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }
}
