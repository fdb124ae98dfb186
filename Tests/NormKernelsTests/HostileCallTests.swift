// Calls a downstream package could make that once crashed, raced or corrupted
// state (issue 19's audit): running statistics reassigned with the wrong length
// or shared by concurrent callers, finite batches whose running update would
// overflow Float32, parameters inside an output buffer, and descriptors at the
// size limit. Each rejected call must throw before it writes anything.

import Dispatch
import Foundation
import Synchronization
import Testing
@testable import NormKernels

@Suite("Hostile calls: running statistics, overlaps, size limits")
struct HostileCallTests {
    static let channels = 3

    /// Every call that uses running statistics, with its output (or the weight it
    /// rewrites) as the buffer that must keep its sentinel.
    static func runningCalls(_ shape: TensorShape) throws
        -> [(String, Int, (UnsafeMutableBufferPointer<Float>, RunningStatistics) throws -> Void)] {
        let bn = try BatchNormalization(shape: shape), inorm = try InstanceNormalization(shape: shape)
        var rng = SplitMix64("hostile running \(shape)")
        let x = rng.normals(shape.count), dy = rng.normals(shape.count)
        func with(_ body: (UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>) throws -> Void) rethrows {
            try x.withUnsafeBufferPointer { xp in try dy.withUnsafeBufferPointer { dp in try body(xp, dp) } }
        }
        return [
            ("BatchNorm forwardTraining", shape.count, { out, r in try with { xp, _ in _ = try bn.forwardTraining(input: xp, output: out, running: r) } }),
            ("BatchNorm forwardInference", shape.count, { out, r in try with { xp, _ in try bn.forwardInference(input: xp, output: out, running: r) } }),
            ("BatchNorm backwardInference", shape.count, { out, r in
                try with { xp, dp in try bn.backwardInference(input: xp, gradOutput: dp, running: r, gradInput: out) } }),
            ("InstanceNorm forwardTraining", shape.count, { out, r in try with { xp, _ in _ = try inorm.forwardTraining(input: xp, output: out, running: r) } }),
            ("InstanceNorm forwardInference", shape.count, { out, r in try with { xp, _ in try inorm.forwardInference(input: xp, output: out, running: r) } }),
            ("InstanceNorm backwardInference", shape.count, { out, r in
                try with { xp, dp in try inorm.backwardInference(input: xp, gradOutput: dp, running: r, gradInput: out) } }),
            ("BatchNormFolding.fold", shape.c * 4, { out, r in _ = try BatchNormFolding.fold(weight: out, bias: nil, outChannels: shape.c, running: r) }),
        ]
    }

    @Test("running mean or variance reassigned with C − 1 or C + 1 values: every call throws and writes nothing")
    func reassignedRunningStatistics() throws {
        for layout in Layout.allCases {
            let shape = TensorShape(n: 2, c: Self.channels, h: 4, w: 5, layout: layout)
            for (name, count, call) in try Self.runningCalls(shape) {
                for delta in [-1, 1] {
                    for which in ["running mean", "running variance"] {
                        let running = try RunningStatistics(channels: shape.c)
                        let wrong = [Float](repeating: 0.5, count: shape.c + delta)
                        if which == "running mean" { running.mean = wrong } else { running.variance = wrong }
                        expectRejected(.lengthMismatch(argument: which, expected: shape.c, actual: shape.c + delta),
                                       mentions: [which, "\(shape.c + delta) elements", "expected \(shape.c)"],
                                       "\(name), \(which) with \(shape.c + delta) values, \(layout)",
                                       outputCount: count, running: [running]) { out in try call(out, running) }
                    }
                }
            }
        }
    }

    @Test("load(mean:variance:) checks lengths and values before changing anything")
    func loadChecks() throws {
        let running = try RunningStatistics(channels: 3)
        let before = RunningSnapshot(running)
        expectNormError(.lengthMismatch(argument: "running mean", expected: 3, actual: 2), mentions: ["running mean"]) {
            try running.load(mean: [0, 0], variance: [1, 1, 1])
        }
        expectNormError("NaN variance", mentions: ["running variance[1]", "finite"],
                        matches: { if case .invalidArgument = $0 { true } else { false } }) {
            try running.load(mean: [0, 0, 0], variance: [1, .nan, 1])
        }
        expectNormError("negative variance", mentions: ["running variance[2]", "≥ 0"],
                        matches: { if case .invalidArgument = $0 { true } else { false } }) {
            try running.load(mean: [0, 0, 0], variance: [1, 1, -1])
        }
        #expect(RunningSnapshot(running) == before)
        try running.load(mean: [1, 2, 3], variance: [4, 5, 6], batchesTracked: 7)
        #expect(running.mean == [1, 2, 3] && running.variance == [4, 5, 6] && running.batchesTracked == 7)
    }

    @Test("16 concurrent training and inference calls on one RunningStatistics: every batch counted once")
    func concurrentCallers() throws {
        for update in [RunningStatistics.Update.exponential(momentum: 0.1), .cumulativeAverage, .population] {
            let shape = TensorShape(n: 4, c: 8, h: 6, w: 7, layout: .nhwc)
            let running = try RunningStatistics(channels: shape.c, update: update)
            let bn = try BatchNormalization(shape: shape, threading: Threading(threads: 2))
            let callers = 16
            let inputs = (0..<callers).map { i -> [Float] in
                var rng = SplitMix64("concurrent \(i)")
                return rng.normals(shape.count, mean: Double(i), std: 1 + Double(i) / 8)
            }
            let failures = Counter()
            DispatchQueue.concurrentPerform(iterations: callers) { i in
                var y = [Float](repeating: 0, count: shape.count)
                do {
                    try inputs[i].withUnsafeBufferPointer { xp in
                        try y.withUnsafeMutableBufferPointer { yp in
                            if i % 4 == 3 {
                                try bn.forwardInference(input: xp, output: yp, running: running)
                                _ = running.mean
                            } else {
                                let saved = try bn.forwardTraining(input: xp, output: yp, running: running)
                                if !saved.runningStatisticsUpdated { failures.add() }
                            }
                        }
                    }
                } catch { failures.add() }
                if !y.allSatisfy({ $0.isFinite }) { failures.add() }
            }
            let training = (0..<callers).filter { $0 % 4 != 3 }.count
            #expect(failures.value == 0, "\(update): failed calls")
            #expect(running.batchesTracked == training, "\(update): batchesTracked \(running.batchesTracked), expected \(training)")
            #expect(running.skippedUpdates == 0)
            if update == .population {
                let perChannel = Double(shape.n * shape.spatial * training)
                #expect(running.population.allSatisfy { $0.count == perChannel }, "population counts")
            }
        }
    }

    @Test("a finite batch whose running variance would overflow Float32 is skipped and counted, not stored as ∞")
    func overflowingRunningUpdate() throws {
        for update in [RunningStatistics.Update.exponential(momentum: 0.1), .cumulativeAverage, .population] {
            for layout in Layout.allCases {
                let shape = TensorShape(n: 3, c: 4, h: 5, w: 6, layout: layout)
                var rng = SplitMix64("overflow \(update) \(layout)")
                // Values ~1e30 are finite; their variance (~1e60) is not, in Float32.
                let x = rng.normals(shape.count, std: 1e30)
                #expect(x.allSatisfy { $0.isFinite })
                for op in ["BatchNorm", "InstanceNorm"] {
                    let running = try RunningStatistics(channels: shape.c, update: update)
                    let before = RunningSnapshot(running)
                    let (y, saved) = op == "BatchNorm"
                        ? try BatchNormalization(shape: shape).forwardTraining(x, running: running)
                        : try InstanceNormalization(shape: shape).forwardTraining(x, running: running)
                    let context = "\(op) \(update) \(layout)"
                    #expect(!saved.runningStatisticsUpdated, "reported as folded in — \(context)")
                    var after = RunningSnapshot(running)
                    #expect(after.skippedUpdates == 1, "skippedUpdates — \(context)")
                    after.skippedUpdates = before.skippedUpdates
                    #expect(after == before, "running statistics changed — \(context)")
                    #expect(running.variance.allSatisfy { $0.isFinite })
                    #expect(y.allSatisfy { $0.isFinite }, "output of huge finite values not finite — \(context)")
                    #expect(saved.mean.allSatisfy { $0.isFinite } && saved.invStd.allSatisfy { $0.isFinite && $0 > 0 },
                            "saved statistics — \(context)")
                }
            }
        }
    }

    // MARK: - Overlaps with parameters

    /// Runs `body` with one buffer of `count` values, filled with a pattern; afterwards checks it is unchanged.
    func expectUntouched(_ count: Int, _ what: String, sourceLocation: SourceLocation = #_sourceLocation,
                         _ body: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows {
        var storage = (0..<count).map { Float($0 % 17) * 0.25 + 0.5 }
        let original = storage
        try storage.withUnsafeMutableBufferPointer { try body($0) }
        #expect(storage.map(\.bitPattern) == original.map(\.bitPattern), "\(what): memory written before the error",
                sourceLocation: sourceLocation)
    }

    @Test("γ or β inside the output buffer: every forward kernel throws before writing")
    func parametersInsideOutput() throws {
        let shape = TensorShape(n: 2, c: 3, h: 4, w: 5)
        let x = (0..<shape.count).map { Float($0 % 7) - 3 }
        typealias Forward = (UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>,
                             UnsafeBufferPointer<Float>?, UnsafeBufferPointer<Float>?) throws -> Void
        let bn = try BatchNormalization(shape: shape), ln = try LayerNormalization(rows: 2, features: 60)
        let rms = try RMSNormalization(rows: 2, features: 60), gn = try GroupNormalization(shape: shape, groups: 3)
        let inorm = try InstanceNormalization(shape: shape)
        let running = try RunningStatistics(channels: 3)
        let kernels: [(String, Int, Bool, Forward)] = [
            ("BatchNorm training", 3, true, { _ = try bn.forwardTraining(input: $0, output: $1, scale: $2, bias: $3) }),
            ("BatchNorm inference", 3, true, { try bn.forwardInference(input: $0, output: $1, scale: $2, bias: $3, running: running) }),
            ("InstanceNorm", 3, true, { _ = try inorm.forwardTraining(input: $0, output: $1, scale: $2, bias: $3) }),
            ("GroupNorm", 3, true, { _ = try gn.forward(input: $0, output: $1, scale: $2, bias: $3) }),
            ("LayerNorm", 60, true, { _ = try ln.forward(input: $0, output: $1, scale: $2, bias: $3) }),
            ("RMSNorm", 60, false, { p0, p1, p2, _ in _ = try rms.forward(input: p0, output: p1, scale: p2) }),
        ]
        for (name, parameters, hasBias, call) in kernels {
            for (argument, offset) in [("scale (γ)", 0), ("scale (γ)", shape.count - 1), ("bias (β)", 7)] where hasBias || argument == "scale (γ)" {
                expectUntouched(shape.count + parameters, "\(name) \(argument) at \(offset)") { storage in
                    let output = UnsafeMutableBufferPointer(rebasing: storage[0..<shape.count])
                    let inside = UnsafeBufferPointer(rebasing: storage[offset..<(offset + parameters)])
                    let other = UnsafeBufferPointer(rebasing: storage[0..<parameters])
                    x.withUnsafeBufferPointer { xp in
                        expectNormError(.overlappingBuffers(argument: "output", other: argument),
                                        mentions: ["output", argument, "shares memory"], "\(name): \(argument) inside output") {
                            if argument == "scale (γ)" {
                                try call(xp, output, inside, nil)
                            } else {
                                _ = other
                                try call(xp, output, nil, inside)
                            }
                        }
                    }
                }
            }
        }
        // Weight normalization: g inside w.
        let wn = try WeightNormalization(shape: [3, 20], dim: 0)
        expectUntouched(63, "WeightNorm g inside w") { storage in
            let v = (0..<60).map { Float($0 % 5) + 1 }
            v.withUnsafeBufferPointer { vp in
                expectNormError(.overlappingBuffers(argument: "output (w)", other: "g"), mentions: ["output (w)", "g"]) {
                    _ = try wn.forward(v: vp, g: UnsafeBufferPointer(rebasing: storage[10..<13]),
                                       output: UnsafeMutableBufferPointer(rebasing: storage[0..<60]))
                }
            }
        }
    }

    @Test("AdaIN output = style (the same buffer) is rejected, as documented")
    func adaINOutputIsStyle() throws {
        let shape = TensorShape(n: 1, c: 2, h: 3, w: 4)
        let ada = try AdaptiveInstanceNormalization(content: shape, style: shape)
        let content = (0..<24).map { Float($0 % 5) }
        expectUntouched(24, "AdaIN output = style") { storage in
            content.withUnsafeBufferPointer { cp in
                expectNormError(.overlappingBuffers(argument: "output", other: "style"), mentions: ["output", "style"]) {
                    _ = try ada.forward(content: cp, style: UnsafeBufferPointer(storage), output: storage)
                }
            }
        }
    }

    @Test("γ inside a gradient output: every backward kernel throws before writing")
    func scaleInsideGradient() throws {
        let shape = TensorShape(n: 2, c: 3, h: 4, w: 5)
        var rng = SplitMix64("scale inside gradient")
        let x = rng.normals(shape.count), dy = rng.normals(shape.count)
        let saved3 = SavedStatistics(mean: [0, 0, 0], invStd: [1, 1, 1])
        let saved6 = SavedStatistics(mean: Array(repeating: 0, count: 6), invStd: Array(repeating: 1, count: 6))
        let saved2 = SavedStatistics(mean: [0, 0], invStd: [1, 1])
        typealias Backward = (UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>,
                              UnsafeMutableBufferPointer<Float>) throws -> Void
        let bn = try BatchNormalization(shape: shape), inorm = try InstanceNormalization(shape: shape)
        let gn = try GroupNormalization(shape: shape, groups: 3)
        let ln = try LayerNormalization(rows: 2, features: 60), rms = try RMSNormalization(rows: 2, features: 60)
        let running = try RunningStatistics(channels: 3)
        let kernels: [(String, Int, Backward)] = [
            ("BatchNorm training", 3, { try bn.backwardTraining(input: $0, gradOutput: $1, saved: saved3, scale: $2, gradInput: $3) }),
            ("BatchNorm inference", 3, { try bn.backwardInference(input: $0, gradOutput: $1, running: running, scale: $2, gradInput: $3) }),
            ("InstanceNorm", 3, { try inorm.backwardTraining(input: $0, gradOutput: $1, saved: saved6, scale: $2, gradInput: $3) }),
            ("GroupNorm", 3, { try gn.backward(input: $0, gradOutput: $1, saved: saved6, scale: $2, gradInput: $3) }),
            ("LayerNorm", 60, { try ln.backward(input: $0, gradOutput: $1, saved: saved2, scale: $2, gradInput: $3) }),
            ("RMSNorm", 60, { try rms.backward(input: $0, gradOutput: $1, saved: saved2, scale: $2, gradInput: $3) }),
        ]
        for (name, parameters, call) in kernels {
            expectUntouched(shape.count, "\(name) γ inside dx") { storage in
                x.withUnsafeBufferPointer { xp in
                    dy.withUnsafeBufferPointer { dp in
                        expectNormError(.overlappingBuffers(argument: "gradInput", other: "scale (γ)"),
                                        mentions: ["gradInput", "scale (γ)"], "\(name): γ inside gradInput") {
                            try call(xp, dp, UnsafeBufferPointer(rebasing: storage[5..<(5 + parameters)]), storage)
                        }
                    }
                }
            }
        }
    }

    @Test("BatchNorm folding: a parameter inside the weight it rewrites is rejected before any write")
    func foldingOverlaps() throws {
        let running = try RunningStatistics(channels: 3, mean: [0.5, -1, 2], variance: [1, 2, 3])
        for argument in ["bias", "scale (γ)", "shift (β)"] {
            expectUntouched(12, "fold, \(argument) inside weight") { storage in
                let weight = storage
                let inside = UnsafeBufferPointer(rebasing: storage[4..<7])
                expectNormError(.overlappingBuffers(argument: "weight", other: argument), mentions: ["weight", argument]) {
                    _ = try BatchNormFolding.fold(
                        weight: weight, bias: argument == "bias" ? inside : nil, outChannels: 3, running: running,
                        scale: argument == "scale (γ)" ? inside : nil, shift: argument == "shift (β)" ? inside : nil)
                }
            }
        }
    }

    // MARK: - Sizes

    @Test("descriptors past 2⁴⁸ elements are rejected; plan() of every descriptor up to it does not trap")
    func sizeLimits() throws {
        expectNormError(.sizeOverflow(argument: "rows × features"), mentions: ["rows × features"]) {
            _ = try LayerNormalization(rows: 1, features: Int.max)
        }
        expectNormError(.sizeOverflow(argument: "rows × features"), mentions: ["rows × features"]) {
            _ = try RMSNormalization(rows: Int.max, features: 1)
        }
        expectNormError(.sizeOverflow(argument: "shape"), mentions: ["shape"]) {
            _ = try BatchNormalization(shape: TensorShape(n: 1 << 24, c: 1 << 24, h: 1, w: 2))
        }
        let limit = Check.maxElements
        var plans: [PlanDescription] = []
        for (a, b) in [(1, limit), (limit, 1), (1 << 24, 1 << 24), (3, limit / 3)] {
            plans.append(try LayerNormalization(rows: a, features: b).plan())
            plans.append(try RMSNormalization(rows: a, features: b).plan())
            plans.append(try WeightNormalization(shape: [a, b], dim: 0).plan())
            plans.append(try WeightNormalization(shape: [a, b], dim: 1).plan())
            for layout in Layout.allCases {
                for shape in [TensorShape(n: a, c: b, layout: layout), TensorShape(n: a, c: 1, h: b, w: 1, layout: layout),
                              TensorShape(n: 1, c: a, h: 1, w: b, layout: layout)] {
                    plans.append(try BatchNormalization(shape: shape).plan())
                    plans.append(try InstanceNormalization(shape: shape).plan())
                    plans.append(try GroupNormalization(shape: shape, groups: 1).plan())
                    plans.append(try LayerNormalization(shape: shape).plan())
                    if shape.spatial > 1 {
                        plans.append(try AdaptiveInstanceNormalization(content: shape, style: shape).plan())
                    }
                }
            }
        }
        #expect(plans.allSatisfy { $0.blocks > 0 && $0.workers > 0 })
    }
}

/// A counter that concurrent test callers may bump.
final class Counter: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

@Suite("NormError accessors and restored saved statistics")
struct ErrorAccessorTests {
    @Test("argument and caseName name every case")
    func accessors() {
        let cases: [(NormError, String, String)] = [
            (.invalidDimension(argument: "shape.c", value: 0), "shape.c", "invalidDimension"),
            (.sizeOverflow(argument: "shape"), "shape", "sizeOverflow"),
            (.lengthMismatch(argument: "input", expected: 3, actual: 2), "input", "lengthMismatch"),
            (.shapeMismatch(argument: "style.n", expected: "2", actual: "3"), "style.n", "shapeMismatch"),
            (.groupsDoNotDivideChannels(groups: 3, channels: 4), "groups", "groupsDoNotDivideChannels"),
            (.singleValuePerChannel(argument: "input", valuesPerChannel: 1), "input", "singleValuePerChannel"),
            (.invalidEpsilon(0), "epsilon", "invalidEpsilon"),
            (.invalidMomentum(2), "momentum", "invalidMomentum"),
            (.invalidArgument(argument: "dim", reason: "out of range"), "dim", "invalidArgument"),
            (.partialOverlap(argument: "output"), "output", "partialOverlap"),
            (.overlappingBuffers(argument: "output", other: "scale (γ)"), "output", "overlappingBuffers"),
        ]
        for (error, argument, name) in cases {
            #expect(error.argument == argument && error.caseName == name, "\(error)")
        }
    }

    @Test("AdaIN backward from saved statistics restored through the public initializer")
    func restoredAdaINSaved() throws {
        let shape = TensorShape(n: 2, c: 3, h: 4, w: 5)
        let ada = try AdaptiveInstanceNormalization(content: shape, style: shape)
        var rng = SplitMix64("restored AdaIN")
        let content = rng.normals(shape.count), style = rng.normals(shape.count, mean: 1, std: 2), dy = rng.normals(shape.count)
        let saved = try ada.forward(content: content, style: style).saved
        let restored = AdaptiveInstanceNormalization.Saved(contentMean: saved.contentMean, contentInvStd: saved.contentInvStd,
                                                           styleMean: saved.styleMean, styleStd: saved.styleStd)
        #expect(restored == saved)
        let a = try ada.backward(content: content, style: style, gradOutput: dy, saved: saved)
        let b = try ada.backward(content: content, style: style, gradOutput: dy, saved: restored)
        #expect(a.content!.map(\.bitPattern) == b.content!.map(\.bitPattern) && a.style!.map(\.bitPattern) == b.style!.map(\.bitPattern))
    }
}

@Suite("Hostile values outside the kernels")
struct HostileValueTests {
    @Test("Topology maps any worker index, negative or huge, to a core")
    func anyWorkerIndex() {
        let topology = Topology.current
        for index in [Int.min, -7, -1, 0, 1, 5, Int.max] {
            for affinity in [Affinity.compact, .scatter] {
                let core = topology.core(forWorker: index, affinity: affinity)
                #expect(core.map { (0..<topology.cores).contains($0) } == true, "\(index) \(affinity)")
            }
        }
    }

    @Test("RunningStatistics with more channels than any buffer could hold throws instead of trapping")
    func hugeChannelCount() {
        for channels in [Int.max, Check.maxElements + 1] {
            expectNormError(.sizeOverflow(argument: "channels"), mentions: ["channels"]) {
                _ = try RunningStatistics(channels: channels)
            }
        }
    }
}

@Suite("Parallel threshold from the environment")
struct ParallelThresholdTests {
    // The variable itself is read at each use (a computed property); setting it
    // here would race with the other suites' getenv, so only the parsing is tested.
    @Test("NORMKERNELS_PARALLEL_THRESHOLD: a non-negative count, else the default")
    func parsing() {
        #expect(Threading.parallelThreshold(fromEnvironment: "12345") == 12345)
        #expect(Threading.parallelThreshold(fromEnvironment: " 0 ") == 0)
        for bad in [nil, "", "-1", "many", "1e6"] as [String?] {
            #expect(Threading.parallelThreshold(fromEnvironment: bad) == nil, "\(bad ?? "nil")")
        }
        #expect(Threading(threads: 2, parallelThreshold: 5).parallelThreshold == 5)
    }
}
