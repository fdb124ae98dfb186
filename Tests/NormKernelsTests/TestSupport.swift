// The one toolkit of the test suites (with TestSupport+Checks, +Errors,
// +Determinism, +Fixtures and Reference): deterministic data (SplitMix64 by
// label or by numbered stream), fills with known statistics, shapes and layout
// conversion, and a combinatorics sweep that names the failing combination.

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

/// Numbered streams: suites that pick their data by a small seed k (1, 2, …)
/// rather than by a label. The suites were written at different times and map k
/// to SplitMix64's starting state differently; each family keeps its mapping, so
/// every test still sees the data it was written and tuned against.
struct SeededStreams {
    /// nil: the state is k itself; else k·0x9E3779B97F4A7C15 + salt (SplitMix64's
    /// increment spreads neighbouring seeds across the state space).
    let salt: UInt64?

    func generator(_ seed: UInt64) -> SplitMix64 {
        SplitMix64(seed: salt.map { seed &* 0x9E37_79B9_7F4A_7C15 &+ $0 } ?? seed)
    }

    /// `count` values uniform in `range` (53 random bits each, then rounded to
    /// Float), plus `offset` added in Float32.
    func uniforms(_ count: Int, seed: UInt64, _ range: ClosedRange<Double> = -1...1, offset: Float = 0) -> [Float] {
        var rng = generator(seed)
        return rng.uniforms(count, range).map { offset + $0 }
    }

    /// Approximately normal values of mean `mean` and standard deviation `std`:
    /// the sum of 4 uniforms on [−1, 1) (variance 4/3), each rounded to Float
    /// first, rescaled by √(3/4). Values for 1e4 ± 1e-2 stay cheap and bounded.
    func normals(_ count: Int, seed: UInt64, mean: Double, std: Double) -> [Float] {
        let u = uniforms(4 * count, seed: seed, -1...1)
        return (0..<count).map { i in
            let s = Double(u[4 * i]) + Double(u[4 * i + 1]) + Double(u[4 * i + 2]) + Double(u[4 * i + 3])
            return Float(mean + std * s * (3.0 / 4).squareRoot())
        }
    }

    /// Forward determinism and concurrency suites: state = k.
    static let plain = SeededStreams(salt: nil)
    /// Backward suites (determinism, errors, in place, accuracy of dx, dγ, dβ).
    static let backward = SeededStreams(salt: 0x51ED_270B)
    /// Finite-difference gradient checks.
    static let gradientCheck = SeededStreams(salt: 0x1234_5678)
}

// MARK: - Shapes and layouts

extension TensorShape {
    /// Element offset of logical (n, c, spatial s) in this shape's memory order.
    func offset(_ n: Int, _ channel: Int, _ s: Int) -> Int {
        layout == .nchw ? (n * c + channel) * spatial + s : (n * spatial + s) * c + channel
    }

    /// Channel of the element at memory offset `offset`.
    func channel(at offset: Int) -> Int {
        layout == .nchw ? (offset / spatial) % c : offset % c
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

/// The shapes of the BatchNorm / InstanceNorm / GroupNorm / AdaIN sweeps:
/// every H·W of `Sizes.spatial` × every C of `Sizes.channels` × both layouts.
/// N is small where H·W is large (the sweep stays fast) and includes N = 1 where legal.
func activationShapes(includeSingleSpatial: Bool = true, nsForSmall: [Int] = [1, 3]) -> [TensorShape] {
    var shapes: [TensorShape] = []
    for (h, w) in Sizes.spatial where includeSingleSpatial || h * w > 1 {
        for c in Sizes.channels {
            let ns = h * w == 1 ? [2, 5] : h * w > 1000 ? [2] : nsForSmall
            for n in ns {
                for layout in Layout.allCases { shapes.append(TensorShape(n: n, c: c, h: h, w: w, layout: layout)) }
            }
        }
    }
    return shapes
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
