import Foundation
import NormKernels

/// The operations normbench runs. The raw values are the `--ops` names and the
/// CSV `op` column.
enum Op: String, CaseIterable, Codable {
    case batchnorm, layernorm, rmsnorm, instancenorm, groupnorm, adain, weightnorm

    /// Whether NCHW and NHWC are different problems for this op.
    ///
    /// LayerNorm and RMSNorm normalize each sample over all of C·H·W in memory
    /// order (PyTorch `normalized_shape = [C, H, W]`), so the layout does not
    /// change the work; weight normalization's tensor is a row-major weight.
    /// These run once per shape with layout "-".
    var hasLayout: Bool {
        switch self {
        case .batchnorm, .instancenorm, .groupnorm, .adain: return true
        case .layernorm, .rmsnorm, .weightnorm: return false
        }
    }

    var hasGroups: Bool { self == .groupnorm }

    /// Only BatchNorm and InstanceNorm have a separate inference mode (running
    /// statistics); every op has a training forward and (eventually) a backward.
    func supports(_ direction: Direction) -> Bool {
        switch direction {
        case .forwardTraining, .backward: return true
        case .forwardInference: return self == .batchnorm || self == .instancenorm
        }
    }
}

/// Which pass of an op is measured. Ops with one forward (LayerNorm, GroupNorm,
/// …) list it as forward-training.
enum Direction: String, CaseIterable, Codable {
    case forwardTraining = "forward-training"
    case forwardInference = "forward-inference"
    case backward
}

/// Logical `[N, C, H, W]`; the layout travels separately because some ops have none.
struct Shape: Hashable, Codable, CustomStringConvertible {
    var n: Int, c: Int, h: Int, w: Int

    var count: Int { n * c * h * w }
    var spatial: Int { h * w }
    var description: String { "\(n)x\(c)x\(h)x\(w)" }

    /// Parses "NxCxHxW" (also with commas, as `topology --shape 32,64,56,56`).
    init?(parsing text: String) {
        let parts = text.split(whereSeparator: { $0 == "x" || $0 == "X" || $0 == "," })
            .map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 4, parts.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        self.init(n: parts[0]!, c: parts[1]!, h: parts[2]!, w: parts[3]!)
    }

    init(n: Int, c: Int, h: Int, w: Int) {
        self.n = n; self.c = c; self.h = h; self.w = w
    }

    func tensor(_ layout: Layout) -> TensorShape { TensorShape(n: n, c: c, h: h, w: w, layout: layout) }
}

/// Everything that fixes a case's data: cases that differ only in the thread
/// count share one workload (inputs, reference values).
struct CaseKey: Hashable {
    var op: Op
    var direction: Direction
    /// nil where the op has no layout (see `Op.hasLayout`); the data is then
    /// generated and addressed as NCHW, i.e. `[N, C·H·W]` row-major.
    var layout: Layout?
    var shape: Shape
    /// GroupNorm's group count; nil for every other op.
    var groups: Int?

    var memoryLayout: Layout { layout ?? .nchw }
    var layoutName: String { layout?.rawValue ?? "-" }
    var groupsName: String { groups.map(String.init) ?? "-" }

    var label: String {
        "\(op.rawValue) \(direction.rawValue) \(layoutName) \(shape)" + (groups.map { " G\($0)" } ?? "")
    }
}

/// One measured case: a key run with a thread count and pinning policy.
struct BenchCase {
    var key: CaseKey
    var threads: Int
    var affinity: Affinity
    var threading: Threading { Threading(threads: threads, affinity: affinity) }
}

/// What to run: the resolved cross product of a sweep or scale command.
struct CaseGrid {
    var ops: [Op]
    var directions: [Direction]
    var layouts: [Layout]
    var shapes: [Shape]
    var groups: [Int]
    var threads: [Int]
    var affinity: Affinity

    /// Why a combination was left out, with how many times, for the summary line.
    struct Skips {
        var reasons: [String: Int] = [:]
        mutating func add(_ reason: String) { reasons[reason, default: 0] += 1 }
        var summary: String {
            reasons.sorted { $0.key < $1.key }.map { "\($0.value) × \($0.key)" }.joined(separator: "; ")
        }
    }

    /// The applicable keys in a stable order (op, direction, layout, shape, groups),
    /// deduplicated. Inapplicable combinations are dropped silently (inference for
    /// ops without running statistics, layouts for layout-free ops, groups for ops
    /// other than GroupNorm); combinations that are applicable but cannot run are
    /// counted in `skips`.
    func keys() -> (keys: [CaseKey], skips: Skips) {
        var keys: [CaseKey] = []
        var seen = Set<CaseKey>()
        var skips = Skips()
        for op in ops {
            for direction in directions where op.supports(direction) {
                if Kernels.maker(op, direction) == nil {
                    // One summary entry per direction, not per op × shape.
                    skips.add("ops without a \(direction.rawValue) kernel in the library yet")
                    continue
                }
                let opLayouts: [Layout?] = op.hasLayout ? layouts.map { $0 } : [nil]
                for layout in opLayouts {
                    for shape in shapes {
                        let opGroups: [Int?] = op.hasGroups ? groups.map { $0 } : [nil]
                        for g in opGroups {
                            let key = CaseKey(op: op, direction: direction, layout: layout, shape: shape, groups: g)
                            if let reason = Self.cannotRun(key) { skips.add(reason); continue }
                            if seen.insert(key).inserted { keys.append(key) }
                        }
                    }
                }
            }
        }
        return (keys, skips)
    }

    /// Combinations the kernels reject by definition (not by a bug).
    static func cannotRun(_ key: CaseKey) -> String? {
        let s = key.shape
        if let g = key.groups, s.c % g != 0 {
            return "groupnorm groups not dividing C"
        }
        if key.direction != .forwardInference {
            // Training statistics need more than one value per statistic.
            switch key.op {
            case .batchnorm where s.n * s.spatial < 2: return "batchnorm training with N·H·W = 1"
            case .instancenorm where s.spatial < 2: return "instancenorm training with H·W = 1"
            default: break
            }
        }
        return nil
    }

    /// Every case: keys × thread counts, thread count innermost so that one
    /// workload serves all of a key's thread counts.
    func cases() -> (cases: [[BenchCase]], skips: Skips) {
        let (keys, skips) = keys()
        let grouped = keys.map { key in threads.map { BenchCase(key: key, threads: $0, affinity: affinity) } }
        return (grouped, skips)
    }
}
