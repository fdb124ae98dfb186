/// Adaptive instance normalization (AdaIN, Huang & Belongie 2017): the content's
/// per-(n, c) statistics are replaced by the style's.
/// ```
/// out[n, c, ·] = σ_y[n, c] · (x[n, c, ·] − μ_x[n, c]) / σ_x[n, c] + μ_y[n, c]
/// σ = √(var + ε), var biased (÷ H·W) by default, ε inside both square roots
/// ```
/// Content and style share N and C; their spatial sizes and layouts may differ.
/// `unbiasedVariance: true` uses ÷ (H·W − 1) instead, as the widely copied
/// reference implementation (`calc_mean_std` with `torch.var`) does.
///
/// **Memory passes**: reads the style once, the content twice (the second from
/// cache when an instance fits in L2), writes the output once. The output may be
/// the content buffer (in place).
public struct AdaptiveInstanceNormalization: Sendable {
    public let content: TensorShape
    public let style: TensorShape
    public let epsilon: Float
    public let unbiasedVariance: Bool
    public let threading: Threading
    /// The channel-groups plans (groups of one channel) of the content and the style.
    let contentPlan: ChannelGroupsPlan
    let stylePlan: ChannelGroupsPlan

    public init(content: TensorShape, style: TensorShape, epsilon: Float = 1e-5,
                unbiasedVariance: Bool = false, threading: Threading = .default) throws {
        try content.validate("content")
        try style.validate("style")
        guard content.n == style.n else {
            throw NormError.shapeMismatch(argument: "style.n", expected: "\(content.n) (content.n)", actual: "\(style.n)")
        }
        guard content.c == style.c else {
            throw NormError.shapeMismatch(argument: "style.c", expected: "\(content.c) (content.c)", actual: "\(style.c)")
        }
        try Check.epsilon(epsilon)
        if unbiasedVariance {
            if content.spatial < 2 { throw NormError.singleValuePerChannel(argument: "content (H·W)", valuesPerChannel: content.spatial) }
            if style.spatial < 2 { throw NormError.singleValuePerChannel(argument: "style (H·W)", valuesPerChannel: style.spatial) }
        }
        self.content = content
        self.style = style
        self.epsilon = epsilon
        self.unbiasedVariance = unbiasedVariance
        self.threading = threading
        contentPlan = ChannelGroupsPlan(shape: content, groupSize: 1, threading: threading)
        stylePlan = ChannelGroupsPlan(shape: style, groupSize: 1, threading: threading)
    }

    /// How the content's forward runs for this shape and threading (chosen at `init`).
    public func plan() -> PlanDescription { contentPlan.description }

    /// Per-(n, c) statistics saved for backward: the content's mean and 1/σ_x, and the
    /// style's mean and σ_y.
    public struct Saved: Sendable, Hashable {
        public var contentMean: [Double]
        public var contentInvStd: [Double]
        public var styleMean: [Double]
        public var styleStd: [Double]

        /// Restores saved statistics (e.g. from a checkpoint) for `backward`; each
        /// array holds one value per (n, c), n-major. Lengths are checked by `backward`.
        public init(contentMean: [Double], contentInvStd: [Double], styleMean: [Double], styleStd: [Double]) {
            self.contentMean = contentMean
            self.contentInvStd = contentInvStd
            self.styleMean = styleMean
            self.styleStd = styleStd
        }
    }

    @discardableResult
    public func forward(
        content input: UnsafeBufferPointer<Float>, style styleInput: UnsafeBufferPointer<Float>,
        output: UnsafeMutableBufferPointer<Float>
    ) throws -> Saved {
        try forwardElements(content: input, style: styleInput, output: output)
    }

    /// The forward of every element type (the 16-bit overloads:
    /// `InstanceNormalization+HalfPrecision.swift`): validation, then the
    /// channel-groups engine specialized for `E`.
    @inline(__always)
    func forwardElements<E: NormElement>(
        content input: UnsafeBufferPointer<E>, style styleInput: UnsafeBufferPointer<E>,
        output: UnsafeMutableBufferPointer<E>
    ) throws -> Saved {
        try Check.length(input.count, content.count, "content")
        try Check.length(styleInput.count, style.count, "style")
        try Check.length(output.count, content.count, "output")
        // `Check.forwardBuffers`' rule, with the style (a tensor of E, not a Float32 parameter) as the parameter.
        try Check.buffers(writes: [("output", MemorySpan(output))],
                          reads: [("content", MemorySpan(input)), ("style", MemorySpan(styleInput))],
                          inPlace: [("output", "content")], bareNameAgainst: "content")
        let x = try Check.base(input, "content"), s = try Check.base(styleInput, "style")
        let y = try Check.base(output, "output")
        let slots = content.n * content.c, eps = epsilon, unbiased = unbiasedVariance
        func variance(_ m: Moments) -> Double { unbiased ? m.unbiasedVariance : m.biasedVariance }
        let workspace = contentPlan.workspace.take()
        defer { contentPlan.workspace.recycle(workspace) }
        let styleMean = SlotBuffer(count: slots, initial: 0.0, in: workspace)
        let styleStd = SlotBuffer(count: slots, initial: 0.0, in: workspace)
        let contentMean = SlotBuffer(count: slots, initial: 0.0, in: workspace)
        let contentInvStd = SlotBuffer(count: slots, initial: 0.0, in: workspace)
        let table = CoefficientTable(count: slots, streaming: contentPlan.store.streaming(output: y, reading: x, s),
                                     in: workspace)
        normalizeChannelGroups(stylePlan, input: s, output: nil, table: nil, workspace: workspace) { slot, m in
            styleMean[slot] = m.mean
            styleStd[slot] = (variance(m) + Double(eps)).squareRoot()
        }
        normalizeChannelGroups(contentPlan, input: x, output: y, table: table, workspace: workspace) { slot, m in
            contentMean[slot] = m.mean
            contentInvStd[slot] = inverseStandardDeviation(variance(m), eps)
            table[slot] = AffineCoefficients(mean: m.mean, invStd: contentInvStd[slot],
                                             gamma: styleStd[slot], beta: styleMean[slot])
        }
        return Saved(contentMean: contentMean.array, contentInvStd: contentInvStd.array,
                     styleMean: styleMean.array, styleStd: styleStd.array)
    }
}
