// BatchNorm + add + ReLU (issue 21), the ResNet block's tail in one pass:
//
//     y = relu(BN(x) + identity)          (fusedReLU: true)
//     y = BN(x) + identity                (fusedReLU: false)
//
// The add is an epilogue of BatchNorm's output loops (`ResidualInput` in
// `Apply.swift`): each output value is BatchNorm's Float32 result, plus
// identity in one Float32 add, then the ReLU. So the fused output equals, bit for
// bit, our unfused sequence `v = BN(x)` (fusedReLU off), `v += identity`,
// `max(v, 0)`, for every layout and thread count. Statistics, saved statistics
// and the running-statistics update are BatchNorm's own: the identity enters
// only the output.
//
// Backward: with u = BN(x) + identity and y = relu(u), ∂y/∂u = [y > 0], so
//     d identity = g = dy masked where y ≤ 0 (the forward output is the mask,
//                      as for fusedReLU alone)
//     dx, dγ, dβ     = BatchNorm's fused-ReLU backward with that same g.
// gradIdentity is written by BatchNorm's sums pass, the one that already reads
// x, dy (and y) (`channelPasses`, block by block), and the dx pass then reads it
// as an already masked dy, without the mask: x, dy (, y) once and g written,
// then x and g; the same g bit for bit. Without ReLU g is dy itself, copied as
// bit patterns. A separate pass copies or masks dy (`writeGradIdentity`) when
// only gradIdentity is wanted, and without ReLU on the short-runs path (its
// sums take eight runs at a time only without a store); in place without ReLU
// there is nothing to write. gradIdentity may be gradOutput (in place);
// gradInput may then still be x or y.

extension BatchNormalization {
    /// Training forward fused with a residual add: `y = relu(BN(x) + identity)`
    /// (ReLU only when ``fusedReLU``), with the batch's statistics.
    ///
    /// Statistics, the returned ``SavedStatistics`` and the update of `running`
    /// are exactly those of
    /// ``forwardTraining(input:output:scale:bias:running:)-(UnsafeBufferPointer<Float>,_,_,_,_)``;
    /// the output is bitwise equal to BatchNorm without ReLU, then `+ identity` and
    /// `max(·, 0)` in Float32, for any thread count.
    ///
    /// **Memory passes**: as the plain forward, plus one read of `identity` in the
    /// output pass.
    ///
    /// **Aliasing**: `output` may be exactly `input` or exactly `identity` (in
    /// place over either); any other overlap of `output` throws. `input` and
    /// `identity` may share memory (both are only read).
    ///
    /// Throws before writing anything on a wrong length (`identity` included), an
    /// overlap, a mismatched `running`, or N·H·W = 1.
    @discardableResult
    public func forwardTraining(
        input: UnsafeBufferPointer<Float>, identity: UnsafeBufferPointer<Float>,
        output: UnsafeMutableBufferPointer<Float>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try training(input: input, identity: identity, output: output, scale: scale, bias: bias, running: running)
    }

    /// Inference forward fused with a residual add: `y = relu(BN(x) + identity)`
    /// (ReLU only when ``fusedReLU``) with `running`'s statistics: one read of `x`
    /// and of `identity`, one write of `y`. Same aliasing rules and checks as
    /// ``forwardTraining(input:identity:output:scale:bias:running:)-(UnsafeBufferPointer<Float>,_,_,_,_,_)``.
    public func forwardInference(
        input: UnsafeBufferPointer<Float>, identity: UnsafeBufferPointer<Float>,
        output: UnsafeMutableBufferPointer<Float>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try inference(input: input, identity: identity, output: output, scale: scale, bias: bias, running: running)
    }

    /// Gradients of the fused training forward: dx, dγ, dβ as
    /// ``backwardTraining(input:gradOutput:saved:scale:output:gradInput:gradScale:gradBias:)-(UnsafeBufferPointer<Float>,_,_,_,_,_,_,_)``
    /// (with ``fusedReLU``, masked by the forward output passed as `output`), and
    /// `gradIdentity` = dy where y > 0, else 0 (= dy without ``fusedReLU``).
    ///
    /// **Aliasing**: `gradIdentity` may be exactly `gradOutput` (in place); it must
    /// not otherwise share memory with any input or gradient buffer. The other
    /// rules are the plain backward's. Throws before writing anything.
    ///
    /// **Memory passes**: the plain (fused-ReLU) backward's passes, its sums pass
    /// also writing `gradIdentity` and its dx pass reading that instead of `dy`
    /// (and `y`); without ``fusedReLU`` on NCHW planes shorter than a few vectors
    /// (BatchNorm's short-runs path), the plain backward's plus one pass copying
    /// `dy` into `gradIdentity` (none in place).
    public func backwardTraining(
        input: UnsafeBufferPointer<Float>, gradOutput: UnsafeBufferPointer<Float>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        output: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float>? = nil,
        gradIdentity: UnsafeMutableBufferPointer<Float>?,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        // The element-generic body (`BatchNormalization+HalfPrecision.swift`), on Float.
        try backwardTrainingElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale, output: output,
                                     gradInput: gradInput, gradIdentity: gradIdentity, gradScale: gradScale,
                                     gradBias: gradBias)
    }

    /// Gradients of the fused inference forward: the plain inference backward's
    /// dx, dγ, dβ, and `gradIdentity` = dy where y > 0 (dy without ``fusedReLU``).
    /// Same aliasing rules and checks as
    /// ``backwardTraining(input:gradOutput:saved:scale:output:gradInput:gradIdentity:gradScale:gradBias:)-(UnsafeBufferPointer<Float>,_,_,_,_,_,_,_,_)``.
    public func backwardInference(
        input: UnsafeBufferPointer<Float>, gradOutput: UnsafeBufferPointer<Float>,
        running: RunningStatistics, scale: UnsafeBufferPointer<Float>? = nil,
        output: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float>? = nil,
        gradIdentity: UnsafeMutableBufferPointer<Float>?,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradBias: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardInferenceElements(input: input, gradOutput: gradOutput, running: running, scale: scale,
                                      output: output, gradInput: gradInput, gradIdentity: gradIdentity,
                                      gradScale: gradScale, gradBias: gradBias)
    }

    /// Where BatchNorm's sums pass writes d identity (file comment): gradIdentity,
    /// or nil when a separate pass does it (`writeGradIdentity`) or, in place
    /// without ReLU, nothing needs writing.
    func sumsPassIdentity<E: NormElement>(
        _ gradIdentity: UnsafeMutableBufferPointer<E>?, dy: UnsafePointer<E>, mask: UnsafePointer<E>?
    ) -> UnsafeMutablePointer<E>? {
        guard let g = gradIdentity?.baseAddress else { return nil }
        if mask != nil { return g }
        if UnsafePointer(g) == dy { return nil }
        if case .shortRuns = paths.path { return nil }
        return g
    }

    /// `gradIdentity[i] = mask[i] ≤ 0 ? 0 : dy[i]` (the predicate of the fused-ReLU
    /// backward's g, so NaN in y keeps dy), or a copy of dy without a mask; in
    /// chunks of `ResidualGradient.chunk` values, each written by one worker.
    /// Returns what the BatchNorm backward reads next: gradIdentity and no mask
    /// once written, else dy and the mask.
    func writeGradIdentity<E: NormElement>(
        _ gradOutput: UnsafeBufferPointer<E>, mask: UnsafePointer<E>?,
        _ gradIdentity: UnsafeMutableBufferPointer<E>?
    ) throws -> (dy: UnsafePointer<E>, mask: UnsafePointer<E>?) {
        let dy = try Check.base(gradOutput, "gradOutput")
        guard let gradIdentity, let dst = gradIdentity.baseAddress else { return (dy, mask) }
        if mask == nil && UnsafePointer(dst) == dy { return (dy, nil) }
        let count = shape.count, chunk = ResidualGradient.chunk
        Parallel.forEach(count: (count + chunk - 1) / chunk, elementsPerItem: chunk, threading: threading) { range in
            for k in range {
                let o = k * chunk
                ResidualGradient.mask(dy + o, mask.map { $0 + o }, dst + o, min(chunk, count - o))
            }
        }
        return (UnsafePointer(dst), nil)
    }
}

/// The d identity pass of BatchNorm + add + ReLU.
enum ResidualGradient {
    /// Values per parallel item (64 KiB of each stream).
    static let chunk = 16_384

    /// `dst[i] = mask[i] ≤ 0 ? 0 : dy[i]` (`dy[i]` without a mask); `dst` may be `dy`.
    /// 16-bit values are masked as bit patterns: exact, no rounding.
    static func mask<E: NormElement>(_ dy: UnsafePointer<E>, _ mask: UnsafePointer<E>?,
                                     _ dst: UnsafeMutablePointer<E>, _ n: Int) {
        guard let mask else {
            if UnsafePointer(dst) != dy { dst.update(from: dy, count: n) }
            return
        }
        var i = 0
        while i + 8 <= n {
            var d = E.load8(dy + i)
            d.replace(with: F8(), where: E.load8(mask + i) .<= F8())
            E.store8(d, dst + i)
            i += 8
        }
        while i < n {
            dst[i] = E.widen(mask[i]) <= 0 ? E.narrow(0) : dy[i]
            i += 1
        }
    }
}
