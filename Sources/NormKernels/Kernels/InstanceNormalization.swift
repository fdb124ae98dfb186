/// Instance normalization (PyTorch `F.instance_norm`, `nn.InstanceNorm2d`):
/// statistics per (n, c) over H·W, optional per-channel affine.
/// ```
/// y[n, c, h, w] = (x − μ[n, c]) / √(σ²[n, c] + ε) · γ[c] + β[c]      σ² biased
/// ```
/// With running statistics (PyTorch's `track_running_stats`), training updates
/// them with the batch average of the per-instance statistics, exactly as
/// PyTorch: `running_mean ← (1 − m)·running_mean + m·mean_n μ[n, c]` and the
/// variance likewise with the unbiased per-instance variances; inference then
/// normalizes with them.
///
/// **Memory passes**: training reads `x` twice (the second from cache when an
/// instance — NCHW — or a sample — NHWC — fits in L2) and writes `y` once;
/// inference reads `x` once and writes `y` once. In place is allowed.
public struct InstanceNormalization: Sendable {
    public let shape: TensorShape
    public let epsilon: Float
    public let threading: Threading

    public init(shape: TensorShape, epsilon: Float = 1e-5, threading: Threading = .default) throws {
        try shape.validate("shape")
        try Check.epsilon(epsilon)
        self.shape = shape
        self.epsilon = epsilon
        self.threading = threading
    }

    public func plan() -> PlanDescription { groupedPlan(shape: shape, groupSize: 1, threading: threading) }

    private func validate(_ input: UnsafeBufferPointer<Float>, _ output: UnsafeMutableBufferPointer<Float>,
                          _ scale: UnsafeBufferPointer<Float>?, _ bias: UnsafeBufferPointer<Float>?,
                          _ running: RunningStatistics?) throws {
        try Check.length(input.count, shape.count, "input")
        try Check.length(output.count, shape.count, "output")
        try Check.aliasing(input, output, "output")
        try Check.length(scale, shape.c, "scale (γ)")
        try Check.length(bias, shape.c, "bias (β)")
        if let running { try Check.length(running.channels, shape.c, "running statistics channels") }
    }

    /// Normalizes each instance with its own statistics; updates `running` if given.
    /// Returns mean and 1/σ per (n, c), n-major. Throws if H·W = 1 (one value per instance).
    @discardableResult
    public func forwardTraining(
        input: UnsafeBufferPointer<Float>, output: UnsafeMutableBufferPointer<Float>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try validate(input, output, scale, bias, running)
        guard shape.spatial > 1 else {
            throw NormError.singleValuePerChannel(argument: "input (H·W per instance)", valuesPerChannel: shape.spatial)
        }
        let x = try Check.base(input, "input"), y = try Check.base(output, "output")
        let slots = shape.n * shape.c, channels = shape.c, eps = epsilon
        let moments = SlotBuffer(count: slots, initial: Moments.empty)
        let table = CoefficientTable(count: slots, streaming: prefersStreamingStores(elements: shape.count, output: y, inputs: x))
        defer { moments.deallocate(); table.deallocate() }
        groupedNormalize(shape: shape, groupSize: 1, input: x, output: y, table: table, threading: threading) { slot, m in
            moments[slot] = m
            let c = slot % channels
            table[slot] = AffineCoefficients(
                mean: m.mean, invStd: inverseStandardDeviation(m.biasedVariance, eps),
                gamma: Double(scale?[c] ?? 1), beta: Double(bias?[c] ?? 0))
        }
        let all = moments.array
        var updated = false
        if let running {
            // PyTorch: the batch mean of per-instance statistics; population mode
            // merges every instance's (count, mean, M2) into its channel.
            let n = shape.n
            var merged = [Moments](repeating: .empty, count: channels)
            var means = [Double](repeating: 0, count: channels), vars = means
            for c in 0..<channels {
                merged[c] = Moments.treeMerge(count: n) { all[$0 * channels + c] }
                for i in 0..<n {
                    means[c] += all[i * channels + c].mean / Double(n)
                    vars[c] += all[i * channels + c].unbiasedVariance / Double(n)
                }
            }
            updated = running.fold(batch: merged, meanOverride: means, unbiasedVarianceOverride: vars)
        }
        return SavedStatistics(mean: all.map(\.mean),
                               invStd: all.map { inverseStandardDeviation($0.biasedVariance, eps) },
                               runningStatisticsUpdated: updated)
    }

    /// Normalizes with running statistics (PyTorch eval mode with `track_running_stats`).
    public func forwardInference(
        input: UnsafeBufferPointer<Float>, output: UnsafeMutableBufferPointer<Float>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try validate(input, output, scale, bias, running)
        let x = try Check.base(input, "input"), y = try Check.base(output, "output")
        // Same coefficients for every sample: this is BatchNorm inference.
        try BatchNormalization(shape: shape, epsilon: epsilon, threading: threading)
            .forwardInference(input: UnsafeBufferPointer(start: x, count: shape.count),
                              output: UnsafeMutableBufferPointer(start: y, count: shape.count),
                              scale: scale, bias: bias, running: running)
    }
}
