import Foundation
import NormKernels

/// Which pass of an op is measured. Ops with one forward (LayerNorm, GroupNorm,
/// …) list it as forward-training.
enum Direction: String, CaseIterable, Codable {
    case forwardTraining = "forward-training"
    case forwardInference = "forward-inference"
    case backward
}

/// The element type of the activation tensors (x, y, dy, dx, style); γ, β and
/// statistics stay Float32. The raw values are the `--dtype` names. Which ops
/// run which dtypes: `BenchOp.dtypes` (see docs/HARNESS.md, "Adding an op or a dtype").
enum DType: String, CaseIterable, Codable {
    case f32, f16, bf16

    var elementBytes: Int { self == .f32 ? 4 : 2 }

    /// The value of the dtype's case: a maker written once as a generic function
    /// of the element type calls it with `Float`, `Float16` and `BFloat16`
    /// (`w.key.dtype.pick(make(Float.self), make(Float16.self), make(BFloat16.self))`);
    /// only the chosen one runs.
    func pick<T>(_ f32: @autoclosure () throws -> T, _ f16: @autoclosure () throws -> T,
                 _ bf16: @autoclosure () throws -> T) rethrows -> T {
        switch self {
        case .f32: return try f32()
        case .f16: return try f16()
        case .bf16: return try bf16()
        }
    }

    /// The largest reference error (`Reference.compare`) a correct kernel shows:
    /// Float32 as measured (forward ≤ 9e-7, backward ≤ 4.4e-7, with margin); a
    /// 16-bit output adds its own rounding, half an ulp relative (2⁻⁹ bf16,
    /// 2⁻¹² f16), allowed twice over (forward) or four times (backward).
    func tolerance(_ direction: Direction) -> Double {
        let backward = direction == .backward
        switch self {
        case .f32: return backward ? 5e-5 : 2e-5
        case .f16: return backward ? 1e-3 : 5e-4
        case .bf16: return backward ? 8e-3 : 4e-3
        }
    }
}

/// Logical `[N, C, H, W]`; the layout travels separately because some ops have none.
struct Shape: Hashable, Codable, CustomStringConvertible {
    var n: Int, c: Int, h: Int, w: Int

    var count: Int { n * c * h * w }
    var spatial: Int { h * w }
    /// Values per row of the row ops (LayerNorm, RMSNorm, weight normalization).
    var features: Int { c * h * w }
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
    var op: any BenchOp
    var dtype: DType = .f32
    var direction: Direction
    /// nil where the op has no layout (see `BenchOp.hasLayout`); the data is then
    /// generated and addressed as NCHW, i.e. `[N, C·H·W]` row-major.
    var layout: Layout?
    var shape: Shape
    /// GroupNorm's group count; nil for every other op.
    var groups: Int?

    var memoryLayout: Layout { layout ?? .nchw }
    var layoutName: String { layout?.rawValue ?? "-" }
    var groupsName: String { groups.map(String.init) ?? "-" }
    /// The op's pass in this direction; the grid only builds keys that have one.
    var pass: Pass { op.pass(direction)! }
    /// The minimum bytes the case moves (`Traffic`), at its element size.
    var bytes: Int { pass.traffic(shape).bytes(dtype) }

    var label: String {
        "\(op.name)\(dtype == .f32 ? "" : " " + dtype.rawValue) \(direction.rawValue) \(layoutName) \(shape)"
            + (groups.map { " G\($0)" } ?? "")
    }

    // Ops are told apart by name (the registry holds one of each).
    static func == (a: CaseKey, b: CaseKey) -> Bool {
        a.op.name == b.op.name && a.dtype == b.dtype && a.direction == b.direction && a.layout == b.layout
            && a.shape == b.shape && a.groups == b.groups
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(op.name); hasher.combine(dtype); hasher.combine(direction)
        hasher.combine(layout); hasher.combine(shape); hasher.combine(groups)
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
    var ops: [any BenchOp]
    /// Element types of the activation tensors; an op gets those it lists in `BenchOp.dtypes`.
    var dtypes: [DType] = [.f32]
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

    /// The applicable keys in a stable order (op, dtype, direction, layout, shape,
    /// groups), deduplicated. Inapplicable combinations are dropped silently
    /// (inference for ops without running statistics, layouts for layout-free ops,
    /// groups for ops other than GroupNorm); combinations that are applicable but
    /// cannot run are counted in `skips`.
    func keys() -> (keys: [CaseKey], skips: Skips) {
        var keys: [CaseKey] = []
        var seen = Set<CaseKey>()
        var skips = Skips()
        for op in ops {
            for dtype in dtypes {
                guard op.dtypes.contains(dtype) else {
                    skips.add("ops without \(dtype.rawValue) kernels in the library yet")
                    continue
                }
                for direction in directions {
                    guard let pass = op.pass(direction) else { continue }
                    if pass.make == nil {
                        // One summary entry per direction, not per op × shape.
                        skips.add("ops without a \(direction.rawValue) kernel in the library yet")
                        continue
                    }
                    let opLayouts: [Layout?] = op.hasLayout ? layouts.map { $0 } : [nil]
                    for layout in opLayouts {
                        for shape in shapes {
                            let opGroups: [Int?] = op.hasGroups ? groups.map { $0 } : [nil]
                            for g in opGroups {
                                let key = CaseKey(op: op, dtype: dtype, direction: direction, layout: layout,
                                                  shape: shape, groups: g)
                                if let reason = op.cannotRun(key) { skips.add(reason); continue }
                                if seen.insert(key).inserted { keys.append(key) }
                            }
                        }
                    }
                }
            }
        }
        return (keys, skips)
    }

    /// Every case: keys × thread counts, thread count innermost so that one
    /// workload serves all of a key's thread counts.
    func cases() -> (cases: [[BenchCase]], skips: Skips) {
        let (keys, skips) = keys()
        let grouped = keys.map { key in threads.map { BenchCase(key: key, threads: $0, affinity: affinity) } }
        return (grouped, skips)
    }
}
