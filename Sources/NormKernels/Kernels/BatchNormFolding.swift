/// Folds an inference BatchNorm into the preceding convolution or linear layer
/// (the "convolution without bias, then BatchNorm" pattern), as PyTorch's
/// `torch.nn.utils.fusion.fuse_conv_bn_weights`:
/// ```
/// k[o]   = γ[o] / √(running_var[o] + ε)
/// W'[o,…] = W[o,…] · k[o]
/// b'[o]  = (b[o] − running_mean[o]) · k[o] + β[o]        (b = 0 when the layer has no bias)
/// ```
/// `weight` is `[outChannels, …]` in row-major order (any trailing shape: `[O, I]`
/// for linear, `[O, I, kH, kW]` for convolution) and is rewritten in place;
/// the folded bias (length `outChannels`) is returned. Arithmetic is in Float64.
public enum BatchNormFolding {
    @discardableResult
    public static func fold(
        weight: UnsafeMutableBufferPointer<Float>, bias: UnsafeBufferPointer<Float>?,
        outChannels: Int, running: RunningStatistics,
        scale: UnsafeBufferPointer<Float>? = nil, shift: UnsafeBufferPointer<Float>? = nil,
        epsilon: Float = 1e-5
    ) throws -> [Float] {
        try Check.positive(outChannels, "outChannels")
        try Check.epsilon(epsilon)
        guard weight.count > 0, weight.count % outChannels == 0 else {
            throw NormError.lengthMismatch(argument: "weight", expected: outChannels * max(1, weight.count / outChannels),
                                           actual: weight.count)
        }
        try Check.length(bias, outChannels, "bias")
        let (runningMean, runningVariance) = try running.snapshot(expectedChannels: outChannels)
        try Check.length(scale, outChannels, "scale (γ)")
        try Check.length(shift, outChannels, "shift (β)")
        // The weight is rewritten in place: no parameter may live inside it.
        try Check.buffers(writes: [("weight", MemorySpan(weight))],
                          reads: [("bias", MemorySpan(bias)), ("scale (γ)", MemorySpan(scale)), ("shift (β)", MemorySpan(shift))])
        let perOutput = weight.count / outChannels
        var folded = [Float](repeating: 0, count: outChannels)
        for o in 0..<outChannels {
            let k = Double(scale?[o] ?? 1) / (Double(runningVariance[o]) + Double(epsilon)).squareRoot()
            for i in (o * perOutput)..<((o + 1) * perOutput) { weight[i] = Float(Double(weight[i]) * k) }
            folded[o] = Float((Double(bias?[o] ?? 0) - Double(runningMean[o])) * k + Double(shift?[o] ?? 0))
        }
        return folded
    }

    /// Array convenience: returns the folded weight and bias.
    public static func fold(
        weight: [Float], bias: [Float]?, outChannels: Int, running: RunningStatistics,
        scale: [Float]? = nil, shift: [Float]? = nil, epsilon: Float = 1e-5
    ) throws -> (weight: [Float], bias: [Float]) {
        var w = weight
        let b = try w.withUnsafeMutableBufferPointer { wp in
            try withOptionalBuffer(bias) { bp in
                try withOptionalBuffer(scale) { sp in
                    try withOptionalBuffer(shift) { tp in
                        try fold(weight: wp, bias: bp, outChannels: outChannels, running: running,
                                 scale: sp, shift: tp, epsilon: epsilon)
                    }
                }
            }
        }
        return (w, b)
    }
}

/// Calls `body` with the array's buffer, or nil.
@inline(__always)
func withOptionalBuffer<R>(_ array: [Float]?, _ body: (UnsafeBufferPointer<Float>?) throws -> R) rethrows -> R {
    if let array { return try array.withUnsafeBufferPointer { try body($0) } }
    return try body(nil)
}
