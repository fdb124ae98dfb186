import NormKernels

/// BatchNorm + add + ReLU (issue 21): `y = relu(BN(x) + identity)`, the ResNet
/// block's tail, as `BatchNormalization(fusedReLU: true)` with `identity:`. The
/// identity is the workload's second activation-shaped input (`style`). Traffic
/// is what the fused op must move: BatchNorm's, plus identity read (forward),
/// plus y read as the mask and d identity written (backward).
/// With `relu` false (`batchnorm-add`): `y = BN(x) + identity`, whose backward
/// reads no mask (d identity = dy).
struct BatchNormAddReLUBench: BenchOp {
    var relu = true
    var name: String { relu ? "batchnorm-add-relu" : "batchnorm-add" }
    let hasLayout = true
    let dtypes = DType.allCases

    func operands(_ s: Shape) -> Operands { Operands(gamma: s.c, beta: s.c, style: true) }

    func cannotRun(_ key: CaseKey) -> String? { BatchNormBench().cannotRun(key) }

    func pass(_ direction: Direction) -> Pass? {
        let relu = relu
        switch direction {
        case .forwardTraining:
            // x, identity read, y written; γ, β read, running statistics read and written (6C)
            return Pass(traffic: { Traffic(tensors: 3 * $0.count, parameters: 6 * $0.c) },
                        reference: { Self.addReLU($0, $1, Reference.standardized($0, $1), relu: relu) },
                        make: { try Self.training($0, $1, relu: relu) })
        case .forwardInference:
            return Pass(traffic: { Traffic(tensors: 3 * $0.count, parameters: 4 * $0.c) },
                        reference: { Self.addReLU($0, $1, Reference.inference($0, $1), relu: relu) },
                        make: { try Self.inference($0, $1, relu: relu) })
        case .backward:
            // x, dy, y (the mask, with ReLU) read, dx and d identity written; γ read, dγ, dβ written (3C)
            return Pass(traffic: { Traffic(tensors: (relu ? 5 : 4) * $0.count, parameters: 3 * $0.c) },
                        reference: { Self.backwardReference($0, $1, relu: relu) },
                        make: { try Self.backward($0, $1, relu: relu) })
        }
    }

    func unitCount(_ key: CaseKey) -> Int { BatchNormBench().unitCount(key) }
    func unit(_ key: CaseKey, _ u: Int) -> Unit { BatchNormBench().unit(key, u) }

    func plan(_ key: CaseKey, threading: Threading) throws -> PlanDescription {
        try BatchNormBench().plan(key, threading: threading)
    }

    /// max(v + identity, 0) (v + identity without `relu`) of BatchNorm's expected
    /// output v; the terms of the add (|v| + |identity|) bound what Float32 rounds.
    static func addReLU(_ w: Workload, _ unit: Unit, _ bn: Expected, relu: Bool) -> Expected {
        let identity = w.style!
        var values: [Double] = [], terms: [Double] = []
        for i in unit.offsets.indices {
            let r = Double(identity[unit.offsets[i]])
            values.append(relu ? max(bn.values[i] + r, 0) : bn.values[i] + r)
            terms.append((bn.terms.isEmpty ? abs(bn.values[i]) : bn.terms[i]) + abs(r))
        }
        return Expected(values: values, terms: terms)
    }

    /// Training dx with g = dy·γ where BN(x) + identity > 0 (Float64), else 0.
    static func backwardReference(_ w: Workload, _ unit: Unit, relu: Bool) -> Expected {
        let eps = Double(Workload.epsilon), dy = w.dy!, identity = w.style!
        let (mean, variance) = Reference.moments(w.x, unit.offsets)
        let r = 1 / (variance + eps).squareRoot()
        let xhat = unit.offsets.map { (Double(w.x[$0]) - mean) * r }
        let g = unit.offsets.indices.map { i -> Double in
            let u = xhat[i] * w.scale(unit, i) + w.shift(unit, i) + Double(identity[unit.offsets[i]])
            return u > 0 || !relu ? Double(dy[unit.offsets[i]]) * w.scale(unit, i) : 0
        }
        return Reference.centred(xhat, g, r: r, subtractMean: true)
    }

    /// One maker for every dtype (as `LayerNormBench`): x, identity, y, dy, dx,
    /// d identity in the case's type.
    static func training(_ w: Workload, _ t: Threading, relu: Bool) throws -> Repetition {
        let k = try BatchNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, fusedReLU: relu, threading: t)
        let running = try RunningStatistics(channels: w.key.shape.c)
        func make<E: NormElement>(_: E.Type) -> Repetition {
            let x = w.x.elements(E.self), r = w.style!.elements(E.self), y = w.out.mutableElements(E.self)
            return {
                _ = try k.forwardTraining(input: x, identity: r, output: y, scale: w.gamma.readOnly,
                                          bias: w.beta.readOnly, running: running)
            }
        }
        return w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }

    static func inference(_ w: Workload, _ t: Threading, relu: Bool) throws -> Repetition {
        let k = try BatchNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, fusedReLU: relu, threading: t)
        let running = try RunningStatistics(channels: w.key.shape.c, mean: w.runningMean, variance: w.runningVariance)
        func make<E: NormElement>(_: E.Type) -> Repetition {
            let x = w.x.elements(E.self), r = w.style!.elements(E.self), y = w.out.mutableElements(E.self)
            return {
                try k.forwardInference(input: x, identity: r, output: y, scale: w.gamma.readOnly,
                                       bias: w.beta.readOnly, running: running)
            }
        }
        return w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }

    /// dx (checked), d identity, dγ and dβ from one untimed fused forward; y is kept as the mask.
    static func backward(_ w: Workload, _ t: Threading, relu: Bool) throws -> Repetition {
        let k = try BatchNormalization(shape: w.tensorShape, epsilon: Workload.epsilon, fusedReLU: relu, threading: t)
        let y = Buffer(count: w.x.count, dtype: w.key.dtype), dIdentity = Buffer(count: w.x.count, dtype: w.key.dtype)
        let dGamma = w.gradGamma!, dBeta = w.gradBeta!
        func make<E: NormElement>(_: E.Type) throws -> Repetition {
            let x = w.x.elements(E.self), r = w.style!.elements(E.self), dy = w.dy!.elements(E.self)
            let yE = y.mutableElements(E.self), dx = w.out.mutableElements(E.self)
            let dId = dIdentity.mutableElements(E.self)
            let saved = try k.forwardTraining(input: x, identity: r, output: yE, scale: w.gamma.readOnly,
                                              bias: w.beta.readOnly)
            let mask: UnsafeBufferPointer<E>? = relu ? UnsafeBufferPointer(yE) : nil
            return {
                // The closure owns y and d identity (their pointers alone would dangle).
                withExtendedLifetime((y, dIdentity)) {}
                try k.backwardTraining(input: x, gradOutput: dy, saved: saved, scale: w.gamma.readOnly,
                                       output: mask, gradInput: dx, gradIdentity: dId,
                                       gradScale: dGamma.mutable, gradBias: dBeta.mutable)
            }
        }
        return try w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))
    }
}
