// Helpers shared by the forward-kernel correctness suites: a deterministic
// generator, fills with known statistics, layout conversion, tolerance-aware
// comparisons that name the worst element, a combinatorics sweep that names the
// failing combination, and error/sentinel checks.

import Foundation
import Testing
@testable import NormKernels

// MARK: - Deterministic data

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny generator whose stream depends
/// only on its seed, so every run on every machine sees the same test data.
struct SplitMix64: RandomNumberGenerator {
    private(set) var state: UInt64

    init(seed: UInt64) { state = seed }

    /// Seeds from a label (FNV-1a of its UTF-8 bytes), so each combination of a
    /// sweep gets its own reproducible stream whatever order the tests run in.
    init(_ label: String) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in label.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        state = hash
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    mutating func uniform(_ range: ClosedRange<Double>) -> Double {
        range.lowerBound + (range.upperBound - range.lowerBound) * unit()
    }

    /// Standard normal (Box–Muller).
    mutating func normal() -> Double {
        let u1 = 1 - unit()  // (0, 1]
        let u2 = unit()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }

    mutating func normals(_ count: Int, mean: Double = 0, std: Double = 1) -> [Float] {
        (0..<count).map { _ in Float(mean + std * normal()) }
    }

    mutating func uniforms(_ count: Int, _ range: ClosedRange<Double>) -> [Float] {
        (0..<count).map { _ in Float(uniform(range)) }
    }
}

// MARK: - Shapes and layouts

extension TensorShape {
    /// Element offset of logical (n, c, spatial s) in this shape's memory order.
    func offset(_ n: Int, _ channel: Int, _ s: Int) -> Int {
        layout == .nchw ? (n * c + channel) * spatial + s : (n * spatial + s) * c + channel
    }

    func with(layout: Layout) -> TensorShape {
        var shape = self
        shape.layout = layout
        return shape
    }
}

/// The same logical tensor in another memory order (NCHW ↔ NHWC).
func relayout<T>(_ x: [T], _ shape: TensorShape, to layout: Layout) -> [T] {
    let target = shape.with(layout: layout)
    var out = x
    for n in 0..<shape.n {
        for c in 0..<shape.c {
            for s in 0..<shape.spatial { out[target.offset(n, c, s)] = x[shape.offset(n, c, s)] }
        }
    }
    return out
}

/// Sizes named by their relation to the kernels' tiles.
enum Sizes {
    /// Contiguous block of the rows geometry: half the L1d in Float32 (4096 on a 32 KiB L1d).
    static let block = RowsGeometry.defaultBlockLength

    /// (H, W) with H·W = 1, odd < 8, = 8, 32 − 1, = 32, 32 + 1, block + 1, > 2 blocks
    /// (the block follows the L1d: 4097 and 8193 values on a 32 KiB L1d, 6145 and
    /// 12291 on a 48 KiB one).
    static let spatial: [(h: Int, w: Int)] = [
        (1, 1), (7, 1), (2, 4), (31, 1), (4, 8), (3, 11), (1, block + 1), (3, 2 * block / 3 + 1),
    ]

    /// C = 1, odd < 8, one 8-tile, one 32-tile, 32 + 1 (scalar column), 32 + 8 (tile 8), 3·32 + 4.
    static let channels = [1, 3, 8, 32, 33, 40, 100]

    /// Lengths of one contiguous run around the 8-, 16-, 32-wide loops and the block.
    static let features = [1, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 4095, 4096, 4097, 8192, 9000, 20000, 50001]
}

/// Rows per block of the columns geometry (BatchNorm NHWC / [N, D], InstanceNorm
/// and GroupNorm NHWC) for `columns` channels on this machine: it follows the L2
/// (32768 rows at C = 1 on 256 KiB, 262144 on 2 MiB), so tests that must split
/// derive their sizes from it instead of assuming a cache size.
func columnsRowBlock(_ columns: Int) -> Int {
    ColumnsGeometry(matrices: 1, rows: Int.max / 2, columns: columns).rowBlock
}

/// An NHWC shape of `n` samples and `c` channels whose N·H·W rows span at least
/// `blocks` row blocks of the columns geometry on any cache size (H = W ≥ `side`).
func nhwcShape(n: Int, c: Int, spanning blocks: Int, side: Int = 1) -> TensorShape {
    let rows = blocks * columnsRowBlock(c) + 1
    let s = max(side, Int((Double(rows) / Double(n)).squareRoot().rounded(.up)))
    return TensorShape(n: n, c: c, h: s, w: s, layout: .nhwc)
}

/// A tensor with per-(n, c) means in `center` and standard deviations in `spread`,
/// so that mixing up channels or samples changes the statistics.
func activations(_ shape: TensorShape, _ rng: inout SplitMix64,
                 center: ClosedRange<Double> = -3...3, spread: ClosedRange<Double> = 0.5...2) -> [Float] {
    var x = [Float](repeating: 0, count: shape.count)
    for n in 0..<shape.n {
        for c in 0..<shape.c {
            let mean = rng.uniform(center), std = rng.uniform(spread)
            for s in 0..<shape.spatial { x[shape.offset(n, c, s)] = Float(mean + std * rng.normal()) }
        }
    }
    return x
}

/// `count` values with exactly known statistics: a shuffled arithmetic progression
/// `mean + step·(k − (count − 1)/2)`, k = 0..<count. With `step` a power of two and
/// small integers, every value is exact in Float32, the mean is exactly `mean` and
/// the biased variance exactly `step²·(count² − 1)/12`.
func progression(_ count: Int, mean: Double, step: Double, _ rng: inout SplitMix64) -> [Float] {
    var values = (0..<count).map { Float(mean + step * (Double($0) - Double(count - 1) / 2)) }
    values.shuffle(using: &rng)
    return values
}

/// Optional per-channel affine parameters of the kernels.
enum Affine: CaseIterable, CustomStringConvertible, Sendable {
    case none, scaleOnly, biasOnly, both

    var description: String {
        switch self {
        case .none: return "no γ/β"
        case .scaleOnly: return "γ only"
        case .biasOnly: return "β only"
        case .both: return "γ and β"
        }
    }

    /// γ in [−2, 2] (signs matter for ReLU), β in [−1, 1].
    func parameters(_ count: Int, _ rng: inout SplitMix64) -> (scale: [Float]?, bias: [Float]?) {
        let scale = rng.uniforms(count, -2...2), bias = rng.uniforms(count, -1...1)
        switch self {
        case .none: return (nil, nil)
        case .scaleOnly: return (scale, nil)
        case .biasOnly: return (nil, bias)
        case .both: return (scale, bias)
        }
    }
}

// MARK: - Combinatorics

/// Every pair, triple, … of the given parameter values.
func product<A, B>(_ a: [A], _ b: [B]) -> [(A, B)] { a.flatMap { x in b.map { (x, $0) } } }
func product<A, B, C>(_ a: [A], _ b: [B], _ c: [C]) -> [(A, B, C)] {
    a.flatMap { x in b.flatMap { y in c.map { (x, y, $0) } } }
}
func product<A, B, C, D>(_ a: [A], _ b: [B], _ c: [C], _ d: [D]) -> [(A, B, C, D)] {
    a.flatMap { x in b.flatMap { y in c.flatMap { z in d.map { (x, y, z, $0) } } } }
}

/// Runs `body` for every case, handing it a description of the combination to put
/// in every expectation's message; an unexpected error is recorded with the
/// combination that raised it, and the sweep goes on.
func sweep<Case>(_ cases: [Case], sourceLocation: SourceLocation = #_sourceLocation,
                 _ body: (Case, String) throws -> Void) {
    #expect(!cases.isEmpty, "empty sweep", sourceLocation: sourceLocation)
    for (index, item) in cases.enumerated() {
        let context = "combination #\(index) \(item)"
        do {
            try body(item, context)
        } catch {
            Issue.record("unexpected error \(error) for \(context)", sourceLocation: sourceLocation)
        }
    }
}

// MARK: - Comparisons

/// Tolerance for O(1) normalized outputs of a reduction over `count` values:
/// rounding grows with the depth of the merge tree, i.e. with log2(count).
func reductionTolerance(_ count: Int) -> Double { 1e-5 * (1 + log2(Double(max(1, count)))) }

/// Relative tolerance for a saved 1/σ (or σ) over `count` values: well below the
/// 1/(2·count) by which M2/(n − 1) moves 1/σ away from M2/n, so a biased/unbiased
/// swap always fails (a quarter of it, capped by `reductionTolerance`), but never
/// under 1e-7 (about one Float32 ulp: what the kernels are asked to reach).
func invStdTolerance(_ count: Int) -> Double {
    max(1e-7, min(reductionTolerance(count), 0.25 / Double(max(1, count))))
}

/// Whether every saved 1/σ is within `invStdTolerance(count)` of the reference
/// (no expectation recorded: for checks that a wrong reference is rejected).
func invStdWithin(_ actual: [Double], _ expected: [Double], count: Int) -> Bool {
    let tol = invStdTolerance(count)
    return actual.count == expected.count && zip(actual, expected).allSatisfy { abs($0 - $1) <= tol * abs($1) }
}

/// Checks `|actual − expected| ≤ atol + rtol·|expected|` for every element (NaN
/// must match NaN, ±∞ must match exactly) with one expectation whose message
/// names the worst element, its values and the combination.
@discardableResult
func expectAllClose<T: BinaryFloatingPoint>(
    _ actual: [T], _ expected: [Double], atol: Double, rtol: Double = 0,
    _ what: String, _ context: String, sourceLocation: SourceLocation = #_sourceLocation
) -> Bool {
    guard actual.count == expected.count else {
        Issue.record("\(what): \(actual.count) values, expected \(expected.count) — \(context)", sourceLocation: sourceLocation)
        return false
    }
    var worst = 0.0, at = -1
    for i in actual.indices {
        let a = Double(actual[i]), e = expected[i]
        let ratio: Double
        if a.isNaN || e.isNaN || a.isInfinite || e.isInfinite {
            ratio = (a.isNaN && e.isNaN) || a == e ? 0 : .infinity
        } else {
            ratio = abs(a - e) / (atol + rtol * abs(e))
        }
        if ratio > worst || (ratio.isNaN && !worst.isNaN) { worst = ratio; at = i }
        if worst == .infinity { break }
    }
    let ok = worst <= 1
    let message = ok ? "" : "\(what): element \(at) of \(actual.count) is \(actual[at]), expected \(expected[at]) "
        + "(|Δ| = \(abs(Double(actual[at]) - expected[at])), atol \(atol), rtol \(rtol), error/tolerance \(worst)) — \(context)"
    #expect(ok, Comment(rawValue: message), sourceLocation: sourceLocation)
    return ok
}

/// Bitwise equality (NaNs with equal payloads compare equal), naming the first difference.
@discardableResult
func expectIdentical(_ actual: [Float], _ expected: [Float], _ what: String, _ context: String,
                     sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
    guard actual.count == expected.count else {
        Issue.record("\(what): \(actual.count) values, expected \(expected.count) — \(context)", sourceLocation: sourceLocation)
        return false
    }
    let first = actual.indices.first { actual[$0].bitPattern != expected[$0].bitPattern }
    let message = first.map { "\(what): element \($0) is \(actual[$0]), expected \(expected[$0]) bit for bit — \(context)" } ?? ""
    #expect(first == nil, Comment(rawValue: message), sourceLocation: sourceLocation)
    return first == nil
}

func expectIdentical(_ actual: [Double], _ expected: [Double], _ what: String, _ context: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
    expectIdentical(actual.map { Float($0) }, expected.map { Float($0) }, what + " (as Float)", context,
                    sourceLocation: sourceLocation)
    let first = actual.indices.first { actual[$0].bitPattern != expected[$0].bitPattern }
    let message = first.map { "\(what): element \($0) is \(actual[$0]), expected \(expected[$0]) bit for bit — \(context)" } ?? ""
    #expect(actual.count == expected.count && first == nil, Comment(rawValue: message), sourceLocation: sourceLocation)
}

func maxAbs(_ values: [Double]) -> Double { values.reduce(0) { max($0, abs($1)) } }

// MARK: - Errors and sentinels

/// The value output buffers are filled with before a call that must not write.
let sentinel: Float = -777

/// A snapshot of everything a forward call may change in running statistics.
struct RunningSnapshot: Equatable {
    var mean: [Float], variance: [Float], batchesTracked: Int, skippedUpdates: Int, population: [Moments]

    init(_ r: RunningStatistics) {
        mean = r.mean
        variance = r.variance
        batchesTracked = r.batchesTracked
        skippedUpdates = r.skippedUpdates
        population = r.population
    }

    static func == (a: Self, b: Self) -> Bool {
        a.mean.map(\.bitPattern) == b.mean.map(\.bitPattern)
            && a.variance.map(\.bitPattern) == b.variance.map(\.bitPattern)
            && a.batchesTracked == b.batchesTracked && a.skippedUpdates == b.skippedUpdates
            && a.population == b.population
    }
}

/// Expects `body` to throw a `NormError` matching `matches`, whose description
/// contains every fragment (argument names, expected and actual values).
func expectNormError(
    _ what: String, mentions fragments: [String], sourceLocation: SourceLocation = #_sourceLocation,
    matches: (NormError) -> Bool, _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("\(what): expected a NormError, nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as NormError {
        #expect(matches(error), "\(what): wrong error \(error) (\(error.description))", sourceLocation: sourceLocation)
        for fragment in fragments {
            #expect(error.description.contains(fragment),
                    "\(what): message “\(error.description)” does not mention “\(fragment)”", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("\(what): expected a NormError, got \(error)", sourceLocation: sourceLocation)
    }
}

/// Same, for an exact expected error.
func expectNormError(
    _ expected: NormError, mentions fragments: [String], _ what: String = "",
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
    expectNormError(what.isEmpty ? "\(expected)" : what, mentions: fragments, sourceLocation: sourceLocation,
                    matches: { $0 == expected }, body)
}

/// A forward call that must be rejected: the output buffer (of `outputCount`
/// elements) is filled with the sentinel, the call must throw `expected`, and
/// afterwards the output and the running statistics must be untouched.
func expectRejected(
    _ expected: NormError, mentions fragments: [String], _ what: String,
    outputCount: Int, running: [RunningStatistics] = [],
    sourceLocation: SourceLocation = #_sourceLocation,
    _ call: (UnsafeMutableBufferPointer<Float>) throws -> Void
) {
    var output = [Float](repeating: sentinel, count: outputCount)
    let before = running.map(RunningSnapshot.init)
    expectNormError(expected, mentions: fragments, what, sourceLocation: sourceLocation) {
        try output.withUnsafeMutableBufferPointer { try call($0) }
    }
    let written = output.firstIndex { $0.bitPattern != sentinel.bitPattern }
    #expect(written == nil, "\(what): output[\(written ?? -1)] was written before the error", sourceLocation: sourceLocation)
    for (r, snapshot) in zip(running, before) {
        #expect(RunningSnapshot(r) == snapshot, "\(what): running statistics changed before the error",
                sourceLocation: sourceLocation)
    }
}
