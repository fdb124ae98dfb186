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

/// Calls `body` with the span's buffer, or nil.
@inline(__always)
func withElementSpan<E, R>(_ span: Span<E>?, _ body: (UnsafeBufferPointer<E>?) throws -> R) throws -> R {
    if let result = try span?.withUnsafeBufferPointer({ SpanResult(try body($0)) }) { return result.value }
    return try body(nil)
}

/// Calls `body` with the mutable span's buffer, or nil.
@inline(__always)
func withElementSpan<E, R>(
    _ span: inout MutableSpan<E>?, _ body: (UnsafeMutableBufferPointer<E>?) throws -> R
) throws -> R {
    if let result = try span?.withUnsafeMutableBufferPointer({ SpanResult(try body($0)) }) { return result.value }
    return try body(nil)
}

/// Calls `body` with the buffers of two required spans of `E`.
@inline(__always)
func withElementSpans<E, R>(
    _ a: Span<E>, _ b: Span<E>, _ body: (UnsafeBufferPointer<E>, UnsafeBufferPointer<E>) throws -> R
) throws -> R {
    try a.withUnsafeBufferPointer { a in try b.withUnsafeBufferPointer { b in try body(a, b) } }
}

/// The buffers of a 16-bit forward call: input and output of `E`, two optional Float32 parameters.
@inline(__always)
func withElementForwardBuffers<E, R>(
    _ input: Span<E>, _ output: inout MutableSpan<E>, _ a: Span<Float>?, _ b: Span<Float>? = nil,
    _ body: (UnsafeBufferPointer<E>, UnsafeMutableBufferPointer<E>,
             UnsafeBufferPointer<Float>?, UnsafeBufferPointer<Float>?) throws -> R
) throws -> R {
    try input.withUnsafeBufferPointer { x in
        try output.withUnsafeMutableBufferPointer { y in
            try withSpanBuffers(a, b) { a, b in try body(x, y, a, b) }
        }
    }
}

/// The buffers of a 16-bit backward call with γ: x, dy, an optional third
/// tensor of `E` (BatchNorm's output), γ, dx of `E`, dγ and dβ.
@inline(__always)
func withElementGradientBuffers<E, R>(
    _ input: Span<E>, _ gradOutput: Span<E>, _ third: Span<E>?, _ scale: Span<Float>?,
    _ gradInput: inout MutableSpan<E>?, _ gradScale: inout MutableSpan<Float>?, _ gradBias: inout MutableSpan<Float>?,
    _ body: (UnsafeBufferPointer<E>, UnsafeBufferPointer<E>, UnsafeBufferPointer<E>?, UnsafeBufferPointer<Float>?,
             UnsafeMutableBufferPointer<E>?, UnsafeMutableBufferPointer<Float>?,
             UnsafeMutableBufferPointer<Float>?) throws -> R
) throws -> R {
    try withElementSpans(input, gradOutput) { x, dy in
        try withElementSpan(third) { y in
            try withSpanBuffer(scale) { g in
                try withElementSpan(&gradInput) { dx in
                    try withSpanBuffers(&gradScale, &gradBias) { dγ, dβ in try body(x, dy, y, g, dx, dγ, dβ) }
                }
            }
        }
    }
}

// MARK: - BatchNormalization

extension BatchNormalization {
    /// Same as the 16-bit pointer `forwardTraining(input:output:scale:bias:running:)` on spans.
    @discardableResult
    public func forwardTraining<Element: NormElement>(
        input: Span<Element>, output: inout MutableSpan<Element>,
        scale: Span<Float>? = nil, bias: Span<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try withElementForwardBuffers(input, &output, scale, bias) { x, y, g, b in
            try forwardTraining(input: x, output: y, scale: g, bias: b, running: running)
        }
    }

    /// Same as the 16-bit pointer `forwardInference(input:output:scale:bias:running:)` on spans.
    public func forwardInference<Element: NormElement>(
        input: Span<Element>, output: inout MutableSpan<Element>,
        scale: Span<Float>? = nil, bias: Span<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try withElementForwardBuffers(input, &output, scale, bias) { x, y, g, b in
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
        try withElementGradientBuffers(input, gradOutput, output, scale, &gradInput, &gradScale, &gradBias) {
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
        try withElementGradientBuffers(input, gradOutput, output, scale, &gradInput, &gradScale, &gradBias) {
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
            try withElementForwardBuffers(input, &output, scale, bias) { x, y, g, b in
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
            try withElementForwardBuffers(input, &output, scale, bias) { x, y, g, b in
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
        try withElementForwardBuffers(input, &output, scale, bias) { x, y, g, b in
            try forwardTraining(input: x, output: y, scale: g, bias: b, running: running)
        }
    }

    /// Same as the 16-bit pointer `forwardInference(input:output:scale:bias:running:)` on spans.
    public func forwardInference<Element: NormElement>(
        input: Span<Element>, output: inout MutableSpan<Element>,
        scale: Span<Float>? = nil, bias: Span<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try withElementForwardBuffers(input, &output, scale, bias) { x, y, g, b in
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
        try withElementGradientBuffers(input, gradOutput, nil, scale, &gradInput, &gradScale, &gradBias) {
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
        try withElementGradientBuffers(input, gradOutput, nil, scale, &gradInput, &gradScale, &gradBias) {
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
        try withElementForwardBuffers(input, &output, scale, bias) { x, y, g, b in
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
        try withElementGradientBuffers(input, gradOutput, nil, scale, &gradInput, &gradScale, &gradBias) {
            x, dy, _, g, dx, dγ, dβ in
            try backward(input: x, gradOutput: dy, saved: saved, scale: g,
                         gradInput: dx, gradScale: dγ, gradBias: dβ)
        }
    }
}
