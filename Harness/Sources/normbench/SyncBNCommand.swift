import ArgumentParser
import Foundation
import NormKernels
import NormKernelsMPI

/// `normbench syncbn`: the cost of a synchronized BatchNorm training step
/// (docs/SYNCBN.md, "Cost of a step"). Run under `mpirun -np R` (tools/syncbn-bench.sh);
/// needs normbench built with the trait `MPI`.
struct SyncBNCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "syncbn",
        abstract: "Synchronized vs local BatchNorm training step under mpirun (needs --traits MPI).",
        discussion: """
            Every rank holds the same per-rank shape. Per case and repetition (ranks aligned by \
            MPI_Barrier before each timed piece): one local BatchNorm step (forward + backward, all \
            gradients), one synchronized step on the same slice, one MPI_Allreduce (sum) of the step's \
            4C + 2 Float64 values, one MPI_Allgather of 2C + 2 per rank (what each of the step's two \
            exchanges is), and the two forwards alone. Each figure is the median over repetitions of the slowest rank; the exchange \
            column is the time the slowest rank spent inside the step's two all-gathers. Target (issue 22): \
            sync ≤ (local + allreduce) · 1.1. Build and run: tools/syncbn-bench.sh.
            """
    )

    @Option(help: "Channel counts, comma-separated.")
    var channels: String = "64,128,256,512,1024,2048"

    @Option(help: "Layouts, comma-separated: nchw, nhwc, matrix ([rows, C]).")
    var layouts: String = "nchw,nhwc,matrix"

    @Option(help: "Samples per rank (NCHW, NHWC).")
    var batch: Int = 8

    @Option(help: "H = W per sample (NCHW, NHWC).")
    var spatial: Int = 14

    @Option(help: "Rows per rank of the [rows, C] matrix.")
    var rows: Int = 256

    @Option(help: "Timed repetitions per case (each case's pieces are interleaved).")
    var repetitions: Int = 40

    @Option(help: "Threads per rank (default: cores / ranks, at least 1).")
    var threads: Int?

    @Option(help: "Write the results as CSV to this path (rank 0).")
    var csv: String?

    @Option(help: "Write the results as a markdown table to this path (rank 0).")
    var markdown: String?

    func run() throws {
        guard mpiExchangeAvailable else {
            throw ValidationError("normbench was built without the trait MPI: "
                + "swift build -c release --package-path Harness --traits MPI (tools/syncbn-bench.sh)")
        }
        let cs = try channels.split(separator: ",").map { text -> Int in
            guard let c = Int(text), c > 0 else { throw ValidationError("--channels: '\(text)' is not a positive count") }
            return c
        }
        let kinds = try layouts.split(separator: ",").map { text -> String in
            let k = text.lowercased()
            guard ["nchw", "nhwc", "matrix"].contains(k) else { throw ValidationError("--layouts: '\(text)'") }
            return k
        }
        var shapes: [TensorShape] = []
        for k in kinds {
            for c in cs {
                switch k {
                case "nchw": shapes.append(TensorShape(n: batch, c: c, h: spatial, w: spatial))
                case "nhwc": shapes.append(TensorShape(n: batch, c: c, h: spatial, w: spatial, layout: .nhwc))
                default: shapes.append(.matrix(rows, c))
                }
            }
        }
        #if MPI
        try SyncBNRun.main(shapes: shapes, repetitions: repetitions, threads: threads,
                           csv: csv, markdown: markdown)
        #endif
    }
}

/// One case's figures, all in microseconds of the slowest rank (medians).
struct SyncBNResult {
    var shape: TensorShape
    var ranks: Int
    var threads: Int
    var local: Double
    var sync: Double
    var exchange: Double
    var allReduce: Double
    var allGather: Double
    /// The forward alone (local; synchronized, with its one exchange).
    var localForward: Double
    var syncForward: Double

    /// Float64 values each rank sends per step: two all-gathers of 2C + 2.
    var valuesSent: Int { 2 * (2 * shape.c + 2) }
    var target: Double { local + allReduce }
    /// How far the synchronized step is above the target's base, in % of local.
    var excessPercent: Double { (sync - local - allReduce) / local * 100 }
    var met: Bool { sync <= 1.1 * target }

    var layoutName: String { shape.h == 1 && shape.w == 1 ? "matrix" : shape.layout.rawValue }

    static let csvColumns = ["layout", "N", "C", "H", "W", "ranks", "threads", "local_us", "sync_us", "exchange_us",
                             "exchange_share", "allreduce_us", "allgather_us", "bytes_sent_per_rank",
                             "bytes_received_per_rank", "target_us", "excess_pct_of_local", "target_met",
                             "local_forward_us", "sync_forward_us"]

    var csvRow: [String] {
        [layoutName, "\(shape.n)", "\(shape.c)", "\(shape.h)", "\(shape.w)", "\(ranks)", "\(threads)",
         Format.fixed(local, 2), Format.fixed(sync, 2), Format.fixed(exchange, 2), Format.fixed(exchange / sync, 4),
         Format.fixed(allReduce, 2), Format.fixed(allGather, 2), "\(valuesSent * 8)", "\(valuesSent * 8 * ranks)",
         Format.fixed(target, 2), Format.fixed(excessPercent, 1), met ? "yes" : "no",
         Format.fixed(localForward, 2), Format.fixed(syncForward, 2)]
    }

    var markdownRow: String {
        let shapeText = layoutName == "matrix" ? "[\(shape.n), \(shape.c)]" : "[\(shape.n), \(shape.c), \(shape.h), \(shape.w)] \(layoutName.uppercased())"
        let cells = [shapeText, Format.fixed(local, 1), Format.fixed(sync, 1), Format.fixed(exchange, 1),
                     Format.fixed(exchange / sync * 100, 0) + " %", Format.fixed(allReduce, 1),
                     Format.fixed(allGather, 1), "\(valuesSent * 8)", Format.fixed(excessPercent, 1) + " %",
                     met ? "yes" : "**no**", Format.fixed(localForward, 1) + " / " + Format.fixed(syncForward, 1)]
        return "| " + cells.joined(separator: " | ") + " |"
    }

    static let markdownHeader = """
        | per rank | local µs | sync µs | exchange µs | share | allreduce µs | allgather µs | bytes sent/rank | excess | ≤ target | forward local / sync µs |
        |---|---|---|---|---|---|---|---|---|---|---|
        """
}

/// The run's context: machine, caches, commit, load.
enum SyncBNReport {
    static func loadAverage() -> String {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))
            .map { $0.split(separator: " ").prefix(3).joined(separator: " ") } ?? "unknown"
    }

    static func header(ranks: Int, threads: Int, repetitions: Int, loadBefore: String) -> [String] {
        let t = Topology.current
        let rev = Revision.current()
        return [
            "normbench syncbn: \(ranks) rank(s) × \(threads) thread(s), median of the slowest rank over \(repetitions) repetitions",
            "cpu: \(MachineInfo.cpuModel()); \(t.cores) cores; L1d \(t.l1DataCacheBytes >> 10) KiB, L2 \(t.l2CacheBytes >> 10) KiB, L3 \(t.l3CacheBytes >> 10) KiB (\(t.isFromHwloc ? "hwloc" : "fallback"))",
            "commit: \(rev.revision ?? "unknown")\(rev.dirty == true ? " (dirty)" : "")",
            "load average before: \(loadBefore), after: \(loadAverage())",
            "date: \(ISO8601DateFormatter().string(from: Date()))",
        ]
    }

    static func write(_ results: [SyncBNResult], header: [String], csv: String?, markdown: String?) throws {
        let md = header.map { "<!-- \($0) -->" }.joined(separator: "\n") + "\n\n" + SyncBNResult.markdownHeader + "\n"
            + results.map(\.markdownRow).joined(separator: "\n") + "\n"
        print(header.joined(separator: "\n"))
        print()
        print(md, terminator: "")
        if let csv {
            let text = header.map { "# \($0)" }.joined(separator: "\n") + "\n" + SyncBNResult.csvColumns.joined(separator: ",")
                + "\n" + results.map { $0.csvRow.joined(separator: ",") }.joined(separator: "\n") + "\n"
            try text.write(toFile: csv, atomically: true, encoding: .utf8)
        }
        if let markdown { try md.write(toFile: markdown, atomically: true, encoding: .utf8) }
    }
}
