// Array conveniences for 16-bit tensors of the per-channel kernels (BatchNorm,
// GroupNorm, InstanceNorm, AdaIN): generic over the element type like
// LayerNorm's (`Arrays+HalfPrecision.swift`), so an array literal still picks
// the `[Float]` overload. Each allocates the output array (`withElementArrays`)
// and hands over to the `…AnyElement` dispatch, which runs the engine
// specialized for its type: same semantics and errors.

extension BatchNormalization {
    /// Training forward on a tensor of `Float16` or `BFloat16` (any
    /// ``NormElement``); returns the output, of the input's type, and the
    /// per-channel mean and 1/σ. γ, β and `running` stay `Float`.
    @discardableResult
    public func forwardTraining<Element: NormElement>(
        _ input: [Element], scale: [Float]? = nil, bias: [Float]? = nil, running: RunningStatistics? = nil
    ) throws -> (output: [Element], saved: SavedStatistics) {
        try withElementArrays(input, scale: scale, bias: bias) { x, y, g, b in
            try trainingAnyElement(input: x, identity: nil, output: y, scale: g, bias: b, running: running)
        }
    }

    /// Inference forward on a tensor of `Float16` or `BFloat16` (any ``NormElement``).
    public func forwardInference<Element: NormElement>(
        _ input: [Element], scale: [Float]? = nil, bias: [Float]? = nil, running: RunningStatistics
    ) throws -> [Element] {
        try withElementArrays(input, scale: scale, bias: bias) { x, y, g, b in
            try inferenceAnyElement(input: x, identity: nil, output: y, scale: g, bias: b, running: running)
        }.0
    }
}

extension GroupNormalization {
    /// Normalizes a tensor of `Float16` or `BFloat16` (any ``NormElement``);
    /// returns the output, of the input's type, and per-(n, g) mean and 1/σ.
    /// γ and β stay `Float`.
    public func forward<Element: NormElement>(_ input: [Element], scale: [Float]? = nil, bias: [Float]? = nil) throws
        -> (output: [Element], saved: SavedStatistics) {
        try withElementArrays(input, scale: scale, bias: bias) { x, y, g, b in
            try forwardAnyElement(input: x, output: y, scale: g, bias: b)
        }
    }
}

extension InstanceNormalization {
    /// Training forward on a tensor of `Float16` or `BFloat16` (any
    /// ``NormElement``); returns the output, of the input's type, and per-(n, c)
    /// mean and 1/σ. γ, β and `running` stay `Float`.
    @discardableResult
    public func forwardTraining<Element: NormElement>(
        _ input: [Element], scale: [Float]? = nil, bias: [Float]? = nil, running: RunningStatistics? = nil
    ) throws -> (output: [Element], saved: SavedStatistics) {
        try withElementArrays(input, scale: scale, bias: bias) { x, y, g, b in
            try forwardTrainingAnyElement(input: x, output: y, scale: g, bias: b, running: running)
        }
    }

    /// Inference forward on a tensor of `Float16` or `BFloat16` (any ``NormElement``).
    public func forwardInference<Element: NormElement>(
        _ input: [Element], scale: [Float]? = nil, bias: [Float]? = nil, running: RunningStatistics
    ) throws -> [Element] {
        try withElementArrays(input, scale: scale, bias: bias) { x, y, g, b in
            try forwardInferenceAnyElement(input: x, output: y, scale: g, bias: b, running: running)
        }.0
    }
}

extension AdaptiveInstanceNormalization {
    /// AdaIN on `Float16` or `BFloat16` (any ``NormElement``) content and style;
    /// returns the output, of their type, and the saved statistics.
    public func forward<Element: NormElement>(content: [Element], style: [Element]) throws
        -> (output: [Element], saved: Saved) {
        var saved = Saved(contentMean: [], contentInvStd: [], styleMean: [], styleStd: [])
        let output: [Element] = try makeElements(content.count) { out in
            try content.withUnsafeBufferPointer { x in
                try style.withUnsafeBufferPointer { s in saved = try forwardAnyElement(content: x, style: s, output: out) }
            }
        }
        return (output, saved)
    }
}
