import Dispatch
import Foundation
import Synchronization

/// Dispatch pool threads that stay awake between parallel calls (opt-in:
/// `Threading.spinMicroseconds`, `NORMKERNELS_SPIN_US`).
///
/// Why: a parked Dispatch thread needs 100–250 µs to join a `concurrentPerform`
/// on the development VM (docs/PERFORMANCE-HISTORY.md, "Dispatch wake-up"), which is a
/// large share of a 0.5–3 ms kernel. OpenMP runtimes keep their threads spinning
/// for a while after a parallel region (`KMP_BLOCKTIME`, `GOMP_SPINCOUNT`), so
/// back-to-back calls find them awake. This is the same idea on Dispatch's own
/// threads: a helper is a block on a global queue that, after finishing its
/// share of a call, spins for `spinMicroseconds` waiting for the next call and
/// then returns its thread to Dispatch.
///
/// Nothing about partitioning changes: a call is still `count` fixed ranges with
/// results in per-range slots; which thread runs a range never matters. The
/// caller always works through the ranges itself, so a call completes even if
/// no helper shows up (helpers only take ranges the caller has not reached).
final class WarmWorkers: @unchecked Sendable {
    static let shared = WarmWorkers()

    /// One parallel call: ranges handed out by an atomic counter.
    final class Job: @unchecked Sendable {
        let count: Int
        /// Helpers beyond this many leave the job alone (the caller asked for
        /// `threads` workers; warm helpers from a wider earlier call do not join).
        let maxHelpers: Int
        let next = Atomic<Int>(0)
        let done = Atomic<Int>(0)
        let joined = Atomic<Int>(0)
        /// Valid while ranges remain; cleared by the caller once `done == count`
        /// (no helper reads it after taking an index ≥ count).
        var body: ((Int) -> Void)?

        init(count: Int, maxHelpers: Int, body: @escaping (Int) -> Void) {
            self.count = count
            self.maxHelpers = maxHelpers
            self.body = body
        }

        /// A helper's entry: joins if the job still wants helpers.
        func help() {
            if joined.add(1, ordering: .relaxed).oldValue < maxHelpers { work() }
        }

        /// Runs ranges until none is left.
        func work() {
            while true {
                let i = next.add(1, ordering: .relaxed).oldValue
                if i >= count { return }
                body!(i)
                done.add(1, ordering: .releasing)
            }
        }
    }

    /// Bumped each time a job is published; helpers poll it while spinning.
    private let generation = Atomic<Int>(0)
    /// The job helpers should join. An NSLock (pthread mutex) rather than
    /// Synchronization's Mutex: ThreadSanitizer sees pthread locks, so the
    /// sanitizer run checks the publication of a job like everything else.
    private let lock = NSLock()
    private var currentJob: Job?

    private func current() -> Job? {
        lock.lock(); defer { lock.unlock() }
        return currentJob
    }

    private func publish(_ job: Job?, replacing old: Job? = nil) {
        lock.lock(); defer { lock.unlock() }
        if old == nil || currentJob === old { currentJob = job }
    }
    private let alive = Atomic<Int>(0)

    /// Runs `body(i)` for i in 0..<count on the caller and up to `helpers` warm helpers.
    func run(count: Int, helpers: Int, spinMicroseconds: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { body in
            let job = Job(count: count, maxHelpers: helpers, body: body)
            publish(job)
            generation.add(1, ordering: .releasing)
            startHelpers(upTo: helpers, spinMicroseconds: spinMicroseconds)
            job.work()
            // Wait for ranges that helpers took and are still running.
            Parallel.waitUntil(job.done, reaches: count)
            publish(nil, replacing: job)
            job.body = nil   // before `withoutActuallyEscaping` ends: nothing may keep it
        }
    }

    private func startHelpers(upTo wanted: Int, spinMicroseconds: Int) {
        while true {
            let now = alive.load(ordering: .relaxed)
            if now >= wanted { return }
            if alive.compareExchange(expected: now, desired: now + 1, ordering: .relaxed).exchanged {
                DispatchQueue.global(qos: .userInitiated).async { self.helperLoop(spinMicroseconds: spinMicroseconds) }
            }
        }
    }

    private func helperLoop(spinMicroseconds: Int) {
        var seen = -1
        var idleSince = DispatchTime.now().uptimeNanoseconds
        // At most `Threading.maxSpinMicroseconds`, whatever was stored in the public field.
        let spinNanoseconds = UInt64(min(max(0, spinMicroseconds), Threading.maxSpinMicroseconds)) * 1000
        var polls = 0
        while true {
            let g = generation.load(ordering: .acquiring)
            if g != seen {
                seen = g
                if let job = current() { job.help() }
                idleSince = DispatchTime.now().uptimeNanoseconds
                continue
            }
            polls += 1
            if polls & 63 == 0 && DispatchTime.now().uptimeNanoseconds - idleSince > spinNanoseconds {
                alive.subtract(1, ordering: .relaxed)
                // A job published between the last poll and the decrement is
                // still completed by its caller; look once more so it is helped.
                if generation.load(ordering: .acquiring) != seen,
                   let job = current() { job.help() }
                return
            }
        }
    }
}
