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

    /// One parallel call: ranges handed out by an atomic counter. It lives in the
    /// caller's stack frame (no allocation per call); helpers reach it through
    /// `enterCurrent` and the caller returns only after every helper that entered
    /// it has left (`entered`, `left`). A helper leaves as soon as it finds no
    /// range left, so that wait is short unless the OS preempts a helper inside
    /// `help()` — which, holding a range, would delay the caller anyway.
    struct Job: ~Copyable {
        let count: Int
        /// Helpers beyond this many leave the job alone (the caller asked for
        /// `threads` workers; warm helpers from a wider earlier call do not join).
        let maxHelpers: Int
        /// The caller's body, valid for the whole call (`withoutActuallyEscaping`).
        let body: (Int) -> Void
        let next = Atomic<Int>(0)
        let done = Atomic<Int>(0)
        let joined = Atomic<Int>(0)
        /// Helpers that took the job from `current` (counted under the lock) and
        /// helpers that are done with it (counted last, with release ordering).
        let entered = Atomic<Int>(0)
        let left = Atomic<Int>(0)

        /// A helper's entry: joins if the job still wants helpers.
        func help() {
            if joined.add(1, ordering: .relaxed).oldValue < maxHelpers { work() }
        }

        /// Runs ranges until none is left.
        func work() {
            while true {
                let i = next.add(1, ordering: .relaxed).oldValue
                if i >= count { return }
                body(i)
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
    private var currentJob: UnsafePointer<Job>?

    /// The published job, entered (its caller waits for this helper to leave it).
    private func enterCurrent() -> UnsafePointer<Job>? {
        lock.lock(); defer { lock.unlock() }
        guard let job = currentJob else { return nil }
        job.pointee.entered.add(1, ordering: .relaxed)
        return job
    }

    private func publish(_ job: UnsafePointer<Job>) {
        lock.lock(); defer { lock.unlock() }
        currentJob = job
    }

    /// Unpublishes `job` (unless a later call already replaced it). After this no
    /// helper can enter it, so `entered` is final.
    private func withdraw(_ job: UnsafePointer<Job>) {
        lock.lock(); defer { lock.unlock() }
        if currentJob == job { currentJob = nil }
    }

    /// A helper's visit to the current job, if any.
    private func helpCurrent() {
        guard let job = enterCurrent() else { return }
        job.pointee.help()
        job.pointee.left.add(1, ordering: .releasing)   // last touch of the caller's frame
    }

    private let alive = Atomic<Int>(0)

    /// Runs `body(i)` for i in 0..<count on the caller and up to `helpers` warm helpers.
    ///
    /// Allocates nothing itself once the helpers are awake; `withoutActuallyEscaping`
    /// boxes `body` (one small allocation, the only way Swift lets another thread
    /// call a non-escaping closure), and a helper that had gone back to Dispatch is
    /// started again with `async` (a few allocations, only then).
    func run(count: Int, helpers: Int, spinMicroseconds: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { body in
            let job = Job(count: count, maxHelpers: helpers, body: body)
            withUnsafePointer(to: job) { job in
                publish(job)
                generation.add(1, ordering: .releasing)
                startHelpers(upTo: helpers, spinMicroseconds: spinMicroseconds)
                job.pointee.work()
                // Wait for ranges that helpers took and are still running.
                Parallel.waitUntil(job.pointee.done, reaches: count)
                // Then for helpers still inside the job (they find no range left and
                // leave at once): the job's memory goes when this call returns.
                withdraw(job)
                Parallel.waitUntil(job.pointee.left, reaches: job.pointee.entered.load(ordering: .relaxed))
            }
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
                helpCurrent()
                idleSince = DispatchTime.now().uptimeNanoseconds
                continue
            }
            polls += 1
            if polls & 63 == 0 && DispatchTime.now().uptimeNanoseconds - idleSince > spinNanoseconds {
                alive.subtract(1, ordering: .relaxed)
                // A job published between the last poll and the decrement is
                // still completed by its caller; look once more so it is helped.
                if generation.load(ordering: .acquiring) != seen { helpCurrent() }
                return
            }
        }
    }
}
