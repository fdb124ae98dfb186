// Array conveniences for 16-bit tensors (`[Float16]`, `[BFloat16]`): generic over
// the element type, so that an array literal still picks the `[Float]` overload
// (a second concrete overload would make `forward([1, 2, 3])` ambiguous). Each
// allocates the output array and hands over to `forwardAnyElement`, which calls
// the specialized pointer overload of its type: same semantics and errors.

/// An array of `count` elements that `body` initializes entirely.
@inline(__always)
func makeElements<E>(_ count: Int, _ body: (UnsafeMutableBufferPointer<E>) throws -> Void) rethrows -> [E] {
    try [E](unsafeUninitializedCapacity: count) { buffer, initialized in
        try body(buffer)
        initialized = count
    }
}

/// The array form of a forward with optional γ and β: allocates the output, of
/// the input's type, runs `body` on the input, output, γ and β buffers, and
/// returns the output with what `body` returns (the saved statistics).
@inline(__always)
func withElementArrays<E, R>(
    _ input: [E], scale: [Float]?, bias: [Float]?,
    _ body: (UnsafeBufferPointer<E>, UnsafeMutableBufferPointer<E>,
             UnsafeBufferPointer<Float>?, UnsafeBufferPointer<Float>?) throws -> R
) throws -> ([E], R) {
    var result: R?
    let output: [E] = try makeElements(input.count) { out in
        try input.withUnsafeBufferPointer { x in
            try withOptionalBuffer(scale) { g in
                try withOptionalBuffer(bias) { b in result = try body(x, out, g, b) }
            }
        }
    }
    return (output, result!)
}

extension LayerNormalization {
    /// Normalizes each row of a tensor of `Float16` or `BFloat16` (any
    /// ``NormElement``); returns the output, of the input's type, and per-row
    /// mean and 1/σ. γ and β stay `Float`.
    ///
    /// Statistics and outputs are computed in Float32 from the exactly widened
    /// values and each output is rounded once to `Element`.
    public func forward<Element: NormElement>(_ input: [Element], scale: [Float]? = nil, bias: [Float]? = nil) throws
        -> (output: [Element], saved: SavedStatistics) {
        try withElementArrays(input, scale: scale, bias: bias) { x, y, g, b in
            try forwardAnyElement(input: x, output: y, scale: g, bias: b)
        }
    }
}

extension RMSNormalization {
    /// Scales each row of a tensor of `Float16` or `BFloat16` (any
    /// ``NormElement``); returns the output, of the input's type, and per-row
    /// 1/rms in `invStd`. γ stays `Float`.
    public func forward<Element: NormElement>(_ input: [Element], scale: [Float]? = nil) throws
        -> (output: [Element], saved: SavedStatistics) {
        try withElementArrays(input, scale: scale, bias: nil) { x, y, g, _ in
            try forwardAnyElement(input: x, output: y, scale: g)
        }
    }
}
