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
    /// The forward's and the backward's paths for this shape and threading.
    let paths: InstanceNormPlan
    /// Inference normalizes every sample with the same per-channel coefficients:
    /// BatchNorm inference, built once (its plan owns that path's workspace).
    let inference: BatchNormalization

    public init(shape: TensorShape, epsilon: Float = 1e-5, threading: Threading = .default) throws {
        try shape.validate("shape")
        try Check.epsilon(epsilon)
        self.shape = shape
        self.epsilon = epsilon
        self.threading = threading
        paths = InstanceNormPlan(shape: shape, threading: threading)
        inference = try BatchNormalization(shape: shape, epsilon: epsilon, threading: threading)
    }

    /// How the training forward runs for this shape and threading (chosen at `init`).
    public func plan() -> PlanDescription {
        switch paths.forward {
        case .tinyChannels:
            return ChunkSchedule.plan(units: shape.n * shape.c, length: shape.spatial, naming: "instances",
                                  lanes: "values C apart, 8 channels per vector", threading: threading)
        case .tinyUnits:
            return ChunkSchedule.plan(units: shape.n * shape.c, length: shape.spatial, naming: "instances", threading: threading)
        case .channelGroups:
            return paths.channelGroups.description
        }
    }

    /// NCHW with H·W ≤ `TinyUnits.maxLength`: instances are a few contiguous values
    /// each, taken 8 at a time in SIMD lanes (`TinyUnits`).
    static func usesTinyUnits(_ shape: TensorShape) -> Bool {
        shape.layout == .nchw && shape.spatial > 1 && shape.spatial <= TinyUnits.maxLength
    }

    private func validate<E: NormElement>(_ input: UnsafeBufferPointer<E>, _ output: UnsafeMutableBufferPointer<E>,
                                          _ scale: UnsafeBufferPointer<Float>?, _ bias: UnsafeBufferPointer<Float>?,
                                          _ running: RunningStatistics?) throws {
        try Check.length(input.count, shape.count, "input")
        try Check.length(output.count, shape.count, "output")
        try Check.length(scale, shape.c, "scale (γ)")
        try Check.length(bias, shape.c, "bias (β)")
        try Check.forwardBuffers(input: ("input", input), output: ("output", output),
                                 parameters: ("scale (γ)", scale), ("bias (β)", bias))
        try RunningStatistics.validate(running, channels: shape.c)
    }

    /// Normalizes each instance with its own statistics; updates `running` if given.
    /// Returns mean and 1/σ per (n, c), n-major. Throws if H·W = 1 (one value per instance).
    @discardableResult
    public func forwardTraining(
        input: UnsafeBufferPointer<Float>, output: UnsafeMutableBufferPointer<Float>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try forwardTrainingElements(input: input, output: output, scale: scale, bias: bias, running: running)
    }

    /// The training forward of every element type (the 16-bit overloads:
    /// `InstanceNormalization+HalfPrecision.swift`): validation, then the path
    /// specialized for `E`.
    @inline(__always)
    func forwardTrainingElements<E: NormElement>(
        input: UnsafeBufferPointer<E>, output: UnsafeMutableBufferPointer<E>,
        scale: UnsafeBufferPointer<Float>?, bias: UnsafeBufferPointer<Float>?, running: RunningStatistics?
    ) throws -> SavedStatistics {
        try validate(input, output, scale, bias, running)
        guard shape.spatial > 1 else {
            throw NormError.singleValuePerChannel(argument: "input (H·W per instance)", valuesPerChannel: shape.spatial)
        }
        let x = try Check.base(input, "input"), y = try Check.base(output, "output")
        let pool = paths.channelGroups.workspace, workspace = pool.take()
        defer { pool.recycle(workspace) }
        switch paths.forward {
        case .tinyUnits:
            return tinyForwardTraining(x, y, gamma: scale?.baseAddress, beta: bias?.baseAddress, running: running,
                                       workspace: workspace)
        case .tinyChannels:
            let kept: UnsafeMutablePointer<Moments>? = running != nil
                ? workspace.take(Moments.self, count: shape.n * shape.c) : nil
            let saved = tinyChannelsForwardTraining(x, y, gamma: scale?.baseAddress, beta: bias?.baseAddress, kept: kept)
            let updated = kept.map { fold(running!, $0, workspace: workspace) } ?? false
            return SavedStatistics(mean: saved.mean, invStd: saved.invStd, runningStatisticsUpdated: updated)
        case .channelGroups:
            return channelGroupsForwardTraining(x, y, gamma: scale?.baseAddress, beta: bias?.baseAddress, running: running,
                                                workspace: workspace)
        }
    }

    /// The channel-groups path (groups of one channel): per-(n, c) moments, one
    /// coefficient per (n, c) with γ and β folded in.
    private func channelGroupsForwardTraining<E: NormElement>(_ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>,
                                              gamma scale: UnsafePointer<Float>?, beta bias: UnsafePointer<Float>?,
                                              running: RunningStatistics?, workspace: Arena) -> SavedStatistics {
        let plan = paths.channelGroups
        let slots = shape.n * shape.c, channels = shape.c, eps = epsilon
        let moments = SlotBuffer(count: slots, initial: Moments.empty, in: workspace)
        let table = CoefficientTable(count: slots, streaming: plan.store.streaming(output: y, reading: x),
                                     in: workspace)
        normalizeChannelGroups(plan, input: x, output: y, table: table, workspace: workspace) { slot, m in
            moments[slot] = m
            let c = slot % channels
            table[slot] = AffineCoefficients(
                mean: m.mean, invStd: inverseStandardDeviation(m.biasedVariance, eps),
                gamma: Double(scale?[c] ?? 1), beta: Double(bias?[c] ?? 0))
        }
        let updated = running.map { fold($0, moments.base, workspace: workspace) } ?? false
        return SavedStatistics(mean: (0..<slots).map { moments[$0].mean },
                               invStd: (0..<slots).map { inverseStandardDeviation(moments[$0].biasedVariance, eps) },
                               runningStatisticsUpdated: updated)
    }

    /// PyTorch's running-statistics update: the batch mean of per-instance
    /// statistics; population mode merges every instance's (count, mean, M2)
    /// into its channel. Returns whether the statistics were updated.
    private func fold(_ running: RunningStatistics, _ all: UnsafePointer<Moments>, workspace: Arena) -> Bool {
        let n = shape.n, channels = shape.c
        let merged = workspace.take(Moments.self, count: channels)
        let means = workspace.take(Double.self, count: channels), vars = workspace.take(Double.self, count: channels)
        means.initialize(repeating: 0, count: channels)
        vars.initialize(repeating: 0, count: channels)
        RowTree.forEachColumn(all, stride: channels, rows: n, columns: 0..<channels) { c, m in merged[c] = m }
        for c in 0..<channels {
            for i in 0..<n {
                means[c] += all[i * channels + c].mean / Double(n)
                vars[c] += all[i * channels + c].unbiasedVariance / Double(n)
            }
        }
        return running.fold(batch: UnsafeBufferPointer(start: merged, count: channels), meanOverride: means,
                            unbiasedVarianceOverride: vars)
    }

    /// NCHW with H·W ≤ `TinyUnits.maxLength`: moments of 8 instances at a time,
    /// then each instance's outputs while its values are in L1, `y = (x − p)·s + t`
    /// with γ, β folded into s and t. Instances are independent, so chunks of
    /// `ChunkSchedule.chunk` go to workers. Mean and 1/σ go straight into the saved
    /// arrays, and per-instance moments are kept only for running statistics:
    /// with ~4 values per instance, side buffers cost as much as the data.
    private func tinyForwardTraining<E: NormElement>(_ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>,
                                     gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
                                     running: RunningStatistics?, workspace: Arena) -> SavedStatistics {
        let units = shape.n * shape.c, length = shape.spatial, channels = shape.c, eps = epsilon
        let kept: UnsafeMutablePointer<Moments>? = running != nil ? workspace.take(Moments.self, count: units) : nil
        let saved = SavedStatistics.filling(count: units) { meanBase, invBase in
            ChunkSchedule.forEachChunk(units: units, valuesPerUnit: length, threading: threading) { chunk in
                withScratch(of: Moments.self, capacity: 8) { eight in
                    let m8 = eight.baseAddress!
                    for first in stride(from: chunk.lowerBound, to: chunk.upperBound, by: 8) {
                        TinyUnits.moments8(x, first: first, last: chunk.upperBound - 1, length: length, into: m8)
                        for u in first..<min(chunk.upperBound, first + 8) {
                            let m = m8[u - first], c = u % channels
                            let r = inverseStandardDeviation(m.biasedVariance, eps)
                            (meanBase + u).initialize(to: m.mean)
                            (invBase + u).initialize(to: r)
                            kept?[u] = m
                            let k = AffineCoefficients(mean: m.mean, invStd: r,
                                                       gamma: Double(gamma?[c] ?? 1), beta: Double(beta?[c] ?? 0))
                            TinyUnits.normalize(x + u * length, y + u * length, length, k)
                        }
                    }
                }
            }
        }
        let updated = kept.map { fold(running!, $0, workspace: workspace) } ?? false
        return SavedStatistics(mean: saved.mean, invStd: saved.invStd, runningStatisticsUpdated: updated)
    }

    /// Normalizes with running statistics (PyTorch eval mode with `track_running_stats`).
    public func forwardInference(
        input: UnsafeBufferPointer<Float>, output: UnsafeMutableBufferPointer<Float>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try forwardInferenceElements(input: input, output: output, scale: scale, bias: bias, running: running)
    }

    /// The inference forward of every element type.
    @inline(__always)
    func forwardInferenceElements<E: NormElement>(
        input: UnsafeBufferPointer<E>, output: UnsafeMutableBufferPointer<E>,
        scale: UnsafeBufferPointer<Float>?, bias: UnsafeBufferPointer<Float>?, running: RunningStatistics
    ) throws {
        try validate(input, output, scale, bias, running)
        let x = try Check.base(input, "input"), y = try Check.base(output, "output")
        // Same coefficients for every sample: this is BatchNorm inference.
        try inference.inference(input: UnsafeBufferPointer(start: x, count: shape.count), identity: nil,
                                output: UnsafeMutableBufferPointer(start: y, count: shape.count),
                                scale: scale, bias: bias, running: running)
    }
}

/// InstanceNorm's paths for a shape, forward (training) and backward.
struct InstanceNormPlan: Sendable {
    enum Path: Sendable {
        /// NCHW with H·W ≤ `TinyUnits.maxLength`: 8 instances per vector (`TinyUnits`).
        case tinyUnits
        /// NHWC small maps, C % 8 = 0: 8 channels per vector
        /// (`InstanceNormalization+TinyChannels.swift`).
        case tinyChannels
        /// The channel-groups engine with groups of one channel.
        case channelGroups
    }

    let forward: Path
    let backward: Path
    let channelGroups: ChannelGroupsPlan

    init(shape: TensorShape, threading: Threading) {
        func path(backward: Bool) -> Path {
            if InstanceNormalization.usesTinyUnits(shape) { return .tinyUnits }
            if InstanceNormalization.usesTinyChannels(shape, backward: backward) { return .tinyChannels }
            return .channelGroups
        }
        forward = path(backward: false)
        backward = path(backward: true)
        channelGroups = ChannelGroupsPlan(shape: shape, groupSize: 1, threading: threading)
    }
}
