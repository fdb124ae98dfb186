// Span and array forms of BatchNorm + add + ReLU (`BatchNormalization+Residual.swift`),
// following the plain forwards' conveniences in `Spans.swift` and `Arrays.swift`.

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
}
