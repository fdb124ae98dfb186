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

extension LayerNormalization {
    /// Normalizes each row of a tensor of `Float16` or `BFloat16` (any
    /// ``NormElement``); returns the output, of the input's type, and per-row
    /// mean and 1/σ. γ and β stay `Float`.
    ///
    /// Statistics and outputs are computed in Float32 from the exactly widened
    /// values and each output is rounded once to `Element`.
    public func forward<Element: NormElement>(_ input: [Element], scale: [Float]? = nil, bias: [Float]? = nil) throws
        -> (output: [Element], saved: SavedStatistics) {
        var saved = SavedStatistics(mean: [], invStd: [])
        let output: [Element] = try makeElements(input.count) { out in
            try input.withUnsafeBufferPointer { x in
                try withOptionalBuffer(scale) { g in
                    try withOptionalBuffer(bias) { b in
                        saved = try forwardAnyElement(input: x, output: out, scale: g, bias: b)
                    }
                }
            }
        }
        return (output, saved)
    }
}

extension RMSNormalization {
    /// Scales each row of a tensor of `Float16` or `BFloat16` (any
    /// ``NormElement``); returns the output, of the input's type, and per-row
    /// 1/rms in `invStd`. γ stays `Float`.
    public func forward<Element: NormElement>(_ input: [Element], scale: [Float]? = nil) throws
        -> (output: [Element], saved: SavedStatistics) {
        var saved = SavedStatistics(mean: [], invStd: [])
        let output: [Element] = try makeElements(input.count) { out in
            try input.withUnsafeBufferPointer { x in
                try withOptionalBuffer(scale) { g in saved = try forwardAnyElement(input: x, output: out, scale: g) }
            }
        }
        return (output, saved)
    }
}
