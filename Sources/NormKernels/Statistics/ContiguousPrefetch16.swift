import Synchronization

/// Whether the statistics pass of a contiguous 16-bit unit (GroupNorm and
/// InstanceNorm NCHW forward, any rows-geometry unit of one segment) prefetches
/// 8 KiB ahead along the unit, then into the next block (`PrefetchAhead`), on
/// tensors past the last-level cache.
///
/// Why (issue 20, docs/data/2026-12-06-dram16/summary.md): at DRAM sizes the
/// 16-bit forward spent ~57 % of its samples in the statistics pass (Welford
/// lanes of GroupNorm bf16 `[64, 128, 56, 56]`, one thread), most of them on
/// the loads (perf annotate), while the same lanes run at ~2× that speed from
/// L2. A 16-bit value is half the bytes of a Float32 one for the same
/// arithmetic, so the loop leaves the hardware prefetchers less time per line;
/// one software prefetch per 64-byte line (one per 32-value Welford step) 8 KiB
/// ahead keeps the line in flight. Float32 units keep the plain loop (they
/// meet their bandwidth target without it). A prefetch moves no value: the
/// arithmetic and its order are unchanged, so the bits are those of the plain
/// loop (and so of the Float32 kernel on the widened tensor) for every thread count.
enum ContiguousPrefetch16 {
    enum Mode: Int { case sizeRule = 0, always = 1, never = 2 }
    private static let mode = Atomic<Int>(Mode.sizeRule.rawValue)

    /// Tests: `.always` prefetches whatever the size, `.never` never; `.sizeRule`
    /// (the default) past the last-level cache.
    static func set(_ m: Mode) { mode.store(m.rawValue, ordering: .relaxed) }

    /// Whether a unit of a tensor (`pastCache`: past the last-level cache) prefetches.
    @inline(__always)
    static func applies(pastCache: Bool) -> Bool {
        switch mode.load(ordering: .relaxed) {
        case Mode.always.rawValue: return true
        case Mode.never.rawValue: return false
        default: return pastCache
        }
    }
}
