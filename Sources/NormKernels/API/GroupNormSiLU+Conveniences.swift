// Array forms of GroupNorm + SiLU (`GroupNormalization+SiLU.swift`,
// `+SiLUBackward.swift`), following the plain conveniences in `Arrays.swift`
// and `Arrays+Backward.swift`: same semantics and errors as the pointer API.

/// The gradients of GroupNorm + SiLU's array backward; nil where not requested.
public struct SiLUModulationGradients: Sendable, Hashable {
    /// dx, dγ, dβ as the plain GroupNorm backward returns them.
    public var norm: NormGradients
    /// d modulationScale, one per (n, c), n-major.
    public var modulationScale: [Float]?
    /// d modulationShift, one per (n, c), n-major.
    public var modulationShift: [Float]?

    public init(norm: NormGradients, modulationScale: [Float]? = nil, modulationShift: [Float]? = nil) {
        self.norm = norm
        self.modulationScale = modulationScale
        self.modulationShift = modulationShift
    }
}

extension GroupNormalization {
    /// ``forwardSiLU(input:output:scale:bias:modulationScale:modulationShift:)-(UnsafeBufferPointer<Float>,_,_,_,_,_)`` on arrays.
    @discardableResult
    public func forwardSiLU(
        _ input: [Float], scale: [Float]? = nil, bias: [Float]? = nil,
        modulationScale: [Float]? = nil, modulationShift: [Float]? = nil
    ) throws -> (output: [Float], saved: SavedStatistics) {
        var saved = SavedStatistics(mean: [], invStd: [])
        let output = try makeOutput(input.count) { out in
            try withBuffers(input, scale, bias) { x, g, b in
                try withBuffers(input, modulationScale, modulationShift) { _, s, t in
                    saved = try forwardSiLU(input: x, output: out, scale: g, bias: b, modulationScale: s,
                                            modulationShift: t)
                }
            }
        }
        return (output, saved)
    }

    /// ``backwardSiLU(input:gradOutput:saved:scale:bias:modulationScale:modulationShift:gradInput:gradScale:gradBias:gradModulationScale:gradModulationShift:)-(UnsafeBufferPointer<Float>,_,_,_,_,_,_,_,_,_,_,_)``
    /// on arrays: the selected dx, dγ, dβ, and the modulation's gradients when
    /// `modulationGradients` (for those of the two that were given).
    public func backwardSiLU(
        _ input: [Float], gradOutput: [Float], saved: SavedStatistics, scale: [Float]? = nil, bias: [Float]? = nil,
        modulationScale: [Float]? = nil, modulationShift: [Float]? = nil,
        computing selection: GradientSelection = .all, modulationGradients: Bool = true
    ) throws -> SiLUModulationGradients {
        try Check.arrayInput(input.count, shape.count, "input")
        let perSample = shape.n * shape.c
        var ds: [Float]? = modulationGradients && modulationScale != nil ? [Float](repeating: 0, count: perSample) : nil
        var dt: [Float]? = modulationGradients && modulationShift != nil ? [Float](repeating: 0, count: perSample) : nil
        let norm = try makeGradients(selection, input: shape.count, given: input.count, parameters: shape.c) { dx, dγ, dβ in
            try withBuffers(input, gradOutput, scale) { x, dy, g in
                try withBuffers(input, bias, modulationScale) { _, b, s in
                    try withBuffers(input, modulationShift, nil) { _, t, _ in
                        try withOptionalMutableBuffer(&ds) { dsp in
                            try withOptionalMutableBuffer(&dt) { dtp in
                                try backwardSiLU(input: x, gradOutput: dy, saved: saved, scale: g, bias: b,
                                                 modulationScale: s, modulationShift: t, gradInput: dx,
                                                 gradScale: dγ, gradBias: dβ,
                                                 gradModulationScale: dsp, gradModulationShift: dtp)
                            }
                        }
                    }
                }
            }
        }
        return SiLUModulationGradients(norm: norm, modulationScale: ds, modulationShift: dt)
    }
}
