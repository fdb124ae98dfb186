// Initializers reject bad shapes and parameters (ε, dimensions, element counts
// that overflow Int, groups, AdaIN's shapes, momentum, WeightNorm's dim) with a
// message that names the argument and the value.

import Testing
@testable import NormKernels

@Suite("Errors: initializers reject bad shapes and parameters")
struct ErrorInitTests {
    static let badEpsilons: [Float] = [0, -0.0, -1e-5, .nan, .infinity, -.infinity]

    /// Every kernel (and folding) built with ε.
    static let epsilonUsers: [(String, @Sendable (Float) throws -> Void)] = [
        ("BatchNorm", { _ = try BatchNormalization(shape: TensorShape(n: 2, c: 3), epsilon: $0) }),
        ("InstanceNorm", { _ = try InstanceNormalization(shape: TensorShape(n: 2, c: 3, h: 2), epsilon: $0) }),
        ("GroupNorm", { _ = try GroupNormalization(shape: TensorShape(n: 2, c: 4, h: 2), groups: 2, epsilon: $0) }),
        ("LayerNorm(rows:)", { _ = try LayerNormalization(rows: 2, features: 3, epsilon: $0) }),
        ("LayerNorm(shape:)", { _ = try LayerNormalization(shape: TensorShape(n: 2, c: 3), epsilon: $0) }),
        ("RMSNorm", { _ = try RMSNormalization(rows: 2, features: 3, epsilon: $0) }),
        ("AdaIN", { _ = try AdaptiveInstanceNormalization(content: TensorShape(n: 1, c: 2, h: 3), style: TensorShape(n: 1, c: 2, h: 2),
                                                          epsilon: $0) }),
        ("BatchNormFolding", { eps in
            let running = try RunningStatistics(channels: 2)
            var weight: [Float] = [1, 2, 3, 4]
            try weight.withUnsafeMutableBufferPointer { w in
                _ = try BatchNormFolding.fold(weight: w, bias: nil, outChannels: 2, running: running, epsilon: eps)
            }
            #expect(weight == [1, 2, 3, 4], "folding wrote the weight before rejecting ε")
        }),
    ]

    @Test("ε ≤ 0, NaN or ±∞ is rejected by every kernel")
    func epsilon() {
        sweep(product(Self.epsilonUsers.map(\.0), Self.badEpsilons)) { item, context in
            let (name, eps) = item
            let make = Self.epsilonUsers.first { $0.0 == name }!.1
            expectNormError(context, mentions: ["epsilon must be finite and > 0", "got \(Double(eps))"], matches: {
                if case let .invalidEpsilon(value) = $0 { return value.bitPattern == Double(eps).bitPattern }
                return false
            }) { try make(eps) }
        }
        // The smallest positive ε is legal.
        #expect(throws: Never.self) { _ = try BatchNormalization(shape: TensorShape(n: 2, c: 3), epsilon: .leastNonzeroMagnitude) }
    }

    @Test("dimensions ≤ 0 name the argument and the value")
    func dimensions() {
        let bad: [(String, TensorShape)] = [
            ("shape.n", TensorShape(n: 0, c: 3, h: 2, w: 2)), ("shape.c", TensorShape(n: 2, c: -1, h: 2, w: 2)),
            ("shape.h", TensorShape(n: 2, c: 3, h: 0, w: 2)), ("shape.w", TensorShape(n: 2, c: 3, h: 2, w: -5, layout: .nhwc)),
        ]
        for (argument, shape) in bad {
            let value = argument == "shape.n" ? shape.n : argument == "shape.c" ? shape.c : argument == "shape.h" ? shape.h : shape.w
            let expected = NormError.invalidDimension(argument: argument, value: value)
            let fragments = ["\(argument) must be > 0", "got \(value)"]
            expectNormError(expected, mentions: fragments, "BatchNorm \(shape)") { _ = try BatchNormalization(shape: shape) }
            expectNormError(expected, mentions: fragments, "InstanceNorm \(shape)") { _ = try InstanceNormalization(shape: shape) }
            expectNormError(expected, mentions: fragments, "GroupNorm \(shape)") { _ = try GroupNormalization(shape: shape, groups: 1) }
            expectNormError(expected, mentions: fragments, "LayerNorm \(shape)") { _ = try LayerNormalization(shape: shape) }
            let good = TensorShape(n: 2, c: 3, h: 2, w: 2)
            let styleArgument = argument.replacingOccurrences(of: "shape", with: "style")
            let contentArgument = argument.replacingOccurrences(of: "shape", with: "content")
            expectNormError(.invalidDimension(argument: contentArgument, value: value), mentions: [contentArgument], "AdaIN content") {
                _ = try AdaptiveInstanceNormalization(content: shape, style: good)
            }
            expectNormError(.invalidDimension(argument: styleArgument, value: value), mentions: [styleArgument], "AdaIN style") {
                _ = try AdaptiveInstanceNormalization(content: good, style: shape)
            }
        }
        expectNormError(.invalidDimension(argument: "rows", value: 0), mentions: ["rows must be > 0, got 0"]) {
            _ = try LayerNormalization(rows: 0, features: 3)
        }
        expectNormError(.invalidDimension(argument: "features", value: -1), mentions: ["features must be > 0, got -1"]) {
            _ = try LayerNormalization(rows: 2, features: -1)
        }
        expectNormError(.invalidDimension(argument: "rows", value: -4), mentions: ["rows must be > 0, got -4"]) {
            _ = try RMSNormalization(rows: -4, features: 3)
        }
        expectNormError(.invalidDimension(argument: "features", value: 0), mentions: ["features must be > 0, got 0"]) {
            _ = try RMSNormalization(rows: 2, features: 0)
        }
        expectNormError(.invalidDimension(argument: "groups", value: 0), mentions: ["groups must be > 0, got 0"]) {
            _ = try GroupNormalization(shape: TensorShape(n: 2, c: 4), groups: 0)
        }
        expectNormError(.invalidDimension(argument: "channels", value: 0), mentions: ["channels must be > 0, got 0"]) {
            _ = try RunningStatistics(channels: 0)
        }
    }

    @Test("element counts that overflow Int")
    func sizeOverflow() {
        let huge = TensorShape(n: 1 << 32, c: 1 << 31, h: 1, w: 1)
        let fragments = ["shape", "overflows Int"]
        expectNormError(.sizeOverflow(argument: "shape"), mentions: fragments) { _ = try BatchNormalization(shape: huge) }
        expectNormError(.sizeOverflow(argument: "shape"), mentions: fragments) {
            _ = try BatchNormalization(shape: TensorShape(n: Int.max, c: 1, h: 1, w: 2, layout: .nhwc))
        }
        expectNormError(.sizeOverflow(argument: "shape"), mentions: fragments) { _ = try InstanceNormalization(shape: huge) }
        expectNormError(.sizeOverflow(argument: "shape"), mentions: fragments) { _ = try GroupNormalization(shape: huge, groups: 2) }
        expectNormError(.sizeOverflow(argument: "shape"), mentions: fragments) { _ = try LayerNormalization(shape: huge) }
        expectNormError(.sizeOverflow(argument: "content"), mentions: ["content", "overflows"]) {
            _ = try AdaptiveInstanceNormalization(content: huge, style: TensorShape(n: 1 << 32, c: 1 << 31, h: 1, w: 1))
        }
        expectNormError(.sizeOverflow(argument: "rows × features"), mentions: ["rows × features", "overflows"]) {
            _ = try LayerNormalization(rows: Int.max, features: 2)
        }
        expectNormError(.sizeOverflow(argument: "rows × features"), mentions: ["rows × features", "overflows"]) {
            _ = try RMSNormalization(rows: 1 << 40, features: 1 << 40)
        }
        expectNormError(.sizeOverflow(argument: "shape"), mentions: fragments) {
            _ = try WeightNormalization(shape: [Int.max, 2], dim: 0)
        }
    }

    @Test("GroupNorm: G must divide C")
    func groups() {
        for (groups, channels) in [(4, 6), (12, 6), (5, 33), (2, 1)] {
            expectNormError(.groupsDoNotDivideChannels(groups: groups, channels: channels),
                            mentions: ["groups (\(groups)) must divide channels (\(channels))"]) {
                _ = try GroupNormalization(shape: TensorShape(n: 2, c: channels, h: 3, w: 3), groups: groups)
            }
        }
    }

    @Test("AdaIN: N and C must match; unbiased variance needs H·W ≥ 2")
    func adaIN() {
        let content = TensorShape(n: 2, c: 3, h: 4, w: 4)
        expectNormError(.shapeMismatch(argument: "style.n", expected: "2 (content.n)", actual: "3"),
                        mentions: ["style.n", "has shape 3", "expected 2 (content.n)"]) {
            _ = try AdaptiveInstanceNormalization(content: content, style: TensorShape(n: 3, c: 3, h: 4, w: 4))
        }
        expectNormError(.shapeMismatch(argument: "style.c", expected: "3 (content.c)", actual: "4"),
                        mentions: ["style.c", "has shape 4", "expected 3 (content.c)"]) {
            _ = try AdaptiveInstanceNormalization(content: content, style: TensorShape(n: 2, c: 4, h: 4, w: 4, layout: .nhwc))
        }
        expectNormError(.singleValuePerChannel(argument: "content (H·W)", valuesPerChannel: 1),
                        mentions: ["content (H·W)", "got 1"]) {
            _ = try AdaptiveInstanceNormalization(content: TensorShape(n: 2, c: 3), style: content, unbiasedVariance: true)
        }
        expectNormError(.singleValuePerChannel(argument: "style (H·W)", valuesPerChannel: 1),
                        mentions: ["style (H·W)", "got 1"]) {
            _ = try AdaptiveInstanceNormalization(content: content, style: TensorShape(n: 2, c: 3), unbiasedVariance: true)
        }
        // H·W = 1 is fine with the biased variance.
        #expect(throws: Never.self) { _ = try AdaptiveInstanceNormalization(content: TensorShape(n: 2, c: 3), style: content) }
    }

    @Test("RunningStatistics: momentum outside [0, 1], initial values of the wrong length")
    func runningStatistics() {
        for momentum in [-0.1, 1.5, 1.0000001, -Double.ulpOfOne, .nan, .infinity, -.infinity] {
            expectNormError("momentum \(momentum)", mentions: ["momentum must be in [0, 1]", "got \(momentum)"], matches: {
                if case let .invalidMomentum(m) = $0 { return m.bitPattern == momentum.bitPattern }
                return false
            }) { _ = try RunningStatistics(channels: 3, update: .exponential(momentum: momentum)) }
        }
        for momentum in [0.0, 1.0, 0.5] {
            #expect(throws: Never.self) { _ = try RunningStatistics(channels: 3, update: .exponential(momentum: momentum)) }
        }
        expectNormError(.lengthMismatch(argument: "running mean", expected: 3, actual: 2),
                        mentions: ["running mean has 2 elements, expected 3"]) {
            _ = try RunningStatistics(channels: 3, mean: [0, 0])
        }
        expectNormError(.lengthMismatch(argument: "running variance", expected: 3, actual: 4),
                        mentions: ["running variance has 4 elements, expected 3"]) {
            _ = try RunningStatistics(channels: 3, variance: [1, 1, 1, 1])
        }
    }

    @Test("WeightNorm: empty shape, zero dimension, dim out of range")
    func weightNorm() {
        expectNormError(.invalidArgument(argument: "shape", reason: "needs at least one dimension"),
                        mentions: ["shape", "at least one dimension"]) { _ = try WeightNormalization(shape: []) }
        expectNormError(.invalidDimension(argument: "shape[1]", value: 0), mentions: ["shape[1] must be > 0, got 0"]) {
            _ = try WeightNormalization(shape: [3, 0, 2])
        }
        for dim in [2, 5, -1] {
            expectNormError(.invalidArgument(argument: "dim", reason: "must be in 0..<2, got \(dim)"),
                            mentions: ["dim", "0..<2", "got \(dim)"]) { _ = try WeightNormalization(shape: [4, 5], dim: dim) }
        }
    }
}
