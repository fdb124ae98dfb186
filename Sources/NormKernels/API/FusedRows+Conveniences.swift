// Array forms of residual LayerNorm/RMSNorm (`RowNormalization+Residual.swift`)
// and RMSNorm × gate (`RMSNormalization+Gate.swift`), following `Arrays.swift`.

/// Gradients of a residual LayerNorm/RMSNorm: `input` is dx, which is also
/// d residual; `inputBias` the column sums of dx (nil where not requested;
/// `bias` is always nil for RMSNorm).
public struct ResidualGradients: Sendable {
    public var input: [Float]?
    public var scale: [Float]?
    public var bias: [Float]?
    public var inputBias: [Float]?
}

private func optionalArray(_ wanted: Bool, _ count: Int) -> [Float]? {
    wanted ? [Float](repeating: 0, count: count) : nil
}

extension LayerNormalization {
    /// Residual LayerNorm on arrays: returns y = LayerNorm(s)·γ + β, s = (x + r) + b, and the saved statistics of s.
    public func forward(_ input: [Float], residual: [Float], scale: [Float]? = nil, bias: [Float]? = nil,
                        inputBias: [Float]? = nil) throws -> (output: [Float], sum: [Float], saved: SavedStatistics) {
        var saved = SavedStatistics(mean: [], invStd: [])
        var sum = [Float](repeating: 0, count: input.count)
        let output = try makeOutput(input.count) { out in
            try withBuffers(input, residual, scale) { x, r, g in
                try withBuffers(inputBias ?? [], bias, nil) { ib, b, _ in
                    try sum.withUnsafeMutableBufferPointer { s in
                        saved = try forward(input: x, residual: r, output: out, sum: s, scale: g, bias: b,
                                            inputBias: inputBias == nil ? nil : ib)
                    }
                }
            }
        }
        return (output, sum, saved)
    }

    /// The residual backward on arrays (`gradSum`: the upstream gradient of s, if any).
    public func backward(sum: [Float], gradOutput: [Float], gradSum: [Float]? = nil, saved: SavedStatistics,
                         scale: [Float]? = nil, inputBias wantInputBias: Bool = true) throws -> ResidualGradients {
        try Check.arrayInput(sum.count, rows * features, "sum")
        var result = ResidualGradients(input: optionalArray(true, sum.count), scale: optionalArray(true, features),
                                       bias: optionalArray(true, features),
                                       inputBias: optionalArray(wantInputBias, features))
        try withBuffers(sum, gradOutput, scale) { s, dy, g in
            try withBuffers(gradSum ?? [], nil, nil) { ds, _, _ in
                try withOptionalMutableBuffer(&result.input) { dx in
                    try withOptionalMutableBuffer(&result.scale) { dg in
                        try withOptionalMutableBuffer(&result.bias) { db in
                            try withOptionalMutableBuffer(&result.inputBias) { dib in
                                try backward(sum: s, gradOutput: dy, gradSum: gradSum == nil ? nil : ds, saved: saved,
                                             scale: g, gradInput: dx, gradScale: dg, gradBias: db, gradInputBias: dib)
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
    /// Residual RMSNorm on arrays: returns y = RMSNorm(s)·γ, s = (x + r) + b, and the saved statistics of s.
    public func forward(_ input: [Float], residual: [Float], scale: [Float]? = nil,
                        inputBias: [Float]? = nil) throws -> (output: [Float], sum: [Float], saved: SavedStatistics) {
        var saved = SavedStatistics(mean: [], invStd: [])
        var sum = [Float](repeating: 0, count: input.count)
        let output = try makeOutput(input.count) { out in
            try withBuffers(input, residual, scale) { x, r, g in
                try withBuffers(inputBias ?? [], nil, nil) { ib, _, _ in
                    try sum.withUnsafeMutableBufferPointer { s in
                        saved = try forward(input: x, residual: r, output: out, sum: s, scale: g,
                                            inputBias: inputBias == nil ? nil : ib)
                    }
                }
            }
        }
        return (output, sum, saved)
    }

    /// The residual backward on arrays (`bias` of the result is nil).
    public func backward(sum: [Float], gradOutput: [Float], gradSum: [Float]? = nil, saved: SavedStatistics,
                         scale: [Float]? = nil, inputBias wantInputBias: Bool = true) throws -> ResidualGradients {
        try Check.arrayInput(sum.count, rows * features, "sum")
        var result = ResidualGradients(input: optionalArray(true, sum.count), scale: optionalArray(true, features),
                                       bias: nil, inputBias: optionalArray(wantInputBias, features))
        try withBuffers(sum, gradOutput, scale) { s, dy, g in
            try withBuffers(gradSum ?? [], nil, nil) { ds, _, _ in
                try withOptionalMutableBuffer(&result.input) { dx in
                    try withOptionalMutableBuffer(&result.scale) { dg in
                        try withOptionalMutableBuffer(&result.inputBias) { dib in
                            try backward(sum: s, gradOutput: dy, gradSum: gradSum == nil ? nil : ds, saved: saved,
                                         scale: g, gradInput: dx, gradScale: dg, gradInputBias: dib)
                        }
                    }
                }
            }
        }
        return result
    }

    /// RMSNorm × gate on arrays: `(RMSNorm(x)·γ) ⊙ gate`.
    public func forward(_ input: [Float], gate: [Float], scale: [Float]? = nil) throws
        -> (output: [Float], saved: SavedStatistics) {
        var saved = SavedStatistics(mean: [], invStd: [])
        let output = try makeOutput(input.count) { out in
            try withBuffers(input, gate, scale) { x, gt, g in
                saved = try forward(input: x, gate: gt, output: out, scale: g)
            }
        }
        return (output, saved)
    }

    /// The gated backward on arrays: dx, d gate and dγ (dγ nil without `scale`).
    public func backward(_ input: [Float], gate: [Float], gradOutput: [Float], saved: SavedStatistics,
                         scale: [Float]? = nil) throws -> (input: [Float], gate: [Float], scale: [Float]?) {
        try Check.arrayInput(input.count, rows * features, "input")
        var dx: [Float]? = [Float](repeating: 0, count: input.count)
        var dgate: [Float]? = [Float](repeating: 0, count: input.count)
        var dscale: [Float]? = scale == nil ? nil : [Float](repeating: 0, count: features)
        try withBuffers(input, gate, scale) { x, gt, g in
            try gradOutput.withUnsafeBufferPointer { dy in
                try withOptionalMutableBuffer(&dx) { dxb in
                    try withOptionalMutableBuffer(&dgate) { dgb in
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
