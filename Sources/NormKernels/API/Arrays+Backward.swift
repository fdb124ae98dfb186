// Array conveniences over the backward pointer API: each allocates the gradients
// asked for and forwards to the zero-copy entry point, so the semantics (and
// errors) are the same.

/// Which gradients a backward call computes; the others cost nothing.
public struct GradientSelection: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// dx
    public static let input = GradientSelection(rawValue: 1 << 0)
    /// dγ
    public static let scale = GradientSelection(rawValue: 1 << 1)
    /// dβ
    public static let bias = GradientSelection(rawValue: 1 << 2)
    /// dγ and dβ (one pass over the data, no dx pass)
    public static let parameters: GradientSelection = [.scale, .bias]
    public static let all: GradientSelection = [.input, .scale, .bias]
}

/// Gradients returned by the Array conveniences; nil where not requested.
public struct NormGradients: Sendable, Hashable {
    /// dx, same length and layout as the input.
    public var input: [Float]?
    /// dγ, one per channel (BatchNorm, InstanceNorm, GroupNorm) or feature (LayerNorm, RMSNorm).
    public var scale: [Float]?
    /// dβ, like `scale`.
    public var bias: [Float]?

    public init(input: [Float]? = nil, scale: [Float]? = nil, bias: [Float]? = nil) {
        self.input = input
        self.scale = scale
        self.bias = bias
    }
}

/// Calls `body` with the array's mutable buffer, or nil.
@inline(__always)
func withOptionalMutableBuffer<R>(
    _ array: inout [Float]?, _ body: (UnsafeMutableBufferPointer<Float>?) throws -> R
) rethrows -> R {
    if array != nil { return try array!.withUnsafeMutableBufferPointer { try body($0) } }
    return try body(nil)
}

/// Allocates the selected gradients (zero-filled) and passes their buffers to `body`.
/// `given` is the length of the caller's input array, checked against the
/// descriptor's `input` count first (`Check.arrayInput`).
func makeGradients(
    _ selection: GradientSelection, input: Int, given: Int, parameters: Int, hasBias: Bool = true,
    _ body: (UnsafeMutableBufferPointer<Float>?, UnsafeMutableBufferPointer<Float>?,
             UnsafeMutableBufferPointer<Float>?) throws -> Void
) throws -> NormGradients {
    try Check.arrayInput(given, input, "input")
    var dx: [Float]? = selection.contains(.input) ? [Float](repeating: 0, count: input) : nil
    var dγ: [Float]? = selection.contains(.scale) ? [Float](repeating: 0, count: parameters) : nil
    var dβ: [Float]? = hasBias && selection.contains(.bias) ? [Float](repeating: 0, count: parameters) : nil
    try withOptionalMutableBuffer(&dx) { x in
        try withOptionalMutableBuffer(&dγ) { g in
            try withOptionalMutableBuffer(&dβ) { b in try body(x, g, b) }
        }
    }
    return NormGradients(input: dx, scale: dγ, bias: dβ)
}

extension BatchNormalization {
    /// `backwardTraining` on arrays; `output` (the forward output) is required with fusedReLU.
    public func backwardTraining(
        _ input: [Float], gradOutput: [Float], saved: SavedStatistics, scale: [Float]? = nil,
        output: [Float]? = nil, computing selection: GradientSelection = .all
    ) throws -> NormGradients {
        try makeGradients(selection, input: shape.count, given: input.count, parameters: shape.c) { dx, dγ, dβ in
            try withBuffers(input, gradOutput, scale) { x, dy, g in
                try withOptionalBuffer(output) { y in
                    try backwardTraining(input: x, gradOutput: dy, saved: saved, scale: g, output: y,
                                         gradInput: dx, gradScale: dγ, gradBias: dβ)
            }
            }
        }
    }

    /// `backwardInference` on arrays.
    public func backwardInference(
        _ input: [Float], gradOutput: [Float], running: RunningStatistics, scale: [Float]? = nil,
        output: [Float]? = nil, computing selection: GradientSelection = .all
    ) throws -> NormGradients {
        try makeGradients(selection, input: shape.count, given: input.count, parameters: shape.c) { dx, dγ, dβ in
            try withBuffers(input, gradOutput, scale) { x, dy, g in
                try withOptionalBuffer(output) { y in
                    try backwardInference(input: x, gradOutput: dy, running: running, scale: g, output: y,
                                          gradInput: dx, gradScale: dγ, gradBias: dβ)
            }
            }
        }
    }
}

extension InstanceNormalization {
    /// `backwardTraining` on arrays.
    public func backwardTraining(
        _ input: [Float], gradOutput: [Float], saved: SavedStatistics, scale: [Float]? = nil,
        computing selection: GradientSelection = .all
    ) throws -> NormGradients {
        try makeGradients(selection, input: shape.count, given: input.count, parameters: shape.c) { dx, dγ, dβ in
            try withBuffers(input, gradOutput, scale) { x, dy, g in
                try backwardTraining(input: x, gradOutput: dy, saved: saved, scale: g,
                                     gradInput: dx, gradScale: dγ, gradBias: dβ)
            }
        }
    }

    /// `backwardInference` on arrays.
    public func backwardInference(
        _ input: [Float], gradOutput: [Float], running: RunningStatistics, scale: [Float]? = nil,
        computing selection: GradientSelection = .all
    ) throws -> NormGradients {
        try makeGradients(selection, input: shape.count, given: input.count, parameters: shape.c) { dx, dγ, dβ in
            try withBuffers(input, gradOutput, scale) { x, dy, g in
                try backwardInference(input: x, gradOutput: dy, running: running, scale: g,
                                      gradInput: dx, gradScale: dγ, gradBias: dβ)
            }
        }
    }
}

extension GroupNormalization {
    /// `backward` on arrays.
    public func backward(
        _ input: [Float], gradOutput: [Float], saved: SavedStatistics, scale: [Float]? = nil,
        computing selection: GradientSelection = .all
    ) throws -> NormGradients {
        try makeGradients(selection, input: shape.count, given: input.count, parameters: shape.c) { dx, dγ, dβ in
            try withBuffers(input, gradOutput, scale) { x, dy, g in
                try backward(input: x, gradOutput: dy, saved: saved, scale: g,
                             gradInput: dx, gradScale: dγ, gradBias: dβ)
            }
        }
    }
}

extension LayerNormalization {
    /// `backward` on arrays.
    public func backward(
        _ input: [Float], gradOutput: [Float], saved: SavedStatistics, scale: [Float]? = nil,
        computing selection: GradientSelection = .all
    ) throws -> NormGradients {
        try makeGradients(selection, input: rows * features, given: input.count, parameters: features) { dx, dγ, dβ in
            try withBuffers(input, gradOutput, scale) { x, dy, g in
                try backward(input: x, gradOutput: dy, saved: saved, scale: g,
                             gradInput: dx, gradScale: dγ, gradBias: dβ)
            }
        }
    }
}

extension RMSNormalization {
    /// `backward` on arrays (`bias` in the result is always nil: RMSNorm has no β).
    public func backward(
        _ input: [Float], gradOutput: [Float], saved: SavedStatistics, scale: [Float]? = nil,
        computing selection: GradientSelection = .all
    ) throws -> NormGradients {
        try makeGradients(selection, input: rows * features, given: input.count, parameters: features, hasBias: false) { dx, dγ, _ in
            try withBuffers(input, gradOutput, scale) { x, dy, g in
                try backward(input: x, gradOutput: dy, saved: saved, scale: g, gradInput: dx, gradScale: dγ)
            }
        }
    }
}

extension AdaptiveInstanceNormalization {
    /// `backward` on arrays: returns dcontent and dstyle (nil where not requested).
    public func backward(
        content: [Float], style: [Float], gradOutput: [Float], saved: Saved,
        gradContent wantContent: Bool = true, gradStyle wantStyle: Bool = true
    ) throws -> (content: [Float]?, style: [Float]?) {
        try Check.arrayInput(content.count, self.content.count, "content")
        try Check.arrayInput(style.count, self.style.count, "style")
        var dContent: [Float]? = wantContent ? [Float](repeating: 0, count: self.content.count) : nil
        var dStyle: [Float]? = wantStyle ? [Float](repeating: 0, count: self.style.count) : nil
        try withOptionalMutableBuffer(&dContent) { dc in
            try withOptionalMutableBuffer(&dStyle) { ds in
                try content.withUnsafeBufferPointer { x in
                    try style.withUnsafeBufferPointer { s in
                        try gradOutput.withUnsafeBufferPointer { dy in
                            try backward(content: x, style: s, gradOutput: dy, saved: saved, gradContent: dc, gradStyle: ds)
                        }
                    }
                }
            }
        }
        return (dContent, dStyle)
    }
}

extension WeightNormalization {
    /// `backward` on arrays: returns dv and dg (nil where not requested).
    public func backward(
        v: [Float], g: [Float], gradWeight: [Float], norms: [Double],
        gradV wantV: Bool = true, gradG wantG: Bool = true
    ) throws -> (v: [Float]?, g: [Float]?) {
        try Check.arrayInput(v.count, count, "v")
        var dv: [Float]? = wantV ? [Float](repeating: 0, count: count) : nil
        var dg: [Float]? = wantG ? [Float](repeating: 0, count: normCount) : nil
        try withOptionalMutableBuffer(&dv) { dvp in
            try withOptionalMutableBuffer(&dg) { dgp in
                try v.withUnsafeBufferPointer { vp in
                    try g.withUnsafeBufferPointer { gp in
                        try gradWeight.withUnsafeBufferPointer { dw in
                            try backward(v: vp, g: gp, gradWeight: dw, norms: norms, gradV: dvp, gradG: dgp)
                        }
                    }
                }
            }
        }
        return (dv, dg)
    }
}

/// Calls `body` with the buffers of two arrays and an optional third.
@inline(__always)
func withBuffers<R>(
    _ a: [Float], _ b: [Float], _ c: [Float]?,
    _ body: (UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>?) throws -> R
) rethrows -> R {
    try a.withUnsafeBufferPointer { a in
        try b.withUnsafeBufferPointer { b in try withOptionalBuffer(c) { c in try body(a, b, c) } }
    }
}
