// The fuzzer's operations: for each drawn op, its descriptor and buffers, the
// call, and the Float64 oracle its outputs must meet (Fuzzer.swift describes
// the oracle).

import Foundation
@testable import NormKernels

extension Fuzzer {
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
}
