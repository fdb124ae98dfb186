/// Running (inference-time) mean and variance of a BatchNorm or InstanceNorm
/// layer, and the rule that updates them after each training batch.
///
/// As in PyTorch, `mean` starts at 0, `variance` at 1, and `variance` stores the
/// **unbiased** batch variance `n/(n − 1) · var` while the batch itself is
/// normalized with the biased one.
///
/// Update rules, for a batch with per-channel mean μ_B and unbiased variance σ²_B:
/// ```
/// .exponential(m):      running = (1 − m) · running + m · batch          (PyTorch momentum, default 0.1)
/// .cumulativeAverage:   k = batchesTracked + 1; running = (1 − 1/k) · running + (1/k) · batch
///                                                                        (PyTorch momentum=None)
/// .population:          exact statistics of every value seen so far: each batch's
///                       (count, mean, M2) is merged with Chan's formula in Float64;
///                       mean = population mean, variance = M2/(count − 1)
/// ```
///
/// **Non-finite batches.** If any channel of a batch has a non-finite mean or
/// variance (NaN or ±Inf in the input), the whole update is skipped: the running
/// values and `batchesTracked` stay as they were and `skippedUpdates` counts the
/// batch. The batch's output still carries the NaN, as PyTorch's would. PyTorch
/// instead writes the NaN into its running buffers, poisoning every later
/// inference; we refuse to.
public final class RunningStatistics: @unchecked Sendable {
    public enum Update: Sendable, Hashable {
        case exponential(momentum: Double)
        case cumulativeAverage
        case population
    }

    public let channels: Int
    public let update: Update
    /// Running mean per channel (Float32, as PyTorch's buffer).
    public var mean: [Float]
    /// Running unbiased variance per channel.
    public var variance: [Float]
    /// Batches folded in (PyTorch's `num_batches_tracked`).
    public private(set) var batchesTracked: Int = 0
    /// Batches refused because their statistics were not finite.
    public private(set) var skippedUpdates: Int = 0
    /// Population mode: exact (count, mean, M2) per channel in Float64.
    public private(set) var population: [Moments]

    /// - Parameters:
    ///   - channels: number of channels (C, or D for `[N, D]`), > 0.
    ///   - update: the update rule; momentum must be in [0, 1].
    ///   - mean, variance: initial values (default 0 and 1, as PyTorch).
    public init(channels: Int, update: Update = .exponential(momentum: 0.1),
                mean: [Float]? = nil, variance: [Float]? = nil) throws {
        try Check.positive(channels, "channels")
        if case let .exponential(m) = update, !(m >= 0 && m <= 1) { throw NormError.invalidMomentum(m) }
        if let mean { try Check.length(mean.count, channels, "running mean") }
        if let variance { try Check.length(variance.count, channels, "running variance") }
        self.channels = channels
        self.update = update
        self.mean = mean ?? Array(repeating: 0, count: channels)
        self.variance = variance ?? Array(repeating: 1, count: channels)
        self.population = Array(repeating: .empty, count: channels)
    }

    /// Folds one batch in. `batch[c]` holds channel c's batch moments; for
    /// InstanceNorm `instanceMean`/`instanceUnbiasedVariance` carry PyTorch's
    /// per-channel averages of the per-instance statistics instead.
    /// Returns false (and changes nothing but `skippedUpdates`) if any is non-finite.
    @discardableResult
    func fold(batch: [Moments], meanOverride: [Double]? = nil, unbiasedVarianceOverride: [Double]? = nil) -> Bool {
        let means = meanOverride ?? batch.map(\.mean)
        let vars = unbiasedVarianceOverride ?? batch.map(\.unbiasedVariance)
        for c in 0..<channels where !(means[c].isFinite && vars[c].isFinite) {
            skippedUpdates += 1
            return false
        }
        batchesTracked += 1
        switch update {
        case let .exponential(m):
            blend(means, vars, factor: m)
        case .cumulativeAverage:
            blend(means, vars, factor: 1 / Double(batchesTracked))
        case .population:
            for c in 0..<channels {
                population[c] = population[c].merged(with: batch[c])
                mean[c] = Float(population[c].mean)
                variance[c] = Float(population[c].unbiasedVariance)
            }
        }
        return true
    }

    private func blend(_ means: [Double], _ vars: [Double], factor: Double) {
        for c in 0..<channels {
            mean[c] = Float((1 - factor) * Double(mean[c]) + factor * means[c])
            variance[c] = Float((1 - factor) * Double(variance[c]) + factor * vars[c])
        }
    }
}
