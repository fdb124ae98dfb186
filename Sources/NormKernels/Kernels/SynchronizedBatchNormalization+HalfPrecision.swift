// Synchronized BatchNorm on 16-bit tensors (issue 20): x, y, dy, dx in
// `Float16` or `BFloat16`; γ, β, dγ, dβ, saved and running statistics, the
// exchanged partials (Float64) and every accumulation as in Float32. Each rank
// runs BatchNorm's blocks specialized for its element type (x and dy widened
// exactly on load, y and dx rounded once on store), so on every rank
//
//     y16 == E.narrow(y32),   dx16 == E.narrow(dx32),   dγ, dβ, statistics identical
//
// bit for bit, where y32, dx32, … come from the Float32 synchronized kernel on
// the widened tensors of every rank, for any thread count.

extension SynchronizedBatchNormalization {
    /// Collective training forward on a `Float16` or `BFloat16` slice (see the
    /// `Float` overload): statistics of the exactly widened values of every
    /// rank, y rounded once to `Element`. γ, β and `running` stay `Float`;
    /// `output` may be `input`.
    ///
    /// One generic entry point for every ``NormElement``: it checks the type
    /// once and runs the kernels specialized for it.
    @discardableResult
    public func forwardTraining<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, output: UnsafeMutableBufferPointer<Element>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        if Element.self == BFloat16.self {
            return try trainingElements(input: retyped(input) as UnsafeBufferPointer<BFloat16>,
                                        output: retyped(output) as UnsafeMutableBufferPointer<BFloat16>,
                                        scale: scale, bias: bias, running: running)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if Element.self == Float16.self {
            return try trainingElements(input: retyped(input) as UnsafeBufferPointer<Float16>,
                                        output: retyped(output) as UnsafeMutableBufferPointer<Float16>,
                                        scale: scale, bias: bias, running: running)
        }
        #endif
        if Element.self == Float.self {
            return try trainingElements(input: retyped(input) as UnsafeBufferPointer<Float>,
                                        output: retyped(output) as UnsafeMutableBufferPointer<Float>,
                                        scale: scale, bias: bias, running: running)
        }
        return try trainingElements(input: input, output: output, scale: scale, bias: bias, running: running)
    }

    /// Collective backward on `Float16` or `BFloat16` tensors (see the `Float`
    /// overload): x, dy (and y with fused ReLU) widened exactly, dx rounded once
    /// to `Element`; dγ, dβ `Float`. `gradInput` may be `input`, `gradOutput` or `output`.
    public func backwardTraining<Element: NormElement>(
        input: UnsafeBufferPointer<Element>, gradOutput: UnsafeBufferPointer<Element>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        output: UnsafeBufferPointer<Element>? = nil,
        gradInput: UnsafeMutableBufferPointer<Element>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil,
        parameterGradients: ParameterGradients
    ) throws {
        func run<E: NormElement>(_: E.Type) throws {
            try backwardElements(input: retyped(input) as UnsafeBufferPointer<E>,
                                 gradOutput: retyped(gradOutput) as UnsafeBufferPointer<E>, saved: saved, scale: scale,
                                 output: output.map { retyped($0) as UnsafeBufferPointer<E> },
                                 gradInput: gradInput.map { retyped($0) as UnsafeMutableBufferPointer<E> },
                                 gradScale: gradScale, gradBias: gradBias, parameterGradients: parameterGradients)
        }
        if Element.self == BFloat16.self { return try run(BFloat16.self) }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if Element.self == Float16.self { return try run(Float16.self) }
        #endif
        if Element.self == Float.self { return try run(Float.self) }
        try run(Element.self)
    }
}
