// Span overloads for 16-bit tensors of LayerNorm, RMSNorm, AdaIN and weight
// normalization, as `Spans+HalfPrecision.swift` does for the per-channel kernels
// (same helpers, same rule: unwrap the spans, call the generic pointer entry
// point, so validation, errors and results are the pointer API's).

// MARK: - LayerNormalization

extension LayerNormalization {
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

// MARK: - RMSNormalization

extension RMSNormalization {
    /// Same as the 16-bit pointer `forward(input:output:scale:)` on spans.
    @discardableResult
    public func forward<Element: NormElement>(
        input: Span<Element>, output: inout MutableSpan<Element>, scale: Span<Float>? = nil
    ) throws -> SavedStatistics {
        try withForwardBuffers(input, &output, scale) { x, y, g, _ in
            try forward(input: x, output: y, scale: g)
        }
    }

    /// Same as the 16-bit pointer `backward(input:gradOutput:saved:scale:gradInput:gradScale:)` on spans.
    public func backward<Element: NormElement>(
        input: Span<Element>, gradOutput: Span<Element>,
        saved: SavedStatistics, scale: Span<Float>? = nil,
        gradInput: inout MutableSpan<Element>?,
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
    /// Same as the 16-bit pointer `forward(content:style:output:)` on spans.
    @discardableResult
    public func forward<Element: NormElement>(
        content: Span<Element>, style: Span<Element>, output: inout MutableSpan<Element>
    ) throws -> Saved {
        try withSpanBuffers(content, style) { x, s in
            try output.withUnsafeMutableBufferPointer { y in try forward(content: x, style: s, output: y) }
        }
    }

    /// Same as the 16-bit pointer `backward(content:style:gradOutput:saved:gradContent:gradStyle:)` on spans.
    public func backward<Element: NormElement>(
        content: Span<Element>, style: Span<Element>,
        gradOutput: Span<Element>, saved: Saved,
        gradContent: inout MutableSpan<Element>?,
        gradStyle: inout MutableSpan<Element>?
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
    /// Same as the 16-bit pointer `forward(v:g:output:)` on spans (`g` stays `Float`).
    @discardableResult
    public func forward<Element: NormElement>(
        v: Span<Element>, g: Span<Float>, output: inout MutableSpan<Element>
    ) throws -> [Double] {
        try withSpanBuffers(v, g) { vp, gp in
            try output.withUnsafeMutableBufferPointer { w in try forward(v: vp, g: gp, output: w) }
        }
    }

    /// Same as the 16-bit pointer `backward(v:g:gradWeight:norms:gradV:gradG:)` on spans
    /// (`g` and `gradG` stay `Float`).
    public func backward<Element: NormElement>(
        v: Span<Element>, g: Span<Float>, gradWeight: Span<Element>,
        norms: [Double], gradV: inout MutableSpan<Element>?,
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
