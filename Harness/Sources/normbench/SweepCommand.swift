import ArgumentParser
import Foundation

/// `normbench sweep`: ops × directions × layouts × shapes × groups × threads.
struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Measure every case of a grid; check each against a Float64 reference; report GB/s and the fraction of copy bandwidth.",
        discussion: """
            Defaults cover every op and direction in under 3 minutes on 2 cores: N 1,16 × C 64,256 × H=W 7,56, \
            both layouts, groups 1,32, threads 1 and the core count, 150 ms per case. \
            Exits with status 1 if any case fails its check.
            """
    )

    @OptionGroup var options: GridOptions

    static var defaults: GridDefaults {
        GridDefaults(batch: [1, 16], channels: [64, 256], spatial: [7, 56], groups: [1, 32],
                     threads: defaultThreadCounts(), budgetMilliseconds: 150)
    }

    func run() throws {
        let resolved = try options.resolve(Self.defaults)
        Placement.current = resolved.placement
        let report = SweepRunner(grid: resolved.grid, policy: resolved.policy, pairedCopy: resolved.pairedCopy).run()
        print(SweepTable.render(report.results), terminator: "")
        print(CopySummary.text(report.copy))
        if resolved.pairedCopy {
            for r in report.results {
                print("paired with copy: \(r.op) \(r.direction) \(r.layout) \(r.n)x\(r.c)x\(r.h)x\(r.w) t\(r.threads): "
                      + (r.pairedFraction.map { String(format: "%.2f × copy", $0) } ?? "–"))
            }
            try Reports.write(report, resolved, command: "sweep", extraColumns: ["paired_fraction"]) {
                [Format.fixed($0.pairedFraction, 4)]
            }
        } else {
            try Reports.write(report, resolved, command: "sweep")
        }
        try Reports.finish(report)
    }
}

/// Lines shared by sweep and scale.
enum CopySummary {
    static func text(_ copy: CopyReference) -> String {
        let threads = Set(copy.start.keys).union(copy.end.keys).sorted()
        guard !threads.isEmpty else { return "copy bandwidth: not measured" }
        let parts = threads.map { t in
            String(format: "%d thread%@ start %.1f, end %.1f", t, t == 1 ? "" : "s", copy.start[t] ?? .nan, copy.end[t] ?? .nan)
        }
        return "copy bandwidth (GB/s, read + write bytes; fractions use the better of start and end): "
            + parts.joined(separator: "; ")
    }
}

enum Reports {
    static func write(_ report: SweepRunner.Report, _ resolved: ResolvedGrid, command: String,
                      extraColumns: [String] = [], extra: (CaseResult) -> [String] = { _ in [] }) throws {
        if let path = resolved.csv {
            try CSV.write(report.results, to: path, extraColumns: extraColumns, extra: extra)
        }
        if let path = resolved.json {
            var settings = resolved.settings
            settings["skipped"] = report.skips.summary
            settings["seconds"] = String(format: "%.1f", report.seconds)
            try RunDocument(command: command, settings: settings, copy: report.copy, results: report.results)
                .write(to: path)
        }
    }

    /// Summary on stderr; exit status 1 when any case failed its check or threw.
    static func finish(_ report: SweepRunner.Report) throws {
        let failed = report.results.filter { !$0.passed }
        Console.note(String(format: "%d cases, %d checked ok, %d failed, %.1f s",
                            report.results.count, report.results.count - failed.count, failed.count, report.seconds))
        if !failed.isEmpty {
            for r in failed {
                Console.note("  \(r.checked): \(r.op) \(r.direction) \(r.layout) \(r.n)x\(r.c)x\(r.h)x\(r.w) G\(r.groups) t\(r.threads): \(r.detail)")
            }
            throw ExitCode.failure
        }
    }
}
