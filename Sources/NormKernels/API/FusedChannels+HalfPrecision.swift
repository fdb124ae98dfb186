// Array conveniences of the fused channel kernels for 16-bit tensors
// (GroupNorm + SiLU, BatchNorm + add + ReLU), generic over the element type
// like the plain ones (`Arrays+HalfPrecisionChannels.swift`), so an array
// literal still picks the `[Float]` overload. Each allocates the output array
// and hands over to the `…AnyElement` dispatch: same semantics and errors.

extension GroupNormalization {
    /// ``forwardSiLU(input:output:scale:bias:modulationScale:modulationShift:)-(UnsafeBufferPointer<Element>,_,_,_,_,_)``
    /// on an array of `Float16` or `BFloat16` (any ``NormElement``): the output,
    /// of the input's type, and per-(n, g) mean and 1/σ. γ, β and the modulation stay `Float`.
    @discardableResult
    public func forwardSiLU<Element: NormElement>(
        _ input: [Element], scale: [Float]? = nil, bias: [Float]? = nil,
        modulationScale: [Float]? = nil, modulationShift: [Float]? = nil
    ) throws -> (output: [Element], saved: SavedStatistics) {
        try withElementArrays(input, scale: scale, bias: bias) { x, y, g, b in
            try withOptionalBuffer(modulationScale) { s in
                try withOptionalBuffer(modulationShift) { t in
                    try forwardSiLUAnyElement(input: x, output: y, scale: g, bias: b, modulationScale: s,
                                              modulationShift: t)
                }
            }
        }
    }
}

extension BatchNormalization {
    /// `relu(BN(x) + identity)` (ReLU when ``fusedReLU``) on arrays of `Float16`
    /// or `BFloat16` (any ``NormElement``), with the batch's statistics.
    @discardableResult
    public func forwardTraining<Element: NormElement>(
        _ input: [Element], identity: [Element], scale: [Float]? = nil, bias: [Float]? = nil,
        running: RunningStatistics? = nil
    ) throws -> (output: [Element], saved: SavedStatistics) {
        try withElementArrays(input, scale: scale, bias: bias) { x, y, g, b in
            try identity.withUnsafeBufferPointer { r in
                try trainingAnyElement(input: x, identity: r, output: y, scale: g, bias: b, running: running)
            }
        }
    }

    /// `relu(BN(x) + identity)` (ReLU when ``fusedReLU``) on arrays of `Float16`
    /// or `BFloat16` (any ``NormElement``), with `running`'s statistics.
    public func forwardInference<Element: NormElement>(
        _ input: [Element], identity: [Element], scale: [Float]? = nil, bias: [Float]? = nil,
        running: RunningStatistics
    ) throws -> [Element] {
        try withElementArrays(input, scale: scale, bias: bias) { x, y, g, b in
            try identity.withUnsafeBufferPointer { r in
                try inferenceAnyElement(input: x, identity: r, output: y, scale: g, bias: b, running: running)
            }
        }.0
    }
}
