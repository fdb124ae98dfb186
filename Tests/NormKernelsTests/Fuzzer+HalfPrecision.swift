// The fuzzer over the plain ops' 16-bit entry points (issue 20): BatchNorm
// (training, inference, both backwards, fused ReLU), InstanceNorm (the same
// four), GroupNorm, LayerNorm, RMSNorm, AdaIN and weight norm, forward and
// backward, on Float16 and BFloat16 tensors with Float32 parameters. The
// Float32 entry points are `Fuzzer+Operations.swift`'s; these share their
// validation but not their code paths (widening loads, rounding stores, the
// 16-bit in-place cases), and a 16-bit buffer that partially overlaps a
// Float32 γ is an overlap only a byte-level check sees. Oracle:
// `Fuzzer+Mixed.swift` (Float64 references on the widened inputs, dβ = Σ dy,
// masked by the ReLU's output where fused).

import Foundation
@testable import NormKernels

extension Fuzzer {
    enum HalfOp: CaseIterable {
        case batchTrain, batchInfer, batchBackward, batchBackwardInfer
        case instanceTrain, instanceInfer, instanceBackward, instanceBackwardInfer
        case groupForward, groupBackward, layerForward, layerBackward, rmsForward, rmsBackward
        case adaINForward, adaINBackward, weightForward, weightBackward
    }

    /// Runs `calls` random calls of the plain ops on Float16 or BFloat16 tensors.
    mutating func runHalf(calls: Int) {
        for index in 0..<calls {
            report.calls += 1
            let op = pick(HalfOp.allCases), half = chance(0.5)
            let label = "16-bit call \(index) (\(op), \(half ? "Float16" : "BFloat16"), rng state \(rng.state))"
            do {
                if half { try fuzzHalf(op, label, Float16.self) } else { try fuzzHalf(op, label, BFloat16.self) }
            } catch is NormError {
                report.rejectedDescriptors += 1
            } catch {
                report.failures.append("\(label): non-NormError \(error)")
            }
        }
    }

    /// A forward call's buffers: input, γ, β, and an output that may be the input.
    static func affineBuffers(count t: Int, parameters c: Int, _ e: Precision) -> [Buffer] {
        [tensor("input", .input, t, e), float("scale", .parameter, c), float("bias", .parameter, c),
         tensor("output", .output, t, e, inPlace: ["input"])]
    }

    /// A grouped backward call's buffers (InstanceNorm, GroupNorm, LayerNorm).
    static func gradientBuffers(count t: Int, parameters c: Int, _ e: Precision) -> [Buffer] {
        [tensor("input", .input, t, e), tensor("gradOutput", .input, t, e), float("scale", .parameter, c),
         tensor("gradInput", .output, t, e, inPlace: ["input", "gradOutput"]),
         float("gradScale", .output, c), float("gradBias", .output, c)]
    }

    mutating func fuzzHalf<E: NormElement>(_ op: HalfOp, _ label: String, _: E.Type) throws {
        let threading = threading(), eps = epsilon(), e = Precision.of(E.self)
        switch op {
        case .batchTrain, .batchInfer, .instanceTrain, .instanceInfer:
            let shape = shape(), batch = op == .batchTrain || op == .batchInfer
            let bn = batch ? try BatchNormalization(shape: shape, epsilon: eps, fusedReLU: chance(0.3), threading: threading) : nil
            let inorm = batch ? nil : try InstanceNormalization(shape: shape, epsilon: eps, threading: threading)
            _ = bn?.plan() ?? inorm!.plan()
            guard shape.count <= 60_000 else { return }
            let running = try runningStatistics(shape.c)
            let c = shape.c, train = op == .batchTrain || op == .instanceTrain, relu = bn?.fusedReLU ?? false
            var buffers = Self.affineBuffers(count: shape.count, parameters: c, e)
            optional(&buffers, ["scale", "bias"])
            let single = train && (batch ? shape.n * shape.spatial : shape.spatial) < 2
            executeMixed(label, &buffers, narrow: true, running: running, runningChannels: c, singleValue: single) { b in
                let x = b.read("input", E.self)!, y = b.write("output", E.self)!
                switch (bn, train) {
                case (let bn?, true): _ = try bn.forwardTraining(input: x, output: y, scale: b.f("scale"), bias: b.f("bias"), running: running)
                case (let bn?, false): try bn.forwardInference(input: x, output: y, scale: b.f("scale"), bias: b.f("bias"), running: running)
                case (nil, true): _ = try inorm!.forwardTraining(input: x, output: y, scale: b.f("scale"), bias: b.f("bias"), running: running)
                case (nil, false): try inorm!.forwardInference(input: x, output: y, scale: b.f("scale"), bias: b.f("bias"), running: running)
                }
            } reference: { v, _ in
                let x = v["input"]!
                if !train {
                    return ["output": Reference.inference(x, shape, mean: running.mean, variance: running.variance, epsilon: eps,
                                                          scale: v["scale"], bias: v["bias"], relu: relu)]
                }
                return ["output": batch
                    ? Reference.batchNorm(x, shape, epsilon: eps, scale: v["scale"], bias: v["bias"], relu: relu).output
                    : Reference.instanceNorm(x, shape, epsilon: eps, scale: v["scale"], bias: v["bias"]).output]
            }
        case .batchBackward, .batchBackwardInfer:
            let shape = shape()
            let bn = try BatchNormalization(shape: shape, epsilon: eps, fusedReLU: chance(0.3), threading: threading)
            _ = bn.plan()
            guard shape.count <= 60_000 else { return }
            let running = try runningStatistics(shape.c)
            let c = shape.c, t = shape.count, saved = savedStatistics(c)
            var buffers = [Self.tensor("input", .input, t, e), Self.tensor("gradOutput", .input, t, e),
                           Self.tensor("output", .input, t, e), Self.float("scale", .parameter, c),
                           Self.tensor("gradInput", .output, t, e, inPlace: ["input", "gradOutput", "output"]),
                           Self.float("gradScale", .output, c), Self.float("gradBias", .output, c)]
            optional(&buffers, ["output", "scale", "gradInput", "gradScale", "gradBias"])
            let needsMask = bn.fusedReLU && !buffers.contains { $0.name == "output" && $0.present }
            let train = op == .batchBackward
            executeMixed(label, &buffers, narrow: true, running: train ? nil : running, runningChannels: c, mustThrow: needsMask) { b in
                if train {
                    try bn.backwardTraining(input: b.read("input", E.self)!, gradOutput: b.read("gradOutput", E.self)!, saved: saved,
                                            scale: b.f("scale"), output: b.read("output", E.self), gradInput: b.write("gradInput", E.self),
                                            gradScale: b.fw("gradScale"), gradBias: b.fw("gradBias"))
                } else {
                    try bn.backwardInference(input: b.read("input", E.self)!, gradOutput: b.read("gradOutput", E.self)!, running: running,
                                             scale: b.f("scale"), output: b.read("output", E.self), gradInput: b.write("gradInput", E.self),
                                             gradScale: b.fw("gradScale"), gradBias: b.fw("gradBias"))
                }
            } reference: { v, _ in Self.maskedGradients(v, shape, relu: bn.fusedReLU, identity: false) }
        case .instanceBackward, .instanceBackwardInfer, .groupBackward:
            let shape = shape(), instance = op != .groupBackward
            let groups = instance ? 1 : chance(0.9) ? pick([1, 2, 3, 4, shape.c].filter { $0 > 0 && shape.c % $0 == 0 } + [1]) : dimension()
            let inorm = instance ? try InstanceNormalization(shape: shape, epsilon: eps, threading: threading) : nil
            let gn = instance ? nil : try GroupNormalization(shape: shape, groups: groups, epsilon: eps, threading: threading)
            _ = inorm?.plan() ?? gn!.plan()
            guard shape.count <= 60_000 else { return }
            let running = try runningStatistics(shape.c)
            let c = shape.c, saved = savedStatistics(shape.n * (instance ? c : groups))
            var buffers = Self.gradientBuffers(count: shape.count, parameters: c, e)
            optional(&buffers, ["scale", "gradInput", "gradScale", "gradBias"])
            let inference = op == .instanceBackwardInfer
            executeMixed(label, &buffers, narrow: true, running: inference ? running : nil, runningChannels: c) { b in
                let x = b.read("input", E.self)!, dy = b.read("gradOutput", E.self)!, dx = b.write("gradInput", E.self)
                if let gn {
                    try gn.backward(input: x, gradOutput: dy, saved: saved, scale: b.f("scale"), gradInput: dx,
                                    gradScale: b.fw("gradScale"), gradBias: b.fw("gradBias"))
                } else if inference {
                    try inorm!.backwardInference(input: x, gradOutput: dy, running: running, scale: b.f("scale"), gradInput: dx,
                                                 gradScale: b.fw("gradScale"), gradBias: b.fw("gradBias"))
                } else {
                    try inorm!.backwardTraining(input: x, gradOutput: dy, saved: saved, scale: b.f("scale"), gradInput: dx,
                                                gradScale: b.fw("gradScale"), gradBias: b.fw("gradBias"))
                }
            } reference: { v, _ in Self.channelSums(v["gradOutput"]!, shape) }
        case .groupForward:
            let shape = shape()
            let groups = chance(0.9) ? pick([1, 2, 3, 4, shape.c].filter { $0 > 0 && shape.c % $0 == 0 } + [1]) : dimension()
            let gn = try GroupNormalization(shape: shape, groups: groups, epsilon: eps, threading: threading)
            _ = gn.plan()
            guard shape.count <= 60_000 else { return }
            var buffers = Self.affineBuffers(count: shape.count, parameters: shape.c, e)
            optional(&buffers, ["scale", "bias"])
            executeMixed(label, &buffers, narrow: true, running: nil) { b in
                _ = try gn.forward(input: b.read("input", E.self)!, output: b.write("output", E.self)!,
                                   scale: b.f("scale"), bias: b.f("bias"))
            } reference: { v, _ in
                ["output": Reference.groupNorm(v["input"]!, shape, groups: groups, epsilon: eps, scale: v["scale"], bias: v["bias"]).output]
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
                var buffers = Self.gradientBuffers(count: t, parameters: features, e)
                if rms { buffers.removeLast() }
                optional(&buffers, ["scale", "gradInput", "gradScale", "gradBias"])
                executeMixed(label, &buffers, narrow: true, running: nil) { b in
                    let x = b.read("input", E.self)!, dy = b.read("gradOutput", E.self)!, dx = b.write("gradInput", E.self)
                    if let ln {
                        try ln.backward(input: x, gradOutput: dy, saved: saved, scale: b.f("scale"), gradInput: dx,
                                        gradScale: b.fw("gradScale"), gradBias: b.fw("gradBias"))
                    } else {
                        try rn!.backward(input: x, gradOutput: dy, saved: saved, scale: b.f("scale"), gradInput: dx,
                                         gradScale: b.fw("gradScale"))
                    }
                } reference: { v, _ in rms ? [:] : Self.channelSums(v["gradOutput"]!, .matrix(rows, features)) }
            } else {
                var buffers = Self.affineBuffers(count: t, parameters: features, e)
                if rms { buffers.remove(at: 2) }
                optional(&buffers, ["scale", "bias"])
                executeMixed(label, &buffers, narrow: true, running: nil) { b in
                    let x = b.read("input", E.self)!, y = b.write("output", E.self)!
                    if let ln {
                        _ = try ln.forward(input: x, output: y, scale: b.f("scale"), bias: b.f("bias"))
                    } else {
                        _ = try rn!.forward(input: x, output: y, scale: b.f("scale"))
                    }
                } reference: { v, _ in
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
                var buffers = [Self.tensor("content", .input, content.count, e), Self.tensor("style", .input, style.count, e),
                               Self.tensor("gradOutput", .input, content.count, e),
                               Self.tensor("gradContent", .output, content.count, e, inPlace: ["content", "gradOutput"]),
                               Self.tensor("gradStyle", .output, style.count, e, inPlace: ["style"])]
                optional(&buffers, ["gradContent", "gradStyle"])
                executeMixed(label, &buffers, narrow: true, running: nil) { b in
                    try ada.backward(content: b.read("content", E.self)!, style: b.read("style", E.self)!,
                                     gradOutput: b.read("gradOutput", E.self)!, saved: saved,
                                     gradContent: b.write("gradContent", E.self), gradStyle: b.write("gradStyle", E.self))
                } reference: { _, _ in [:] }
            } else {
                var buffers = [Self.tensor("content", .input, content.count, e), Self.tensor("style", .parameter, style.count, e),
                               Self.tensor("output", .output, content.count, e, inPlace: ["content"])]
                executeMixed(label, &buffers, narrow: true, running: nil) { b in
                    _ = try ada.forward(content: b.read("content", E.self)!, style: b.read("style", E.self)!,
                                        output: b.write("output", E.self)!)
                } reference: { v, _ in
                    ["output": Reference.adaIN(content: v["content"]!, content, style: v["style"]!, style, epsilon: eps, unbiased: unbiased).output]
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
                var buffers = [Self.tensor("v", .input, wn.count, e), Self.float("g", .input, wn.normCount),
                               Self.tensor("gradWeight", .input, wn.count, e),
                               Self.tensor("gradV", .output, wn.count, e, inPlace: ["v", "gradWeight"]),
                               Self.float("gradG", .output, wn.normCount).with(inPlace: ["g"])]
                optional(&buffers, ["gradV", "gradG"])
                executeMixed(label, &buffers, narrow: true, running: nil) { b in
                    try wn.backward(v: b.read("v", E.self)!, g: b.f("g")!, gradWeight: b.read("gradWeight", E.self)!,
                                    norms: norms, gradV: b.write("gradV", E.self), gradG: b.fw("gradG"))
                } reference: { _, _ in [:] }
            } else {
                var buffers = [Self.tensor("v", .input, wn.count, e), Self.float("g", .parameter, wn.normCount),
                               Self.tensor("output", .output, wn.count, e, inPlace: ["v"])]
                executeMixed(label, &buffers, narrow: true, running: nil) { b in
                    _ = try wn.forward(v: b.read("v", E.self)!, g: b.f("g")!, output: b.write("output", E.self)!)
                } reference: { v, _ in ["output": Reference.weightNorm(v["v"]!, shape: shape, dim: dim, g: v["g"]!).weight] }
            }
        }
    }
}

extension Fuzzer.Buffer {
    func with(inPlace names: Set<String>) -> Self {
        var b = self
        b.inPlace = names
        return b
    }
}
