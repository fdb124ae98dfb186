// The fuzzer over the fused ops (issue 21), on Float32, Float16 and BFloat16
// tensors: residual LayerNorm/RMSNorm forward and backward (bias, the sum
// output s, the upstream gradient of s, each optional), RMSNorm × gate forward
// and backward, GroupNorm + SiLU forward and backward (with and without the
// per-(n, c) modulation), BatchNorm + add (+ ReLU) training and inference
// forward and both backwards with gradIdentity. An outside package calls these
// with cases the fused tests never draw; the oracle is `Fuzzer+Mixed.swift`'s
// (throw before writing, or match Float64 references and the identities:
// dβ = Σ dy, d inputBias = Σ_rows dx, d gate = dy·z, gradIdentity = dy masked,
// GroupNorm + SiLU's dβ, dγ and modulation gradients as Float64 sums of dy·silu′(z)).

import Foundation
@testable import NormKernels

extension Fuzzer {
    enum FusedOp: CaseIterable {
        case residualForward, residualBackward, gateForward, gateBackward, siluForward, siluBackward
        case addTrain, addInfer, addBackward, addBackwardInfer
    }

    static func tensor(_ name: String, _ role: Role, _ count: Int, _ e: Precision, inPlace: Set<String> = []) -> Buffer {
        Buffer(name: name, role: role, required: count, inPlace: inPlace, element: e)
    }

    static func float(_ name: String, _ role: Role, _ count: Int) -> Buffer {
        Buffer(name: name, role: role, required: count)
    }

    /// Runs `calls` random calls of the fused ops, each on a random element type.
    mutating func runFused(calls: Int) {
        for index in 0..<calls {
            report.calls += 1
            let op = pick(FusedOp.allCases), element = pick(Precision.allCases)
            let label = "fused call \(index) (\(op), \(element), rng state \(rng.state))"
            do {
                switch element {
                case .float: try fuzzFused(op, label, Float.self)
                case .half: try fuzzFused(op, label, Float16.self)
                case .bfloat: try fuzzFused(op, label, BFloat16.self)
                }
            } catch is NormError {
                report.rejectedDescriptors += 1
            } catch {
                report.failures.append("\(label): non-NormError \(error)")
            }
        }
    }

    mutating func fuzzFused<E: NormElement>(_ op: FusedOp, _ label: String, _: E.Type) throws {
        let threading = threading(), eps = epsilon(), e = Precision.of(E.self), narrow = e != .float
        switch op {
        case .residualForward, .residualBackward:
            let rows = dimension(1...9), features = dimension(1...70), rms = chance(0.5)
            let ln = rms ? nil : try LayerNormalization(rows: rows, features: features, epsilon: eps, threading: threading)
            let rn = rms ? try RMSNormalization(rows: rows, features: features, epsilon: eps, threading: threading) : nil
            _ = ln?.plan() ?? rn!.plan()
            guard rows * features <= 60_000 else { return }
            let t = rows * features, shape = TensorShape.matrix(rows, features)
            if op == .residualForward {
                var buffers = [Self.tensor("input", .input, t, e), Self.tensor("residual", .input, t, e),
                               Self.float("scale", .parameter, features), Self.float("inputBias", .parameter, features),
                               Self.tensor("output", .output, t, e, inPlace: ["input", "residual"]),
                               Self.tensor("sum", .output, t, e, inPlace: ["input", "residual"])]
                if !rms { buffers.insert(Self.float("bias", .parameter, features), at: 3) }
                optional(&buffers, ["scale", "bias", "inputBias", "sum"])
                executeMixed(label, &buffers, narrow: narrow, running: nil) { b in
                    if let ln {
                        _ = try ln.forward(input: b.read("input", E.self)!, residual: b.read("residual", E.self)!,
                                           output: b.write("output", E.self)!, sum: b.write("sum", E.self),
                                           scale: b.f("scale"), bias: b.f("bias"), inputBias: b.f("inputBias"))
                    } else {
                        _ = try rn!.forward(input: b.read("input", E.self)!, residual: b.read("residual", E.self)!,
                                            output: b.write("output", E.self)!, sum: b.write("sum", E.self),
                                            scale: b.f("scale"), inputBias: b.f("inputBias"))
                    }
                } reference: { v, _ in
                    // s as the library forms it: (x + r) + b in Float32, rounded once to the element type.
                    let x = v["input"]!, r = v["residual"]!, ib = v["inputBias"]
                    var s = [Float](repeating: 0, count: t)
                    for i in 0..<t {
                        let xr: Float = x[i] + r[i]
                        s[i] = e.round(ib.map { xr + $0[i % features] } ?? xr)
                    }
                    let y = rms ? Reference.rmsNorm(s, rows: rows, features: features, epsilon: eps, scale: v["scale"]).output
                        : Reference.layerNorm(s, rows: rows, features: features, epsilon: eps, scale: v["scale"], bias: v["bias"]).output
                    return ["sum": s.map(Double.init), "sum|tol": [Double](repeating: 0, count: t), "output": y]
                }
            } else {
                let saved = savedStatistics(rows)
                var buffers = [Self.tensor("sum", .input, t, e), Self.tensor("gradOutput", .input, t, e),
                               Self.tensor("gradSum", .input, t, e), Self.float("scale", .parameter, features),
                               Self.tensor("gradInput", .output, t, e, inPlace: ["sum", "gradOutput"]),
                               Self.float("gradScale", .output, features), Self.float("gradInputBias", .output, features)]
                if !rms { buffers.append(Self.float("gradBias", .output, features)) }
                optional(&buffers, ["gradSum", "scale", "gradInput", "gradScale", "gradBias", "gradInputBias"])
                executeMixed(label, &buffers, narrow: narrow, running: nil) { b in
                    if let ln {
                        try ln.backward(sum: b.read("sum", E.self)!, gradOutput: b.read("gradOutput", E.self)!,
                                        gradSum: b.read("gradSum", E.self), saved: saved, scale: b.f("scale"),
                                        gradInput: b.write("gradInput", E.self), gradScale: b.fw("gradScale"),
                                        gradBias: b.fw("gradBias"), gradInputBias: b.fw("gradInputBias"))
                    } else {
                        try rn!.backward(sum: b.read("sum", E.self)!, gradOutput: b.read("gradOutput", E.self)!,
                                         gradSum: b.read("gradSum", E.self), saved: saved, scale: b.f("scale"),
                                         gradInput: b.write("gradInput", E.self), gradScale: b.fw("gradScale"),
                                         gradInputBias: b.fw("gradInputBias"))
                    }
                } reference: { v, out in
                    // dβ = Σ_rows dy; d inputBias = Σ_rows dx (dx = d residual = the gradient of s).
                    var expected = rms ? [:] : Self.channelSums(v["gradOutput"]!, shape)
                    if let dx = out["gradInput"] {
                        let sums = Self.columnSums(dx, features: features, e, "gradInputBias", extra: v["gradSum"])
                        expected.merge(sums) { a, _ in a }
                    }
                    return expected
                }
            }
        case .gateForward, .gateBackward:
            let rows = dimension(1...9), features = dimension(1...70)
            let rn = try RMSNormalization(rows: rows, features: features, epsilon: eps, threading: threading)
            _ = rn.plan()
            guard rows * features <= 60_000 else { return }
            let t = rows * features
            if op == .gateForward {
                var buffers = [Self.tensor("input", .input, t, e), Self.tensor("gate", .input, t, e),
                               Self.float("scale", .parameter, features),
                               Self.tensor("output", .output, t, e, inPlace: ["input", "gate"])]
                optional(&buffers, ["scale"])
                executeMixed(label, &buffers, narrow: narrow, running: nil) { b in
                    _ = try rn.forward(input: b.read("input", E.self)!, gate: b.read("gate", E.self)!,
                                       output: b.write("output", E.self)!, scale: b.f("scale"))
                } reference: { v, _ in
                    // z is rounded to the element type before the multiply (±∞ past Float16's range).
                    let z = Reference.rmsNorm(v["input"]!, rows: rows, features: features, epsilon: eps, scale: v["scale"]).output
                        .map { Double(e.round(Float($0))) }
                    let gate = v["gate"]!, rmsZ = (z.reduce(0) { $0 + $1 * $1 } / Double(max(1, t))).squareRoot()
                    return ["output": (0..<t).map { z[$0] * Double(gate[$0]) },
                            "output|scale": (0..<t).map { (abs(z[$0]) + rmsZ) * abs(Double(gate[$0])) }]
                }
            } else {
                let saved = savedStatistics(rows)
                var buffers = [Self.tensor("input", .input, t, e), Self.tensor("gate", .input, t, e),
                               Self.tensor("gradOutput", .input, t, e), Self.float("scale", .parameter, features),
                               Self.tensor("gradInput", .output, t, e, inPlace: ["input", "gradOutput"]),
                               Self.tensor("gradGate", .output, t, e, inPlace: ["gate", "gradOutput"]),
                               Self.float("gradScale", .output, features)]
                optional(&buffers, ["scale", "gradInput", "gradGate", "gradScale"])
                executeMixed(label, &buffers, narrow: narrow, running: nil) { b in
                    try rn.backward(input: b.read("input", E.self)!, gate: b.read("gate", E.self)!,
                                    gradOutput: b.read("gradOutput", E.self)!, saved: saved, scale: b.f("scale"),
                                    gradInput: b.write("gradInput", E.self), gradGate: b.write("gradGate", E.self),
                                    gradScale: b.fw("gradScale"))
                } reference: { v, _ in
                    // d gate = dy·E(z), z = x·r·γ re-formed from the saved 1/rms and rounded to the element type.
                    let x = v["input"]!, dy = v["gradOutput"]!, g = v["scale"]
                    let dGate = (0..<t).map { i in
                        Double(dy[i]) * Double(e.round(Float(Double(x[i]) * saved.invStd[i / features] * Double(g?[i % features] ?? 1))))
                    }
                    return ["gradGate": dGate, "gradGate|scale": dGate.map(abs)]
                }
            }
        case .siluForward, .siluBackward:
            let shape = shape()
            let groups = chance(0.9) ? pick([1, 2, 3, 4, shape.c].filter { $0 > 0 && shape.c % $0 == 0 } + [1]) : dimension()
            let gn = try GroupNormalization(shape: shape, groups: groups, epsilon: eps, threading: threading)
            _ = gn.plan()
            guard shape.count <= 60_000 else { return }
            let c = shape.c, t = shape.count, perSample = shape.n * c
            if op == .siluForward {
                var buffers = [Self.tensor("input", .input, t, e), Self.float("scale", .parameter, c),
                               Self.float("bias", .parameter, c), Self.float("modulationScale", .parameter, perSample),
                               Self.float("modulationShift", .parameter, perSample),
                               Self.tensor("output", .output, t, e, inPlace: ["input"])]
                optional(&buffers, ["scale", "bias", "modulationScale", "modulationShift"])
                executeMixed(label, &buffers, narrow: narrow, running: nil) { b in
                    _ = try gn.forwardSiLU(input: b.read("input", E.self)!, output: b.write("output", E.self)!,
                                           scale: b.f("scale"), bias: b.f("bias"), modulationScale: b.f("modulationScale"),
                                           modulationShift: b.f("modulationShift"))
                } reference: { v, _ in
                    let norm = Reference.groupNorm(v["input"]!, shape, groups: groups, epsilon: eps,
                                                   scale: v["scale"], bias: v["bias"]).output
                    let rmsN = (norm.reduce(0) { $0 + $1 * $1 } / Double(max(1, t))).squareRoot()
                    var y = norm, magnitude = norm
                    for n in 0..<shape.n {
                        for ch in 0..<c {
                            let m = 1 + Double(v["modulationScale"]?[n * c + ch] ?? 0), shift = Double(v["modulationShift"]?[n * c + ch] ?? 0)
                            for s in 0..<shape.spatial {
                                let o = shape.offset(n, ch, s), z = norm[o] * m + shift
                                y[o] = z * sigmoid64(z)
                                magnitude[o] = (abs(norm[o]) + rmsN) * abs(m) + abs(shift)
                            }
                        }
                    }
                    return ["output": y, "output|scale": magnitude]
                }
            } else {
                let saved = savedStatistics(shape.n * groups)
                var buffers = [Self.tensor("input", .input, t, e), Self.tensor("gradOutput", .input, t, e),
                               Self.float("scale", .parameter, c), Self.float("bias", .parameter, c),
                               Self.float("modulationScale", .parameter, perSample), Self.float("modulationShift", .parameter, perSample),
                               Self.tensor("gradInput", .output, t, e, inPlace: ["input", "gradOutput"]),
                               Self.float("gradScale", .output, c), Self.float("gradBias", .output, c),
                               Self.float("gradModulationScale", .output, perSample),
                               Self.float("gradModulationShift", .output, perSample)]
                optional(&buffers, ["scale", "bias", "modulationScale", "modulationShift", "gradInput", "gradScale",
                                    "gradBias", "gradModulationScale", "gradModulationShift"])
                executeMixed(label, &buffers, narrow: narrow, running: nil) { b in
                    try gn.backwardSiLU(input: b.read("input", E.self)!, gradOutput: b.read("gradOutput", E.self)!,
                                        saved: saved, scale: b.f("scale"), bias: b.f("bias"),
                                        modulationScale: b.f("modulationScale"), modulationShift: b.f("modulationShift"),
                                        gradInput: b.write("gradInput", E.self), gradScale: b.fw("gradScale"),
                                        gradBias: b.fw("gradBias"), gradModulationScale: b.fw("gradModulationScale"),
                                        gradModulationShift: b.fw("gradModulationShift"))
                } reference: { v, _ in
                    Self.siluGradientSums(v, shape, groups: groups, saved: saved)
                }
            }
        case .addTrain, .addInfer, .addBackward, .addBackwardInfer:
            let shape = shape()
            let bn = try BatchNormalization(shape: shape, epsilon: eps, fusedReLU: chance(0.5), threading: threading)
            _ = bn.plan()
            guard shape.count <= 60_000 else { return }
            let running = try runningStatistics(shape.c)
            let c = shape.c, t = shape.count, relu = bn.fusedReLU
            if op == .addTrain || op == .addInfer {
                var buffers = [Self.tensor("input", .input, t, e), Self.tensor("identity", .input, t, e),
                               Self.float("scale", .parameter, c), Self.float("bias", .parameter, c),
                               Self.tensor("output", .output, t, e, inPlace: ["input", "identity"])]
                optional(&buffers, ["scale", "bias"])
                let train = op == .addTrain
                executeMixed(label, &buffers, narrow: narrow, running: running, runningChannels: c,
                             singleValue: train && shape.n * shape.spatial < 2) { b in
                    if train {
                        _ = try bn.forwardTraining(input: b.read("input", E.self)!, identity: b.read("identity", E.self)!,
                                                   output: b.write("output", E.self)!, scale: b.f("scale"), bias: b.f("bias"),
                                                   running: running)
                    } else {
                        try bn.forwardInference(input: b.read("input", E.self)!, identity: b.read("identity", E.self)!,
                                                output: b.write("output", E.self)!, scale: b.f("scale"), bias: b.f("bias"),
                                                running: running)
                    }
                } reference: { v, _ in
                    // Training: running's values before the call are gone by now; the reference is the batch's.
                    let x = v["input"]!, identity = v["identity"]!
                    let normalized = train
                        ? Reference.batchNorm(x, shape, epsilon: eps, scale: v["scale"], bias: v["bias"]).output
                        : Reference.inference(x, shape, mean: running.mean, variance: running.variance, epsilon: eps,
                                              scale: v["scale"], bias: v["bias"])
                    let u = (0..<t).map { normalized[$0] + Double(identity[$0]) }
                    return ["output": relu ? u.map { max($0, 0) } : u,
                            "output|scale": (0..<t).map { abs(normalized[$0]) + abs(Double(identity[$0])) }]
                }
            } else {
                let saved = savedStatistics(c)
                var buffers = [Self.tensor("input", .input, t, e), Self.tensor("gradOutput", .input, t, e),
                               Self.tensor("output", .input, t, e), Self.float("scale", .parameter, c),
                               Self.tensor("gradInput", .output, t, e, inPlace: ["input", "gradOutput", "output"]),
                               Self.tensor("gradIdentity", .output, t, e, inPlace: ["gradOutput"]),
                               Self.float("gradScale", .output, c), Self.float("gradBias", .output, c)]
                optional(&buffers, ["output", "scale", "gradInput", "gradIdentity", "gradScale", "gradBias"])
                let needsMask = relu && !buffers.contains { $0.name == "output" && $0.present }
                let train = op == .addBackward
                executeMixed(label, &buffers, narrow: narrow, running: train ? nil : running, runningChannels: c,
                             mustThrow: needsMask) { b in
                    if train {
                        try bn.backwardTraining(input: b.read("input", E.self)!, gradOutput: b.read("gradOutput", E.self)!,
                                                saved: saved, scale: b.f("scale"), output: b.read("output", E.self),
                                                gradInput: b.write("gradInput", E.self), gradIdentity: b.write("gradIdentity", E.self),
                                                gradScale: b.fw("gradScale"), gradBias: b.fw("gradBias"))
                    } else {
                        try bn.backwardInference(input: b.read("input", E.self)!, gradOutput: b.read("gradOutput", E.self)!,
                                                 running: running, scale: b.f("scale"), output: b.read("output", E.self),
                                                 gradInput: b.write("gradInput", E.self), gradIdentity: b.write("gradIdentity", E.self),
                                                 gradScale: b.fw("gradScale"), gradBias: b.fw("gradBias"))
                    }
                } reference: { v, _ in Self.maskedGradients(v, shape, relu: relu, identity: true) }
            }
        }
    }

    /// BatchNorm's g = dy where y > 0 (dy without ReLU), exactly, as gradIdentity
    /// (when `identity`), and dβ = Σ g per channel.
    static func maskedGradients(_ v: [String: [Float]], _ shape: TensorShape, relu: Bool, identity: Bool) -> [String: [Double]] {
        let dy = v["gradOutput"]!, y = v["output"]
        let g = relu ? (0..<dy.count).map { y![$0] > 0 ? dy[$0] : 0 } : dy
        var expected = channelSums(g, shape)
        if identity {
            expected["gradIdentity"] = g.map(Double.init)
            expected["gradIdentity|tol"] = [Double](repeating: 0, count: g.count)
        }
        return expected
    }

    /// GroupNorm + SiLU's parameter gradients in Float64 from x, dy and the saved
    /// statistics (`GroupNormalization+SiLUBackward.swift`): z = (x̂·γ + β)·m + shift,
    /// dz = dy·silu′(z), dβ = Σ dz·m, dγ = Σ dz·m·x̂, d shift = Σ_hw dz,
    /// d scale = γ·Σ_hw dz·x̂ + β·Σ_hw dz. Each term's bound allows z's Float32
    /// rounding (|silu″| ≤ 1/2, z formed from terms as large as Z) and the
    /// library's exp (1e-5 relative), plus 8ε of the sum.
    static func siluGradientSums(_ v: [String: [Float]], _ shape: TensorShape, groups: Int,
                                 saved: SavedStatistics) -> [String: [Double]] {
        let x = v["input"]!, dy = v["gradOutput"]!, c = shape.c, perGroup = max(1, c / groups), eps = Double(Float.ulpOfOne)
        var dBeta = [Double](repeating: 0, count: c), dGamma = dBeta, tBeta = dBeta, tGamma = dBeta
        var a = [Double](repeating: 0, count: shape.n * c), bSum = a, tA = a, tB = a
        for n in 0..<shape.n {
            for ch in 0..<c {
                let slot = n * groups + ch / perGroup, mean = saved.mean[slot], r = saved.invStd[slot]
                let gamma = Double(v["scale"]?[ch] ?? 1), beta = Double(v["bias"]?[ch] ?? 0)
                let m = 1 + Double(v["modulationScale"]?[n * c + ch] ?? 0), shift = Double(v["modulationShift"]?[n * c + ch] ?? 0)
                let k = n * c + ch
                for s in 0..<shape.spatial {
                    let o = shape.offset(n, ch, s), xv = Double(x[o])
                    let xhat = (xv - mean) * r, z = (xhat * gamma + beta) * m + shift
                    let big = ((abs(xv) + abs(mean)) * r * abs(gamma) + abs(beta)) * abs(m) + abs(shift) + abs(z)
                    let sigma = sigmoid64(z), dz = Double(dy[o]) * sigma * (1 + z * (1 - sigma))
                    let dzError = abs(Double(dy[o])) * (1e-5 + 2 * eps * big) + 8 * eps * abs(dz)
                    let xhatError = 2 * eps * (abs(xv) + abs(mean)) * r
                    a[k] += dz; tA[k] += dzError
                    bSum[k] += dz * xhat; tB[k] += dzError * abs(xhat) + abs(dz) * xhatError
                    dBeta[ch] += dz * m; tBeta[ch] += dzError * abs(m)
                    dGamma[ch] += dz * m * xhat; tGamma[ch] += (dzError * abs(xhat) + abs(dz) * xhatError) * abs(m)
                }
            }
        }
        var dScale = a, tScale = a
        for k in 0..<(shape.n * c) {
            let gamma = Double(v["scale"]?[k % c] ?? 1), beta = Double(v["bias"]?[k % c] ?? 0)
            dScale[k] = gamma * bSum[k] + beta * a[k]
            tScale[k] = abs(gamma) * tB[k] + abs(beta) * tA[k] + 8 * eps * (abs(gamma * bSum[k]) + abs(beta * a[k]))
        }
        func ulps(_ sums: [Double], _ bounds: [Double]) -> [Double] { zip(sums, bounds).map { $1 + Double(Float($0).ulp) } }
        return ["gradBias": dBeta, "gradBias|tol": ulps(dBeta, tBeta), "gradScale": dGamma, "gradScale|tol": ulps(dGamma, tGamma),
                "gradModulationShift": a, "gradModulationShift|tol": ulps(a, tA),
                "gradModulationScale": dScale, "gradModulationScale|tol": ulps(dScale, tScale)]
    }
}
