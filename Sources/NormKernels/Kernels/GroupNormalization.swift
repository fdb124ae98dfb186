/// Group normalization (PyTorch `F.group_norm`): the C channels form G groups of
/// C/G consecutive channels; statistics per (n, g) over (C/G)·H·W values, affine per channel.
/// ```
/// y[n, c, h, w] = (x − μ[n, g(c)]) / √(σ²[n, g(c)] + ε) · γ[c] + β[c]      σ² biased
/// ```
/// G = 1 is LayerNorm over C·H·W with per-channel affine; G = C is InstanceNorm.
///
/// **Memory passes**: reads `x` twice (statistics, normalization; the second from
/// cache when one sample's group — NCHW — or one sample — NHWC — fits in L2), writes
/// `y` once. In place is allowed.
public struct GroupNormalization: Sendable {
    public let shape: TensorShape
    public let groups: Int
    public let epsilon: Float
    public let threading: Threading

    public init(shape: TensorShape, groups: Int, epsilon: Float = 1e-5, threading: Threading = .default) throws {
        try shape.validate("shape")
        try Check.positive(groups, "groups")
        guard shape.c % groups == 0 else { throw NormError.groupsDoNotDivideChannels(groups: groups, channels: shape.c) }
        try Check.epsilon(epsilon)
        self.shape = shape
        self.groups = groups
        self.epsilon = epsilon
        self.threading = threading
    }

    public func plan() -> PlanDescription { groupedPlan(shape: shape, groupSize: shape.c / groups, threading: threading) }

    /// Normalizes; returns mean and 1/σ per (n, g), n-major, for backward.
    @discardableResult
    public func forward(
        input: UnsafeBufferPointer<Float>, output: UnsafeMutableBufferPointer<Float>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try Check.length(input.count, shape.count, "input")
        try Check.length(output.count, shape.count, "output")
        try Check.aliasing(input, output, "output")
        try Check.length(scale, shape.c, "scale (γ)")
        try Check.length(bias, shape.c, "bias (β)")
        let x = try Check.base(input, "input"), y = try Check.base(output, "output")
        if shape.spatial == 1 {
            return featureVectors(x, y, scale: scale?.baseAddress, bias: bias?.baseAddress)
        }
        let slots = shape.n * groups, size = shape.c / groups, channels = shape.c, G = groups, eps = epsilon
        let mean = SlotBuffer(count: slots, initial: 0.0), invStd = SlotBuffer(count: slots, initial: 0.0)
        let table = CoefficientTable(count: shape.n * shape.c, streaming: prefersStreamingStores(elements: shape.count, output: y, inputs: x))
        defer { mean.deallocate(); invStd.deallocate(); table.deallocate() }
        groupedNormalize(shape: shape, groupSize: size, input: x, output: y, table: table, threading: threading) { slot, m in
            mean[slot] = m.mean
            invStd[slot] = inverseStandardDeviation(m.biasedVariance, eps)
            let n = slot / G, first = (slot - n * G) * size
            for c in first..<(first + size) {
                table[n * channels + c] = AffineCoefficients(
                    mean: m.mean, invStd: invStd[slot],
                    gamma: Double(scale?[c] ?? 1), beta: Double(bias?[c] ?? 0))
            }
        }
        return SavedStatistics(mean: mean.array, invStd: invStd.array)
    }

    /// H·W = 1 (GroupNorm over feature vectors [N, C]): each (n, g) group is one
    /// row of C/G values, normalized as LayerNorm normalizes a row, with γ and β
    /// read at the group's first channel. The general path would build a
    /// coefficient per (n, c) — as many as there are values — which cost more
    /// than the normalization itself.
    private func featureVectors(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                scale gamma: UnsafePointer<Float>?, bias beta: UnsafePointer<Float>?) -> SavedStatistics {
        let size = shape.c / groups, G = groups
        return normalizeRows(x, y, rows: shape.n * groups, features: size, epsilon: epsilon, threading: threading,
                             gamma: gamma, beta: beta, affineOffset: { ($0 % G) * size })
    }
}
