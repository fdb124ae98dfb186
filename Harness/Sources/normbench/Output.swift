import Foundation
import NormKernels

/// A plain-text table with aligned columns (numbers right-aligned).
struct Table {
    var headers: [String]
    /// Indices of right-aligned (numeric) columns.
    var numeric: Set<Int>
    var rows: [[String]] = []

    func render() -> String {
        var widths = headers.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return numeric.contains(i) ? pad + cell : cell + pad
            }.joined(separator: "  ")
        }
        var out = [line(headers), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")]
        out += rows.map(line)
        return out.joined(separator: "\n") + "\n"
    }
}

/// Number formatting shared by the table and CSV.
enum Format {
    static func fixed(_ value: Double?, _ digits: Int) -> String {
        guard let value, value.isFinite else { return "" }
        return String(format: "%.\(digits)f", value)
    }

    /// About 4 significant digits for times from nanoseconds to seconds.
    static func milliseconds(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "-" }
        if value >= 100 { return String(format: "%.1f", value) }
        if value >= 1 { return String(format: "%.3f", value) }
        return String(format: "%.4f", value)
    }
}

/// The stable CSV of `sweep` (and, with extra columns, of `scale`).
enum CSV {
    /// Documented in docs/HARNESS.md; never reorder or rename.
    static let columns = ["op", "direction", "layout", "N", "C", "H", "W", "G", "threads", "affinity",
                          "median_ms", "min_ms", "bytes", "gbps", "fraction_of_copy", "checked"]

    static func row(_ r: CaseResult) -> [String] {
        [r.op, r.direction, r.layout, "\(r.n)", "\(r.c)", "\(r.h)", "\(r.w)", r.groups, "\(r.threads)", r.affinity,
         Format.fixed(r.medianMilliseconds, 6), Format.fixed(r.minMilliseconds, 6), "\(r.bytes)",
         Format.fixed(r.gbps, 3), Format.fixed(r.fractionOfCopy, 4), r.checked]
    }

    static func write(_ results: [CaseResult], to path: String,
                      extraColumns: [String] = [], extra: (CaseResult) -> [String] = { _ in [] }) throws {
        var text = (columns + extraColumns + ["dtype"]).joined(separator: ",") + "\n"
        for r in results { text += (row(r) + extra(r) + [r.dtype]).joined(separator: ",") + "\n" }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        Console.note("wrote \(path)")
    }
}

/// The sweep table on stdout.
enum SweepTable {
    static func render(_ results: [CaseResult]) -> String {
        var table = Table(
            headers: ["op", "direction", "layout", "NxCxHxW", "G", "thr", "aff", "median ms", "min ms", "IQR %",
                      "MB", "GB/s", "xcopy", "checked"],
            numeric: [4, 5, 7, 8, 9, 10, 11, 12])
        for r in results {
            let iqr = r.q1Milliseconds.flatMap { q1 in
                r.q3Milliseconds.flatMap { q3 in r.medianMilliseconds.map { 100 * (q3 - q1) / $0 } }
            }
            table.rows.append([
                r.dtype == "f32" ? r.op : "\(r.op) \(r.dtype)", r.direction, r.layout, "\(r.n)x\(r.c)x\(r.h)x\(r.w)", r.groups, "\(r.threads)", r.affinity,
                Format.milliseconds(r.medianMilliseconds), Format.milliseconds(r.minMilliseconds),
                Format.fixed(iqr, 1), Format.fixed(Double(r.bytes) / 1e6, 2), Format.fixed(r.gbps, 2),
                Format.fixed(r.fractionOfCopy, 2), r.checked,
            ])
        }
        return table.render()
    }
}

/// Where and when a run happened, for the JSON file.
struct MachineInfo: Codable {
    var cpuModel: String
    var hostname: String
    var kernel: String
    var topology: TopologyInfo

    struct TopologyInfo: Codable {
        var source: String
        var packages: Int, numaNodes: Int, cores: Int, processingUnits: Int
        var l1dBytes: Int, l2Bytes: Int, l3Bytes: Int

        init(_ t: Topology) {
            source = t.isFromHwloc ? "hwloc: " + t.message : "fallback: " + t.message
            packages = t.packages; numaNodes = t.numaNodes; cores = t.cores; processingUnits = t.processingUnits
            l1dBytes = t.l1DataCacheBytes; l2Bytes = t.l2CacheBytes; l3Bytes = t.l3CacheBytes
        }
    }

    enum CodingKeys: String, CodingKey { case cpuModel = "cpu_model", hostname, kernel, topology }

    static func current() -> MachineInfo {
        let t = TopologyInfo(Topology.current)
        return MachineInfo(cpuModel: cpuModel(), hostname: ProcessInfo.processInfo.hostName,
                           kernel: ProcessInfo.processInfo.operatingSystemVersionString, topology: t)
    }

    /// "model name" from /proc/cpuinfo (Linux), else "unknown".
    static func cpuModel() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return "unknown"
    }
}

/// Revision of the checkout normbench runs in (`git rev-parse HEAD`), nil outside git.
enum Revision {
    static func current() -> (revision: String?, dirty: Bool?) {
        guard let head = run(["rev-parse", "HEAD"]) else { return (nil, nil) }
        let status = run(["status", "--porcelain", "--untracked-files=no"])
        return (head, status.map { !$0.isEmpty })
    }

    private static func run(_ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// The JSON document of a sweep, scale or bandwidth run.
struct RunDocument<Results: Encodable>: Encodable {
    var tool = "normbench"
    var command: String
    var arguments: [String] = Array(CommandLine.arguments.dropFirst())
    var timestamp: String = ISO8601DateFormatter().string(from: Date())
    var gitRevision: String?
    var gitDirty: Bool?
    var machine: MachineInfo = .current()
    var settings: [String: String]
    /// Copy GB/s per thread count (keys are thread counts); `used` is what fractions divide by.
    var copyBandwidth: CopyBandwidth?
    var conventions: [String: String] = [
        "bytes": "minimum bytes the call must move: each tensor read counted once plus each tensor written once (see docs/HARNESS.md)",
        "gbps": "bytes / median time, 1 GB = 1e9 bytes",
        "fraction_of_copy": "gbps / copy_bandwidth.used[threads]; copy counts read + write bytes, like the cases",
        "checked": "first repetition vs Float64 reference: ok, fail or error",
    ]
    var results: Results

    struct CopyBandwidth: Encodable {
        var start: [Int: Double]
        var end: [Int: Double]
        var used: [Int: Double]
    }

    enum CodingKeys: String, CodingKey {
        case tool, command, arguments, timestamp, gitRevision = "git_revision", gitDirty = "git_dirty", machine
        case settings, copyBandwidth = "copy_bandwidth_gbps", conventions, results
    }

    init(command: String, settings: [String: String], copy: CopyReference?, results: Results) {
        self.command = command
        self.settings = settings
        let rev = Revision.current()
        gitRevision = rev.revision
        gitDirty = rev.dirty
        if let copy {
            var used: [Int: Double] = [:]
            for t in Set(copy.start.keys).union(copy.end.keys) { used[t] = copy.gbps(threads: t) }
            copyBandwidth = CopyBandwidth(start: copy.start, end: copy.end, used: used)
        }
        self.results = results
    }

    func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
        Console.note("wrote \(path)")
    }
}
