import CNormSupport

/// Whether a reduction over runs of a unit prefetches along its logical stream:
/// the block's runs, one after another, then the next block the same worker
/// reduces (`RowBlock.following`). A type, so that each reduction loop is
/// compiled once without prefetches and once with them.
///
/// Why: a unit of runs far apart (BatchNorm NCHW: N runs of H·W values, C·H·W
/// apart) makes every run a new stream that the hardware prefetchers must learn
/// again. BatchNorm `[128, 64, 56, 56]` read its channels at 24 GB/s against 48
/// in memory order (one thread, C loop); with prefetches along the logical
/// stream, 36 (docs/PERFORMANCE-HISTORY.md, "BatchNorm NCHW reductions prefetch
/// along the channel").
protocol StreamPrefetch {
    /// The step at value `i` of run `segment` (of `segments` runs of `length`
    /// values, `stride` apart; the next block `following` values after the first
    /// run) prefetches the lines at this offset from the run's start, `distance`
    /// values ahead along the stream; nil: none.
    static func offset(_ i: Int, length: Int, segment: Int, segments: Int, stride: Int, following: Int,
                       distance: Int) -> Int?

    /// At the start of run `segment` of a block of short runs (fewer than
    /// `RowsGeometry.prefetchedRunLength` values, `stride` apart, the next block
    /// `following` values after `p`): prefetch a whole later run.
    static func run<E>(_ p: UnsafePointer<E>, length: Int, segment: Int, segments: Int, stride: Int, following: Int)
}

extension StreamPrefetch {
    /// Prefetches the cache lines of one 32-value step from `p + offset(…)`:
    /// two for Float32, one for 16-bit types (64 bytes), `PrefetchAhead.bytes`
    /// ahead whatever the element size.
    @inline(__always)
    static func lines<E>(_ p: UnsafePointer<E>, _ i: Int, length: Int, segment: Int, segments: Int,
                         stride: Int, following: Int) {
        guard let o = offset(i, length: length, segment: segment, segments: segments, stride: stride,
                             following: following, distance: PrefetchAhead.distance(E.self)) else { return }
        let line = UnsafeRawPointer(p + o)
        nk_prefetch_l2(line)
        if MemoryLayout<E>.stride > 2 { nk_prefetch_l2(line + 64) }
    }
}

/// Runs read in memory order or too short to matter: the hardware prefetchers suffice.
enum NoPrefetch: StreamPrefetch {
    @inline(__always)
    static func offset(_ i: Int, length: Int, segment: Int, segments: Int, stride: Int, following: Int,
                       distance: Int) -> Int? { nil }
    @inline(__always)
    static func run<E>(_ p: UnsafePointer<E>, length: Int, segment: Int, segments: Int, stride: Int, following: Int) {}
}

/// `bytes` ahead along the logical stream.
enum PrefetchAhead: StreamPrefetch {
    /// Bytes between a read and its prefetch: 8 KiB. Measured on BatchNorm NCHW
    /// [128, 64, 56, 56] and [32, 256, 56, 56] in Float32: 8 KiB ran 1.1–1.2×
    /// faster than 4 KiB on one thread (level on two), 2 KiB lost (0.8–0.9×).
    /// In values: 2048 Float32, 4096 of a 16-bit type (which had 2048, 4 KiB).
    static let bytes = 8192

    @inline(__always)
    static func distance<E>(_: E.Type) -> Int { bytes / MemoryLayout<E>.stride }

    @inline(__always)
    static func offset(_ i: Int, length: Int, segment: Int, segments: Int, stride: Int, following: Int,
                       distance: Int) -> Int? {
        // Short runs are fetched whole by `run`, once per run.
        guard length >= RowsGeometry.prefetchedRunLength else { return nil }
        // Wrapping arithmetic: offsets within one tensor never overflow, and the
        // checked operations cost a compare and branch each in every step.
        let t = i &+ min(length, distance)
        if t < length { return t }
        // From this run's start to the next run's: the block's next run, or the next block.
        let jump = segment &+ 1 < segments ? stride : following &- segment &* stride
        return jump &+ t &- length
    }

    /// Short runs: the run `distance / length` runs ahead (about the same 8 KiB of
    /// Float32 along the logical stream as the long runs' step prefetch), every
    /// line of it. Why: BatchNorm NCHW with 7×7 planes reads each channel as N
    /// runs of 196 bytes, C·196 bytes apart, so every run is a new page that no
    /// hardware prefetcher follows; `[256, 2048, 7, 7]` forward training read at
    /// 0.37–0.41 of copy bandwidth with 71 % of the statistics loop's samples on
    /// the first use of a load (perf annotate; docs/PERFORMANCE.md, "Short
    /// planes past the cache"). Runs past this block's last continue into the
    /// next block (`following`, same stride); a worker's last block (`following`
    /// 0) prefetches nothing past its end. A prefetch never faults, so a target
    /// past the unit's last run costs one wasted line fetch at most.
    @inline(__always)
    static func run<E>(_ p: UnsafePointer<E>, length: Int, segment: Int, segments: Int, stride: Int, following: Int) {
        let t = segment + max(1, distance(E.self) / length)
        let o: Int
        if t < segments { o = t * stride } else if following != 0 { o = following + (t - segments) * stride } else { return }
        let start = UnsafeRawPointer(p + o), end = start + length * MemoryLayout<E>.stride
        var line = UnsafeRawPointer(bitPattern: UInt(bitPattern: start) & ~63)!
        while line < end { nk_prefetch_l2(line); line += 64 }
    }
}
