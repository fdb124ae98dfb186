// Backward array conveniences for 16-bit tensors (`[Float16]`, `[BFloat16]`,
// any `NormElement`), one per `Float` one in `Arrays+Backward.swift`, plus the
// weight-norm forward. Generic over the element type like the forward ones
// (`Arrays+HalfPrecision.swift`), so an array literal still picks the `[Float]`
// overload. Each allocates the gradients asked for and calls the generic pointer
// entry point, which checks the element type once and runs the kernels
// specialized for it inside this module: a call from another module's
// unspecialized generic code costs one dispatch per call, never per value (the
// allocation zero-fills raw bytes, +0 in every `NormElement`, with no per-element
// generic code). Validation, errors (nothing written before a throw) and results
// are the pointer API's: dx in `Element`, dγ and dβ in `Float`.

/// Gradients returned by the 16-bit backward array conveniences (`Float16`,
/// `BFloat16`, any ``NormElement``): `NormGradients` with dx of the tensor's
/// type. Nil where not requested.
public struct ElementGradients<Element: NormElement>: Sendable {
    /// dx, same length, layout and element type as the input.
    public var input: [Element]?
    /// dγ, one per channel (BatchNorm, InstanceNorm, GroupNorm) or feature (LayerNorm, RMSNorm).
    public var scale: [Float]?
    /// dβ, like `scale`.
    public var bias: [Float]?

    public init(input: [Element]? = nil, scale: [Float]? = nil, bias: [Float]? = nil) {
        self.input = input
        self.scale = scale
        self.bias = bias
    }
}

/// `count` elements, all bits zero (+0 in every `NormElement`), written as raw
/// bytes so that unspecialized generic code does no per-element work.
@inline(__always)
func zeroedElements<E>(_ count: Int) -> [E] {
    [E](unsafeUninitializedCapacity: count) { buffer, initialized in
        UnsafeMutableRawBufferPointer(buffer).initializeMemory(as: UInt8.self, repeating: 0)
        initialized = count
    }
}

/// Calls `body` with the array's buffer, or nil.
@inline(__always)
func withOptionalElementBuffer<E, R>(_ array: [E]?, _ body: (UnsafeBufferPointer<E>?) throws -> R) rethrows -> R {
    if let array { return try array.withUnsafeBufferPointer { try body($0) } }
    return try body(nil)
}

/// Calls `body` with the array's mutable buffer, or nil.
@inline(__always)
func withOptionalMutableElements<E, R>(
    _ array: inout [E]?, _ body: (UnsafeMutableBufferPointer<E>?) throws -> R
) rethrows -> R {
    if array != nil { return try array!.withUnsafeMutableBufferPointer { try body($0) } }
    return try body(nil)
}

/// Calls `body` with the buffers of two arrays of `E` and an optional γ.
@inline(__always)
func withElementBuffers<E, R>(
    _ a: [E], _ b: [E], _ scale: [Float]?,
    _ body: (UnsafeBufferPointer<E>, UnsafeBufferPointer<E>, UnsafeBufferPointer<Float>?) throws -> R
) rethrows -> R {
    try a.withUnsafeBufferPointer { a in
        try b.withUnsafeBufferPointer { b in try withOptionalBuffer(scale) { g in try body(a, b, g) } }
    }
}

/// Allocates the selected gradients (zero-filled), dx of type `E`, and passes their buffers to `body`.
/// `given` is the length of the caller's input array, checked first (`Check.arrayInput`).
func makeElementGradients<E: NormElement>(
    _ selection: GradientSelection, input: Int, given: Int, parameters: Int, hasBias: Bool = true,
    _ body: (UnsafeMutableBufferPointer<E>?, UnsafeMutableBufferPointer<Float>?,
             UnsafeMutableBufferPointer<Float>?) throws -> Void
) throws -> ElementGradients<E> {
    try Check.arrayInput(given, input, "input")
    var dx: [E]? = selection.contains(.input) ? zeroedElements(input) : nil
    var dγ: [Float]? = selection.contains(.scale) ? [Float](repeating: 0, count: parameters) : nil
    var dβ: [Float]? = hasBias && selection.contains(.bias) ? [Float](repeating: 0, count: parameters) : nil
    try withOptionalMutableElements(&dx) { x in
        try withOptionalMutableBuffer(&dγ) { g in
            try withOptionalMutableBuffer(&dβ) { b in try body(x, g, b) }
        }
    }
    return ElementGradients(input: dx, scale: dγ, bias: dβ)
}

extension BatchNormalization {
    /// `backwardTraining` on arrays of `Float16` or `BFloat16` (any ``NormElement``);
    /// `output` (the forward output) is required with fusedReLU.
    public func backwardTraining<Element: NormElement>(
        _ input: [Element], gradOutput: [Element], saved: SavedStatistics, scale: [Float]? = nil,
        output: [Element]? = nil, computing selection: GradientSelection = .all
    ) throws -> ElementGradients<Element> {
        try makeElementGradients(selection, input: shape.count, given: input.count, parameters: shape.c) { dx, dγ, dβ in
            try withElementBuffers(input, gradOutput, scale) { x, dy, g in
                try withOptionalElementBuffer(output) { y in
                    try backwardTraining(input: x, gradOutput: dy, saved: saved, scale: g, output: y,
                                         gradInput: dx, gradScale: dγ, gradBias: dβ)
                }
            }
        }
    }

    /// `backwardInference` on arrays of `Float16` or `BFloat16` (any ``NormElement``).
    public func backwardInference<Element: NormElement>(
        _ input: [Element], gradOutput: [Element], running: RunningStatistics, scale: [Float]? = nil,
        output: [Element]? = nil, computing selection: GradientSelection = .all
    ) throws -> ElementGradients<Element> {
        try makeElementGradients(selection, input: shape.count, given: input.count, parameters: shape.c) { dx, dγ, dβ in
            try withElementBuffers(input, gradOutput, scale) { x, dy, g in
                try withOptionalElementBuffer(output) { y in
                    try backwardInference(input: x, gradOutput: dy, running: running, scale: g, output: y,
                                          gradInput: dx, gradScale: dγ, gradBias: dβ)
                }
            }
        }
    }
}

extension InstanceNormalization {
    /// `backwardTraining` on arrays of `Float16` or `BFloat16` (any ``NormElement``).
    public func backwardTraining<Element: NormElement>(
        _ input: [Element], gradOutput: [Element], saved: SavedStatistics, scale: [Float]? = nil,
        computing selection: GradientSelection = .all
    ) throws -> ElementGradients<Element> {
        try makeElementGradients(selection, input: shape.count, given: input.count, parameters: shape.c) { dx, dγ, dβ in
            try withElementBuffers(input, gradOutput, scale) { x, dy, g in
                try backwardTraining(input: x, gradOutput: dy, saved: saved, scale: g,
                                     gradInput: dx, gradScale: dγ, gradBias: dβ)
            }
        }
    }

    /// `backwardInference` on arrays of `Float16` or `BFloat16` (any ``NormElement``).
    public func backwardInference<Element: NormElement>(
        _ input: [Element], gradOutput: [Element], running: RunningStatistics, scale: [Float]? = nil,
        computing selection: GradientSelection = .all
    ) throws -> ElementGradients<Element> {
        try makeElementGradients(selection, input: shape.count, given: input.count, parameters: shape.c) { dx, dγ, dβ in
            try withElementBuffers(input, gradOutput, scale) { x, dy, g in
                try backwardInference(input: x, gradOutput: dy, running: running, scale: g,
                                      gradInput: dx, gradScale: dγ, gradBias: dβ)
            }
        }
    }
}

extension GroupNormalization {
    /// `backward` on arrays of `Float16` or `BFloat16` (any ``NormElement``).
    public func backward<Element: NormElement>(
        _ input: [Element], gradOutput: [Element], saved: SavedStatistics, scale: [Float]? = nil,
        computing selection: GradientSelection = .all
    ) throws -> ElementGradients<Element> {
        try makeElementGradients(selection, input: shape.count, given: input.count, parameters: shape.c) { dx, dγ, dβ in
            try withElementBuffers(input, gradOutput, scale) { x, dy, g in
                try backward(input: x, gradOutput: dy, saved: saved, scale: g,
                             gradInput: dx, gradScale: dγ, gradBias: dβ)
            }
        }
    }
}

extension LayerNormalization {
    /// `backward` on arrays of `Float16` or `BFloat16` (any ``NormElement``).
    public func backward<Element: NormElement>(
        _ input: [Element], gradOutput: [Element], saved: SavedStatistics, scale: [Float]? = nil,
        computing selection: GradientSelection = .all
    ) throws -> ElementGradients<Element> {
        try makeElementGradients(selection, input: rows * features, given: input.count, parameters: features) { dx, dγ, dβ in
            try withElementBuffers(input, gradOutput, scale) { x, dy, g in
                try backward(input: x, gradOutput: dy, saved: saved, scale: g,
                             gradInput: dx, gradScale: dγ, gradBias: dβ)
            }
        }
    }
}

extension RMSNormalization {
    /// `backward` on arrays of `Float16` or `BFloat16` (any ``NormElement``);
    /// `bias` in the result is always nil: RMSNorm has no β.
    public func backward<Element: NormElement>(
        _ input: [Element], gradOutput: [Element], saved: SavedStatistics, scale: [Float]? = nil,
        computing selection: GradientSelection = .all
    ) throws -> ElementGradients<Element> {
        try makeElementGradients(selection, input: rows * features, given: input.count, parameters: features, hasBias: false) { dx, dγ, _ in
            try withElementBuffers(input, gradOutput, scale) { x, dy, g in
                try backward(input: x, gradOutput: dy, saved: saved, scale: g, gradInput: dx, gradScale: dγ)
            }
        }
    }
}

extension AdaptiveInstanceNormalization {
    /// `backward` on arrays of `Float16` or `BFloat16` (any ``NormElement``):
    /// returns dcontent and dstyle, of the tensors' type (nil where not requested).
    public func backward<Element: NormElement>(
        content: [Element], style: [Element], gradOutput: [Element], saved: Saved,
        gradContent wantContent: Bool = true, gradStyle wantStyle: Bool = true
    ) throws -> (content: [Element]?, style: [Element]?) {
        try Check.arrayInput(content.count, self.content.count, "content")
        try Check.arrayInput(style.count, self.style.count, "style")
        var dContent: [Element]? = wantContent ? zeroedElements(self.content.count) : nil
        var dStyle: [Element]? = wantStyle ? zeroedElements(self.style.count) : nil
        try withOptionalMutableElements(&dContent) { dc in
            try withOptionalMutableElements(&dStyle) { ds in
                try withElementBuffers(content, style, nil) { x, s, _ in
                    try gradOutput.withUnsafeBufferPointer { dy in
                        try backward(content: x, style: s, gradOutput: dy, saved: saved, gradContent: dc, gradStyle: ds)
                    }
                }
            }
        }
        return (dContent, dStyle)
    }
}

extension WeightNormalization {
    /// `forward` on an array `v` of `Float16` or `BFloat16` (any ``NormElement``):
    /// returns w, of v's type, and the norms. `g` stays `Float`.
    public func forward<Element: NormElement>(v: [Element], g: [Float]) throws -> (weight: [Element], norms: [Double]) {
        var norms: [Double] = []
        let w: [Element] = try makeElements(v.count) { out in
            try v.withUnsafeBufferPointer { vp in
                try g.withUnsafeBufferPointer { gp in norms = try forward(v: vp, g: gp, output: out) }
            }
        }
        return (w, norms)
    }

    /// `backward` on arrays of `Float16` or `BFloat16` (any ``NormElement``):
    /// returns dv, of v's type, and dg in `Float` (nil where not requested).
    public func backward<Element: NormElement>(
        v: [Element], g: [Float], gradWeight: [Element], norms: [Double],
        gradV wantV: Bool = true, gradG wantG: Bool = true
    ) throws -> (v: [Element]?, g: [Float]?) {
        try Check.arrayInput(v.count, count, "v")
        var dv: [Element]? = wantV ? zeroedElements(count) : nil
        var dg: [Float]? = wantG ? [Float](repeating: 0, count: normCount) : nil
        try withOptionalMutableElements(&dv) { dvp in
            try withOptionalMutableBuffer(&dg) { dgp in
                try withElementBuffers(v, gradWeight, g) { vp, dw, gp in
                    try backward(v: vp, g: gp!, gradWeight: dw, norms: norms, gradV: dvp, gradG: dgp)
                }
            }
        }
        return (dv, dg)
    }
}
