// Weight normalization on 16-bit tensors (issue 20): v, w, dw and dv in
// `Float16` or `BFloat16`; g, dg and the norms as in Float32. Same validation as
// the Float32 overloads; the rows geometry and microkernels specialized for the
// element type, so w16 == E.narrow(w32) and dv16 == E.narrow(dv32) bit for bit
// (w32, dv32 from the Float32 kernel on the widened tensors), for any thread
// count. 16-bit outputs are written through the cache.

extension WeightNormalization {
    /// `w = g·v/‖v‖` for a `BFloat16` tensor `v`: ‖v‖ from the exactly widened values
    /// as in the `Float` overload (the same norms, bit for bit), each w rounded
    /// once to `BFloat16`. g stays `Float`. `output` may be `v`.
    @discardableResult
    public func forward(v: UnsafeBufferPointer<BFloat16>, g: UnsafeBufferPointer<Float>,
                        output: UnsafeMutableBufferPointer<BFloat16>) throws -> [Double] {
        try forwardElements(v: v, g: g, output: output)
    }

    /// Gradients of the `BFloat16` forward: dv in `BFloat16` (rounded once from the
    /// Float32 result), dg in `Float` (the `Float` backward's bits on the widened
    /// tensors). Same checks and aliasing rules.
    public func backward(
        v: UnsafeBufferPointer<BFloat16>, g: UnsafeBufferPointer<Float>, gradWeight: UnsafeBufferPointer<BFloat16>,
        norms: [Double], gradV: UnsafeMutableBufferPointer<BFloat16>? = nil,
        gradG: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardElements(v: v, g: g, gradWeight: gradWeight, norms: norms, gradV: gradV, gradG: gradG)
    }
}

// Swift has no Float16 on x86-64 macOS (see Float16+NormElement.swift).
#if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))

extension WeightNormalization {
    /// `w = g·v/‖v‖` for a `Float16` tensor `v`: ‖v‖ from the exactly widened values
    /// as in the `Float` overload (the same norms, bit for bit), each w rounded
    /// once to `Float16`. g stays `Float`. `output` may be `v`.
    @discardableResult
    public func forward(v: UnsafeBufferPointer<Float16>, g: UnsafeBufferPointer<Float>,
                        output: UnsafeMutableBufferPointer<Float16>) throws -> [Double] {
        try forwardElements(v: v, g: g, output: output)
    }

    /// Gradients of the `Float16` forward: dv in `Float16` (rounded once from the
    /// Float32 result), dg in `Float` (the `Float` backward's bits on the widened
    /// tensors). Same checks and aliasing rules.
    public func backward(
        v: UnsafeBufferPointer<Float16>, g: UnsafeBufferPointer<Float>, gradWeight: UnsafeBufferPointer<Float16>,
        norms: [Double], gradV: UnsafeMutableBufferPointer<Float16>? = nil,
        gradG: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardElements(v: v, g: g, gradWeight: gradWeight, norms: norms, gradV: gradV, gradG: gradG)
    }
}

#endif
