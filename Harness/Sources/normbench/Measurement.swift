import CNormSupport
import Glibc

/// Monotonic time in seconds (CLOCK_MONOTONIC: ~20 ns per read, immune to
/// wall-clock adjustments).
@inline(__always)
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Summary of the timed repetitions of one case, in seconds per repetition.
struct Timing: Codable {
    var reps: Int
    var median: Double
    var min: Double
    var q1: Double
    var q3: Double
    var p90: Double

    init(samples: [Double], reps: Int) {
        let s = samples.sorted()
        func quantile(_ q: Double) -> Double {
            // Linear interpolation between closest ranks (numpy's default).
            let position = q * Double(s.count - 1)
            let lo = Int(position), hi = Swift.min(lo + 1, s.count - 1)
            return s[lo] + (s[hi] - s[lo]) * (position - Double(lo))
        }
        self.reps = reps
        median = quantile(0.5)
        min = s[0]
        q1 = quantile(0.25)
        q3 = quantile(0.75)
        p90 = quantile(0.9)
    }

    /// Interquartile range relative to the median: the spread figure in the table.
    var relativeSpread: Double { (q3 - q1) / median }
}

/// How long and how often a case is repeated.
struct MeasurementPolicy {
    /// Timed repetitions continue until this much time has been spent…
    var budget: Double = 0.15
    /// …and at least this many samples were taken.
    var minReps: Int = 5
    /// A sample shorter than this is too close to the clock's resolution and
    /// overhead: tiny cases time `k` back-to-back repetitions per sample instead.
    var minSampleSeconds: Double = 20e-6
    /// Upper bound on samples, so a 1 µs case does not collect millions.
    var maxSamples: Int = 20_000
}

enum Measurement {
    /// Runs `body` and returns its time in seconds (used for the checked first repetition).
    static func once(_ body: Repetition) throws -> Double {
        let start = now()
        try body()
        return now() - start
    }

    /// Warm-up, then samples until the budget is spent. The caller has already
    /// run (and checked) the first repetition, which also faulted in the pages.
    ///
    /// Warm-up: repetitions for ~10 % of the budget (at least 2), which also
    /// measure how many repetitions one sample needs to last `minSampleSeconds`.
    static func measure(_ policy: MeasurementPolicy, output: Buffer, _ body: Repetition) throws -> Timing {
        var warmups = 0, warmTime = 0.0
        let warmStart = now()
        repeat {
            try body()
            warmups += 1
            warmTime = now() - warmStart
        } while warmups < 2 || warmTime < policy.budget * 0.1
        let perRep = warmTime / Double(warmups)
        let inner = perRep >= policy.minSampleSeconds ? 1 : Int((policy.minSampleSeconds / perRep).rounded(.up))

        var samples: [Double] = []
        samples.reserveCapacity(256)
        let start = now()
        while samples.count < policy.minReps
            || (now() - start < policy.budget && samples.count < policy.maxSamples) {
            let t0 = now()
            for _ in 0..<inner { try body() }
            let t1 = now()
            // The outputs escape to an opaque C function: nothing the kernel
            // wrote can be treated as dead.
            nk_black_hole(output.kernelPointer)
            samples.append((t1 - t0) / Double(inner))
        }
        return Timing(samples: samples, reps: samples.count * inner)
    }
}
