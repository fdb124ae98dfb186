import CNormSupport
import Dispatch

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
/// `Threading.parallelThreshold` (2^20 elements by default) run on the caller,
/// and larger ones are cut into about 4 ranges per worker for balance.
enum Parallel {
    /// Ranges per worker when not pinning (load balance against a late-joining thread).
    static let rangesPerWorker = 4

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
            WarmWorkers.shared.run(count: ranges, helpers: workers - 1,
                                   spinMicroseconds: threading.spinMicroseconds) { i in
                let r = fromTheEnd ? ranges - 1 - i : i
                body((r * count / ranges)..<((r + 1) * count / ranges))
                nk_stream_fence()
            }
            return
        }
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: ranges) { i in
                let r = fromTheEnd ? ranges - 1 - i : i
                let range = (r * count / ranges)..<((r + 1) * count / ranges)
                if let core = Topology.current.core(forWorker: r, affinity: affinity) {
                    // Pin for the duration of this range only, then restore the
                    // pool thread's previous binding so nothing leaks into
                    // unrelated Dispatch work after the call returns.
                    var saved: UnsafeMutableRawPointer?
                    let bound = nk_bind_thread_to_core(Int32(core), &saved) == 0
                    body(range)
                    nk_stream_fence()
                    if bound { _ = nk_restore_thread_binding(saved) }
                } else {
                    body(range)
                    nk_stream_fence()
                }
            }
        }
    }
}
