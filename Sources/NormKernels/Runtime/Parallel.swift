import CNormSupport
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The one place where NormKernels goes parallel.
///
/// A kernel describes its work as `count` independent items (blocks, units,
/// row blocks) and writes each item's result to its own slot; `forEach` hands
/// contiguous ranges of items to workers. Because no item's result depends on
/// which worker ran it or on what else that worker ran, the assignment of items
/// to workers — and therefore the thread count — cannot change any result.
///
/// Why these thresholds (measured on the 2-core Zen 4 development machine,
/// see docs/PARALLELISM.md): `concurrentPerform` costs 0.35–3 µs per call but a
/// parked pool thread needs 100–250 µs to join, so problems below
/// `Threading.parallelThreshold` (2^17 elements with the default warm workers,
/// 2^19 with parked ones) run on the caller, and larger ones are cut into about
/// 4 ranges per worker for balance.
enum Parallel {
    /// Ranges per worker when not pinning (load balance against a late-joining thread).
    static let rangesPerWorker = 4

    /// Tests: while `countingCalls` is on, every call that goes parallel (a warm
    /// workers' job or a `concurrentPerform`) adds one to `callsCounted`. The
    /// allocation tests bound a kernel call's allocations by the runtime's cost
    /// per parallel call times the calls it made, which depend on cache-sized
    /// partitions and so differ between machines. Off: one relaxed load per
    /// parallel call.
    static let countingCalls = Atomic<Bool>(false)
    static let callsCounted = Atomic<Int>(0)

    @inline(__always)
    static func noteParallelCall() {
        if countingCalls.load(ordering: .relaxed) { callsCounted.add(1, ordering: .relaxed) }
    }

    /// How many workers `forEach` would use for `count` items of `elementsPerItem` each.
    static func workers(count: Int, elementsPerItem: Int, threading: Threading) -> Int {
        guard count > 1, threading.threads > 1 else { return 1 }
        let total = count.multipliedReportingOverflow(by: max(1, elementsPerItem))
        if !total.overflow && total.partialValue < threading.parallelThreshold { return 1 }
        return min(threading.threads, count)
    }

    /// Runs `body` over disjoint ranges covering `0..<count`, possibly concurrently.
    ///
    /// `fromTheEnd` hands out the last ranges first. A second pass over data that
    /// the first pass just streamed through (training: statistics, then output)
    /// then starts with what is still in the last-level cache instead of with what
    /// was evicted first. Results are the same either way.
    static func forEach(
        count: Int, elementsPerItem: Int, threading: Threading, fromTheEnd: Bool = false,
        _ body: (Range<Int>) -> Void
    ) {
        guard count > 0 else { return }
        let workers = workers(count: count, elementsPerItem: elementsPerItem, threading: threading)
        // Output loops may write with non-temporal stores, which are weakly
        // ordered: each range ends with a store fence (sfence), so its results
        // are visible before the call returns or the join completes. Cheap when
        // nothing was streamed.
        defer { if workers == 1 { nk_stream_fence() } }
        if workers == 1 {
            if fromTheEnd {
                // Walk back in cache-sized steps; each step itself runs forward.
                var end = count
                let step = max(1, (256 << 10) / max(1, elementsPerItem))
                while end > 0 { body(max(0, end - step)..<end); end -= step }
            } else {
                body(0..<count)
            }
            return
        }
        let affinity = threading.affinity
        // With pinning, one range per worker so that range i is worker i on its core.
        let ranges = affinity == .none ? min(count, workers * rangesPerWorker) : workers
        if affinity == .none && threading.spinMicroseconds > 0 {
            // Warm helpers (Dispatch threads that spin between calls): same ranges.
            noteParallelCall()
            WarmWorkers.shared.run(count: ranges, helpers: workers - 1,
                                   spinMicroseconds: threading.spinMicroseconds) { i in
                let r = fromTheEnd ? ranges - 1 - i : i
                body((r * count / ranges)..<((r + 1) * count / ranges))
                nk_stream_fence()
            }
            return
        }
        // Workers call `body` through a pointer to a concrete struct on this stack
        // frame. `withoutActuallyEscaping` boxes it (one small allocation: the only
        // way Swift lets another thread call a non-escaping closure); storing the
        // closure itself in `UncheckedSendable`'s generic field would add a
        // reabstraction thunk, one more allocation per call.
        noteParallelCall()
        withoutActuallyEscaping(body) { body in
        let held = RangeBody(call: body)
        withUnsafePointer(to: held) { body in
            let body = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: ranges) { i in
                let r = fromTheEnd ? ranges - 1 - i : i
                let range = (r * count / ranges)..<((r + 1) * count / ranges)
                if let core = Topology.current.core(forWorker: r, affinity: affinity) {
                    // Pin for the duration of this range only, then restore the
                    // pool thread's previous binding so nothing leaks into
                    // unrelated Dispatch work after the call returns.
                    var saved: UnsafeMutableRawPointer?
                    let bound = nk_bind_thread_to_core(Int32(core), &saved) == 0
                    body.value.pointee.call(range)
                    nk_stream_fence()
                    if bound { _ = nk_restore_thread_binding(saved) }
                } else {
                    body.value.pointee.call(range)
                    nk_stream_fence()
                }
            }
        }
        }
    }

    /// A range body held where workers can call it, for one parallel call (below).
    struct RangeBody { let call: (Range<Int>) -> Void }
    /// A body of `forEach(phases:)`, likewise.
    struct PhaseBody { let call: (_ phase: Int, _ range: Range<Int>) -> Void }

    /// The shape of one step of a multi-step parallel call: `count` items of
    /// `elementsPerItem` values each, optionally handed out from the end.
    struct Phase {
        var count: Int
        var elementsPerItem: Int
        var fromTheEnd = false
    }

    /// Runs `body(phase, range)` over each phase's items, phase after phase: every
    /// item of phase p finishes (and its results are visible) before any item of
    /// phase p + 1 starts. Same ranges, same per-item results as calling `forEach`
    /// once per phase.
    ///
    /// Why one call for several phases: each `concurrentPerform` waits 100–250 µs
    /// for a parked pool thread (docs/PERFORMANCE-HISTORY.md, "Dispatch wake-up"), so a
    /// kernel with statistics, merge and output phases paid it three times. Here the
    /// workers wake once. Ranges are tickets from one atomic counter, phase after
    /// phase; a worker that draws a ticket of phase p waits until every earlier
    /// ticket is done. Every earlier ticket has already been drawn by a running
    /// worker, so the wait always ends — also when Dispatch runs the workers one
    /// after another on one thread, which then simply does every ticket in order.
    ///
    /// The parallel threshold is applied to the phases' total work (the wake-up is
    /// paid once for all of them). Pinned or warm-worker threading runs the phases
    /// as separate `forEach` calls (pinning maps one range to one worker).
    ///
    /// `phases` is an `InlineArray` (`let phases: InlineArray = [...]`): an array
    /// literal would be a heap allocation per call.
    static func forEach<let n: Int>(
        phases: InlineArray<n, Phase>, threading: Threading, _ body: (_ phase: Int, _ range: Range<Int>) -> Void
    ) {
        var total = 0, widest = 0
        for p in phases.indices {
            let phase = phases[p]
            let cost = phase.count.multipliedReportingOverflow(by: max(1, phase.elementsPerItem))
            let sum = total.addingReportingOverflow(cost.overflow ? Int.max : cost.partialValue)
            total = sum.overflow ? Int.max : sum.partialValue
            widest = max(widest, phase.count)
        }
        let workers = widest > 1 && threading.threads > 1 && total >= threading.parallelThreshold
            ? min(threading.threads, widest) : 1
        if workers == 1 || threading.affinity != .none || threading.spinMicroseconds > 0 {
            for p in phases.indices {
                let phase = phases[p], single = workers == 1 ? Threading.serial : threading
                forEach(count: phase.count, elementsPerItem: phase.elementsPerItem, threading: single,
                        fromTheEnd: phase.fromTheEnd) { body(p, $0) }
            }
            return
        }
        // Phase p has min(count, workers · rangesPerWorker) ranges; its tickets follow
        // those of the phases before it. Found by walking the phases (a handful), so
        // that the call needs no table.
        @Sendable func rangeCount(_ p: Int) -> Int { min(phases[p].count, workers * rangesPerWorker) }
        let tickets = phases.indices.reduce(0) { $0 + rangeCount($1) }
        let next = Atomic<Int>(0), done = Atomic<Int>(0)
        noteParallelCall()
        withoutActuallyEscaping(body) { body in
        let held = PhaseBody(call: body)
        withUnsafePointer(to: held) { body in
        let body = UncheckedSendable(body)   // as in `forEach(count:)`
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            // This worker's position: phase p, whose first ticket is `start`.
            var p = 0, start = 0
            while true {
                let t = next.add(1, ordering: .relaxed).oldValue
                if t >= tickets { return }
                while t >= start + rangeCount(p) { start += rangeCount(p); p += 1 }
                // Wait for the earlier phases; `done` counts finished tickets, and no
                // ticket of phase p can finish before all `start` earlier ones have.
                waitUntil(done, reaches: start)
                let phase = phases[p], count = rangeCount(p)
                let i = t - start, r = phase.fromTheEnd ? count - 1 - i : i
                body.value.pointee.call(p, (r * phase.count / count)..<((r + 1) * phase.count / count))
                nk_stream_fence()
                done.add(1, ordering: .releasing)
            }
        }
        }
        }
    }

    /// Spins (x86 `pause`), then yields, until `counter` (acquire) is at least
    /// `value`: for waits on work that a running thread is sure to finish.
    static func waitUntil(_ counter: borrowing Atomic<Int>, reaches value: Int) {
        var spins = 0
        while counter.load(ordering: .acquiring) < value {
            spins += 1
            if spins < 4096 { nk_cpu_relax() } else { sched_yield() }
        }
    }
}
