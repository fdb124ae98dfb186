import ArgumentParser
import Foundation
import NormKernels

/// `normbench bandwidth`: the roofline of this machine, measured in-process.
struct BandwidthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bandwidth",
        abstract: "Memory bandwidth over a buffer set: read-only sum, copy, memcpy, non-temporal copy, triad, non-temporal triad.",
        discussion: """
            Each kernel moves the whole buffer set once per pass; GB/s counts bytes read plus bytes written \
            (10^9 bytes/s). 'copy' (SIMD loop, regular stores) is what sweep's fraction_of_copy divides by.
            """
    )

    @Option(help: "Thread counts, comma-separated (default: 1 and the core count).")
    var threads: String?

    @Option(help: "Pinning of workers: none, compact or scatter.")
    var affinity: String = "none"

    @Option(help: "Size of the buffer set in MiB.")
    var mib: Int = 256

    @Option(name: .customLong("budget-ms"), help: "Time budget per kernel and thread count, in ms.")
    var budgetMilliseconds: Double = 500

    @Option(help: "Kernels, comma-separated: read,copy,memcpy,nt-copy,triad,nt-triad.")
    var kernels: String = BandwidthProbe.Kernel.allCases.map(\.rawValue).joined(separator: ",")

    @Option(help: "Write the results as CSV: kernel,threads,affinity,bytes,median_ms,min_ms,gbps,best_gbps.")
    var csv: String?

    @Option(help: "Write the results with machine info and git revision as JSON.")
    var json: String?

    struct Row: Codable {
        var kernel: String
        var threads: Int
        var affinity: String
        var bytes: Int
        var medianMilliseconds: Double
        var minMilliseconds: Double
        var gbps: Double
        var bestGbps: Double
        var reps: Int
        enum CodingKeys: String, CodingKey {
            case kernel, threads, affinity, bytes, medianMilliseconds = "median_ms", minMilliseconds = "min_ms"
            case gbps, bestGbps = "best_gbps", reps
        }
    }

    func run() throws {
        guard let pinning = Affinity(rawValue: affinity.lowercased()) else {
            throw ValidationError("--affinity: '\(affinity)' is not none, compact or scatter")
        }
        let threadCounts = try threads.map { text in
            try text.split(separator: ",").map { item -> Int in
                guard let t = Int(item.trimmingCharacters(in: .whitespaces)), t > 0 else {
                    throw ValidationError("--threads: '\(item)' is not a positive integer")
                }
                return t
            }
        } ?? defaultThreadCounts()
        let chosen = try kernels.split(separator: ",").map { name -> BandwidthProbe.Kernel in
            guard let k = BandwidthProbe.Kernel(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--kernels: '\(name)' is not one of read, copy, memcpy, nt-copy, triad, nt-triad")
            }
            return k
        }
        guard mib >= 1 else { throw ValidationError("--mib must be ≥ 1") }

        Console.note("allocating and touching \(mib) MiB…")
        let probe = BandwidthProbe(mebibytes: mib)
        let policy = MeasurementPolicy(budget: budgetMilliseconds / 1e3, minReps: 5)
        var rows: [Row] = []
        for kernel in chosen {
            for t in threadCounts {
                Console.note("  \(kernel.rawValue), \(t) thread\(t == 1 ? "" : "s")")
                let timing = probe.measure(kernel, threads: t, affinity: pinning, policy: policy)
                let moved = probe.movedBytes(kernel)
                rows.append(Row(kernel: kernel.rawValue, threads: t, affinity: pinning.rawValue, bytes: moved,
                                medianMilliseconds: timing.median * 1e3, minMilliseconds: timing.min * 1e3,
                                gbps: BandwidthProbe.gigabytesPerSecond(bytes: moved, seconds: timing.median),
                                bestGbps: BandwidthProbe.gigabytesPerSecond(bytes: moved, seconds: timing.min),
                                reps: timing.reps))
            }
        }
        var table = Table(headers: ["kernel", "threads", "affinity", "MiB moved", "median ms", "GB/s (median)", "GB/s (best)"],
                          numeric: [1, 3, 4, 5, 6])
        for r in rows {
            table.rows.append([r.kernel, "\(r.threads)", r.affinity, String(format: "%.1f", Double(r.bytes) / 1048576), Format.milliseconds(r.medianMilliseconds),
                               Format.fixed(r.gbps, 1), Format.fixed(r.bestGbps, 1)])
        }
        print(table.render(), terminator: "")
        if let csv {
            var text = "kernel,threads,affinity,bytes,median_ms,min_ms,gbps,best_gbps\n"
            for r in rows {
                text += [r.kernel, "\(r.threads)", r.affinity, "\(r.bytes)", Format.fixed(r.medianMilliseconds, 6),
                         Format.fixed(r.minMilliseconds, 6), Format.fixed(r.gbps, 3), Format.fixed(r.bestGbps, 3)]
                    .joined(separator: ",") + "\n"
            }
            try text.write(toFile: csv, atomically: true, encoding: .utf8)
            Console.note("wrote \(csv)")
        }
        if let json {
            let settings = ["mib": "\(mib)", "budget-ms": "\(budgetMilliseconds)", "affinity": pinning.rawValue]
            try RunDocument(command: "bandwidth", settings: settings, copy: nil, results: rows).write(to: json)
        }
    }
}
