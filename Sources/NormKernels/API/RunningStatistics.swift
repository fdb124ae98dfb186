import Foundation
import Synchronization

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
/// **Updates that would not be finite are refused.** If any channel's batch mean
/// or variance is not finite (NaN or ±Inf in the input), or the updated Float32
/// running value of any channel would not be finite (a finite batch of values
/// near 1e30 has a variance of ~1e60, past Float32's 3.4e38), the whole update is
/// skipped: the running values and `batchesTracked` stay as they were and
/// `skippedUpdates` counts the batch. The batch's own output is still computed
/// (with the NaN, if the input had one, as PyTorch's would). PyTorch instead
/// writes the NaN or ∞ into its running buffers, poisoning every later
/// inference; we refuse to.
///
/// **Thread safety.** One instance may be shared by any number of concurrent
/// calls (training beside training, training beside inference, folding): its
/// state lives behind a `Mutex`. A kernel takes a consistent snapshot of the
/// running values when it starts and folds its batch in with one locked update
/// when it ends, so concurrent training calls each count exactly once in
/// `batchesTracked` (their order is the order in which they finish).
///
/// **Lengths are checked at every call.** `mean` and `variance` can be reassigned,
/// with any length; a kernel given statistics whose arrays do not hold
/// `channels` values throws `NormError.lengthMismatch` ("running mean" or
/// "running variance") before it writes anything. `load(mean:variance:)` checks
/// at once.
public final class RunningStatistics: Sendable {
    public enum Update: Sendable, Hashable {
        case exponential(momentum: Double)
        case cumulativeAverage
        case population
    }

    /// Everything that changes, behind `state`'s lock.
    struct State: Sendable {
        var mean: [Float]
        var variance: [Float]
        var batchesTracked = 0
        var skippedUpdates = 0
        var population: [Moments]
    }

    public let channels: Int
    public let update: Update
    private let state: Mutex<State>

    /// - Parameters:
    ///   - channels: number of channels (C, or D for `[N, D]`), > 0, and at most what
    ///     this machine's memory holds at 32 bytes per channel (else `invalidArgument`).
    ///   - update: the update rule; momentum must be in [0, 1].
    ///   - mean: initial running mean (default 0, as PyTorch); `channels` finite values.
    ///   - variance: initial running variance (default 1); `channels` finite values ≥ 0.
    public init(channels: Int, update: Update = .exponential(momentum: 0.1),
                mean: [Float]? = nil, variance: [Float]? = nil) throws {
        try Check.positive(channels, "channels")
        // As every descriptor's element count: past 2⁴⁸ no buffer could hold them.
        guard channels <= Check.maxElements else { throw NormError.sizeOverflow(argument: "channels") }
        try Self.checkFits(channels: channels)
        if case let .exponential(m) = update, !(m >= 0 && m <= 1) { throw NormError.invalidMomentum(m) }
        if let mean { try Self.checkValues(mean, channels: channels, "running mean", nonNegative: false) }
        if let variance { try Self.checkValues(variance, channels: channels, "running variance", nonNegative: true) }
        self.channels = channels
        self.update = update
        self.state = Mutex(State(mean: mean ?? Array(repeating: 0, count: channels),
                                 variance: variance ?? Array(repeating: 1, count: channels),
                                 population: Array(repeating: .empty, count: channels)))
    }

    /// Running mean per channel (Float32, as PyTorch's buffer). Reading returns a
    /// snapshot; an assignment of the wrong length is reported by the next call
    /// that uses these statistics.
    public var mean: [Float] {
        get { state.withLock { $0.mean } }
        set { state.withLock { $0.mean = newValue } }
    }

    /// Running unbiased variance per channel (see `mean` on assignment).
    public var variance: [Float] {
        get { state.withLock { $0.variance } }
        set { state.withLock { $0.variance = newValue } }
    }

    /// Batches folded in (PyTorch's `num_batches_tracked`).
    public var batchesTracked: Int { state.withLock { $0.batchesTracked } }
    /// Batches refused because their statistics, or the updated running values,
    /// were not finite.
    public var skippedUpdates: Int { state.withLock { $0.skippedUpdates } }
    /// Population mode: exact (count, mean, M2) per channel in Float64.
    public var population: [Moments] { state.withLock { $0.population } }

    /// Replaces the running values (e.g. restoring a checkpoint) after checking
    /// them: `channels` finite values each, variances ≥ 0. `batchesTracked` is set
    /// too (PyTorch's `num_batches_tracked`, which `.cumulativeAverage` continues
    /// from). Population moments are reset to empty. Throws before changing anything.
    public func load(mean: [Float], variance: [Float], batchesTracked: Int = 0) throws {
        try Self.checkValues(mean, channels: channels, "running mean", nonNegative: false)
        try Self.checkValues(variance, channels: channels, "running variance", nonNegative: true)
        guard batchesTracked >= 0 else {
            throw NormError.invalidArgument(argument: "batchesTracked", reason: "must be ≥ 0, got \(batchesTracked)")
        }
        state.withLock {
            $0.mean = mean
            $0.variance = variance
            $0.batchesTracked = batchesTracked
            $0.population = Array(repeating: .empty, count: channels)
        }
    }

    /// Bytes the state takes per channel: the Float32 mean and variance and the
    /// Float64 population moments.
    static let bytesPerChannel = 2 * MemoryLayout<Float>.stride + MemoryLayout<Moments>.stride

    /// Refuses a channel count whose arrays could not be allocated here (2⁴⁰
    /// channels are under the element limit but would be 32 TiB of our own memory).
    static func checkFits(channels: Int, physicalMemory: UInt64 = ProcessInfo.processInfo.physicalMemory) throws {
        try Check.ownMemory(Double(channels) * Double(bytesPerChannel), "channels",
                            "running statistics of \(channels) channels", physicalMemory: physicalMemory)
    }

    private static func checkValues(_ values: [Float], channels: Int, _ argument: String, nonNegative: Bool) throws {
        try Check.length(values.count, channels, argument)
        if let i = values.firstIndex(where: { !$0.isFinite || (nonNegative && $0 < 0) }) {
            throw NormError.invalidArgument(
                argument: "\(argument)[\(i)]",
                reason: "must be finite\(nonNegative ? " and ≥ 0" : ""), got \(values[i])")
        }
    }

    /// A consistent copy of the running mean and variance for a kernel of
    /// `expectedChannels` channels; throws if either array has been reassigned
    /// with the wrong length (nothing has been written by then).
    func snapshot(expectedChannels: Int) throws -> (mean: [Float], variance: [Float]) {
        try Check.length(channels, expectedChannels, "running statistics channels")
        let (mean, variance) = state.withLock { ($0.mean, $0.variance) }
        try Check.length(mean.count, channels, "running mean")
        try Check.length(variance.count, channels, "running variance")
        return (mean, variance)
    }

    /// Checks `running` against a kernel's channel count: the descriptor's and
    /// both arrays' lengths.
    static func validate(_ running: RunningStatistics?, channels: Int) throws {
        guard let running else { return }
        _ = try running.snapshot(expectedChannels: channels)
    }

    /// Folds one batch in. `batch[c]` holds channel c's batch moments; for
    /// InstanceNorm `meanOverride`/`unbiasedVarianceOverride` carry PyTorch's
    /// per-channel averages of the per-instance statistics instead.
    /// Returns false (and changes nothing but `skippedUpdates`) if any batch
    /// statistic or any updated Float32 value would not be finite, or if the
    /// arrays were reassigned with the wrong length while the kernel ran.
    ///
    /// Allocates nothing (it runs inside every training call that tracks
    /// statistics): the new values are formed twice, once to check that all are
    /// finite and once to store them in place — the same expressions, so the
    /// same values.
    @discardableResult
    func fold(batch: UnsafeBufferPointer<Moments>, meanOverride: UnsafePointer<Double>? = nil,
              unbiasedVarianceOverride: UnsafePointer<Double>? = nil) -> Bool {
        let n = channels
        func batchMean(_ c: Int) -> Double { meanOverride?[c] ?? batch[c].mean }
        func batchVariance(_ c: Int) -> Double { unbiasedVarianceOverride?[c] ?? batch[c].unbiasedVariance }
        return state.withLock { s in
            guard s.mean.count == n, s.variance.count == n,
                  (0..<n).allSatisfy({ batchMean($0).isFinite && batchVariance($0).isFinite }) else {
                s.skippedUpdates += 1
                return false
            }
            let factor: Double
            switch update {
            case let .exponential(m): factor = m
            case .cumulativeAverage: factor = 1 / Double(s.batchesTracked + 1)
            case .population: factor = 0
            }
            /// Channel c's new (mean, variance, population moments).
            func updated(_ c: Int) -> (Float, Float, Moments) {
                if case .population = update {
                    let p = s.population[c].merged(with: batch[c])
                    return (Float(p.mean), Float(p.unbiasedVariance), p)
                }
                return (Float((1 - factor) * Double(s.mean[c]) + factor * batchMean(c)),
                        Float((1 - factor) * Double(s.variance[c]) + factor * batchVariance(c)),
                        s.population[c])
            }
            // Every new value is formed first and stored only if all are finite in Float32.
            for c in 0..<n {
                let (mean, variance, p) = updated(c)
                guard mean.isFinite, variance.isFinite, p.mean.isFinite, p.m2.isFinite else {
                    s.skippedUpdates += 1
                    return false
                }
            }
            for c in 0..<n {
                let (mean, variance, p) = updated(c)
                s.mean[c] = mean
                s.variance[c] = variance
                if case .population = update { s.population[c] = p }
            }
            s.batchesTracked += 1
            return true
        }
    }
}
