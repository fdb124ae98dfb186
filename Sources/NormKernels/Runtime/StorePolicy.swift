import Foundation

/// Whether an output pass writes with non-temporal (streaming) stores or
/// through the cache: decided once per plan from the tensor's size, the thread
/// count and the last-level cache this process can count on
/// (`countedCacheBytes`), then checked per call only for what depends on the
/// buffers (in place, alignment).
///
/// Why: a pass that writes more than the last-level cache can hold evicts the
/// input it still has to read, and each written line is first read for
/// ownership; streaming stores skip both. `NORMKERNELS_STREAMING` = `always` /
/// `never` overrides the size rules (for measurements). The store kind never
/// changes a value written, only where the line goes (the test suite's second
/// pass, tools/test.sh, runs everything with `always`).
struct StorePolicy: Sendable, Equatable {
    /// Whether the plan's output pass streams Float32 tensors (before the
    /// per-call checks).
    let streams: Bool
    /// The same decision for 16-bit tensors: a plan serves every element type,
    /// and the size rules count bytes, so a Float16 or BFloat16 tensor streams
    /// from twice the element count a Float32 one does.
    let streamsNarrow: Bool
    /// Whether the kernel streams only when the output starts aligned to 8 values
    /// (32 bytes for Float, 16 for 16-bit types): row kernels that stream each
    /// row whole (rows of whole 8-value groups).
    let requiresAlignedOutput: Bool

    init(streams: Bool, requiresAlignedOutput: Bool = false) {
        self.init(streams: streams, narrow: streams, requiresAlignedOutput: requiresAlignedOutput)
    }

    init(streams: Bool, narrow: Bool, requiresAlignedOutput: Bool = false) {
        self.streams = streams
        self.streamsNarrow = narrow
        self.requiresAlignedOutput = requiresAlignedOutput
    }

    /// Writes through the cache whatever the size (outputs interleaved with
    /// other units' outputs: partial lines would each go to memory on their own).
    static let cached = StorePolicy(streams: false)

    /// Training forward: `x` read twice, `y` written once, on `threads`
    /// threads. Streaming from x + y ≥ 3/4 of the last-level cache on two or
    /// more threads (`4·2·4·elements ≥ 3·LLC`), from 1/2 of it on one.
    ///
    /// Why the thread count: measured on the Zen 4 VM (32 MiB L3; one binary,
    /// `NORMKERNELS_STREAMING=never` against `always`, 4 alternating rounds,
    /// BatchNorm NCHW, GroupNorm NCHW and NHWC, InstanceNorm NHWC, LayerNorm;
    /// docs/PERFORMANCE.md, "Forward store rule: half the cache on one thread"):
    /// on one thread streaming is 1.15–1.65× faster from x + y = 0.57 of the L3
    /// (level at 0.48–0.50: 0.90–1.25), cached 1.2× faster at 0.29–0.35; on two
    /// threads cached stores are faster everywhere below 3/4 (0.52–0.92×), where
    /// both cores' caches keep what one core's cannot.
    init(twoPass elements: Int, threads: Int, requiresAlignedOutput: Bool = false) {
        let cache = StorePolicy.lastLevelCacheBytes
        self.init(streams: StorePolicy.override
                    ?? StorePolicy.twoPassStreams(elements, cache: cache, threads: threads),
                  narrow: StorePolicy.override
                    ?? StorePolicy.twoPassStreams(elements, cache: cache, elementBytes: 2, threads: threads),
                  requiresAlignedOutput: requiresAlignedOutput)
    }

    /// Backward: `x` and `dy` read twice, `dx` written once. The two-pass rule
    /// counted over the three tensors the pass moves: streaming from
    /// x + dy + dx ≥ 3/4 of the last-level cache, `4·3·4·elements ≥ 3·LLC`
    /// (the forward's rule is the same fraction of x + y).
    ///
    /// Why not the forward's element count: dx's stores evict x and dy lines the
    /// second pass still has to read, and there are two of them. Measured on the
    /// Zen 4 VM (32 MiB L3; docs/PERFORMANCE.md, "Backward store rule: count x,
    /// dy and dx"), streaming against cached dx on one binary, 3 alternating
    /// rounds, 1 thread: 1.33–1.58× faster at x + dy + dx = 0.75–0.84 of the L3
    /// (BatchNorm, InstanceNorm NCHW and NHWC [2,128,96,96], LayerNorm and
    /// RMSNorm [2048, 1024], GroupNorm [2,320,64,64]), 1.05–1.17× at 0.57, where
    /// the forward's rule had kept them cached up to x + dy + dx = 1.125 × L3;
    /// on two threads 1.06–1.30× at 0.75–0.94 and cached faster at 0.57. So on
    /// one thread, as the forward, from 1/2 of the cache.
    init(backward elements: Int, threads: Int, requiresAlignedOutput: Bool = false) {
        let cache = StorePolicy.lastLevelCacheBytes
        self.init(streams: StorePolicy.override
                    ?? StorePolicy.twoPassStreams(elements, cache: cache, tensors: 3, threads: threads),
                  narrow: StorePolicy.override
                    ?? StorePolicy.twoPassStreams(elements, cache: cache, elementBytes: 2, tensors: 3,
                                                  threads: threads),
                  requiresAlignedOutput: requiresAlignedOutput)
    }

    /// Inference (a single pass: `x` read once, `y` written once) on `threads`
    /// threads: as `twoPass`, but on two or more threads streaming only from
    /// 1.5× the last-level cache of `x` and `y` together, unless the output is
    /// written as `wideRows` (rows of ≥ `Apply.stripColumns` per-channel
    /// coefficients: NHWC, or NCHW with H·W = 1).
    ///
    /// Streaming stores are bound by the memory's write bandwidth; two cores
    /// writing y through the cache keep most of an L3-sized x + y there instead.
    /// Measured (BatchNorm and InstanceNorm inference, NCHW and NHWC, 2 threads,
    /// five alternating rounds; docs/PERFORMANCE-HISTORY.md, "Inference keeps cached
    /// stores up to 1.5× the L3 on 2+ threads"): cached
    /// stores 1.47–1.57× faster with x + y = 1.0× the L3, 1.2–1.34× at 1.25×,
    /// 1.07× at 1.5×, 0.92× at 2×. On one thread streaming wins from 3/4 (cached
    /// 0.7–0.84×), and so it does for rows of 1024 channels (BatchNorm
    /// [4096, 1024], NCHW and NHWC: cached 0.93× on 2 threads, 0.52–0.57× on
    /// one), so both keep the two-pass rule.
    init(singlePass elements: Int, threads: Int, wideRows: Bool) {
        let cache = StorePolicy.lastLevelCacheBytes
        self.init(streams: StorePolicy.override
                    ?? StorePolicy.singlePassStreams(elements, threads: threads, wideRows: wideRows, cache: cache),
                  narrow: StorePolicy.override
                    ?? StorePolicy.singlePassStreams(elements, threads: threads, wideRows: wideRows, cache: cache,
                                                     elementBytes: 2))
    }

    /// Cached stores whatever the size where `shortRuns` (unless
    /// `NORMKERNELS_STREAMING` overrides): outputs written in runs of a few
    /// lines, each starting and ending in a line that its neighbours' runs
    /// share. Streaming such runs sends partial lines to memory one by one:
    /// BatchNorm NCHW [128, 512, 7, 7] (49-value planes, 12.8 MB), one thread,
    /// 14.8 ms streamed against 2.4 ms cached forward, 15.6 against 3.6 ms
    /// backward (2026-12-06, the Xeon VM of docs/PERFORMANCE.md).
    func unlessShortRuns(_ shortRuns: Bool) -> StorePolicy {
        guard shortRuns, StorePolicy.override == nil else { return self }
        return StorePolicy(streams: false, requiresAlignedOutput: requiresAlignedOutput)
    }

    /// The call's decision: the plan's, unless the output is one of the inputs
    /// (in place: the lines were just read into the cache) or, for kernels that
    /// need it, not 32-byte aligned.
    @inline(__always)
    func streaming<E>(output: UnsafeMutablePointer<E>, reading a: UnsafePointer<E>?,
                      _ b: UnsafePointer<E>? = nil, _ c: UnsafePointer<E>? = nil) -> Bool {
        guard MemoryLayout<E>.size < 4 ? streamsNarrow : streams else { return false }
        // Aligned to 8 values: 32 bytes for Float, 16 for 16-bit types (`StreamingStore`).
        if requiresAlignedOutput && Int(bitPattern: UInt(bitPattern: output)) & (8 * MemoryLayout<E>.stride - 1) != 0 {
            return false
        }
        let y = UnsafePointer(output)
        return a != y && b != y && c != y
    }

    /// The two-pass size rule against `cache` bytes of last-level cache, for
    /// `tensors` tensors (2: x and y; 3: x, dy and dx) of `elementBytes`-byte
    /// elements: their bytes together ≥ 3/4 of the cache on `threads` ≥ 2, ≥ 1/2
    /// of it on one thread.
    static func twoPassStreams(_ elements: Int, cache: Int, elementBytes: Int = 4, tensors: Int = 2,
                               threads: Int = 2) -> Bool {
        let bytes = tensors * elementBytes * elements
        return threads < 2 ? 2 * bytes >= cache : 4 * bytes >= 3 * cache
    }

    /// The single-pass size rule against `cache` bytes of last-level cache.
    static func singlePassStreams(_ elements: Int, threads: Int, wideRows: Bool, cache: Int,
                                  elementBytes: Int = 4) -> Bool {
        // From 3/4 of the cache on any thread count (the one-thread figures
        // above were taken at 3/4; below it a single pass was not measured).
        twoPassStreams(elements, cache: cache, elementBytes: elementBytes, threads: 2)
            && (threads < 2 || wideRows || 2 * 2 * elementBytes * elements >= 3 * cache)
    }

    /// The last-level cache the size rules count on in this process, read once.
    static let lastLevelCacheBytes: Int = {
        let t = Topology.current
        return countedCacheBytes(l3: t.l3CacheBytes, l2: t.l2CacheBytes,
                                 coresPerL3: t.cores / max(1, t.l3CacheCount))
    }()

    /// `NORMKERNELS_STREAMING`: `always`, `never`, or unset (the size rules).
    private static let override = parseOverride(ProcessInfo.processInfo.environment["NORMKERNELS_STREAMING"])

    /// `always` → true, `never` → false, anything else (or unset) → nil.
    static func parseOverride(_ value: String?) -> Bool? {
        switch value {
        case "always": return true
        case "never": return false
        default: return nil
        }
    }
}
