// The fuzzer over a sample of the Span / MutableSpan overloads (API/Spans*.swift,
// BatchNormResidual+Conveniences.swift): BatchNorm training forward (plain and
// + identity) and backward, LayerNorm forward and backward, RMSNorm backward,
// AdaIN forward, on Float32 spans (the concrete overloads) and Float16/BFloat16
// spans (the generic ones). Spans come from arrays, so they never overlap; the
// hostile cases are wrong lengths (a span one short, one long, or empty) and
// descriptors too large for any span: each must throw the pointer API's
// NormError, never trap. Verdict: `judge` (`Fuzzer+Arrays.swift`).

import Foundation
@testable import NormKernels

/// Calls `body` with a mutable span over `array`, or nil.
private func withOptionalSpan<T, R>(_ array: inout [T]?, _ body: (inout MutableSpan<T>?) throws -> R) rethrows -> R {
    if array != nil {
        var span: MutableSpan<T>? = array!.mutableSpan
        return try body(&span)
    }
    var span: MutableSpan<T>? = nil
    return try body(&span)
}

extension Fuzzer {
    enum SpanOp: CaseIterable {
        case batchForward, batchBackward, addForward, layerForward, layerBackward, rmsBackward, adaINForward
    }

    /// Runs `calls` random span calls, on Float, Float16 or BFloat16 elements.
    mutating func runSpans(calls: Int) {
        for index in 0..<calls {
            report.calls += 1
            let op = pick(SpanOp.allCases), element = pick(Precision.allCases)
            let label = "span call \(index) (\(op), \(element), rng state \(rng.state))"
            float16Call = element == .half
            do {
                switch element {
                case .float: try floatSpans(op, label)
                case .half: try elementSpans(op, label, Float16.self)
                case .bfloat: try elementSpans(op, label, BFloat16.self)
                }
            } catch is NormError {
                report.rejectedDescriptors += 1
            } catch {
                report.failures.append("\(label): non-NormError \(error)")
            }
        }
    }

    /// The calls on Float spans (the concrete overloads).
    mutating func floatSpans(_ op: SpanOp, _ label: String) throws {
        let threading = threading(), eps = epsilon()
        var legal = true
        switch op {
        case .batchForward, .batchBackward, .addForward:
            let shape = shape()
            let bn = try BatchNormalization(shape: shape, epsilon: eps, fusedReLU: chance(0.4), threading: threading)
            let t = shape.count, c = shape.c
            let x: [Float] = tensor(t, &legal), g = parameter(c, &legal)
            if op == .batchBackward {
                let dy: [Float] = tensor(t, &legal), mask: [Float]? = chance(0.8) ? tensor(t, &legal) : nil
                let saved = savedDraw(c, &legal)
                legal = legal && !(bn.fusedReLU && mask == nil)
                var dx: [Float]? = chance(0.8) ? tensor(t, &legal) : nil
                var dg: [Float]? = parameter(c, &legal), db: [Float]? = parameter(c, &legal)
                judge(label, legal: legal) {
                    try withOptionalSpan(&dx) { dxs in
                        try withOptionalSpan(&dg) { dgs in
                            try withOptionalSpan(&db) { dbs in
                                try bn.backwardTraining(input: x.span, gradOutput: dy.span, saved: saved, scale: g?.span,
                                                        output: mask?.span, gradInput: &dxs, gradScale: &dgs, gradBias: &dbs)
                            }
                        }
                    }
                    return [(dx), dg, db]
                }
                return
            }
            let b = parameter(c, &legal), running = try runningStatistics(min(c, 60_000))
            legal = legal && runningFits(running, c) && shape.n * shape.spatial >= 2
            let identity: [Float] = op == .addForward ? tensor(t, &legal) : []
            var y: [Float] = tensor(t, &legal)
            judge(label, legal: legal, running: running) {
                do {
                    var ys = y.mutableSpan
                    if op == .addForward {
                        _ = try bn.forwardTraining(input: x.span, identity: identity.span, output: &ys, scale: g?.span,
                                                   bias: b?.span, running: running)
                    } else {
                        _ = try bn.forwardTraining(input: x.span, output: &ys, scale: g?.span, bias: b?.span, running: running)
                    }
                }
                return [(y)]
            }
        case .layerForward, .layerBackward, .rmsBackward:
            let rows = dimension(1...9), features = dimension(1...70)
            let ln = try LayerNormalization(rows: rows, features: features, epsilon: eps, threading: threading)
            let rn = try RMSNormalization(rows: rows, features: features, epsilon: eps, threading: threading)
            let t = rows * features
            let x: [Float] = tensor(t, &legal), g = parameter(features, &legal)
            if op == .layerForward {
                let b = parameter(features, &legal)
                var y: [Float] = tensor(t, &legal)
                judge(label, legal: legal) {
                    do {
                        var ys = y.mutableSpan
                        _ = try ln.forward(input: x.span, output: &ys, scale: g?.span, bias: b?.span)
                    }
                    return [(y)]
                }
                return
            }
            let dy: [Float] = tensor(t, &legal), saved = savedDraw(rows, &legal)
            var dx: [Float]? = chance(0.8) ? tensor(t, &legal) : nil
            var dg: [Float]? = parameter(features, &legal)
            var db: [Float]? = op == .layerBackward ? parameter(features, &legal) : nil
            judge(label, legal: legal) {
                try withOptionalSpan(&dx) { dxs in
                    try withOptionalSpan(&dg) { dgs in
                        try withOptionalSpan(&db) { dbs in
                            if op == .layerBackward {
                                try ln.backward(input: x.span, gradOutput: dy.span, saved: saved, scale: g?.span,
                                                gradInput: &dxs, gradScale: &dgs, gradBias: &dbs)
                            } else {
                                try rn.backward(input: x.span, gradOutput: dy.span, saved: saved, scale: g?.span,
                                                gradInput: &dxs, gradScale: &dgs)
                            }
                        }
                    }
                }
                return [(dx), dg, db]
            }
        case .adaINForward:
            let content = shape()
            let style = chance(0.8) ? TensorShape(n: content.n, c: content.c, h: dimension(), w: dimension(), layout: content.layout) : shape()
            let ada = try AdaptiveInstanceNormalization(content: content, style: style, epsilon: eps, threading: threading)
            let x: [Float] = tensor(content.count, &legal), s: [Float] = tensor(style.count, &legal)
            var y: [Float] = tensor(content.count, &legal)
            judge(label, legal: legal) {
                do {
                    var ys = y.mutableSpan
                    _ = try ada.forward(content: x.span, style: s.span, output: &ys)
                }
                return [(y)]
            }
        }
    }

    /// The same calls on spans of E (the generic overloads).
    mutating func elementSpans<E: NormElement>(_ op: SpanOp, _ label: String, _: E.Type) throws {
        let threading = threading(), eps = epsilon()
        var legal = true
        switch op {
        case .batchForward, .batchBackward, .addForward:
            let shape = shape()
            let bn = try BatchNormalization(shape: shape, epsilon: eps, fusedReLU: chance(0.4), threading: threading)
            let t = shape.count, c = shape.c
            let x: [E] = tensor(t, &legal), g = parameter(c, &legal)
            if op == .batchBackward {
                let dy: [E] = tensor(t, &legal), mask: [E]? = chance(0.8) ? tensor(t, &legal) : nil
                let saved = savedDraw(c, &legal)
                legal = legal && !(bn.fusedReLU && mask == nil)
                var dx: [E]? = chance(0.8) ? tensor(t, &legal) : nil
                var dg: [Float]? = parameter(c, &legal), db: [Float]? = parameter(c, &legal)
                judge(label, legal: legal) {
                    try withOptionalSpan(&dx) { dxs in
                        try withOptionalSpan(&dg) { dgs in
                            try withOptionalSpan(&db) { dbs in
                                try bn.backwardTraining(input: x.span, gradOutput: dy.span, saved: saved, scale: g?.span,
                                                        output: mask?.span, gradInput: &dxs, gradScale: &dgs, gradBias: &dbs)
                            }
                        }
                    }
                    return [Self.widen(dx), dg, db]
                }
                return
            }
            let b = parameter(c, &legal), running = try runningStatistics(min(c, 60_000))
            legal = legal && runningFits(running, c) && shape.n * shape.spatial >= 2
            let identity: [E] = op == .addForward ? tensor(t, &legal) : []
            var y: [E] = tensor(t, &legal)
            judge(label, legal: legal, running: running) {
                do {
                    var ys = y.mutableSpan
                    if op == .addForward {
                        _ = try bn.forwardTraining(input: x.span, identity: identity.span, output: &ys, scale: g?.span,
                                                   bias: b?.span, running: running)
                    } else {
                        _ = try bn.forwardTraining(input: x.span, output: &ys, scale: g?.span, bias: b?.span, running: running)
                    }
                }
                return [Self.widen(y)]
            }
        case .layerForward, .layerBackward, .rmsBackward:
            let rows = dimension(1...9), features = dimension(1...70)
            let ln = try LayerNormalization(rows: rows, features: features, epsilon: eps, threading: threading)
            let rn = try RMSNormalization(rows: rows, features: features, epsilon: eps, threading: threading)
            let t = rows * features
            let x: [E] = tensor(t, &legal), g = parameter(features, &legal)
            if op == .layerForward {
                let b = parameter(features, &legal)
                var y: [E] = tensor(t, &legal)
                judge(label, legal: legal) {
                    do {
                        var ys = y.mutableSpan
                        _ = try ln.forward(input: x.span, output: &ys, scale: g?.span, bias: b?.span)
                    }
                    return [Self.widen(y)]
                }
                return
            }
            let dy: [E] = tensor(t, &legal), saved = savedDraw(rows, &legal)
            var dx: [E]? = chance(0.8) ? tensor(t, &legal) : nil
            var dg: [Float]? = parameter(features, &legal)
            var db: [Float]? = op == .layerBackward ? parameter(features, &legal) : nil
            judge(label, legal: legal) {
                try withOptionalSpan(&dx) { dxs in
                    try withOptionalSpan(&dg) { dgs in
                        try withOptionalSpan(&db) { dbs in
                            if op == .layerBackward {
                                try ln.backward(input: x.span, gradOutput: dy.span, saved: saved, scale: g?.span,
                                                gradInput: &dxs, gradScale: &dgs, gradBias: &dbs)
                            } else {
                                try rn.backward(input: x.span, gradOutput: dy.span, saved: saved, scale: g?.span,
                                                gradInput: &dxs, gradScale: &dgs)
                            }
                        }
                    }
                }
                return [Self.widen(dx), dg, db]
            }
        case .adaINForward:
            let content = shape()
            let style = chance(0.8) ? TensorShape(n: content.n, c: content.c, h: dimension(), w: dimension(), layout: content.layout) : shape()
            let ada = try AdaptiveInstanceNormalization(content: content, style: style, epsilon: eps, threading: threading)
            let x: [E] = tensor(content.count, &legal), s: [E] = tensor(style.count, &legal)
            var y: [E] = tensor(content.count, &legal)
            judge(label, legal: legal) {
                do {
                    var ys = y.mutableSpan
                    _ = try ada.forward(content: x.span, style: s.span, output: &ys)
                }
                return [Self.widen(y)]
            }
        }
    }
}
