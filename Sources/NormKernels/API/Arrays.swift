// Array conveniences over the pointer API: each allocates the output array and
// forwards to the zero-copy entry point, so the semantics (and errors) are the same.

@inline(__always)
func makeOutput(_ count: Int, _ body: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows -> [Float] {
    try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
        try body(buffer)
        initialized = count
    }
}

extension BatchNormalization {
    @discardableResult
    public func forwardTraining(_ input: [Float], scale: [Float]? = nil, bias: [Float]? = nil,
                                running: RunningStatistics? = nil) throws -> (output: [Float], saved: SavedStatistics) {
        var saved = SavedStatistics(mean: [], invStd: [])
        let output = try makeOutput(input.count) { out in
            try withBuffers(input, scale, bias) { x, g, b in
                saved = try forwardTraining(input: x, output: out, scale: g, bias: b, running: running)
            }
        }
        return (output, saved)
    }

    public func forwardInference(_ input: [Float], scale: [Float]? = nil, bias: [Float]? = nil,
                                 running: RunningStatistics) throws -> [Float] {
        try makeOutput(input.count) { out in
            try withBuffers(input, scale, bias) { x, g, b in
                try forwardInference(input: x, output: out, scale: g, bias: b, running: running)
            }
        }
    }
}

extension InstanceNormalization {
    @discardableResult
    public func forwardTraining(_ input: [Float], scale: [Float]? = nil, bias: [Float]? = nil,
                                running: RunningStatistics? = nil) throws -> (output: [Float], saved: SavedStatistics) {
        var saved = SavedStatistics(mean: [], invStd: [])
        let output = try makeOutput(input.count) { out in
            try withBuffers(input, scale, bias) { x, g, b in
                saved = try forwardTraining(input: x, output: out, scale: g, bias: b, running: running)
            }
        }
        return (output, saved)
    }

    public func forwardInference(_ input: [Float], scale: [Float]? = nil, bias: [Float]? = nil,
                                 running: RunningStatistics) throws -> [Float] {
        try makeOutput(input.count) { out in
            try withBuffers(input, scale, bias) { x, g, b in
                try forwardInference(input: x, output: out, scale: g, bias: b, running: running)
            }
        }
    }
}

extension LayerNormalization {
    public func forward(_ input: [Float], scale: [Float]? = nil, bias: [Float]? = nil) throws
        -> (output: [Float], saved: SavedStatistics) {
        var saved = SavedStatistics(mean: [], invStd: [])
        let output = try makeOutput(input.count) { out in
            try withBuffers(input, scale, bias) { x, g, b in
                saved = try forward(input: x, output: out, scale: g, bias: b)
            }
        }
        return (output, saved)
    }
}

extension GroupNormalization {
    public func forward(_ input: [Float], scale: [Float]? = nil, bias: [Float]? = nil) throws
        -> (output: [Float], saved: SavedStatistics) {
        var saved = SavedStatistics(mean: [], invStd: [])
        let output = try makeOutput(input.count) { out in
            try withBuffers(input, scale, bias) { x, g, b in
                saved = try forward(input: x, output: out, scale: g, bias: b)
            }
        }
        return (output, saved)
    }
}

extension RMSNormalization {
    public func forward(_ input: [Float], scale: [Float]? = nil) throws -> (output: [Float], saved: SavedStatistics) {
        var saved = SavedStatistics(mean: [], invStd: [])
        let output = try makeOutput(input.count) { out in
            try input.withUnsafeBufferPointer { x in
                try withOptionalBuffer(scale) { g in saved = try forward(input: x, output: out, scale: g) }
            }
        }
        return (output, saved)
    }
}

extension AdaptiveInstanceNormalization {
    public func forward(content: [Float], style: [Float]) throws -> (output: [Float], saved: Saved) {
        var saved: Saved?
        let output = try makeOutput(content.count) { out in
            try content.withUnsafeBufferPointer { x in
                try style.withUnsafeBufferPointer { s in saved = try forward(content: x, style: s, output: out) }
            }
        }
        return (output, saved!)
    }
}

extension WeightNormalization {
    public func forward(v: [Float], g: [Float]) throws -> (weight: [Float], norms: [Double]) {
        var norms: [Double] = []
        let w = try makeOutput(v.count) { out in
            try v.withUnsafeBufferPointer { vp in
                try g.withUnsafeBufferPointer { gp in norms = try forward(v: vp, g: gp, output: out) }
            }
        }
        return (w, norms)
    }
}

/// Calls `body` with an array's buffer and two optional ones.
@inline(__always)
func withBuffers<R>(
    _ a: [Float], _ b: [Float]?, _ c: [Float]?,
    _ body: (UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>?, UnsafeBufferPointer<Float>?) throws -> R
) rethrows -> R {
    try a.withUnsafeBufferPointer { a in
        try withOptionalBuffer(b) { b in try withOptionalBuffer(c) { c in try body(a, b, c) } }
    }
}
