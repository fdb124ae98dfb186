// The fuzzer over the array conveniences (API/Arrays*.swift,
// FusedRows+Conveniences.swift, GroupNormSiLU+Conveniences.swift,
// BatchNormResidual+Conveniences.swift, FusedArrays+HalfPrecision.swift,
// FusedChannels+HalfPrecision.swift): the backward of every op family, the fused
// forwards, on [Float] and on [Float16]/[BFloat16]. An array convenience
// allocates its outputs from the descriptor's sizes, so the hostile case is a
// descriptor of up to 2⁴⁸ values with small arrays: the call must throw the
// pointer API's NormError, not allocate (a trap). Arrays are usually of the
// right length and sometimes off by one or empty; the verdict is the fuzzer's
// own (`judge`): an illegal call throws a NormError and leaves the running
// statistics unchanged, a legal one does not throw and, for ordinary values,
// returns finite arrays (their values are the pointer API's, which
// `Fuzzer+Operations` and `Fuzzer+FusedOperations` check). `floatArrays` and
// `elementArrays` make the same calls: the first on [Float], which picks the
// concrete overloads, the second on [E], which picks the generic ones.

import Foundation
@testable import NormKernels

extension Fuzzer {
    enum ArrayOp: CaseIterable {
        case batchBackward, addBackwardInference, addForward, instanceBackwardInference, groupBackward
        case siluForward, siluBackward, layerBackward, residualForward, residualBackward, gateBackward
        case adaINBackward, weightBackward
    }

    /// Runs `calls` random array calls, on [Float], [Float16] or [BFloat16].
    mutating func runArrays(calls: Int) {
        for index in 0..<calls {
            report.calls += 1
            let op = pick(ArrayOp.allCases), element = pick(Precision.allCases)
            let label = "array call \(index) (\(op), \(element), rng state \(rng.state))"
            float16Call = element == .half
            do {
                switch element {
                case .float: try floatArrays(op, label)
                case .half: try elementArrays(op, label, Float16.self)
                case .bfloat: try elementArrays(op, label, BFloat16.self)
                }
            } catch is NormError {
                report.rejectedDescriptors += 1
            } catch {
                report.failures.append("\(label): non-NormError \(error)")
            }
        }
    }

    /// The calls on [Float] (the concrete overloads).
    mutating func floatArrays(_ op: ArrayOp, _ label: String) throws {
        let threading = threading(), eps = epsilon()
        var legal = true
        let selection = pick([GradientSelection.all, .input, .parameters, .scale, []])
        switch op {
        case .batchBackward, .addBackwardInference, .addForward:
            let shape = shape()
            let bn = try BatchNormalization(shape: shape, epsilon: eps, fusedReLU: chance(0.4), threading: threading)
            let t = shape.count, c = shape.c
            let running = try runningStatistics(min(c, 60_000))
            let x: [Float] = tensor(t, &legal), dy: [Float] = tensor(t, &legal), g = parameter(c, &legal)
            if op == .addForward {
                let b = parameter(c, &legal)
                legal = legal && runningFits(running, c) && shape.n * shape.spatial >= 2
                judge(label, legal: legal, running: running) {
                    let r = try bn.forwardTraining(x, identity: dy, scale: g, bias: b, running: running)
                    return [(r.output)]
                }
                return
            }
            let y: [Float]? = chance(0.8) ? tensor(t, &legal) : nil
            legal = legal && !(bn.fusedReLU && y == nil)
            if op == .batchBackward {
                let saved = savedDraw(c, &legal)
                judge(label, legal: legal) {
                    let r = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: g, output: y, computing: selection)
                    return [(r.input), r.scale, r.bias]
                }
            } else {
                legal = legal && runningFits(running, c)
                let wantIdentity = chance(0.7)
                judge(label, legal: legal, running: running) {
                    let r = try bn.backwardInference(x, gradOutput: dy, running: running, scale: g, output: y,
                                                     computing: selection, gradIdentity: wantIdentity)
                    return [(r.norm.input), r.norm.scale, r.norm.bias, (r.identity)]
                }
            }
        case .instanceBackwardInference, .groupBackward, .siluForward, .siluBackward:
            let shape = shape()
            // Validates the shape first (its count may overflow otherwise); GroupNorm's groups later.
            let inorm = try InstanceNormalization(shape: shape, epsilon: eps, threading: threading)
            let c = shape.c, t = shape.count
            let groups = chance(0.9) ? pick([1, 2, shape.c].filter { $0 > 0 && shape.c % $0 == 0 } + [1]) : dimension()
            let x: [Float] = tensor(t, &legal), g = parameter(c, &legal)
            if op == .instanceBackwardInference {
                let running = try runningStatistics(min(c, 60_000)), dy: [Float] = tensor(t, &legal)
                legal = legal && runningFits(running, c)
                judge(label, legal: legal, running: running) {
                    let r = try inorm.backwardInference(x, gradOutput: dy, running: running, scale: g, computing: selection)
                    return [(r.input), r.scale, r.bias]
                }
                return
            }
            let gn = try GroupNormalization(shape: shape, groups: groups, epsilon: eps, threading: threading)
            let silu = op != .groupBackward
            let b = silu ? parameter(c, &legal) : nil
            let ms = silu ? parameter(shape.n * c, &legal) : nil, mt = silu ? parameter(shape.n * c, &legal) : nil
            if op == .siluForward {
                judge(label, legal: legal) {
                    let r = try gn.forwardSiLU(x, scale: g, bias: b, modulationScale: ms, modulationShift: mt)
                    return [(r.output)]
                }
                return
            }
            let dy: [Float] = tensor(t, &legal), saved = savedDraw(shape.n * groups, &legal)
            if op == .groupBackward {
                judge(label, legal: legal) {
                    let r = try gn.backward(x, gradOutput: dy, saved: saved, scale: g, computing: selection)
                    return [(r.input), r.scale, r.bias]
                }
            } else {
                judge(label, legal: legal) {
                    let r = try gn.backwardSiLU(x, gradOutput: dy, saved: saved, scale: g, bias: b, modulationScale: ms,
                                                modulationShift: mt, computing: selection)
                    return [(r.norm.input), r.norm.scale, r.norm.bias, r.modulationScale, r.modulationShift]
                }
            }
        case .layerBackward, .residualForward, .residualBackward, .gateBackward:
            let rows = dimension(1...9), features = dimension(1...70)
            let ln = try LayerNormalization(rows: rows, features: features, epsilon: eps, threading: threading)
            let rn = try RMSNormalization(rows: rows, features: features, epsilon: eps, threading: threading)
            let t = rows * features
            let x: [Float] = tensor(t, &legal), other: [Float] = tensor(t, &legal), g = parameter(features, &legal)
            switch op {
            case .layerBackward:
                let saved = savedDraw(rows, &legal)
                judge(label, legal: legal) {
                    let r = try ln.backward(x, gradOutput: other, saved: saved, scale: g, computing: selection)
                    return [(r.input), r.scale, r.bias]
                }
            case .residualForward:
                let b = parameter(features, &legal), ib = parameter(features, &legal)
                judge(label, legal: legal) {
                    let r = try ln.forward(x, residual: other, scale: g, bias: b, inputBias: ib)
                    return [(r.output), (r.sum)]
                }
            case .residualBackward:
                let ds: [Float]? = chance(0.5) ? tensor(t, &legal) : nil, saved = savedDraw(rows, &legal), wantBias = chance(0.5)
                judge(label, legal: legal) {
                    let r = try rn.backward(sum: x, gradOutput: other, gradSum: ds, saved: saved, scale: g, inputBias: wantBias)
                    return [(r.input), r.scale, r.inputBias]
                }
            default:
                let dy: [Float] = tensor(t, &legal), saved = savedDraw(rows, &legal)
                judge(label, legal: legal) {
                    let r = try rn.backward(x, gate: other, gradOutput: dy, saved: saved, scale: g)
                    return [(r.input), (r.gate), r.scale]
                }
            }
        case .adaINBackward:
            let content = shape()
            let style = chance(0.8) ? TensorShape(n: content.n, c: content.c, h: dimension(), w: dimension(), layout: content.layout) : shape()
            let ada = try AdaptiveInstanceNormalization(content: content, style: style, epsilon: eps, threading: threading)
            let x: [Float] = tensor(content.count, &legal), s: [Float] = tensor(style.count, &legal)
            let dy: [Float] = tensor(content.count, &legal)
            let a = savedDraw(content.n * content.c, &legal), b = savedDraw(content.n * content.c, &legal)
            let saved = AdaptiveInstanceNormalization.Saved(contentMean: a.mean, contentInvStd: a.invStd,
                                                            styleMean: b.mean, styleStd: b.invStd)
            let (wantContent, wantStyle) = (chance(0.8), chance(0.8))
            judge(label, legal: legal) {
                let r = try ada.backward(content: x, style: s, gradOutput: dy, saved: saved, gradContent: wantContent, gradStyle: wantStyle)
                return [(r.content), (r.style)]
            }
        case .weightBackward:
            let dims = (0..<int(1...3)).map { _ in dimension() }
            let wn = try WeightNormalization(shape: dims, dim: chance(0.2) ? nil : int(-1...dims.count), threading: threading)
            let v: [Float] = tensor(wn.count, &legal), dw: [Float] = tensor(wn.count, &legal), g = floats(wn.normCount, &legal)
            let norms = savedDraw(wn.normCount, &legal).invStd, (wantV, wantG) = (chance(0.8), chance(0.8))
            judge(label, legal: legal) {
                let r = try wn.backward(v: v, g: g, gradWeight: dw, norms: norms, gradV: wantV, gradG: wantG)
                return [(r.v), r.g]
            }
        }
    }

    /// The same calls on [E] (the generic overloads).
    mutating func elementArrays<E: NormElement>(_ op: ArrayOp, _ label: String, _: E.Type) throws {
        let threading = threading(), eps = epsilon()
        var legal = true
        let selection = pick([GradientSelection.all, .input, .parameters, .scale, []])
        switch op {
        case .batchBackward, .addBackwardInference, .addForward:
            let shape = shape()
            let bn = try BatchNormalization(shape: shape, epsilon: eps, fusedReLU: chance(0.4), threading: threading)
            let t = shape.count, c = shape.c
            let running = try runningStatistics(min(c, 60_000))
            let x: [E] = tensor(t, &legal), dy: [E] = tensor(t, &legal), g = parameter(c, &legal)
            if op == .addForward {
                let b = parameter(c, &legal)
                legal = legal && runningFits(running, c) && shape.n * shape.spatial >= 2
                judge(label, legal: legal, running: running) {
                    let r = try bn.forwardTraining(x, identity: dy, scale: g, bias: b, running: running)
                    return [Self.widen(r.output)]
                }
                return
            }
            let y: [E]? = chance(0.8) ? tensor(t, &legal) : nil
            legal = legal && !(bn.fusedReLU && y == nil)
            if op == .batchBackward {
                let saved = savedDraw(c, &legal)
                judge(label, legal: legal) {
                    let r = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: g, output: y, computing: selection)
                    return [Self.widen(r.input), r.scale, r.bias]
                }
            } else {
                legal = legal && runningFits(running, c)
                let wantIdentity = chance(0.7)
                judge(label, legal: legal, running: running) {
                    let r = try bn.backwardInference(x, gradOutput: dy, running: running, scale: g, output: y,
                                                     computing: selection, gradIdentity: wantIdentity)
                    return [Self.widen(r.norm.input), r.norm.scale, r.norm.bias, Self.widen(r.identity)]
                }
            }
        case .instanceBackwardInference, .groupBackward, .siluForward, .siluBackward:
            let shape = shape()
            // Validates the shape first (its count may overflow otherwise); GroupNorm's groups later.
            let inorm = try InstanceNormalization(shape: shape, epsilon: eps, threading: threading)
            let c = shape.c, t = shape.count
            let groups = chance(0.9) ? pick([1, 2, shape.c].filter { $0 > 0 && shape.c % $0 == 0 } + [1]) : dimension()
            let x: [E] = tensor(t, &legal), g = parameter(c, &legal)
            if op == .instanceBackwardInference {
                let running = try runningStatistics(min(c, 60_000)), dy: [E] = tensor(t, &legal)
                legal = legal && runningFits(running, c)
                judge(label, legal: legal, running: running) {
                    let r = try inorm.backwardInference(x, gradOutput: dy, running: running, scale: g, computing: selection)
                    return [Self.widen(r.input), r.scale, r.bias]
                }
                return
            }
            let gn = try GroupNormalization(shape: shape, groups: groups, epsilon: eps, threading: threading)
            let silu = op != .groupBackward
            let b = silu ? parameter(c, &legal) : nil
            let ms = silu ? parameter(shape.n * c, &legal) : nil, mt = silu ? parameter(shape.n * c, &legal) : nil
            if op == .siluForward {
                judge(label, legal: legal) {
                    let r = try gn.forwardSiLU(x, scale: g, bias: b, modulationScale: ms, modulationShift: mt)
                    return [Self.widen(r.output)]
                }
                return
            }
            let dy: [E] = tensor(t, &legal), saved = savedDraw(shape.n * groups, &legal)
            if op == .groupBackward {
                judge(label, legal: legal) {
                    let r = try gn.backward(x, gradOutput: dy, saved: saved, scale: g, computing: selection)
                    return [Self.widen(r.input), r.scale, r.bias]
                }
            } else {
                judge(label, legal: legal) {
                    let r = try gn.backwardSiLU(x, gradOutput: dy, saved: saved, scale: g, bias: b, modulationScale: ms,
                                                modulationShift: mt, computing: selection)
                    return [Self.widen(r.norm.input), r.norm.scale, r.norm.bias, r.modulationScale, r.modulationShift]
                }
            }
        case .layerBackward, .residualForward, .residualBackward, .gateBackward:
            let rows = dimension(1...9), features = dimension(1...70)
            let ln = try LayerNormalization(rows: rows, features: features, epsilon: eps, threading: threading)
            let rn = try RMSNormalization(rows: rows, features: features, epsilon: eps, threading: threading)
            let t = rows * features
            let x: [E] = tensor(t, &legal), other: [E] = tensor(t, &legal), g = parameter(features, &legal)
            switch op {
            case .layerBackward:
                let saved = savedDraw(rows, &legal)
                judge(label, legal: legal) {
                    let r = try ln.backward(x, gradOutput: other, saved: saved, scale: g, computing: selection)
                    return [Self.widen(r.input), r.scale, r.bias]
                }
            case .residualForward:
                let b = parameter(features, &legal), ib = parameter(features, &legal)
                judge(label, legal: legal) {
                    let r = try ln.forward(x, residual: other, scale: g, bias: b, inputBias: ib)
                    return [Self.widen(r.output), Self.widen(r.sum)]
                }
            case .residualBackward:
                let ds: [E]? = chance(0.5) ? tensor(t, &legal) : nil, saved = savedDraw(rows, &legal), wantBias = chance(0.5)
                judge(label, legal: legal) {
                    let r = try rn.backward(sum: x, gradOutput: other, gradSum: ds, saved: saved, scale: g, inputBias: wantBias)
                    return [Self.widen(r.input), r.scale, r.inputBias]
                }
            default:
                let dy: [E] = tensor(t, &legal), saved = savedDraw(rows, &legal)
                judge(label, legal: legal) {
                    let r = try rn.backward(x, gate: other, gradOutput: dy, saved: saved, scale: g)
                    return [Self.widen(r.input), Self.widen(r.gate), r.scale]
                }
            }
        case .adaINBackward:
            let content = shape()
            let style = chance(0.8) ? TensorShape(n: content.n, c: content.c, h: dimension(), w: dimension(), layout: content.layout) : shape()
            let ada = try AdaptiveInstanceNormalization(content: content, style: style, epsilon: eps, threading: threading)
            let x: [E] = tensor(content.count, &legal), s: [E] = tensor(style.count, &legal)
            let dy: [E] = tensor(content.count, &legal)
            let a = savedDraw(content.n * content.c, &legal), b = savedDraw(content.n * content.c, &legal)
            let saved = AdaptiveInstanceNormalization.Saved(contentMean: a.mean, contentInvStd: a.invStd,
                                                            styleMean: b.mean, styleStd: b.invStd)
            let (wantContent, wantStyle) = (chance(0.8), chance(0.8))
            judge(label, legal: legal) {
                let r = try ada.backward(content: x, style: s, gradOutput: dy, saved: saved, gradContent: wantContent, gradStyle: wantStyle)
                return [Self.widen(r.content), Self.widen(r.style)]
            }
        case .weightBackward:
            let dims = (0..<int(1...3)).map { _ in dimension() }
            let wn = try WeightNormalization(shape: dims, dim: chance(0.2) ? nil : int(-1...dims.count), threading: threading)
            let v: [E] = tensor(wn.count, &legal), dw: [E] = tensor(wn.count, &legal), g = floats(wn.normCount, &legal)
            let norms = savedDraw(wn.normCount, &legal).invStd, (wantV, wantG) = (chance(0.8), chance(0.8))
            judge(label, legal: legal) {
                let r = try wn.backward(v: v, g: g, gradWeight: dw, norms: norms, gradV: wantV, gradG: wantG)
                return [Self.widen(r.v), r.g]
            }
        }
    }

    // MARK: - Draws and verdict

    /// The length of an array for a buffer of `required` values: usually right,
    /// sometimes off by one or empty; a short one when the descriptor is too large
    /// to hold (the call must throw). Clears `legal` when it is not `required`.
    mutating func arrayLength(_ required: Int, _ legal: inout Bool) -> Int {
        let r = rng.unit()
        let n = required > 60_000 || required < 1 ? int(0...8) : r < 0.04 ? max(0, required + pick([-1, 1])) : r < 0.05 ? 0 : required
        if n != required { legal = false }
        return n
    }

    /// A Float32 array of ordinary values.
    mutating func floats(_ required: Int, _ legal: inout Bool) -> [Float] {
        mixedValues(arrayLength(required, &legal), .float, hostile: false, positive: true, narrow: true).map { Float(bitPattern: $0) }
    }

    /// An optional parameter (γ, β, …): absent a quarter of the time.
    mutating func parameter(_ required: Int, _ legal: inout Bool) -> [Float]? {
        chance(0.75) ? floats(required, &legal) : nil
    }

    /// A tensor of ordinary values, of `E`.
    mutating func tensor<E: NormElement>(_ required: Int, _ legal: inout Bool) -> [E] {
        mixedValues(arrayLength(required, &legal), .float, hostile: false, positive: false, narrow: true)
            .map { E.narrow(Float(bitPattern: $0)) }
    }

    /// Saved statistics of `slots` values (sometimes the wrong number).
    mutating func savedDraw(_ slots: Int, _ legal: inout Bool) -> SavedStatistics {
        savedStatistics(arrayLength(slots, &legal))
    }

    func runningFits(_ r: RunningStatistics, _ channels: Int) -> Bool {
        r.channels == channels && r.mean.count == channels && r.variance.count == channels
    }

    /// An output widened for the finiteness check (nil for Float16, which may overflow).
    static func widen<E: NormElement>(_ a: [E]?) -> [Float]? {
        E.self == Float16.self ? nil : a.map { $0.map(E.widen) }
    }

    /// The verdict on one convenience call: illegal → a NormError and `running`
    /// unchanged; legal → no throw and finite outputs (ordinary values).
    mutating func judge(_ label: String, legal: Bool, running: RunningStatistics? = nil, _ body: () throws -> [[Float]?]) {
        let before = running.map(RunningSnapshot.init)
        do {
            let outputs = try body()
            guard legal else { return report.failures.append("\(label): an illegal call was accepted") }
            report.checkedAgainstReference += 1
            for (k, out) in outputs.enumerated() where !float16Call {
                if let bad = out?.firstIndex(where: { !$0.isFinite }) {
                    report.failures.append("\(label): output \(k)[\(bad)] = \(out![bad]) from ordinary values")
                }
            }
        } catch {
            report.rejectedCalls += 1
            if !(error is NormError) { report.failures.append("\(label): threw \(error), not a NormError") }
            if legal { report.failures.append("\(label): a legal call threw \(error)") }
            if let running, RunningSnapshot(running) != before! {
                report.failures.append("\(label): running statistics changed before \(error)")
            }
        }
    }
}
