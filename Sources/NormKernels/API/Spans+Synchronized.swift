// Span overloads of synchronized BatchNorm, for every element type (`Float`,
// `Float16`, `BFloat16`): the tensors as `Span<Element>` / `inout
// MutableSpan<Element>`, γ, β and their gradients as `Span<Float>` /
// `inout MutableSpan<Float>?`. Each one unwraps its spans and calls the generic
// pointer entry point (`SynchronizedBatchNormalization+HalfPrecision.swift`),
// which resolves the element type once per call: the same collective
// validation (every rank throws, nothing written on any rank) and the same bits
// as the pointer API. In-place calls stay with the pointer API (a `MutableSpan`
// excludes every other access to its array).

extension SynchronizedBatchNormalization {
    /// Same as the pointer `forwardTraining(input:output:scale:bias:running:)` on spans.
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

    /// Same as the pointer
    /// `backwardTraining(input:gradOutput:saved:scale:output:gradInput:gradScale:gradBias:parameterGradients:)` on spans.
    public func backwardTraining<Element: NormElement>(
        input: Span<Element>, gradOutput: Span<Element>,
        saved: SavedStatistics, scale: Span<Float>? = nil,
        output: Span<Element>? = nil,
        gradInput: inout MutableSpan<Element>?,
        gradScale: inout MutableSpan<Float>?,
        gradBias: inout MutableSpan<Float>?,
        parameterGradients: ParameterGradients
    ) throws {
        try withGradientBuffers(input, gradOutput, output, scale, &gradInput, &gradScale, &gradBias) {
            x, dy, y, g, dx, dγ, dβ in
            try backwardTraining(input: x, gradOutput: dy, saved: saved, scale: g, output: y,
                                 gradInput: dx, gradScale: dγ, gradBias: dβ, parameterGradients: parameterGradients)
        }
    }
}
