import Foundation
import Synchronization

/// A ``StatisticsExchange`` between simulated ranks of one process (one thread
/// each): the synchronized kernels' unit tests, and single-machine experiments.
///
/// ```swift
/// let results = try InProcessExchange.run(ranks: 4) { exchange in
///     let bn = try SynchronizedBatchNormalization(shape: myShard, exchange: exchange)
///     return try bn.forwardTraining(input: …, output: …)
/// }
/// ```
///
/// Every rank must run on its own thread: `allGather` blocks until all `size`
/// ranks have arrived (`run` starts one `Thread` per rank; a Dispatch
/// `concurrentPerform` with fewer pool threads than ranks would deadlock). A
/// rank that does not arrive within `timeout` seconds makes every waiting rank
/// throw ``SynchronizationError/timedOut(seconds:)``, and the group stays
/// unusable afterwards, so a missing rank fails a test instead of hanging it.
public struct InProcessExchange: StatisticsExchange {
    public let rank: Int
    public let size: Int
    let group: Group

    /// The most ranks a group may have: each needs a thread of its own, and a
    /// group is a test or a single-machine experiment, not a cluster.
    public static let maxRanks = 1024

    /// One exchange per rank of a new group of `size` ranks, in rank order.
    /// Throws `NormError.invalidArgument` unless 1 ≤ `size` ≤ ``maxRanks`` and
    /// `timeout` is a finite number of seconds > 0.
    public static func group(size: Int, timeout: Double = 60) throws(NormError) -> [InProcessExchange] {
        try check(ranks: size, timeout: timeout)
        let group = Group(size: size, timeout: timeout)
        return (0..<size).map { InProcessExchange(rank: $0, size: size, group: group) }
    }

    private static func check(ranks: Int, timeout: Double) throws(NormError) {
        guard (1...maxRanks).contains(ranks) else {
            throw .invalidArgument(argument: "ranks", reason: "must be in 1...\(maxRanks), got \(ranks)")
        }
        // Date(timeIntervalSinceNow:) of a NaN or an infinity is no deadline.
        guard timeout.isFinite, timeout > 0 else {
            throw .invalidArgument(argument: "timeout", reason: "must be a finite number of seconds > 0, got \(timeout)")
        }
    }

    /// Runs `body` once per rank of a new group, each on its own thread, and
    /// returns the results in rank order once every rank has finished. Throws
    /// (before starting any thread) what ``group(size:timeout:)`` throws.
    public static func run<T: Sendable>(ranks: Int, timeout: Double = 60,
                                        _ body: @escaping @Sendable (InProcessExchange) throws -> T)
        throws(NormError) -> [Result<T, any Error>] {
        let exchanges = try group(size: ranks, timeout: timeout)
        let results = Mutex<[Result<T, any Error>?]>(Array(repeating: nil, count: exchanges.count))
        let finished = DispatchGroup()
        for exchange in exchanges {
            finished.enter()
            let thread = Thread {
                let result = Result { try body(exchange) }
                results.withLock { $0[exchange.rank] = result }
                finished.leave()
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        finished.wait()
        return results.withLock { $0.map { $0! } }
    }

    public func allGather(_ contribution: UnsafeBufferPointer<Double>,
                          into gathered: UnsafeMutableBufferPointer<Double>) throws {
        try group.allGather(rank: rank, contribution, into: gathered)
    }

    /// The shared state of a group: contributions of the current round, the
    /// result of the last completed one, and a generation counter.
    ///
    /// `@unchecked Sendable`: every stored property is read and written only
    /// with `condition` locked.
    final class Group: @unchecked Sendable {
        let size: Int
        let timeout: Double
        private let condition = NSCondition()
        private var slots: [[Double]?]
        private var arrived = 0
        private var generation = 0
        private var published: Result<[Double], SynchronizationError> = .success([])
        private var broken: SynchronizationError?

        init(size: Int, timeout: Double) {
            self.size = size
            self.timeout = timeout
            slots = Array(repeating: nil, count: size)
        }

        /// The last rank to arrive publishes the round's result and wakes the
        /// others. A round's result stays readable until the next round
        /// completes, which needs every rank, so every waiter has copied it by then.
        func allGather(rank: Int, _ contribution: UnsafeBufferPointer<Double>,
                       into gathered: UnsafeMutableBufferPointer<Double>) throws {
            condition.lock()
            defer { condition.unlock() }
            if let broken { throw broken }
            // Two threads calling with one rank's exchange would otherwise complete
            // a round that lacks another rank's slot.
            guard slots[rank] == nil else {
                throw SynchronizationError.protocolMismatch(
                    reason: "rank \(rank) entered a round it is already waiting in (one exchange used by two threads)")
            }
            let round = generation
            slots[rank] = Array(contribution)
            arrived += 1
            if arrived == size {
                let lengths = slots.map { $0!.count }
                published = Set(lengths).count == 1
                    ? .success(slots.flatMap { $0! })
                    : .failure(.protocolMismatch(reason: "contribution lengths \(lengths) (rank order)"))
                slots = Array(repeating: nil, count: size)
                arrived = 0
                generation += 1
                condition.broadcast()
            } else {
                let deadline = Date(timeIntervalSinceNow: timeout)
                while generation == round {
                    if let broken { throw broken }
                    if !condition.wait(until: deadline), generation == round {
                        let error = SynchronizationError.timedOut(seconds: timeout)
                        broken = error
                        condition.broadcast()
                        throw error
                    }
                }
            }
            let values = try published.get()
            guard values.count == gathered.count else {
                throw SynchronizationError.protocolMismatch(
                    reason: "rank \(rank) expects \(gathered.count) gathered values, the group sent \(values.count)")
            }
            _ = gathered.initialize(from: values)
        }
    }
}
