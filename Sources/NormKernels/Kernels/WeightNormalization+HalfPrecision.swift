// Weight normalization on 16-bit tensors (issue 20): v, w, dw and dv in
// `Float16` or `BFloat16`; g, dg and the norms as in Float32. Same validation as
// the Float32 overloads, one generic entry point per direction for both 16-bit
// types (resolved once per call, `…AnyElement`); the rows geometry and
// microkernels specialized for the element type, so w16 == E.narrow(w32) and
// dv16 == E.narrow(dv32) bit for bit (w32, dv32 from the Float32 kernel on the
// widened tensors), for any thread count. Where the plan streams (large
// tensors), 16-bit outputs go out in 16-byte non-temporal stores (`E.stream8`).

extension WeightNormalization {
    /// `w = g·v/‖v‖` for a `Float16` or `BFloat16` tensor `v`: ‖v‖ from the
    /// exactly widened values as in the `Float` overload (the same norms, bit for
    /// bit), each w rounded once to `Element`. g stays `Float`. `output` may be `v`.
    ///
    /// One generic entry point for every ``NormElement``: it checks the type once
    /// and runs the kernels specialized for it (for `Float`, the `Float`
    /// overload), so the call is as fast from another module as from this one.
    @discardableResult
    public func forward<Element: NormElement>(v: UnsafeBufferPointer<Element>, g: UnsafeBufferPointer<Float>,
                                              output: UnsafeMutableBufferPointer<Element>) throws -> [Double] {
        try forwardAnyElement(v: v, g: g, output: output)
    }

    /// Gradients of the 16-bit forward: dv in `Element` (rounded once from the
    /// Float32 result), dg in `Float` (the `Float` backward's bits on the widened
    /// tensors). Same checks and aliasing rules.
    public func backward<Element: NormElement>(
        v: UnsafeBufferPointer<Element>, g: UnsafeBufferPointer<Float>, gradWeight: UnsafeBufferPointer<Element>,
        norms: [Double], gradV: UnsafeMutableBufferPointer<Element>? = nil,
        gradG: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardAnyElement(v: v, g: g, gradWeight: gradWeight, norms: norms, gradV: gradV, gradG: gradG)
    }
}

// MARK: - Any element type (see `LayerNormalization.forwardAnyElement`)

extension WeightNormalization {
    func forwardAnyElement<E: NormElement>(
        v: UnsafeBufferPointer<E>, g: UnsafeBufferPointer<Float>, output: UnsafeMutableBufferPointer<E>
    ) throws -> [Double] {
        if E.self == Float.self {
            return try forward(v: retyped(v) as UnsafeBufferPointer<Float>, g: g,
                               output: retyped(output) as UnsafeMutableBufferPointer<Float>)
        }
        if E.self == BFloat16.self {
            return try forwardElements(v: retyped(v) as UnsafeBufferPointer<BFloat16>, g: g,
                                       output: retyped(output) as UnsafeMutableBufferPointer<BFloat16>)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            return try forwardElements(v: retyped(v) as UnsafeBufferPointer<Float16>, g: g,
                                       output: retyped(output) as UnsafeMutableBufferPointer<Float16>)
        }
        #endif
        return try forwardElements(v: v, g: g, output: output)
    }

    func backwardAnyElement<E: NormElement>(
        v: UnsafeBufferPointer<E>, g: UnsafeBufferPointer<Float>, gradWeight: UnsafeBufferPointer<E>,
        norms: [Double], gradV: UnsafeMutableBufferPointer<E>?, gradG: UnsafeMutableBufferPointer<Float>?
    ) throws {
        if E.self == Float.self {
            return try backward(v: retyped(v) as UnsafeBufferPointer<Float>, g: g,
                                gradWeight: retyped(gradWeight) as UnsafeBufferPointer<Float>, norms: norms,
                                gradV: gradV.map { retyped($0) as UnsafeMutableBufferPointer<Float> }, gradG: gradG)
        }
        if E.self == BFloat16.self {
            return try backwardElements(v: retyped(v) as UnsafeBufferPointer<BFloat16>, g: g,
                                        gradWeight: retyped(gradWeight), norms: norms,
                                        gradV: gradV.map { retyped($0) }, gradG: gradG)
        }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self {
            return try backwardElements(v: retyped(v) as UnsafeBufferPointer<Float16>, g: g,
                                        gradWeight: retyped(gradWeight), norms: norms,
                                        gradV: gradV.map { retyped($0) }, gradG: gradG)
        }
        #endif
        try backwardElements(v: v, g: g, gradWeight: gradWeight, norms: norms, gradV: gradV, gradG: gradG)
    }
}
