import ArgumentParser
import Foundation
import NormKernels

/// `normbench scale`: the same cases at each thread count, with speedup and
/// parallel efficiency.
struct ScaleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Thread-scaling profile: median time, speedup and parallel efficiency for each thread count.",
        discussion: """
            Thread counts default to 1 … the core count. Speedup is relative to the smallest thread count \
            measured for the same case (normally 1); parallel efficiency = speedup / (threads / that count). \
            Defaults: forward-training, N 8 × C 64 × H=W 14,56, both layouts, groups 32, 300 ms per case. \
            The CSV has the sweep columns plus speedup,parallel_efficiency.
            """
    )

    @OptionGroup var options: GridOptions

    static var defaults: GridDefaults {
        GridDefaults(directions: [.forwardTraining], batch: [8], channels: [64], spatial: [14, 56], groups: [32],
                     threads: Array(1...max(1, Topology.current.cores)), budgetMilliseconds: 300)
    }

    /// Speedup and efficiency of each result against its case's smallest thread count.
    struct Scaling {
        var speedup: Double?
        var efficiency: Double?
    }

    static func scaling(_ results: [CaseResult]) -> [Scaling] {
        func key(_ r: CaseResult) -> String {
            [r.op, r.dtype, r.direction, r.layout, "\(r.n)", "\(r.c)", "\(r.h)", "\(r.w)", r.groups, r.affinity]
                .joined(separator: "|")
        }
        var base: [String: (threads: Int, median: Double)] = [:]
        for r in results {
            guard let m = r.medianMilliseconds else { continue }
            if let b = base[key(r)], b.threads <= r.threads { continue }
            base[key(r)] = (r.threads, m)
        }
        return results.map { r in
            guard let m = r.medianMilliseconds, let b = base[key(r)] else { return Scaling() }
            let speedup = b.median / m
            return Scaling(speedup: speedup, efficiency: speedup / (Double(r.threads) / Double(b.threads)))
        }
    }

    func run() throws {
        let resolved = try options.resolve(Self.defaults)
        Placement.current = resolved.placement
        let report = SweepRunner(grid: resolved.grid, policy: resolved.policy).run()
        let scaling = Self.scaling(report.results)
        var table = Table(
            headers: ["op", "direction", "layout", "NxCxHxW", "G", "aff", "thr", "median ms", "min ms", "IQR %",
                      "GB/s", "xcopy", "speedup", "efficiency", "checked"],
            numeric: [4, 6, 7, 8, 9, 10, 11, 12, 13])
        for (r, s) in zip(report.results, scaling) {
            let iqr = r.q1Milliseconds.flatMap { q1 in
                r.q3Milliseconds.flatMap { q3 in r.medianMilliseconds.map { 100 * (q3 - q1) / $0 } }
            }
            table.rows.append([
                r.dtype == "f32" ? r.op : "\(r.op) \(r.dtype)", r.direction, r.layout, "\(r.n)x\(r.c)x\(r.h)x\(r.w)",
                r.groups, r.affinity, "\(r.threads)",
                Format.milliseconds(r.medianMilliseconds), Format.milliseconds(r.minMilliseconds), Format.fixed(iqr, 1),
                Format.fixed(r.gbps, 2), Format.fixed(r.fractionOfCopy, 2),
                Format.fixed(s.speedup, 2), Format.fixed(s.efficiency.map { $0 * 100 }, 0) + (s.efficiency == nil ? "" : " %"),
                r.checked,
            ])
        }
        print(table.render(), terminator: "")
        print(CopySummary.text(report.copy))
        let byIndex = Dictionary(uniqueKeysWithValues: zip(report.results.indices, scaling))
        var index = 0
        try Reports.write(report, resolved, command: "scale", extraColumns: ["speedup", "parallel_efficiency"]) { _ in
            defer { index += 1 }
            let s = byIndex[index] ?? Scaling()
            return [Format.fixed(s.speedup, 4), Format.fixed(s.efficiency, 4)]
        }
        try Reports.finish(report)
    }
}
