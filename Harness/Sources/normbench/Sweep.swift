import Foundation
import NormKernels

/// The measured outcome of one case: the CSV row plus the details that only
/// go to JSON.
struct CaseResult: Codable {
    var op: String
    /// f32, f16 or bf16: the last CSV column (after any extra columns), so that
    /// readers of the earlier columns keep their positions.
    var dtype: String = "f32"
    var direction: String
    var layout: String
    var n: Int, c: Int, h: Int, w: Int
    var groups: String
    var threads: Int
    var affinity: String
    // Timing fields are nil when the case was not timed (failed check or error).
    var medianMilliseconds: Double?
    var minMilliseconds: Double?
    var bytes: Int
    var gbps: Double?
    /// gbps / copy GB/s at the same thread count; nil if the copy was not measured.
    var fractionOfCopy: Double?
    /// "ok", "fail" (first repetition differs from the Float64 reference) or
    /// "error" (the kernel threw). Failed cases carry no timing.
    var checked: String
    /// With `--paired-copy`: the median over pairs (one copy-probe pass, then one
    /// repetition of the case) of case GB/s / copy GB/s; nil otherwise.
    var pairedFraction: Double? = nil
    // JSON only:
    var reps: Int
    var q1Milliseconds: Double?
    var q3Milliseconds: Double?
    var p90Milliseconds: Double?
    var firstRepetitionMilliseconds: Double?
    var maxError: Double?
    var checkedElements: Int
    var checkedUnits: String
    var detail: String

    var passed: Bool { checked == "ok" }

    enum CodingKeys: String, CodingKey {
        case op, dtype, direction, layout, n = "N", c = "C", h = "H", w = "W", groups = "G", threads, affinity
        case medianMilliseconds = "median_ms", minMilliseconds = "min_ms", bytes, gbps
        case fractionOfCopy = "fraction_of_copy", checked, reps
        case q1Milliseconds = "q1_ms", q3Milliseconds = "q3_ms", p90Milliseconds = "p90_ms"
        case firstRepetitionMilliseconds = "first_rep_ms", maxError = "max_error"
        case checkedElements = "checked_elements", checkedUnits = "checked_units", detail
        case pairedFraction = "paired_fraction"
    }
}

/// Runs a grid of cases: copy bandwidth, every case (checked, then timed),
/// copy bandwidth again.
struct SweepRunner {
    var grid: CaseGrid
    var policy: MeasurementPolicy
    /// Whether to measure copy bandwidth before and after (off only for tests of the harness itself).
    var measureCopy = true
    /// `--paired-copy`: after its timing, each case alternates copy-probe passes
    /// with its own repetitions (see `pairedFraction`).
    var pairedCopy = false

    struct Report {
        var results: [CaseResult]
        var copy: CopyReference
        var skips: CaseGrid.Skips
        var seconds: Double
        var anyFailed: Bool { results.contains { !$0.passed } }
    }

    func run() -> Report {
        let started = now()
        let (groups, skips) = grid.cases()
        if !skips.reasons.isEmpty { Console.note("skipped: \(skips.summary)") }
        var copy = CopyReference()
        if measureCopy {
            Console.note("measuring copy bandwidth (threads \(Set(grid.threads).sorted().map(String.init).joined(separator: ",")))…")
            copy.start = CopyReference.measure(threads: grid.threads, affinity: grid.affinity)
        }
        // One probe buffer for every pair of the run (256 MiB, allocated once).
        let pairing = pairedCopy ? BandwidthProbe() : nil
        let total = groups.reduce(0) { $0 + $1.count }
        let progress = Progress(total: total)
        var results: [CaseResult] = []
        for cases in groups {
            guard let key = cases.first?.key else { continue }
            // Inputs and reference values once per key, shared by its thread counts.
            let workload = Workload(key: key)
            let expectation = Reference.expectation(for: workload)
            for c in cases {
                progress.step(c.key.label + " t\(c.threads)")
                var result = runCase(c, workload, expectation)
                if let pairing, result.passed {
                    result.pairedFraction = pairedFraction(c, workload, pairing, caseBytes: result.bytes)
                }
                results.append(result)
            }
        }
        progress.finish()
        if measureCopy {
            copy.end = CopyReference.measure(threads: grid.threads, affinity: grid.affinity)
        }
        for i in results.indices {
            if let reference = copy.gbps(threads: results[i].threads), let gbps = results[i].gbps {
                results[i].fractionOfCopy = gbps / reference
            }
        }
        return Report(results: results, copy: copy, skips: skips, seconds: now() - started)
    }

    /// The fraction of copy bandwidth taken pair by pair: one pass of the copy
    /// probe at the case's thread count, then one repetition of the case, until
    /// the time budget is spent (at least `minReps` pairs); the median of the
    /// pairs' ratios. This VM's memory path changes speed between seconds (the
    /// copy probe reads ~45 or ~85 GB/s), so a probe taken at the start or end
    /// of a sweep can belong to a different state than the case. Meant for
    /// tensors past the cache: the copy pass evicts the case's data.
    func pairedFraction(_ c: BenchCase, _ w: Workload, _ probe: BandwidthProbe, caseBytes: Int) -> Double? {
        guard let make = c.key.pass.make,
              let repetition = try? make(w, c.threading) else { return nil }
        let copyBytes = Double(probe.movedBytes(.copy))
        var ratios: [Double] = []
        let started = now()
        while ratios.count < policy.minReps || (now() - started < policy.budget && ratios.count < 1000) {
            let t0 = now()
            probe.run(.copy, threads: c.threads, affinity: c.affinity)
            let t1 = now()
            guard (try? repetition()) != nil else { return nil }
            let t2 = now()
            ratios.append((Double(caseBytes) / (t2 - t1)) / (copyBytes / (t1 - t0)))
        }
        ratios.sort()
        return ratios[ratios.count / 2]
    }

    /// First repetition (timed once, checked), then warm-up and timed repetitions.
    func runCase(_ c: BenchCase, _ w: Workload, _ e: Reference.Expectation) -> CaseResult {
        let key = c.key
        var result = CaseResult(
            op: key.op.name, dtype: key.dtype.rawValue, direction: key.direction.rawValue, layout: key.layoutName,
            n: key.shape.n, c: key.shape.c, h: key.shape.h, w: key.shape.w, groups: key.groupsName,
            threads: c.threads, affinity: c.affinity.rawValue,
            medianMilliseconds: nil, minMilliseconds: nil, bytes: key.bytes, gbps: nil,
            fractionOfCopy: nil, checked: "error", reps: 0, q1Milliseconds: nil, q3Milliseconds: nil,
            p90Milliseconds: nil, firstRepetitionMilliseconds: nil, maxError: nil,
            checkedElements: e.offsets.count, checkedUnits: "\(e.checkedUnits)/\(e.units)", detail: "")
        do {
            guard let make = key.pass.make else {
                result.detail = "not available"
                return result
            }
            let repetition = try make(w, c.threading)
            w.out.poison()
            result.firstRepetitionMilliseconds = try Measurement.once(repetition) * 1e3
            w.out.widenElements()
            let outcome = Reference.compare(e, w.out)
            // nil when not finite (a NaN or Inf output), which JSON cannot carry.
            result.maxError = outcome.maxError.isFinite ? outcome.maxError : nil
            guard outcome.passed else {
                result.checked = "fail"
                result.detail = outcome.detail
                Console.note("FAIL \(key.label) t\(c.threads): \(outcome.detail)")
                return result
            }
            let timing = try Measurement.measure(policy, output: w.out, repetition)
            result.checked = "ok"
            result.reps = timing.reps
            result.medianMilliseconds = timing.median * 1e3
            result.minMilliseconds = timing.min * 1e3
            result.q1Milliseconds = timing.q1 * 1e3
            result.q3Milliseconds = timing.q3 * 1e3
            result.p90Milliseconds = timing.p90 * 1e3
            result.gbps = BandwidthProbe.gigabytesPerSecond(bytes: result.bytes, seconds: timing.median)
        } catch {
            result.checked = "error"
            result.detail = "\(error)"
            Console.note("ERROR \(key.label) t\(c.threads): \(error)")
        }
        return result
    }
}
