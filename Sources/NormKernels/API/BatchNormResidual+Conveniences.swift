// Span and array forms of BatchNorm + add + ReLU (`BatchNormalization+Residual.swift`),
// following the plain conveniences in `Spans.swift`, `Arrays.swift` and
// `Arrays+Backward.swift` (the array backward returns d identity beside dx, dγ, dβ).

extension BatchNormalization {
    /// Same as ``forwardTraining(input:identity:output:scale:bias:running:)-(UnsafeBufferPointer<Float>,_,_,_,_,_)`` on spans.
    @discardableResult
    public func forwardTraining(
        input: Span<Float>, identity: Span<Float>, output: inout MutableSpan<Float>,
        scale: Span<Float>? = nil, bias: Span<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try identity.withUnsafeBufferPointer { r in
            try withForwardBuffers(input, &output, scale, bias) { x, y, g, b in
                try forwardTraining(input: x, identity: r, output: y, scale: g, bias: b, running: running)
            }
        }
    }

    /// Same as ``forwardInference(input:identity:output:scale:bias:running:)-(UnsafeBufferPointer<Float>,_,_,_,_,_)`` on spans.
    public func forwardInference(
        input: Span<Float>, identity: Span<Float>, output: inout MutableSpan<Float>,
        scale: Span<Float>? = nil, bias: Span<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try identity.withUnsafeBufferPointer { r in
            try withForwardBuffers(input, &output, scale, bias) { x, y, g, b in
                try forwardInference(input: x, identity: r, output: y, scale: g, bias: b, running: running)
            }
        }
    }

    /// `relu(BN(x) + identity)` (ReLU when ``fusedReLU``) on arrays, with the batch's statistics.
    @discardableResult
    public func forwardTraining(_ input: [Float], identity: [Float], scale: [Float]? = nil, bias: [Float]? = nil,
                                running: RunningStatistics? = nil) throws -> (output: [Float], saved: SavedStatistics) {
        var saved = SavedStatistics(mean: [], invStd: [])
        let output = try makeOutput(input.count) { out in
            try withBuffers(input, identity, scale) { x, r, g in
                try withOptionalBuffer(bias) { b in
                    saved = try forwardTraining(input: x, identity: r, output: out, scale: g, bias: b, running: running)
                }
            }
        }
        return (output, saved)
    }

    /// `relu(BN(x) + identity)` (ReLU when ``fusedReLU``) on arrays, with `running`'s statistics.
    public func forwardInference(_ input: [Float], identity: [Float], scale: [Float]? = nil, bias: [Float]? = nil,
                                 running: RunningStatistics) throws -> [Float] {
        try makeOutput(input.count) { out in
            try withBuffers(input, identity, scale) { x, r, g in
                try withOptionalBuffer(bias) { b in
                    try forwardInference(input: x, identity: r, output: out, scale: g, bias: b, running: running)
                }
            }
        }
    }

    /// The backward of `relu(BN(x) + identity)` (training) on arrays: the
    /// selected dx, dγ, dβ, and d identity (dy where y > 0; dy without
    /// ``fusedReLU``) when `wantIdentity`. `output` (the forward output) is
    /// required with fusedReLU.
    public func backwardTraining(
        _ input: [Float], gradOutput: [Float], saved: SavedStatistics, scale: [Float]? = nil,
        output: [Float]? = nil, computing selection: GradientSelection = .all, gradIdentity wantIdentity: Bool
    ) throws -> (norm: NormGradients, identity: [Float]?) {
        try Check.arrayInput(input.count, shape.count, "input")
        var dr: [Float]? = wantIdentity ? [Float](repeating: 0, count: shape.count) : nil
        let norm = try makeGradients(selection, input: shape.count, given: input.count, parameters: shape.c) { dx, dγ, dβ in
            try withBuffers(input, gradOutput, scale) { x, dy, g in
                try withOptionalBuffer(output) { y in
                    try withOptionalMutableBuffer(&dr) { drp in
                        try backwardTraining(input: x, gradOutput: dy, saved: saved, scale: g, output: y,
                                             gradInput: dx, gradIdentity: drp, gradScale: dγ, gradBias: dβ)
                    }
                }
            }
        }
        return (norm, dr)
    }

    /// The backward of `relu(BN(x) + identity)` (inference) on arrays, as the training one.
    public func backwardInference(
        _ input: [Float], gradOutput: [Float], running: RunningStatistics, scale: [Float]? = nil,
        output: [Float]? = nil, computing selection: GradientSelection = .all, gradIdentity wantIdentity: Bool
    ) throws -> (norm: NormGradients, identity: [Float]?) {
        try Check.arrayInput(input.count, shape.count, "input")
        var dr: [Float]? = wantIdentity ? [Float](repeating: 0, count: shape.count) : nil
        let norm = try makeGradients(selection, input: shape.count, given: input.count, parameters: shape.c) { dx, dγ, dβ in
            try withBuffers(input, gradOutput, scale) { x, dy, g in
                try withOptionalBuffer(output) { y in
                    try withOptionalMutableBuffer(&dr) { drp in
                        try backwardInference(input: x, gradOutput: dy, running: running, scale: g, output: y,
                                              gradInput: dx, gradIdentity: drp, gradScale: dγ, gradBias: dβ)
                    }
                }
            }
        }
        return (norm, dr)
    }
}
