// Span overloads for 16-bit tensors (`Span<Float16>`, `Span<BFloat16>`, any
// `NormElement`), one per `Float` one in `Spans.swift` (BatchNorm folding is
// Float32 only): the tensors (x, y, dy, dx, the identity, AdaIN's style, weight
// norm's v and w) as `Span<Element>` / `inout MutableSpan<Element>`, γ, β,
// their gradients and `g` as `Span<Float>` / `inout MutableSpan<Float>?`.
// Generic over the element type, so a call with `Float` spans still picks the
// `Float` overload. Each one only unwraps its spans and calls the generic pointer
// entry point, which resolves the element type once per call and runs the
// kernels specialized for it: validation (lengths, overlaps, nothing written
// before a throw) and results are exactly the pointer API's. In-place calls stay
// with the pointer API (a `MutableSpan` excludes every other access to its array).
// The span helpers (`withForwardBuffers`, `withGradientBuffers`, …) are those of
// `Spans.swift`, generic over each span's element type.

// MARK: - BatchNormalization

extension BatchNormalization {
    /// Same as the 16-bit pointer `forwardTraining(input:output:scale:bias:running:)` on spans.
    @discardableResult
    public func forwardTraining<Element: NormElement>(
        input: Span<Element>, output: inout MutableSpan<Element>,
        scale: Span<Float>? = nil, bias: Span<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try withForwardBuffers(input, &output, scale, bias) { x, y, g, b in
            try forwardTraining(input: x, output: y, scale: g, bias: b, running: running)
        }
    }

    /// Same as the 16-bit pointer `forwardInference(input:output:scale:bias:running:)` on spans.
    public func forwardInference<Element: NormElement>(
        input: Span<Element>, output: inout MutableSpan<Element>,
        scale: Span<Float>? = nil, bias: Span<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try withForwardBuffers(input, &output, scale, bias) { x, y, g, b in
            try forwardInference(input: x, output: y, scale: g, bias: b, running: running)
        }
    }

    /// Same as the 16-bit pointer
    /// `backwardTraining(input:gradOutput:saved:scale:output:gradInput:gradScale:gradBias:)` on spans.
    public func backwardTraining<Element: NormElement>(
        input: Span<Element>, gradOutput: Span<Element>,
        saved: SavedStatistics, scale: Span<Float>? = nil,
        output: Span<Element>? = nil,
        gradInput: inout MutableSpan<Element>?,
        gradScale: inout MutableSpan<Float>?,
        gradBias: inout MutableSpan<Float>?
    ) throws {
        try withGradientBuffers(input, gradOutput, output, scale, &gradInput, &gradScale, &gradBias) {
            x, dy, y, g, dx, dγ, dβ in
            try backwardTraining(input: x, gradOutput: dy, saved: saved, scale: g, output: y,
                                 gradInput: dx, gradScale: dγ, gradBias: dβ)
        }
    }

    /// Same as the 16-bit pointer
    /// `backwardInference(input:gradOutput:running:scale:output:gradInput:gradScale:gradBias:)` on spans.
    public func backwardInference<Element: NormElement>(
        input: Span<Element>, gradOutput: Span<Element>,
        running: RunningStatistics, scale: Span<Float>? = nil,
        output: Span<Element>? = nil,
        gradInput: inout MutableSpan<Element>?,
        gradScale: inout MutableSpan<Float>?,
        gradBias: inout MutableSpan<Float>?
    ) throws {
        try withGradientBuffers(input, gradOutput, output, scale, &gradInput, &gradScale, &gradBias) {
            x, dy, y, g, dx, dγ, dβ in
            try backwardInference(input: x, gradOutput: dy, running: running, scale: g, output: y,
                                  gradInput: dx, gradScale: dγ, gradBias: dβ)
        }
    }

    /// Same as the 16-bit pointer `forwardTraining(input:identity:output:scale:bias:running:)`
    /// (BatchNorm + add + ReLU) on spans.
    @discardableResult
    public func forwardTraining<Element: NormElement>(
        input: Span<Element>, identity: Span<Element>, output: inout MutableSpan<Element>,
        scale: Span<Float>? = nil, bias: Span<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try identity.withUnsafeBufferPointer { r in
            try withForwardBuffers(input, &output, scale, bias) { x, y, g, b in
                try forwardTraining(input: x, identity: r, output: y, scale: g, bias: b, running: running)
            }
        }
    }

    /// Same as the 16-bit pointer `forwardInference(input:identity:output:scale:bias:running:)`
    /// (BatchNorm + add + ReLU) on spans.
    public func forwardInference<Element: NormElement>(
        input: Span<Element>, identity: Span<Element>, output: inout MutableSpan<Element>,
        scale: Span<Float>? = nil, bias: Span<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try identity.withUnsafeBufferPointer { r in
            try withForwardBuffers(input, &output, scale, bias) { x, y, g, b in
                try forwardInference(input: x, identity: r, output: y, scale: g, bias: b, running: running)
            }
        }
    }
}

// MARK: - InstanceNormalization

extension InstanceNormalization {
    /// Same as the 16-bit pointer `forwardTraining(input:output:scale:bias:running:)` on spans.
    @discardableResult
    public func forwardTraining<Element: NormElement>(
        input: Span<Element>, output: inout MutableSpan<Element>,
        scale: Span<Float>? = nil, bias: Span<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try withForwardBuffers(input, &output, scale, bias) { x, y, g, b in
            try forwardTraining(input: x, output: y, scale: g, bias: b, running: running)
        }
    }

    /// Same as the 16-bit pointer `forwardInference(input:output:scale:bias:running:)` on spans.
    public func forwardInference<Element: NormElement>(
        input: Span<Element>, output: inout MutableSpan<Element>,
        scale: Span<Float>? = nil, bias: Span<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try withForwardBuffers(input, &output, scale, bias) { x, y, g, b in
            try forwardInference(input: x, output: y, scale: g, bias: b, running: running)
        }
    }

    /// Same as the 16-bit pointer
    /// `backwardTraining(input:gradOutput:saved:scale:gradInput:gradScale:gradBias:)` on spans.
    public func backwardTraining<Element: NormElement>(
        input: Span<Element>, gradOutput: Span<Element>,
        saved: SavedStatistics, scale: Span<Float>? = nil,
        gradInput: inout MutableSpan<Element>?,
        gradScale: inout MutableSpan<Float>?,
        gradBias: inout MutableSpan<Float>?
    ) throws {
        try withGradientBuffers(input, gradOutput, nil, scale, &gradInput, &gradScale, &gradBias) {
            x, dy, _, g, dx, dγ, dβ in
            try backwardTraining(input: x, gradOutput: dy, saved: saved, scale: g,
                                 gradInput: dx, gradScale: dγ, gradBias: dβ)
        }
    }

    /// Same as the 16-bit pointer
    /// `backwardInference(input:gradOutput:running:scale:gradInput:gradScale:gradBias:)` on spans.
    public func backwardInference<Element: NormElement>(
        input: Span<Element>, gradOutput: Span<Element>,
        running: RunningStatistics, scale: Span<Float>? = nil,
        gradInput: inout MutableSpan<Element>?,
        gradScale: inout MutableSpan<Float>?,
        gradBias: inout MutableSpan<Float>?
    ) throws {
        try withGradientBuffers(input, gradOutput, nil, scale, &gradInput, &gradScale, &gradBias) {
            x, dy, _, g, dx, dγ, dβ in
            try backwardInference(input: x, gradOutput: dy, running: running, scale: g,
                                  gradInput: dx, gradScale: dγ, gradBias: dβ)
        }
    }
}

// MARK: - GroupNormalization

extension GroupNormalization {
    /// Same as the 16-bit pointer `forward(input:output:scale:bias:)` on spans.
    @discardableResult
    public func forward<Element: NormElement>(
        input: Span<Element>, output: inout MutableSpan<Element>,
        scale: Span<Float>? = nil, bias: Span<Float>? = nil
    ) throws -> SavedStatistics {
        try withForwardBuffers(input, &output, scale, bias) { x, y, g, b in
            try forward(input: x, output: y, scale: g, bias: b)
        }
    }

    /// Same as the 16-bit pointer
    /// `backward(input:gradOutput:saved:scale:gradInput:gradScale:gradBias:)` on spans.
    public func backward<Element: NormElement>(
        input: Span<Element>, gradOutput: Span<Element>,
        saved: SavedStatistics, scale: Span<Float>? = nil,
        gradInput: inout MutableSpan<Element>?,
        gradScale: inout MutableSpan<Float>?,
        gradBias: inout MutableSpan<Float>?
    ) throws {
        try withGradientBuffers(input, gradOutput, nil, scale, &gradInput, &gradScale, &gradBias) {
            x, dy, _, g, dx, dγ, dβ in
            try backward(input: x, gradOutput: dy, saved: saved, scale: g,
                         gradInput: dx, gradScale: dγ, gradBias: dβ)
        }
    }
}
