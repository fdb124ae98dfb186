/// The transport a synchronized kernel (``SynchronizedBatchNormalization``)
/// exchanges its per-channel partial statistics over: one collective call per
/// training step, "everyone's Float64 values, in rank order".
///
/// Two implementations: ``InProcessExchange`` (simulated ranks in threads of one
/// process, for tests) and `MPIExchange` in the `NormKernelsMPI` library (Open MPI,
/// enabled by the package trait `MPI`; see docs/SYNCBN.md).
///
/// Rules every implementation follows:
/// - `allGather` is collective: every rank of the group calls it, in the same
///   order, with contributions of the same length L; each receives `size · L`
///   values, rank r's contribution at `r · L ..< (r + 1) · L`, the same bits on
///   every rank (an all-gather moves bytes; no arithmetic happens in transit).
/// - A failure is thrown (``SynchronizationError``), never a crash or a silent
///   partial result; an implementation that can detect a missing rank (a timeout)
///   throws instead of waiting for ever.
public protocol StatisticsExchange: Sendable {
    /// This process's index in the group, `0 ..< size`.
    var rank: Int { get }
    /// Number of participating ranks, ≥ 1.
    var size: Int { get }
    /// Gathers every rank's `contribution` into `gathered` (`size · contribution.count`
    /// values, in rank order). Collective; see the protocol's rules.
    func allGather(_ contribution: UnsafeBufferPointer<Double>, into gathered: UnsafeMutableBufferPointer<Double>) throws
}

/// Why a synchronized call failed on this rank. Thrown on every rank of a step
/// that failed (a rank whose own arguments were wrong throws its `NormError`,
/// the others `peerRejectedArguments`), always before anything was written.
public enum SynchronizationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The ranks' descriptors disagree on the channel count (one value per rank).
    case channelMismatch(channels: [Int])
    /// The ranks' descriptors disagree on ε or on the fused ReLU (one value per rank).
    case configurationMismatch(argument: String, values: [Double])
    /// Other ranks rejected their own arguments in this step (their ranks listed);
    /// they throw the `NormError` that says why.
    case peerRejectedArguments(ranks: [Int])
    /// Ranks are not in the same call (e.g. one in a forward, another in a
    /// backward), or contributed different lengths.
    case protocolMismatch(reason: String)
    /// The exchange object itself is unusable (rank outside `0 ..< size`, size < 1).
    case invalidGroup(rank: Int, size: Int)
    /// A rank did not arrive within the exchange's timeout; the group is unusable.
    case timedOut(seconds: Double)
    /// The transport failed (e.g. an MPI error code and its message).
    case transport(code: Int, message: String)

    public var description: String {
        switch self {
        case let .channelMismatch(channels):
            return "ranks disagree on the channel count: \(channels) (rank order)"
        case let .configurationMismatch(argument, values):
            return "ranks disagree on \(argument): \(values) (rank order)"
        case let .peerRejectedArguments(ranks):
            return "rank(s) \(ranks) rejected their arguments; nothing was written on any rank"
        case let .protocolMismatch(reason):
            return "ranks are not in the same synchronized call: \(reason)"
        case let .invalidGroup(rank, size):
            return "invalid exchange group: rank \(rank) of size \(size)"
        case let .timedOut(seconds):
            return "a rank did not join the exchange within \(seconds) s"
        case let .transport(code, message):
            return "exchange transport error \(code): \(message)"
        }
    }
}
