// Array conveniences of the fused kernels (issue 21) for 16-bit tensors
// (`[Float16]`, `[BFloat16]`, any `NormElement`), one per `Float` one in
// `FusedRows+Conveniences.swift`, `GroupNormSiLU+Conveniences.swift` and
// `BatchNormResidual+Conveniences.swift` that `FusedChannels+HalfPrecision.swift`
// does not already cover: residual LayerNorm/RMSNorm forward and backward,
// RMSNorm × gate forward and backward, GroupNorm + SiLU backward, BatchNorm +
// add + ReLU backward. Generic like the plain ones (an array literal still picks
// the `[Float]` overload); each allocates its outputs and calls the generic
// pointer entry point, which resolves the element type once per call (see
// `Arrays+HalfPrecisionBackward.swift`): same validation, errors and results.

/// Gradients of a 16-bit residual LayerNorm/RMSNorm (``ResidualGradients`` with
/// dx of the tensor's type): `input` is dx, which is also d residual;
/// `inputBias` the column sums of dx (nil where not requested; `bias` is always
/// nil for RMSNorm).
public struct ResidualElementGradients<Element: NormElement>: Sendable {
    public var input: [Element]?
    public var scale: [Float]?
    public var bias: [Float]?
    public var inputBias: [Float]?
}

/// The gradients of GroupNorm + SiLU's 16-bit array backward
/// (``SiLUModulationGradients`` with dx of the tensor's type); nil where not requested.
public struct SiLUModulationElementGradients<Element: NormElement>: Sendable {
    /// dx, dγ, dβ as the plain 16-bit GroupNorm backward returns them.
    public var norm: ElementGradients<Element>
    /// d modulationScale, one per (n, c), n-major.
    public var modulationScale: [Float]?
    /// d modulationShift, one per (n, c), n-major.
    public var modulationShift: [Float]?

    public init(norm: ElementGradients<Element>, modulationScale: [Float]? = nil, modulationShift: [Float]? = nil) {
        self.norm = norm
        self.modulationScale = modulationScale
        self.modulationShift = modulationShift
    }
}

private func optionalFloats(_ wanted: Bool, _ count: Int) -> [Float]? {
    wanted ? [Float](repeating: 0, count: count) : nil
}

extension LayerNormalization {
    /// Residual LayerNorm on arrays of `Float16` or `BFloat16` (any
    /// ``NormElement``): returns y, s = E((x + r) + b) and the saved statistics of s.
    public func forward<Element: NormElement>(
        _ input: [Element], residual: [Element], scale: [Float]? = nil, bias: [Float]? = nil,
        inputBias: [Float]? = nil
    ) throws -> (output: [Element], sum: [Element], saved: SavedStatistics) {
        var sum: [Element] = zeroedElements(input.count)
        let (output, saved) = try withElementArrays(input, scale: scale, bias: bias) { x, y, g, b in
            try residual.withUnsafeBufferPointer { r in
                try withOptionalBuffer(inputBias) { ib in
                    try sum.withUnsafeMutableBufferPointer { s in
                        try forward(input: x, residual: r, output: y, sum: s, scale: g, bias: b, inputBias: ib)
                    }
                }
            }
        }
        return (output, sum, saved)
    }

    /// The 16-bit residual backward on arrays (`gradSum`: the upstream gradient of s, if any).
    public func backward<Element: NormElement>(
        sum: [Element], gradOutput: [Element], gradSum: [Element]? = nil, saved: SavedStatistics,
        scale: [Float]? = nil, inputBias wantInputBias: Bool = true
    ) throws -> ResidualElementGradients<Element> {
        try Check.arrayInput(sum.count, rows * features, "sum")
        var result = ResidualElementGradients<Element>(
            input: zeroedElements(sum.count), scale: optionalFloats(true, features), bias: optionalFloats(true, features),
            inputBias: optionalFloats(wantInputBias, features))
        try withElementBuffers(sum, gradOutput, scale) { s, dy, g in
            try withOptionalElementBuffer(gradSum) { ds in
                try withOptionalMutableElements(&result.input) { dx in
                    try withOptionalMutableBuffer(&result.scale) { dg in
                        try withOptionalMutableBuffer(&result.bias) { db in
                            try withOptionalMutableBuffer(&result.inputBias) { dib in
                                try backward(sum: s, gradOutput: dy, gradSum: ds, saved: saved, scale: g,
                                             gradInput: dx, gradScale: dg, gradBias: db, gradInputBias: dib)
                            }
                        }
                    }
                }
            }
        }
        return result
    }
}

extension RMSNormalization {
    /// Residual RMSNorm on arrays of `Float16` or `BFloat16` (any ``NormElement``):
    /// returns y, s = E((x + r) + b) and the saved statistics of s.
    public func forward<Element: NormElement>(
        _ input: [Element], residual: [Element], scale: [Float]? = nil, inputBias: [Float]? = nil
    ) throws -> (output: [Element], sum: [Element], saved: SavedStatistics) {
        var sum: [Element] = zeroedElements(input.count)
        let (output, saved) = try withElementArrays(input, scale: scale, bias: nil) { x, y, g, _ in
            try residual.withUnsafeBufferPointer { r in
                try withOptionalBuffer(inputBias) { ib in
                    try sum.withUnsafeMutableBufferPointer { s in
                        try forward(input: x, residual: r, output: y, sum: s, scale: g, inputBias: ib)
                    }
                }
            }
        }
        return (output, sum, saved)
    }

    /// The 16-bit residual backward on arrays (`bias` of the result is nil).
    public func backward<Element: NormElement>(
        sum: [Element], gradOutput: [Element], gradSum: [Element]? = nil, saved: SavedStatistics,
        scale: [Float]? = nil, inputBias wantInputBias: Bool = true
    ) throws -> ResidualElementGradients<Element> {
        try Check.arrayInput(sum.count, rows * features, "sum")
        var result = ResidualElementGradients<Element>(
            input: zeroedElements(sum.count), scale: optionalFloats(true, features), bias: nil,
            inputBias: optionalFloats(wantInputBias, features))
        try withElementBuffers(sum, gradOutput, scale) { s, dy, g in
            try withOptionalElementBuffer(gradSum) { ds in
                try withOptionalMutableElements(&result.input) { dx in
                    try withOptionalMutableBuffer(&result.scale) { dg in
                        try withOptionalMutableBuffer(&result.inputBias) { dib in
                            try backward(sum: s, gradOutput: dy, gradSum: ds, saved: saved, scale: g,
                                         gradInput: dx, gradScale: dg, gradInputBias: dib)
                        }
                    }
                }
            }
        }
        return result
    }

    /// RMSNorm × gate on arrays of `Float16` or `BFloat16` (any ``NormElement``):
    /// `E(E(RMSNorm(x)·γ)·gate)`.
    public func forward<Element: NormElement>(_ input: [Element], gate: [Element], scale: [Float]? = nil) throws
        -> (output: [Element], saved: SavedStatistics) {
        try withElementArrays(input, scale: scale, bias: nil) { x, y, g, _ in
            try gate.withUnsafeBufferPointer { gt in try forward(input: x, gate: gt, output: y, scale: g) }
        }
    }

    /// The 16-bit gated backward on arrays: dx and d gate of the tensors' type,
    /// dγ in `Float` (nil without `scale`).
    public func backward<Element: NormElement>(
        _ input: [Element], gate: [Element], gradOutput: [Element], saved: SavedStatistics, scale: [Float]? = nil
    ) throws -> (input: [Element], gate: [Element], scale: [Float]?) {
        try Check.arrayInput(input.count, rows * features, "input")
        var dx: [Element]? = zeroedElements(input.count)
        var dgate: [Element]? = zeroedElements(input.count)
        var dscale: [Float]? = scale == nil ? nil : [Float](repeating: 0, count: features)
        try withElementBuffers(input, gate, scale) { x, gt, g in
            try gradOutput.withUnsafeBufferPointer { dy in
                try withOptionalMutableElements(&dx) { dxb in
                    try withOptionalMutableElements(&dgate) { dgb in
                        try withOptionalMutableBuffer(&dscale) { dsb in
                            try backward(input: x, gate: gt, gradOutput: dy, saved: saved, scale: g,
                                         gradInput: dxb, gradGate: dgb, gradScale: dsb)
                        }
                    }
                }
            }
        }
        return (dx!, dgate!, dscale)
    }
}

extension GroupNormalization {
    /// The 16-bit GroupNorm + SiLU backward on arrays of `Float16` or `BFloat16`
    /// (any ``NormElement``): the selected dx (of the input's type), dγ, dβ, and
    /// the modulation's gradients when `modulationGradients` (for those given).
    public func backwardSiLU<Element: NormElement>(
        _ input: [Element], gradOutput: [Element], saved: SavedStatistics, scale: [Float]? = nil, bias: [Float]? = nil,
        modulationScale: [Float]? = nil, modulationShift: [Float]? = nil,
        computing selection: GradientSelection = .all, modulationGradients: Bool = true
    ) throws -> SiLUModulationElementGradients<Element> {
        try Check.arrayInput(input.count, shape.count, "input")
        let perSample = shape.n * shape.c
        var ds = optionalFloats(modulationGradients && modulationScale != nil, perSample)
        var dt = optionalFloats(modulationGradients && modulationShift != nil, perSample)
        let norm: ElementGradients<Element> = try makeElementGradients(
            selection, input: shape.count, given: input.count, parameters: shape.c) { dx, dγ, dβ in
            try withElementBuffers(input, gradOutput, scale) { x, dy, g in
                try withOptionalBuffer(bias) { b in
                    try withOptionalBuffer(modulationScale) { s in
                        try withOptionalBuffer(modulationShift) { t in
                            try withOptionalMutableBuffer(&ds) { dsp in
                                try withOptionalMutableBuffer(&dt) { dtp in
                                    try backwardSiLU(input: x, gradOutput: dy, saved: saved, scale: g, bias: b,
                                                     modulationScale: s, modulationShift: t, gradInput: dx,
                                                     gradScale: dγ, gradBias: dβ,
                                                     gradModulationScale: dsp, gradModulationShift: dtp)
                                }
                            }
                        }
                    }
                }
            }
        }
        return SiLUModulationElementGradients(norm: norm, modulationScale: ds, modulationShift: dt)
    }
}

extension BatchNormalization {
    /// The backward of `relu(BN(x) + identity)` (training) on arrays of
    /// `Float16` or `BFloat16` (any ``NormElement``): the selected dx, dγ, dβ,
    /// and d identity (dy where y > 0; dy without ``fusedReLU``) when
    /// `wantIdentity`. `output` (the forward output) is required with fusedReLU.
    public func backwardTraining<Element: NormElement>(
        _ input: [Element], gradOutput: [Element], saved: SavedStatistics, scale: [Float]? = nil,
        output: [Element]? = nil, computing selection: GradientSelection = .all, gradIdentity wantIdentity: Bool
    ) throws -> (norm: ElementGradients<Element>, identity: [Element]?) {
        try Check.arrayInput(input.count, shape.count, "input")
        var dr: [Element]? = wantIdentity ? zeroedElements(shape.count) : nil
        let norm: ElementGradients<Element> = try makeElementGradients(
            selection, input: shape.count, given: input.count, parameters: shape.c) { dx, dγ, dβ in
            try withElementBuffers(input, gradOutput, scale) { x, dy, g in
                try withOptionalElementBuffer(output) { y in
                    try withOptionalMutableElements(&dr) { drp in
                        try backwardTraining(input: x, gradOutput: dy, saved: saved, scale: g, output: y,
                                             gradInput: dx, gradIdentity: drp, gradScale: dγ, gradBias: dβ)
                    }
                }
            }
        }
        return (norm, dr)
    }

    /// The backward of `relu(BN(x) + identity)` (inference) on arrays of
    /// `Float16` or `BFloat16` (any ``NormElement``), as the training one.
    public func backwardInference<Element: NormElement>(
        _ input: [Element], gradOutput: [Element], running: RunningStatistics, scale: [Float]? = nil,
        output: [Element]? = nil, computing selection: GradientSelection = .all, gradIdentity wantIdentity: Bool
    ) throws -> (norm: ElementGradients<Element>, identity: [Element]?) {
        try Check.arrayInput(input.count, shape.count, "input")
        var dr: [Element]? = wantIdentity ? zeroedElements(shape.count) : nil
        let norm: ElementGradients<Element> = try makeElementGradients(
            selection, input: shape.count, given: input.count, parameters: shape.c) { dx, dγ, dβ in
            try withElementBuffers(input, gradOutput, scale) { x, dy, g in
                try withOptionalElementBuffer(output) { y in
                    try withOptionalMutableElements(&dr) { drp in
                        try backwardInference(input: x, gradOutput: dy, running: running, scale: g, output: y,
                                              gradInput: dx, gradIdentity: drp, gradScale: dγ, gradBias: dβ)
                    }
                }
            }
        }
        return (norm, dr)
    }
}
