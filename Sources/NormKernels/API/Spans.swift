// Span overloads of every zero-copy entry point (SE-0447 `Span`, SE-0467
// `MutableSpan`): same labels as the pointer overloads, inputs as `Span<Float>`,
// outputs as `inout MutableSpan<Float>` (`inout MutableSpan<Float>?` for optional
// gradients). Each one only unwraps its spans with `withUnsafeBufferPointer` /
// `withUnsafeMutableBufferPointer` and calls the pointer overload, so validation
// (lengths, overlaps, nothing written before a throw) and results are exactly the
// pointer API's.
//
// In place: a `MutableSpan` of an array excludes every other access to that array
// while it lives (exclusivity), so an output span can never alias an input span.
// In-place calls (output is input, gradInput is gradOutput, …) stay with the
// pointer API.

/// Wraps a result so that optional chaining can tell "the body ran" from
/// "the body returned nil".
struct SpanResult<R> {
    var value: R
    init(_ value: R) { self.value = value }
}

// The helpers below unwrap spans into buffer pointers for the `Float` overloads
// here and the 16-bit ones (`Spans+HalfPrecision*.swift`, `BatchNormResidual+Conveniences.swift`).
// Each span has its own element type parameter, since a 16-bit call mixes tensors
// of its element type with Float32 γ, β and their gradients. They are internal and
// `@inline(__always)`: every call is inlined into its public overload, so a `Float`
// overload holds no generic call and a generic one only calls its pointer entry
// point (which picks the kernels for the element type once per call).

/// Calls `body` with the span's buffer, or nil.
@inline(__always)
func withSpanBuffer<E, R>(_ span: Span<E>?, _ body: (UnsafeBufferPointer<E>?) throws -> R) throws -> R {
    if let result = try span?.withUnsafeBufferPointer({ SpanResult(try body($0)) }) { return result.value }
    return try body(nil)
}

/// Calls `body` with the mutable span's buffer, or nil.
@inline(__always)
func withSpanBuffer<E, R>(
    _ span: inout MutableSpan<E>?, _ body: (UnsafeMutableBufferPointer<E>?) throws -> R
) throws -> R {
    if let result = try span?.withUnsafeMutableBufferPointer({ SpanResult(try body($0)) }) { return result.value }
    return try body(nil)
}

/// Calls `body` with the buffers of two required spans.
@inline(__always)
func withSpanBuffers<A, B, R>(
    _ a: Span<A>, _ b: Span<B>,
    _ body: (UnsafeBufferPointer<A>, UnsafeBufferPointer<B>) throws -> R
) throws -> R {
    try a.withUnsafeBufferPointer { a in try b.withUnsafeBufferPointer { b in try body(a, b) } }
}

/// Calls `body` with the buffers of two optional spans.
@inline(__always)
func withSpanBuffers<A, B, R>(
    _ a: Span<A>?, _ b: Span<B>?,
    _ body: (UnsafeBufferPointer<A>?, UnsafeBufferPointer<B>?) throws -> R
) throws -> R {
    try withSpanBuffer(a) { a in try withSpanBuffer(b) { b in try body(a, b) } }
}

/// Calls `body` with the buffers of three optional spans.
@inline(__always)
func withSpanBuffers<A, B, C, R>(
    _ a: Span<A>?, _ b: Span<B>?, _ c: Span<C>?,
    _ body: (UnsafeBufferPointer<A>?, UnsafeBufferPointer<B>?, UnsafeBufferPointer<C>?) throws -> R
) throws -> R {
    try withSpanBuffer(a) { a in try withSpanBuffers(b, c) { b, c in try body(a, b, c) } }
}

/// Calls `body` with the buffers of two optional mutable spans.
@inline(__always)
func withSpanBuffers<A, B, R>(
    _ a: inout MutableSpan<A>?, _ b: inout MutableSpan<B>?,
    _ body: (UnsafeMutableBufferPointer<A>?, UnsafeMutableBufferPointer<B>?) throws -> R
) throws -> R {
    try withSpanBuffer(&a) { a in try withSpanBuffer(&b) { b in try body(a, b) } }
}

/// Calls `body` with the buffers of three optional mutable spans.
@inline(__always)
func withSpanBuffers<A, B, C, R>(
    _ a: inout MutableSpan<A>?, _ b: inout MutableSpan<B>?, _ c: inout MutableSpan<C>?,
    _ body: (UnsafeMutableBufferPointer<A>?, UnsafeMutableBufferPointer<B>?,
             UnsafeMutableBufferPointer<C>?) throws -> R
) throws -> R {
    try withSpanBuffer(&a) { a in try withSpanBuffers(&b, &c) { b, c in try body(a, b, c) } }
}

/// Calls `body` with the buffers of a forward call: input and output of `E`, and
/// two optional Float32 parameters (γ, β).
@inline(__always)
func withForwardBuffers<E, R>(
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

/// The buffers of a backward call with γ (one closure instead of nested ones at
/// every such overload): x and dy of `E`, an optional third tensor of `E`
/// (BatchNorm's output; nil elsewhere), γ, the optional dx of `E`, dγ and dβ.
@inline(__always)
func withGradientBuffers<E, R>(
    _ input: Span<E>, _ gradOutput: Span<E>, _ third: Span<E>?, _ scale: Span<Float>?,
    _ gradInput: inout MutableSpan<E>?, _ gradScale: inout MutableSpan<Float>?, _ gradBias: inout MutableSpan<Float>?,
    _ body: (UnsafeBufferPointer<E>, UnsafeBufferPointer<E>, UnsafeBufferPointer<E>?, UnsafeBufferPointer<Float>?,
             UnsafeMutableBufferPointer<E>?, UnsafeMutableBufferPointer<Float>?,
             UnsafeMutableBufferPointer<Float>?) throws -> R
) throws -> R {
    try withSpanBuffers(input, gradOutput) { x, dy in
        try withSpanBuffers(third, scale) { y, g in
            try withSpanBuffers(&gradInput, &gradScale, &gradBias) { dx, dγ, dβ in try body(x, dy, y, g, dx, dγ, dβ) }
        }
    }
}

// MARK: - BatchNormalization

extension BatchNormalization {
    /// Same as ``forwardTraining(input:output:scale:bias:running:)-(UnsafeBufferPointer<Float>,_,_,_,_)`` on spans.
    @discardableResult
    public func forwardTraining(
        input: Span<Float>, output: inout MutableSpan<Float>,
        scale: Span<Float>? = nil, bias: Span<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try withForwardBuffers(input, &output, scale, bias) { x, y, g, b in
            try forwardTraining(input: x, output: y, scale: g, bias: b, running: running)
        }
    }

    /// Same as ``forwardInference(input:output:scale:bias:running:)-(UnsafeBufferPointer<Float>,_,_,_,_)`` on spans.
    public func forwardInference(
        input: Span<Float>, output: inout MutableSpan<Float>,
        scale: Span<Float>? = nil, bias: Span<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try withForwardBuffers(input, &output, scale, bias) { x, y, g, b in
            try forwardInference(input: x, output: y, scale: g, bias: b, running: running)
        }
    }

    /// Same as ``backwardTraining(input:gradOutput:saved:scale:output:gradInput:gradScale:gradBias:)-(UnsafeBufferPointer<Float>,_,_,_,_,_,_,_)`` on spans.
    public func backwardTraining(
        input: Span<Float>, gradOutput: Span<Float>,
        saved: SavedStatistics, scale: Span<Float>? = nil,
        output: Span<Float>? = nil,
        gradInput: inout MutableSpan<Float>?,
        gradScale: inout MutableSpan<Float>?,
        gradBias: inout MutableSpan<Float>?
    ) throws {
        try withGradientBuffers(input, gradOutput, output, scale, &gradInput, &gradScale, &gradBias) {
            x, dy, y, g, dx, dγ, dβ in
            try backwardTraining(input: x, gradOutput: dy, saved: saved, scale: g, output: y,
                                 gradInput: dx, gradScale: dγ, gradBias: dβ)
        }
    }

    /// Same as ``backwardInference(input:gradOutput:running:scale:output:gradInput:gradScale:gradBias:)-(UnsafeBufferPointer<Float>,_,_,_,_,_,_,_)`` on spans.
    public func backwardInference(
        input: Span<Float>, gradOutput: Span<Float>,
        running: RunningStatistics, scale: Span<Float>? = nil,
        output: Span<Float>? = nil,
        gradInput: inout MutableSpan<Float>?,
        gradScale: inout MutableSpan<Float>?,
        gradBias: inout MutableSpan<Float>?
    ) throws {
        try withGradientBuffers(input, gradOutput, output, scale, &gradInput, &gradScale, &gradBias) {
            x, dy, y, g, dx, dγ, dβ in
            try backwardInference(input: x, gradOutput: dy, running: running, scale: g, output: y,
                                  gradInput: dx, gradScale: dγ, gradBias: dβ)
        }
    }
}

// MARK: - InstanceNormalization

extension InstanceNormalization {
    /// Same as ``forwardTraining(input:output:scale:bias:running:)-(UnsafeBufferPointer<Float>,_,_,_,_)`` on spans.
    @discardableResult
    public func forwardTraining(
        input: Span<Float>, output: inout MutableSpan<Float>,
        scale: Span<Float>? = nil, bias: Span<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try withForwardBuffers(input, &output, scale, bias) { x, y, g, b in
            try forwardTraining(input: x, output: y, scale: g, bias: b, running: running)
        }
    }

    /// Same as ``forwardInference(input:output:scale:bias:running:)-(UnsafeBufferPointer<Float>,_,_,_,_)`` on spans.
    public func forwardInference(
        input: Span<Float>, output: inout MutableSpan<Float>,
        scale: Span<Float>? = nil, bias: Span<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try withForwardBuffers(input, &output, scale, bias) { x, y, g, b in
            try forwardInference(input: x, output: y, scale: g, bias: b, running: running)
        }
    }

    /// Same as ``backwardTraining(input:gradOutput:saved:scale:gradInput:gradScale:gradBias:)-(UnsafeBufferPointer<Float>,_,_,_,_,_,_)`` on spans.
    public func backwardTraining(
        input: Span<Float>, gradOutput: Span<Float>,
        saved: SavedStatistics, scale: Span<Float>? = nil,
        gradInput: inout MutableSpan<Float>?,
        gradScale: inout MutableSpan<Float>?,
        gradBias: inout MutableSpan<Float>?
    ) throws {
        try withGradientBuffers(input, gradOutput, nil, scale, &gradInput, &gradScale, &gradBias) {
            x, dy, _, g, dx, dγ, dβ in
            try backwardTraining(input: x, gradOutput: dy, saved: saved, scale: g,
                                 gradInput: dx, gradScale: dγ, gradBias: dβ)
        }
    }

    /// Same as ``backwardInference(input:gradOutput:running:scale:gradInput:gradScale:gradBias:)-(UnsafeBufferPointer<Float>,_,_,_,_,_,_)`` on spans.
    public func backwardInference(
        input: Span<Float>, gradOutput: Span<Float>,
        running: RunningStatistics, scale: Span<Float>? = nil,
        gradInput: inout MutableSpan<Float>?,
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
    /// Same as ``forward(input:output:scale:bias:)-(UnsafeBufferPointer<Float>,_,_,_)`` on spans.
    @discardableResult
    public func forward(
        input: Span<Float>, output: inout MutableSpan<Float>,
        scale: Span<Float>? = nil, bias: Span<Float>? = nil
    ) throws -> SavedStatistics {
        try withForwardBuffers(input, &output, scale, bias) { x, y, g, b in
            try forward(input: x, output: y, scale: g, bias: b)
        }
    }

    /// Same as ``backward(input:gradOutput:saved:scale:gradInput:gradScale:gradBias:)-(UnsafeBufferPointer<Float>,_,_,_,_,_,_)`` on spans.
    public func backward(
        input: Span<Float>, gradOutput: Span<Float>,
        saved: SavedStatistics, scale: Span<Float>? = nil,
        gradInput: inout MutableSpan<Float>?,
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

// MARK: - LayerNormalization

extension LayerNormalization {
    /// Same as ``forward(input:output:scale:bias:)-(UnsafeBufferPointer<Float>,_,_,_)`` on spans.
    @discardableResult
    public func forward(
        input: Span<Float>, output: inout MutableSpan<Float>,
        scale: Span<Float>? = nil, bias: Span<Float>? = nil
    ) throws -> SavedStatistics {
        try withForwardBuffers(input, &output, scale, bias) { x, y, g, b in
            try forward(input: x, output: y, scale: g, bias: b)
        }
    }

    /// Same as ``backward(input:gradOutput:saved:scale:gradInput:gradScale:gradBias:)-(UnsafeBufferPointer<Float>,_,_,_,_,_,_)`` on spans.
    public func backward(
        input: Span<Float>, gradOutput: Span<Float>,
        saved: SavedStatistics, scale: Span<Float>? = nil,
        gradInput: inout MutableSpan<Float>?,
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

// MARK: - RMSNormalization

extension RMSNormalization {
    /// Same as ``forward(input:output:scale:)-(UnsafeBufferPointer<Float>,_,_)`` on spans.
    @discardableResult
    public func forward(
        input: Span<Float>, output: inout MutableSpan<Float>, scale: Span<Float>? = nil
    ) throws -> SavedStatistics {
        try withForwardBuffers(input, &output, scale) { x, y, g, _ in
            try forward(input: x, output: y, scale: g)
        }
    }

    /// Same as ``backward(input:gradOutput:saved:scale:gradInput:gradScale:)-(UnsafeBufferPointer<Float>,_,_,_,_,_)`` on spans.
    public func backward(
        input: Span<Float>, gradOutput: Span<Float>,
        saved: SavedStatistics, scale: Span<Float>? = nil,
        gradInput: inout MutableSpan<Float>?,
        gradScale: inout MutableSpan<Float>?
    ) throws {
        try withSpanBuffers(input, gradOutput) { x, dy in
            try withSpanBuffer(scale) { g in
                try withSpanBuffers(&gradInput, &gradScale) { dx, dγ in
                    try backward(input: x, gradOutput: dy, saved: saved, scale: g, gradInput: dx, gradScale: dγ)
                }
            }
        }
    }
}

// MARK: - AdaptiveInstanceNormalization

extension AdaptiveInstanceNormalization {
    /// Same as ``forward(content:style:output:)-(UnsafeBufferPointer<Float>,_,_)`` on spans.
    @discardableResult
    public func forward(
        content: Span<Float>, style: Span<Float>, output: inout MutableSpan<Float>
    ) throws -> Saved {
        try withSpanBuffers(content, style) { x, s in
            try output.withUnsafeMutableBufferPointer { y in try forward(content: x, style: s, output: y) }
        }
    }

    /// Same as ``backward(content:style:gradOutput:saved:gradContent:gradStyle:)-(UnsafeBufferPointer<Float>,_,_,_,_,_)`` on spans.
    public func backward(
        content: Span<Float>, style: Span<Float>,
        gradOutput: Span<Float>, saved: Saved,
        gradContent: inout MutableSpan<Float>?,
        gradStyle: inout MutableSpan<Float>?
    ) throws {
        try withSpanBuffers(content, style) { x, s in
            try gradOutput.withUnsafeBufferPointer { dy in
                try withSpanBuffers(&gradContent, &gradStyle) { dc, ds in
                    try backward(content: x, style: s, gradOutput: dy, saved: saved, gradContent: dc, gradStyle: ds)
                }
            }
        }
    }
}

// MARK: - WeightNormalization

extension WeightNormalization {
    /// Same as ``forward(v:g:output:)-(UnsafeBufferPointer<Float>,_,_)`` on spans.
    @discardableResult
    public func forward(v: Span<Float>, g: Span<Float>, output: inout MutableSpan<Float>) throws -> [Double] {
        try withSpanBuffers(v, g) { vp, gp in
            try output.withUnsafeMutableBufferPointer { w in try forward(v: vp, g: gp, output: w) }
        }
    }

    /// Same as ``backward(v:g:gradWeight:norms:gradV:gradG:)-(UnsafeBufferPointer<Float>,_,_,_,_,_)`` on spans.
    public func backward(
        v: Span<Float>, g: Span<Float>, gradWeight: Span<Float>,
        norms: [Double], gradV: inout MutableSpan<Float>?,
        gradG: inout MutableSpan<Float>?
    ) throws {
        try withSpanBuffers(v, g) { vp, gp in
            try gradWeight.withUnsafeBufferPointer { dw in
                try withSpanBuffers(&gradV, &gradG) { dv, dg in
                    try backward(v: vp, g: gp, gradWeight: dw, norms: norms, gradV: dv, gradG: dg)
                }
            }
        }
    }
}

// MARK: - BatchNormFolding

extension BatchNormFolding {
    /// Same as ``fold(weight:bias:outChannels:running:scale:shift:epsilon:)-(UnsafeMutableBufferPointer<Float>,_,_,_,_,_,_)`` on spans.
    @discardableResult
    public static func fold(
        weight: inout MutableSpan<Float>, bias: Span<Float>?,
        outChannels: Int, running: RunningStatistics,
        scale: Span<Float>? = nil, shift: Span<Float>? = nil,
        epsilon: Float = 1e-5
    ) throws -> [Float] {
        try weight.withUnsafeMutableBufferPointer { w in
            try withSpanBuffers(bias, scale, shift) { b, g, t in
                try fold(weight: w, bias: b, outChannels: outChannels, running: running,
                         scale: g, shift: t, epsilon: epsilon)
            }
        }
    }
}
