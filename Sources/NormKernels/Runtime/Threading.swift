import Foundation

/// How workers are pinned to cores while a kernel runs.
public enum Affinity: String, Sendable, CaseIterable, Hashable {
    /// No pinning: Dispatch's pool threads run where the OS puts them.
    case none
    /// Worker i on core i in hwloc's logical order: workers share caches.
    case compact
    /// Workers spread over packages and L3 domains first, then cores.
    case scatter
}

/// How many threads a kernel may use and how they are pinned.
///
/// The thread count never changes a result: work is cut into blocks that depend
/// only on the shape and the cache sizes, and partial results merge in a fixed
/// order, so 1, 2 or 64 threads give bitwise identical outputs.
public struct Threading: Sendable, Hashable, CustomStringConvertible {
    /// Maximum number of workers, ≥ 1.
    public var threads: Int
    public var affinity: Affinity
    /// Calls with fewer elements of work than this run on the calling thread.
    public var parallelThreshold: Int
    /// How long worker threads keep spinning for the next call after a parallel
    /// call, in µs (default `defaultSpinMicroseconds`, 50; 0 parks them at once).
    /// Back-to-back calls then skip the 100–250 µs a parked Dispatch thread needs
    /// to wake up, as OpenMP's spinning workers do, at the price of a busy core
    /// for at most that long after each call. Workers are still Dispatch pool
    /// threads; results do not change. Not used with pinning (`affinity` other
    /// than `.none`). Values above `maxSpinMicroseconds` (1 s) spin 1 s.
    public var spinMicroseconds: Int

    /// The longest spin any `spinMicroseconds` gives: past a second a parked
    /// thread's 100–250 µs wake-up no longer matters, and a worker spinning for
    /// ever (an `Int.max` from a configuration file) would hold a core.
    public static let maxSpinMicroseconds = 1_000_000

    /// `parallelThreshold` nil: `NORMKERNELS_PARALLEL_THRESHOLD` when set, else
    /// 2^19 elements, or 2^17 with warm workers (`spinMicroseconds` > 0), whose
    /// helpers are usually awake and join in microseconds.
    public init(threads: Int, affinity: Affinity = .none,
                parallelThreshold: Int? = nil,
                spinMicroseconds: Int = Threading.defaultSpinMicroseconds) {
        self.threads = max(1, threads)
        self.affinity = affinity
        self.spinMicroseconds = max(0, spinMicroseconds)
        let threshold = parallelThreshold ?? Threading.environmentParallelThreshold
            ?? (self.spinMicroseconds > 0 && affinity == .none ? Threading.warmParallelThreshold
                                                                 : Threading.defaultParallelThreshold)
        self.parallelThreshold = max(0, threshold)
    }

    /// The default threshold with warm workers. Measured with
    /// `NORMKERNELS_SPIN_US=1000` on 2 threads: at 2^17 instead of 2^20, GroupNorm
    /// [2, 1280, 16, 16] NCHW forward 0.17 → 0.12 ms and backward 0.44–0.72 →
    /// 0.23–0.27 ms, LayerNorm [256, 1024] forward 0.11 → 0.06–0.09 ms.
    public static let warmParallelThreshold = 1 << 17

    /// `NORMKERNELS_PARALLEL_THRESHOLD`, read at each use (a `Threading` built
    /// after the variable changes sees the new value; one built before keeps its
    /// own `parallelThreshold`).
    private static var environmentParallelThreshold: Int? {
        parallelThreshold(fromEnvironment: getenv("NORMKERNELS_PARALLEL_THRESHOLD").map { String(cString: $0) })
    }

    /// A non-negative integer, or nil (unset or not a count).
    static func parallelThreshold(fromEnvironment text: String?) -> Int? {
        guard let text, let n = Int(text.trimmingCharacters(in: .whitespaces)), n >= 0 else { return nil }
        return n
    }

    /// `NORMKERNELS_SPIN_US` when set to a non-negative integer, else 50 µs.
    ///
    /// Why 50: measured on the 2-vCPU development VM (docs/PERFORMANCE-HISTORY.md,
    /// "Warm workers"), 72 GroupNorm, InstanceNorm and BatchNorm cases of 0.1–3 ms on 2
    /// threads, two alternating rounds: 62 were ≥ 1.1× faster with 50 µs of spin
    /// than with parked workers (65 with 300 µs), most by 1.3–2×. A helper that
    /// finds no new call within 50 µs goes back to Dispatch, so a process that
    /// calls rarely pays at most 50 µs of one core per call. libgomp, which PyTorch
    /// uses, spins longer by default (`GOMP_SPINCOUNT`); `NORMKERNELS_SPIN_US=0`
    /// turns spinning off.
    public static let defaultSpinMicroseconds: Int = {
        if let text = ProcessInfo.processInfo.environment["NORMKERNELS_SPIN_US"],
           let n = Int(text), n >= 0 {
            return n
        }
        return 50
    }()

    /// The threshold with parked workers (`spinMicroseconds` 0, or pinning):
    /// 2^19 elements (2 MiB of Float32), or `NORMKERNELS_PARALLEL_THRESHOLD`.
    /// Warm workers (the default) use `warmParallelThreshold`.
    ///
    /// Measured on the 2-vCPU development VM: a parked Dispatch pool thread
    /// takes 100–250 µs to join a `concurrentPerform` (two 100 µs bodies: 217 µs
    /// median in parallel against 200 µs serially; two 500 µs bodies: 670 µs
    /// against 1000 µs). Normalization streams 2–5·10⁹ elements/s per core, so
    /// below about half a million elements a second thread arrives when the work
    /// is nearly done, and waiting for it costs more than it brings. (2^20 while
    /// every phase of a kernel paid the wake-up; since `Parallel.forEach(phases:)`
    /// a call pays it once, and 2^19 measured 0.96–2.4× faster on 2^19–2^20-value
    /// problems, 2^18 and 2^17 mixed: docs/PERFORMANCE-HISTORY.md, "Fifth pass".)
    public static var defaultParallelThreshold: Int { environmentParallelThreshold ?? 1 << 19 }

    /// One thread: everything runs on the calling thread.
    public static let serial = Threading(threads: 1)

    /// The process default: `NORMKERNELS_THREADS` when set to a positive integer,
    /// else the cores hwloc reports for this process (1 when hwloc failed).
    /// `NORMKERNELS_AFFINITY` (none, compact, scatter) sets the default pinning.
    public static var `default`: Threading { defaultThreading }

    private static let defaultThreading: Threading = {
        let env = ProcessInfo.processInfo.environment
        var threads = Topology.current.cores
        if let text = env["NORMKERNELS_THREADS"] {
            if let n = Int(text.trimmingCharacters(in: .whitespaces)), n > 0 {
                threads = n
            } else {
                warn("NORMKERNELS_THREADS=\(text) is not a positive integer; using \(threads)")
            }
        }
        var affinity = Affinity.none
        if let text = env["NORMKERNELS_AFFINITY"] {
            if let a = Affinity(rawValue: text.lowercased()) { affinity = a }
            else { warn("NORMKERNELS_AFFINITY=\(text) is not none, compact or scatter; using none") }
        }
        if !Topology.current.isFromHwloc { warn(Topology.current.message) }
        return Threading(threads: threads, affinity: affinity)
    }()

    public var description: String {
        "\(threads) thread\(threads == 1 ? "" : "s"), affinity \(affinity.rawValue), parallel from \(parallelThreshold) elements"
            + (spinMicroseconds > 0 ? ", workers spin \(spinMicroseconds) µs" : "")
    }
}

func warn(_ message: String) {
    FileHandle.standardError.write(Data("NormKernels: \(message)\n".utf8))
}
