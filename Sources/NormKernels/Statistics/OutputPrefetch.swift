import CNormSupport
import Foundation

/// The prefetch of a 16-bit dx pass along a channel's far-apart runs
/// (BatchNorm NCHW: N runs of H·W values, C·H·W apart), for the C loops that
/// take one (`nk_f16_dx512_gradient`, `nk_bf16_hw_gradient`): the x and dy
/// lines `distance` values on along the channel's stream, which after the
/// call's `n` values continues `next` values from its x.
///
/// Why it was tried (issue 20): the dx pass reads x and dy a second time,
/// after the gradient-sum pass; once a channel's 16-bit x and dy outgrow L2
/// (BatchNorm [128, 64, 56, 56]: 1.6 MB per channel) they come back from L3,
/// and each 6 KiB run starts a new stream. The statistics loops prefetch the
/// same way into L2 (`PrefetchAhead`, WelfordAVX512.h).
/// Off by default: in paired rounds it measured no faster (the same prefetch
/// in the forward output pass measured slower and was removed;
/// docs/data/2026-12-07-f16dx/summary.md). `NORMKERNELS_OUTPUT_PREFETCH=always`
/// turns it on, for measurements. A hint: no value changes either way.
struct OutputPrefetch {
    /// Values from the call's x to where the stream continues after its n values.
    let next: Int
    /// Values ahead: a run's length, at most `PrefetchAhead.bytes` of 16-bit values.
    let distance: Int

    /// Read once: `NORMKERNELS_OUTPUT_PREFETCH=always` turns the prefetches on.
    static let enabled: Bool = {
        guard let value = getenv("NORMKERNELS_OUTPUT_PREFETCH") else { return false }
        return String(cString: value) == "always"
    }()

    /// The prefetch of piece `b` (one segment's values, as `applyPieces` hands
    /// them out) of `g`, or nil: where `g` prefetches its reductions ahead along
    /// long runs (`RowsGeometry.prefetchesAhead`) and `b` is not its unit's
    /// last run.
    @inline(__always)
    static func along(_ g: RowsGeometry, _ b: RowBlock) -> OutputPrefetch? {
        guard g.prefetchesAhead && g.segmentLength >= RowsGeometry.prefetchedRunLength && b.segmentCount == 1
                && enabled else { return nil }
        let distance = min(g.segmentLength, PrefetchAhead.bytes / 2)
        if b.start + b.count < g.segmentLength { return OutputPrefetch(next: b.count, distance: distance) }
        guard b.segment + 1 < g.segments else { return nil }
        return OutputPrefetch(next: g.segmentStride - b.start, distance: distance)
    }

    /// The C loop's `ahead` and `next` for the `count` values it takes at
    /// value i of the call's n: its own start is x + i, the stream's
    /// continuation x + next = its start + (next − i), after n − i values, so
    /// past its `count` the C loop continues at (next − i) − (n − i) + count
    /// from its start (i cancels). Its last steps before n (a tail under 16)
    /// then map a few lines short of the next run: a wasted prefetch at most.
    @inline(__always)
    func operands(count: Int, of n: Int) -> (Int, Int) {
        (distance, next - n + count)
    }
}
