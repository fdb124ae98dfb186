// A seeded fuzzer over the public API (issue 19). Each call draws an operation,
// a descriptor (dimensions that may be 0, negative, 1, or huge), ε, momentum and
// a thread count, then the call's buffers: lengths that are usually right and
// sometimes off by one or empty, placed in one block of memory where an output
// may land on another buffer (exactly — a documented in-place call — or
// partially, or on a parameter), and values that are usually ordinary and
// sometimes NaN, ±∞, ±1e38 or subnormal.
//
// The oracle is independent of the library's own checks: from the drawn lengths
// and placement the fuzzer knows whether the call is legal. An illegal call must
// throw a `NormError` and leave every byte of memory and the running statistics
// as they were; a legal one must not throw, and when its values were ordinary
// its outputs must match a Float64 reference (forward) or be finite with
// dβ = Σ dy (backward). Any trap ends the process, which is the loudest failure.

import Foundation
@testable import NormKernels

struct Fuzzer {
    /// What one run found; `failures` holds a reproducible description of each.
    struct Report {
        var calls = 0, rejectedDescriptors = 0, rejectedCalls = 0, checkedAgainstReference = 0, hostileValues = 0
        var failures: [String] = []
    }

    enum Op: CaseIterable {
        case batchTrain, batchInfer, batchBackward, batchBackwardInfer
        case instanceTrain, instanceInfer, instanceBackward, groupForward, groupBackward
        case layerForward, layerBackward, rmsForward, rmsBackward
        case adaINForward, adaINBackward, weightForward, weightBackward, fold
    }

    enum Role { case input, parameter, output }

    /// One buffer of a call: its role, the length the descriptor requires, the
    /// inputs it may replace in place, and where the fuzzer put it.
    struct Buffer {
        var name: String
        var role: Role
        var required: Int
        /// The weight of BatchNorm folding: any positive multiple of this length is right.
        var multipleOf: Int? = nil
        var inPlace: Set<String> = []
        var present = true
        var length = 0
        var offset = 0
    }

    var rng: SplitMix64
    var report = Report()

    init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    // MARK: - Draws

    mutating func chance(_ p: Double) -> Bool { rng.unit() < p }
    mutating func pick<T>(_ values: [T]) -> T { values[Int(rng.next() % UInt64(values.count))] }
    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }

    /// A dimension: mostly small, sometimes 1, 0, negative or huge.
    mutating func dimension(_ small: ClosedRange<Int> = 1...6) -> Int {
        switch rng.unit() {
        case ..<0.02: return 0
        case ..<0.03: return -int(1...3)
        case ..<0.045: return pick([1 << 24, 1 << 40, Int.max / 2, Int.max])
        case ..<0.2: return 1
        case ..<0.35: return int(7...40)
        default: return int(small)
        }
    }

    mutating func epsilon() -> Float {
        chance(0.03) ? pick([0, -1e-5, .nan, .infinity]) : pick([1e-5, 1e-3, Float.ulpOfOne, 0.1])
    }

    mutating func threading() -> Threading {
        // A low parallel threshold so that the tiny fuzz tensors still take the parallel paths.
        var t = Threading(threads: int(1...4), parallelThreshold: pick([0, 64, 1 << 19]),
                          spinMicroseconds: pick([0, 50, 200]))
        // The fields are public and settable: hostile values bypass the initializer's clamps.
        if chance(0.03) { t.threads = pick([0, -3, Int.min, Int.max]) }
        if chance(0.03) { t.parallelThreshold = pick([-1, Int.min, Int.max]) }
        if chance(0.03) { t.spinMicroseconds = pick([-1, Int.min, Int.max]) }
        if chance(0.05) { t.affinity = pick([.compact, .scatter]) }
        return t
    }

    mutating func shape() -> TensorShape {
        TensorShape(n: dimension(), c: dimension(), h: dimension(), w: dimension(1...9),
                    layout: chance(0.5) ? .nchw : .nhwc)
    }

    /// Ordinary values (`hostile` false): offset + scale·N(0, 1) with offset/scale ≤ 1e3.
    /// Hostile: the same with some values replaced by NaN, ±∞, ±1e38, ±3e38 or subnormals.
    mutating func values(_ count: Int, hostile: Bool, positive: Bool = false) -> [Float] {
        let scale = pick([1e-3, 1.0, 1e3]), offset = positive ? 2 * scale : scale * pick([0.0, 1.0, -30.0, 1e3])
        var v = (0..<count).map { _ in Float(offset + scale * (positive ? abs(rng.normal()) + 0.5 : rng.normal())) }
        if hostile, count > 0 {
            let specials: [Float] = [.nan, .infinity, -.infinity, 1e38, -1e38, 3e38, -3e38, Float(bitPattern: 0x0001_0000), -Float.leastNonzeroMagnitude, 0]
            for _ in 0..<int(1...max(1, count / 4)) { v[int(0...(count - 1))] = pick(specials) }
        }
        return v
    }

    mutating func doubles(_ count: Int, hostile: Bool, positive: Bool = false) -> [Double] {
        values(count, hostile: hostile, positive: positive).map(Double.init)
    }

    // MARK: - One call

    /// Places `buffers` in one block: each in its own region, then perhaps one
    /// output moved onto another buffer (exactly or partially). Returns the block's size.
    mutating func place(_ buffers: inout [Buffer]) -> Int {
        var end = 0
        for i in buffers.indices where buffers[i].present {
            let r = rng.unit()
            buffers[i].length = r < 0.04 ? buffers[i].required + pick([-1, 1])
                : r < 0.05 ? 0 : buffers[i].required
            buffers[i].length = max(0, buffers[i].length)
            end += int(0...3)
            buffers[i].offset = end
            end += buffers[i].length
        }
        let outputs = buffers.indices.filter { buffers[$0].role == .output && buffers[$0].present }
        if let o = outputs.randomElement(using: &rng), chance(0.3) {
            let others = buffers.indices.filter { $0 != o && buffers[$0].present && buffers[$0].length > 0 }
            if let target = others.randomElement(using: &rng) {
                let t = buffers[target]
                if t.role == .input, buffers[o].inPlace.contains(t.name), chance(0.6) {
                    buffers[o].offset = t.offset                          // exactly: in place
                } else {
                    buffers[o].offset = max(0, t.offset + int(-max(0, buffers[o].length - 1)...max(0, t.length - 1)))
                }
                end = max(end, buffers[o].offset + buffers[o].length)
            }
        }
        return end + 1
    }

    /// The fuzzer's own verdict: lengths right and every overlap a documented in-place one.
    func isLegal(_ buffers: [Buffer]) -> Bool {
        let present = buffers.filter(\.present)
        guard present.allSatisfy({ b in
            b.multipleOf.map { b.length > 0 && b.length % $0 == 0 } ?? (b.length == b.required)
        }) else { return false }
        for (i, a) in present.enumerated() where a.role == .output {
            for (j, b) in present.enumerated() where j != i {
                let overlap = a.offset < b.offset + b.length && b.offset < a.offset + a.length
                guard overlap, a.length > 0, b.length > 0 else { continue }
                let exact = a.offset == b.offset && a.length == b.length
                if !(b.role == .input && a.inPlace.contains(b.name) && exact) { return false }
            }
        }
        return true
    }

    /// Runs `calls` random calls.
    mutating func run(calls: Int) {
        for index in 0..<calls {
            report.calls += 1
            let op = pick(Op.allCases)
            let label = "call \(index) (\(op), rng state \(rng.state))"
            do {
                try fuzz(op, label)
            } catch let error as NormError {
                _ = error
                report.rejectedDescriptors += 1
            } catch {
                report.failures.append("\(label): non-NormError \(error)")
            }
        }
    }

    /// Describes the op's descriptor and buffers, then calls it through `invoke`,
    /// whose buffers come from `place`. Descriptor errors propagate (they are
    /// NormErrors by contract; the caller counts them).
    mutating func fuzz(_ op: Op, _ label: String) throws {
        let threading = threading(), eps = epsilon()
        switch op {
        case .batchTrain, .batchInfer, .batchBackward, .batchBackwardInfer:
            let shape = shape()
            let bn = try BatchNormalization(shape: shape, epsilon: eps, fusedReLU: chance(0.3), threading: threading)
            _ = bn.plan()
            guard shape.count <= 60_000 else { return }
            let running = try runningStatistics(shape.c)
            let c = shape.c, t = shape.count
            switch op {
            case .batchTrain, .batchInfer:
                var buffers = Self.affineBuffers(count: t, parameters: c)
                optional(&buffers, ["scale", "bias"])
                let train = op == .batchTrain
                execute(label, &buffers, running: running, runningChannels: c, singleValue: train && shape.n * shape.spatial < 2) { b in
                    if train {
                        _ = try bn.forwardTraining(input: b.read("input")!, output: b.write("output")!,
                                                   scale: b.read("scale"), bias: b.read("bias"), running: running)
                    } else {
                        try bn.forwardInference(input: b.read("input")!, output: b.write("output")!,
                                                scale: b.read("scale"), bias: b.read("bias"), running: running)
                    }
                } reference: { v in
                    let x = v["input"]!
                    let y = train
                        ? Reference.batchNorm(x, shape, epsilon: eps, scale: v["scale"], bias: v["bias"], relu: bn.fusedReLU).output
                        : Reference.inference(x, shape, mean: running.mean, variance: running.variance, epsilon: eps,
                                              scale: v["scale"], bias: v["bias"], relu: bn.fusedReLU)
                    return ["output": y]
                }
            default:
                let saved = savedStatistics(c)
                var buffers = [Buffer(name: "input", role: .input, required: t), Buffer(name: "gradOutput", role: .input, required: t),
                               Buffer(name: "output", role: .input, required: t), Buffer(name: "scale", role: .parameter, required: c),
                               Buffer(name: "gradInput", role: .output, required: t, inPlace: ["input", "gradOutput", "output"]),
                               Buffer(name: "gradScale", role: .output, required: c), Buffer(name: "gradBias", role: .output, required: c)]
                optional(&buffers, ["output", "scale", "gradInput", "gradScale", "gradBias"])
                let needsMask = bn.fusedReLU && !buffers.contains { $0.name == "output" && $0.present }
                let train = op == .batchBackward
                execute(label, &buffers, running: train ? nil : running, runningChannels: c, mustThrow: needsMask) { b in
                    if train {
                        try bn.backwardTraining(input: b.read("input")!, gradOutput: b.read("gradOutput")!, saved: saved,
                                                scale: b.read("scale"), output: b.read("output"), gradInput: b.write("gradInput"),
                                                gradScale: b.write("gradScale"), gradBias: b.write("gradBias"))
                    } else {
                        try bn.backwardInference(input: b.read("input")!, gradOutput: b.read("gradOutput")!, running: running,
                                                 scale: b.read("scale"), output: b.read("output"), gradInput: b.write("gradInput"),
                                                 gradScale: b.write("gradScale"), gradBias: b.write("gradBias"))
                    }
                } reference: { v in
                    // dβ[c] = Σ dy over the channel (masked by the output with fused ReLU).
                    guard !bn.fusedReLU else { return [:] }
                    return Self.channelSums(v["gradOutput"]!, shape)
                }
            }
        case .instanceTrain, .instanceInfer, .instanceBackward:
            let shape = shape()
            let inorm = try InstanceNormalization(shape: shape, epsilon: eps, threading: threading)
            _ = inorm.plan()
            guard shape.count <= 60_000 else { return }
            let running = try runningStatistics(shape.c)
            let c = shape.c, t = shape.count
            if op == .instanceBackward {
                let slots = shape.n * c
                let saved = savedStatistics(slots)
                var buffers = Self.gradientBuffers(count: t, parameters: c)
                optional(&buffers, ["scale", "gradInput", "gradScale", "gradBias"])
                execute(label, &buffers, running: nil) { b in
                    try inorm.backwardTraining(input: b.read("input")!, gradOutput: b.read("gradOutput")!, saved: saved,
                                               scale: b.read("scale"), gradInput: b.write("gradInput"),
                                               gradScale: b.write("gradScale"), gradBias: b.write("gradBias"))
                } reference: { v in Self.channelSums(v["gradOutput"]!, shape) }
            } else {
                var buffers = Self.affineBuffers(count: t, parameters: c)
                optional(&buffers, ["scale", "bias"])
                let train = op == .instanceTrain
                execute(label, &buffers, running: running, runningChannels: c, singleValue: train && shape.spatial < 2) { b in
                    if train {
                        _ = try inorm.forwardTraining(input: b.read("input")!, output: b.write("output")!,
                                                      scale: b.read("scale"), bias: b.read("bias"), running: running)
                    } else {
                        try inorm.forwardInference(input: b.read("input")!, output: b.write("output")!,
                                                   scale: b.read("scale"), bias: b.read("bias"), running: running)
                    }
                } reference: { v in
                    let x = v["input"]!
                    return ["output": train
                        ? Reference.instanceNorm(x, shape, epsilon: eps, scale: v["scale"], bias: v["bias"]).output
                        : Reference.inference(x, shape, mean: running.mean, variance: running.variance, epsilon: eps,
                                              scale: v["scale"], bias: v["bias"])]
                }
            }
        case .groupForward, .groupBackward:
            let shape = shape()
            let groups = chance(0.9) ? pick([1, 2, 3, 4, shape.c].filter { $0 > 0 && shape.c % $0 == 0 } + [1]) : dimension()
            let gn = try GroupNormalization(shape: shape, groups: groups, epsilon: eps, threading: threading)
            _ = gn.plan()
            guard shape.count <= 60_000 else { return }
            let c = shape.c, t = shape.count
            if op == .groupBackward {
                let slots = shape.n * groups
                let saved = savedStatistics(slots)
                var buffers = Self.gradientBuffers(count: t, parameters: c)
                optional(&buffers, ["scale", "gradInput", "gradScale", "gradBias"])
                execute(label, &buffers, running: nil) { b in
                    try gn.backward(input: b.read("input")!, gradOutput: b.read("gradOutput")!, saved: saved,
                                    scale: b.read("scale"), gradInput: b.write("gradInput"),
                                    gradScale: b.write("gradScale"), gradBias: b.write("gradBias"))
                } reference: { v in Self.channelSums(v["gradOutput"]!, shape) }
            } else {
                var buffers = Self.affineBuffers(count: t, parameters: c)
                optional(&buffers, ["scale", "bias"])
                execute(label, &buffers, running: nil) { b in
                    _ = try gn.forward(input: b.read("input")!, output: b.write("output")!, scale: b.read("scale"), bias: b.read("bias"))
                } reference: { v in
                    ["output": Reference.groupNorm(v["input"]!, shape, groups: groups, epsilon: eps,
                                                   scale: v["scale"], bias: v["bias"]).output]
                }
            }
        case .layerForward, .layerBackward, .rmsForward, .rmsBackward:
            let rows = dimension(1...9), features = dimension(1...70)
            let rms = op == .rmsForward || op == .rmsBackward
            let ln = rms ? nil : try LayerNormalization(rows: rows, features: features, epsilon: eps, threading: threading)
            let rn = rms ? try RMSNormalization(rows: rows, features: features, epsilon: eps, threading: threading) : nil
            _ = ln?.plan() ?? rn!.plan()
            guard rows * features <= 60_000 else { return }
            let t = rows * features
            if op == .layerBackward || op == .rmsBackward {
                let saved = savedStatistics(rows)
                var buffers = [Buffer(name: "input", role: .input, required: t), Buffer(name: "gradOutput", role: .input, required: t),
                               Buffer(name: "scale", role: .parameter, required: features),
                               Buffer(name: "gradInput", role: .output, required: t, inPlace: ["input", "gradOutput"]),
                               Buffer(name: "gradScale", role: .output, required: features)]
                if !rms { buffers.append(Buffer(name: "gradBias", role: .output, required: features)) }
                optional(&buffers, ["scale", "gradInput", "gradScale", "gradBias"])
                execute(label, &buffers, running: nil) { b in
                    if let ln {
                        try ln.backward(input: b.read("input")!, gradOutput: b.read("gradOutput")!, saved: saved,
                                        scale: b.read("scale"), gradInput: b.write("gradInput"),
                                        gradScale: b.write("gradScale"), gradBias: b.write("gradBias"))
                    } else {
                        try rn!.backward(input: b.read("input")!, gradOutput: b.read("gradOutput")!, saved: saved,
                                         scale: b.read("scale"), gradInput: b.write("gradInput"), gradScale: b.write("gradScale"))
                    }
                } reference: { v in
                    rms ? [:] : Self.channelSums(v["gradOutput"]!, .matrix(rows, features))
                }
            } else {
                var buffers = [Buffer(name: "input", role: .input, required: t), Buffer(name: "scale", role: .parameter, required: features),
                               Buffer(name: "output", role: .output, required: t, inPlace: ["input"])]
                if !rms { buffers.insert(Buffer(name: "bias", role: .parameter, required: features), at: 2) }
                optional(&buffers, ["scale", "bias"])
                execute(label, &buffers, running: nil) { b in
                    if let ln {
                        _ = try ln.forward(input: b.read("input")!, output: b.write("output")!, scale: b.read("scale"), bias: b.read("bias"))
                    } else {
                        _ = try rn!.forward(input: b.read("input")!, output: b.write("output")!, scale: b.read("scale"))
                    }
                } reference: { v in
                    ["output": rms ? Reference.rmsNorm(v["input"]!, rows: rows, features: features, epsilon: eps, scale: v["scale"]).output
                        : Reference.layerNorm(v["input"]!, rows: rows, features: features, epsilon: eps,
                                              scale: v["scale"], bias: v["bias"]).output]
                }
            }
        case .adaINForward, .adaINBackward:
            let content = shape()
            let style = chance(0.9) ? TensorShape(n: content.n, c: content.c, h: dimension(), w: dimension(), layout: content.layout) : shape()
            let unbiased = chance(0.3)
            let ada = try AdaptiveInstanceNormalization(content: content, style: style, epsilon: eps,
                                                        unbiasedVariance: unbiased, threading: threading)
            _ = ada.plan()
            guard content.count <= 60_000, style.count <= 60_000 else { return }
            if op == .adaINBackward {
                let slots = content.n * content.c
                let saved = AdaptiveInstanceNormalization.Saved(
                    contentMean: doubles(slots, hostile: false), contentInvStd: doubles(slots, hostile: false, positive: true),
                    styleMean: doubles(slots, hostile: false), styleStd: doubles(slots, hostile: false, positive: true))
                var buffers = [Buffer(name: "content", role: .input, required: content.count),
                               Buffer(name: "style", role: .input, required: style.count),
                               Buffer(name: "gradOutput", role: .input, required: content.count),
                               Buffer(name: "gradContent", role: .output, required: content.count, inPlace: ["content", "gradOutput"]),
                               Buffer(name: "gradStyle", role: .output, required: style.count, inPlace: ["style"])]
                optional(&buffers, ["gradContent", "gradStyle"])
                execute(label, &buffers, running: nil) { b in
                    try ada.backward(content: b.read("content")!, style: b.read("style")!, gradOutput: b.read("gradOutput")!,
                                     saved: saved, gradContent: b.write("gradContent"), gradStyle: b.write("gradStyle"))
                } reference: { _ in [:] }
            } else {
                var buffers = [Buffer(name: "content", role: .input, required: content.count),
                               Buffer(name: "style", role: .parameter, required: style.count),
                               Buffer(name: "output", role: .output, required: content.count, inPlace: ["content"])]
                execute(label, &buffers, running: nil) { b in
                    _ = try ada.forward(content: b.read("content")!, style: b.read("style")!, output: b.write("output")!)
                } reference: { v in
                    ["output": Reference.adaIN(content: v["content"]!, content, style: v["style"]!, style,
                                               epsilon: eps, unbiased: unbiased).output]
                }
            }
        case .weightForward, .weightBackward:
            let shape = (0..<int(1...3)).map { _ in dimension() }
            let dim: Int? = chance(0.2) ? nil : int(-1...shape.count)
            let wn = try WeightNormalization(shape: shape, dim: dim, threading: threading)
            _ = wn.plan()
            guard wn.count <= 60_000 else { return }
            if op == .weightBackward {
                let norms = values(wn.normCount, hostile: false, positive: true).map(Double.init)
                var buffers = [Buffer(name: "v", role: .input, required: wn.count), Buffer(name: "g", role: .input, required: wn.normCount),
                               Buffer(name: "gradWeight", role: .input, required: wn.count),
                               Buffer(name: "gradV", role: .output, required: wn.count, inPlace: ["v", "gradWeight"]),
                               Buffer(name: "gradG", role: .output, required: wn.normCount, inPlace: ["g"])]
                optional(&buffers, ["gradV", "gradG"])
                execute(label, &buffers, running: nil) { b in
                    try wn.backward(v: b.read("v")!, g: b.read("g")!, gradWeight: b.read("gradWeight")!, norms: norms,
                                    gradV: b.write("gradV"), gradG: b.write("gradG"))
                } reference: { _ in [:] }
            } else {
                var buffers = [Buffer(name: "v", role: .input, required: wn.count), Buffer(name: "g", role: .parameter, required: wn.normCount),
                               Buffer(name: "output", role: .output, required: wn.count, inPlace: ["v"])]
                execute(label, &buffers, running: nil) { b in
                    _ = try wn.forward(v: b.read("v")!, g: b.read("g")!, output: b.write("output")!)
                } reference: { v in ["output": Reference.weightNorm(v["v"]!, shape: shape, dim: dim, g: v["g"]!).weight] }
            }
        case .fold:
            let outChannels = dimension(), perOutput = int(1...5)
            guard outChannels <= 60_000 else { return }
            let running = try runningStatistics(max(1, outChannels))
            var buffers = [Buffer(name: "bias", role: .parameter, required: outChannels),
                           Buffer(name: "scale", role: .parameter, required: outChannels),
                           Buffer(name: "shift", role: .parameter, required: outChannels),
                           Buffer(name: "weight", role: .output, required: max(0, outChannels) * perOutput,
                                  multipleOf: outChannels > 0 ? outChannels : nil)]
            optional(&buffers, ["bias", "scale", "shift"])
            var reads = [String: [Float]]()
            execute(label, &buffers, running: running, runningChannels: outChannels,
                    mustThrow: outChannels <= 0 || !(eps.isFinite && eps > 0), seedOutputs: true) { b in
                reads["weight"] = b.write("weight").map { Array($0) }
                _ = try BatchNormFolding.fold(weight: b.write("weight")!, bias: b.read("bias"), outChannels: outChannels,
                                              running: running, scale: b.read("scale"), shift: b.read("shift"), epsilon: eps)
            } reference: { v in
                ["weight": Reference.fold(weight: reads["weight"]!, bias: v["bias"], outChannels: outChannels, mean: running.mean,
                                          variance: running.variance, scale: v["scale"], shift: v["shift"], epsilon: eps).weight]
            }
        }
    }

    /// Running statistics with a random update rule; sometimes its arrays are
    /// then reassigned with the wrong length (the call must throw).
    mutating func runningStatistics(_ channels: Int) throws -> RunningStatistics {
        let update = pick([RunningStatistics.Update.exponential(momentum: chance(0.05) ? pick([-0.1, 1.5, .nan]) : rng.unit()),
                           .cumulativeAverage, .population])
        let running = try RunningStatistics(channels: max(1, channels) + (chance(0.02) ? 1 : 0), update: update,
                                            mean: nil, variance: nil)
        if chance(0.5) {
            try running.load(mean: values(running.channels, hostile: false),
                             variance: values(running.channels, hostile: false, positive: true))
        }
        if chance(0.04) {
            let wrong = [Float](repeating: 1, count: max(0, running.channels + pick([-1, 1])))
            if chance(0.5) { running.mean = wrong } else { running.variance = wrong }
        }
        return running
    }

    /// A forward call's buffers: input, γ, β, and an output that may be the input.
    static func affineBuffers(count t: Int, parameters c: Int) -> [Buffer] {
        [Buffer(name: "input", role: .input, required: t), Buffer(name: "scale", role: .parameter, required: c),
         Buffer(name: "bias", role: .parameter, required: c),
         Buffer(name: "output", role: .output, required: t, inPlace: ["input"])]
    }

    /// A grouped backward call's buffers (InstanceNorm, GroupNorm).
    static func gradientBuffers(count t: Int, parameters c: Int) -> [Buffer] {
        [Buffer(name: "input", role: .input, required: t), Buffer(name: "gradOutput", role: .input, required: t),
         Buffer(name: "scale", role: .parameter, required: c),
         Buffer(name: "gradInput", role: .output, required: t, inPlace: ["input", "gradOutput"]),
         Buffer(name: "gradScale", role: .output, required: c), Buffer(name: "gradBias", role: .output, required: c)]
    }

    /// Ordinary saved statistics for `slots` units (backward calls that skip the forward).
    mutating func savedStatistics(_ slots: Int) -> SavedStatistics {
        SavedStatistics(mean: doubles(slots, hostile: false), invStd: doubles(slots, hostile: false, positive: true))
    }

    mutating func optional(_ buffers: inout [Buffer], _ names: [String]) {
        for i in buffers.indices where names.contains(buffers[i].name) { buffers[i].present = chance(0.75) }
    }

    /// The buffers of one call, by name, over the fuzzer's block of memory.
    struct Views {
        var base: UnsafeMutablePointer<Float>
        var buffers: [Buffer]
        func view(_ name: String) -> UnsafeMutableBufferPointer<Float>? {
            guard let b = buffers.first(where: { $0.name == name }), b.present else { return nil }
            return UnsafeMutableBufferPointer(start: b.length == 0 ? nil : base + b.offset, count: b.length)
        }
        func read(_ name: String) -> UnsafeBufferPointer<Float>? { view(name).map { UnsafeBufferPointer($0) } }
        func write(_ name: String) -> UnsafeMutableBufferPointer<Float>? { view(name) }
    }

    /// Places and fills the buffers, calls `body`, and judges the outcome (see the file comment).
    mutating func execute(
        _ label: String, _ buffers: inout [Buffer], running: RunningStatistics?, runningChannels: Int? = nil,
        singleValue: Bool = false,
        mustThrow: Bool = false, seedOutputs: Bool = false,
        _ body: (Views) throws -> Void, reference: ([String: [Float]]) -> [String: [Double]]
    ) {
        let size = place(&buffers)
        let hostile = chance(0.15)
        if hostile { report.hostileValues += 1 }
        var memory = values(size, hostile: false)
        // Inputs get their values (outputs keep whatever is there: it must not matter).
        for b in buffers where b.present && (b.role != .output || seedOutputs) {
            let positive = b.name == "scale" || b.name == "g"
            let v = values(b.length, hostile: hostile, positive: positive)
            for i in 0..<b.length { memory[b.offset + i] = v[i] }
        }
        let runningBad = running.map { r in
            r.mean.count != r.channels || r.variance.count != r.channels || r.channels != runningChannels
        } ?? false
        let legal = isLegal(buffers) && !mustThrow && !runningBad && !singleValue
        var inputs = [String: [Float]]()
        for b in buffers where b.present && b.role != .output {
            inputs[b.name] = Array(memory[b.offset..<(b.offset + b.length)])
        }
        let before = memory.map(\.bitPattern), runningBefore = running.map(RunningSnapshot.init)
        var thrown: Error?
        let current = buffers
        memory.withUnsafeMutableBufferPointer { m in
            do { try body(Views(base: m.baseAddress!, buffers: current)) } catch { thrown = error }
        }
        if let thrown {
            report.rejectedCalls += 1
            if !(thrown is NormError) { report.failures.append("\(label): threw \(thrown), not a NormError") }
            if legal {
                report.failures.append("\(label): a legal call threw \(thrown)")
            }
            if memory.map(\.bitPattern) != before { report.failures.append("\(label): memory written before \(thrown)") }
            if let running, RunningSnapshot(running) != runningBefore! {
                report.failures.append("\(label): running statistics changed before \(thrown)")
            }
            return
        }
        if !legal { report.failures.append("\(label): an illegal call was accepted (\(buffers.map { "\($0.name):\($0.present ? "\($0.offset)+\($0.length)/\($0.required)" : "-")" }))") }
        guard legal, !hostile else { return }
        // Ordinary values: outputs against the Float64 reference.
        let expectations = reference(inputs)
        for (name, expected) in expectations where !name.hasSuffix(Self.floorSuffix) {
            let floor = expectations[name + Self.floorSuffix]
            guard let b = buffers.first(where: { $0.name == name }), b.present else { continue }
            let actual = Array(memory[b.offset..<(b.offset + b.length)])
            report.checkedAgainstReference += 1
            let rms = (expected.reduce(0) { $0 + $1 * $1 } / Double(max(1, expected.count))).squareRoot()
            let magnitude = expected.reduce(0) { max($0, abs($1)) }
            for (i, (a, e)) in zip(actual, expected).enumerated() {
                // Sums: 8ε·Σ|terms| plus the output's own rounding. The fuzzer guards
                // against wrong sums (a missed block, a wrong count), not the last
                // ulps: AccuracyTests holds the accuracy targets (2ε·Σ|terms|).
                // Float32 block partials have reached 5ε (BatchNorm dβ, seed 1168).
                let tolerance = floor.map { 8 * Double(Float.ulpOfOne) * $0[i] + Double(Float(e).ulp) }
                    ?? 1e-4 * abs(e) + 1e-4 * max(rms, 1e-30) + 1e-6 * magnitude
                if !(abs(Double(a) - e) <= tolerance) || (e.isFinite && !a.isFinite) {
                    let bound = floor.map { ", |error| = \(abs(Double(a) - e) / (Double(Float.ulpOfOne) * $0[i])) ε·Σ|terms| (Σ|terms| = \($0[i]))" } ?? ""
                    report.failures.append("\(label): \(name)[\(i)] = \(a), reference \(e)\(bound), \(expected.count) values")
                    break
                }
            }
        }
        for b in buffers where b.present && b.role == .output {
            let out = memory[b.offset..<(b.offset + b.length)]
            if let bad = out.firstIndex(where: { !$0.isFinite }) {
                report.failures.append("\(label): \(b.name)[\(bad - b.offset)] = \(out[bad]) from ordinary values")
            }
        }
    }

    /// A reference entry named `name + floorSuffix` holds, per element, the Σ|terms| of a
    /// sum: that output is then checked against a bound proportional to Σ|terms|.
    static let floorSuffix = "|Σ|terms|"

    /// Σ over everything but the channel, per channel, and the Σ|terms| bound
    /// (dβ of BatchNorm, InstanceNorm, GroupNorm; LayerNorm's over rows).
    static func channelSums(_ dy: [Float], _ shape: TensorShape, _ name: String = "gradBias") -> [String: [Double]] {
        var sums = [Reference.Sum](repeating: Reference.Sum(), count: shape.c)
        var absolute = [Double](repeating: 0, count: shape.c)
        for n in 0..<shape.n {
            for c in 0..<shape.c {
                for s in 0..<shape.spatial {
                    let v = Double(dy[shape.offset(n, c, s)])
                    sums[c].add(v)
                    absolute[c] += abs(v)
                }
            }
        }
        return [name: sums.map(\.value), name + floorSuffix: absolute]
    }
}
