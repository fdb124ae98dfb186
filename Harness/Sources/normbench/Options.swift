import ArgumentParser
import Foundation
import NormKernels

/// The flags that choose cases, shared by `sweep` and `scale`. Every flag is
/// optional so that a value can come, in order of precedence, from the flag,
/// from `--config FILE.json` (same keys), or from the command's defaults.
struct GridOptions: ParsableArguments {
    @Option(help: "Ops, comma-separated, or 'all': \(BenchOps.names).")
    var ops: String?

    @Option(help: "Element types of the activation tensors, comma-separated: f32, f16, bf16 (16-bit: the ops with 16-bit kernels; others skip them).")
    var dtype: String?

    @Option(help: "Directions, comma-separated, or 'all': forward-training,forward-inference,backward.")
    var directions: String?

    @Option(help: "Layouts, comma-separated: nchw,nhwc (ignored by \(BenchOps.layoutFreeNames)).")
    var layouts: String?

    @Option(help: "Batch sizes N, comma-separated.")
    var batch: String?

    @Option(help: "Channel counts C, comma-separated.")
    var channels: String?

    @Option(help: "Spatial sizes (H = W), comma-separated.")
    var spatial: String?

    @Option(help: "Explicit shapes NxCxHxW, comma-separated; replaces the batch × channels × spatial product.")
    var shapes: String?

    @Option(help: "GroupNorm group counts, comma-separated (values not dividing C are skipped).")
    var groups: String?

    @Option(help: "Thread counts, comma-separated.")
    var threads: String?

    @Option(help: "Pinning of workers: none, compact or scatter.")
    var affinity: String?

    @Option(name: .customLong("budget-ms"), help: "Time budget of the timed repetitions of each case, in ms.")
    var budgetMilliseconds: Double?

    @Option(name: .customLong("min-reps"), help: "Minimum timed samples per case.")
    var minReps: Int?

    @Option(help: "Where the tensors go: staggered (each its own mapping, 576·k bytes into its page; default), pages (each page-aligned: the 4K-aliasing worst case) or heap (malloc, depends on earlier cases).")
    var placement: String?

    @Option(help: "JSON file with any of these options as keys (e.g. {\"ops\": [\"batchnorm\"], \"batch\": [1, 8], \"budget-ms\": 200}).")
    var config: String?

    @Option(help: "Write the results as CSV (columns in docs/HARNESS.md).")
    var csv: String?

    @Option(help: "Write the results, machine, copy bandwidth and git revision as JSON.")
    var json: String?

    @Flag(name: .customLong("paired-copy"),
          help: "After timing each case, alternate copy-probe passes with its repetitions and report the median ratio (paired_fraction); for tensors past the cache.")
    var pairedCopy = false
}

/// The contents of `--config FILE.json`: the same keys as the flags, lists as
/// JSON arrays.
struct ConfigFile: Decodable {
    var ops: [String]?
    var dtype: [String]?
    var directions: [String]?
    var layouts: [String]?
    var batch: [Int]?
    var channels: [Int]?
    var spatial: [Int]?
    var shapes: [ShapeSpec]?
    var groups: [Int]?
    var threads: [Int]?
    var affinity: String?
    var placement: String?
    var budgetMilliseconds: Double?
    var minReps: Int?
    var csv: String?
    var json: String?

    enum CodingKeys: String, CodingKey {
        case ops, dtype, directions, layouts, batch, channels, spatial, shapes, groups, threads, affinity, placement, csv, json
        case budgetMilliseconds = "budget-ms", minReps = "min-reps"
    }

    /// A shape as "NxCxHxW" or [N, C, H, W].
    struct ShapeSpec: Decodable {
        var shape: Shape
        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let dims = try? container.decode([Int].self), dims.count == 4, dims.allSatisfy({ $0 > 0 }) {
                shape = Shape(n: dims[0], c: dims[1], h: dims[2], w: dims[3])
            } else if let text = try? container.decode(String.self), let s = Shape(parsing: text) {
                shape = s
            } else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "a shape is \"NxCxHxW\" or [N, C, H, W]")
            }
        }
    }

    static func load(_ path: String) throws -> ConfigFile {
        do {
            return try JSONDecoder().decode(ConfigFile.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw ValidationError("--config \(path): \(error)")
        }
    }
}

/// A command's built-in choices, used where neither a flag nor the config says otherwise.
struct GridDefaults {
    var ops: [any BenchOp] = BenchOps.all
    var dtypes: [DType] = [.f32]
    var directions: [Direction] = Direction.allCases
    var layouts: [Layout] = [.nchw, .nhwc]
    var batch: [Int]
    var channels: [Int]
    var spatial: [Int]
    var groups: [Int]
    var threads: [Int]
    var budgetMilliseconds: Double
    var minReps = 5
}

/// What a command runs after flags, config and defaults are merged.
struct ResolvedGrid {
    var grid: CaseGrid
    var policy: MeasurementPolicy
    var csv: String?
    var json: String?
    var pairedCopy = false
    var placement = Placement.staggered

    /// The effective settings, recorded in the JSON file.
    var settings: [String: String] {
        [
            "ops": grid.ops.map(\.name).joined(separator: ","),
            "directions": grid.directions.map(\.rawValue).joined(separator: ","),
            "layouts": grid.layouts.map(\.rawValue).joined(separator: ","),
            "shapes": grid.shapes.map(\.description).joined(separator: ","),
            "groups": grid.groups.map(String.init).joined(separator: ","),
            "threads": grid.threads.map(String.init).joined(separator: ","),
            "affinity": grid.affinity.rawValue,
            "placement": placement.rawValue,
            "budget-ms": "\(policy.budget * 1e3)",
            "min-reps": "\(policy.minReps)",
            "paired-copy": "\(pairedCopy)",
        ]
    }
}

extension GridOptions {
    func resolve(_ defaults: GridDefaults) throws -> ResolvedGrid {
        let file = try config.map(ConfigFile.load)

        func list<T>(_ flag: String?, _ fromFile: [String]?, _ fallback: [T], _ name: String,
                     all: [T]? = nil, _ parse: (String) -> T?) throws -> [T] {
            let items: [String]
            if let flag { items = flag.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            else if let fromFile { items = fromFile }
            else { return fallback }
            if let all, items == ["all"] { return all }
            let values = try items.filter { !$0.isEmpty }.map { item -> T in
                guard let v = parse(item) else { throw ValidationError("--\(name): '\(item)' is not valid") }
                return v
            }
            guard !values.isEmpty else { throw ValidationError("--\(name) is empty") }
            return values
        }
        func positive(_ text: String) -> Int? { Int(text).flatMap { $0 > 0 ? $0 : nil } }
        func numbers(_ values: [Int]?) -> [String]? { values?.map(String.init) }

        let ops = try list(self.ops, file?.ops, defaults.ops, "ops", all: BenchOps.all) { BenchOps.named($0) }
        let dtypes = try list(self.dtype, file?.dtype, defaults.dtypes, "dtype") { DType(rawValue: $0.lowercased()) }
        if let unsupported = dtypes.first(where: { d in !ops.contains { $0.dtypes.contains(d) } }) {
            let ready = BenchOps.all.filter { $0.dtypes.contains(unsupported) }.map(\.name).joined(separator: ",")
            throw ValidationError("--dtype: no op of --ops runs '\(unsupported.rawValue)'"
                                  + (ready.isEmpty ? "" : " (ops that do: \(ready))"))
        }
        let directions = try list(self.directions, file?.directions, defaults.directions, "directions",
                                  all: Direction.allCases) { Direction(rawValue: $0) }
        let layouts = try list(self.layouts, file?.layouts, defaults.layouts, "layouts",
                               all: Layout.allCases) { Layout(rawValue: $0.lowercased()) }
        let batch = try list(self.batch, numbers(file?.batch), defaults.batch, "batch", positive)
        let channels = try list(self.channels, numbers(file?.channels), defaults.channels, "channels", positive)
        let spatial = try list(self.spatial, numbers(file?.spatial), defaults.spatial, "spatial", positive)
        let groups = try list(self.groups, numbers(file?.groups), defaults.groups, "groups", positive)
        let threads = try list(self.threads, numbers(file?.threads), defaults.threads, "threads", positive)

        var shapes: [Shape] = []
        if let text = self.shapes {
            shapes = try list(text, nil, [], "shapes") { Shape(parsing: $0) }
        } else if let fromFile = file?.shapes, self.batch == nil, self.channels == nil, self.spatial == nil {
            shapes = fromFile.map(\.shape)
        } else {
            for n in batch { for c in channels { for s in spatial { shapes.append(Shape(n: n, c: c, h: s, w: s)) } } }
        }

        let affinityText = self.affinity ?? file?.affinity ?? "none"
        guard let affinity = Affinity(rawValue: affinityText.lowercased()) else {
            throw ValidationError("--affinity: '\(affinityText)' is not none, compact or scatter")
        }
        // NORMBENCH_PLACEMENT stands in for the flag, so that tools/ab.py can
        // run one binary under two placements (--base-env / --new-env).
        let placementText = self.placement ?? file?.placement
            ?? ProcessInfo.processInfo.environment["NORMBENCH_PLACEMENT"] ?? Placement.staggered.rawValue
        guard let placement = Placement(rawValue: placementText.lowercased()) else {
            throw ValidationError("--placement: '\(placementText)' is not "
                                  + Placement.allCases.map(\.rawValue).joined(separator: ", "))
        }
        var policy = MeasurementPolicy()
        policy.budget = (budgetMilliseconds ?? file?.budgetMilliseconds ?? defaults.budgetMilliseconds) / 1e3
        policy.minReps = max(1, minReps ?? file?.minReps ?? defaults.minReps)
        guard policy.budget >= 0 else { throw ValidationError("--budget-ms must be ≥ 0") }

        let grid = CaseGrid(ops: ops, dtypes: dtypes, directions: directions, layouts: layouts, shapes: shapes,
                            groups: groups,
                            threads: threads, affinity: affinity)
        return ResolvedGrid(grid: grid, policy: policy, csv: csv ?? file?.csv, json: json ?? file?.json,
                            pairedCopy: pairedCopy, placement: placement)
    }
}
