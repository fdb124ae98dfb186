// The fuzzer's stream over synchronized BatchNorm: a group of 1–3 simulated
// ranks (`InProcessExchange`, one thread each), each with its own descriptor
// (n per rank, sometimes 0; h, w and the layout may differ between ranks; rarely
// a different C, ε or fused ReLU, or a hostile dimension) and its own block of
// memory placed as `Fuzzer.place` places any call's buffers.
//
// The oracle is collective: a group whose descriptors disagree or are invalid
// must throw on every rank at `init`; a call where any rank's buffers are wrong
// (or all ranks together hold one value per channel) must throw on every rank
// and leave every rank's memory and running statistics as they were; a legal
// call must not throw anywhere and, for ordinary values, match a Float64
// BatchNorm of the concatenated batch (forward: y on each rank with that
// rank's γ and β; backward: dx, dγ and dβ, local or global).

import Foundation
import Synchronization
@testable import NormKernels

extension Fuzzer {
    /// What one rank does in a call, drawn before the ranks' threads start.
    struct RankCall: @unchecked Sendable {
        var shape: TensorShape
        var epsilon: Float
        var relu: Bool
        var buffers: [Buffer] = []
        var memory: [Float] = []
        var running: RunningStatistics?
        var saved = SavedStatistics(mean: [], invStd: [])
        var legal = true
    }

    /// What one rank saw: its error (at `init` or in the call) and its memory after.
    struct RankOutcome: @unchecked Sendable {
        var initError: (any Error)?
        var callError: (any Error)?
        var memory: [Float]
    }

    mutating func runSynchronized(calls: Int) {
        for index in 0..<calls {
            report.calls += 1
            fuzzSynchronized("synchronized call \(index) (rng state \(rng.state))")
        }
    }

    /// Whether a group of these descriptors must construct: every rank's own
    /// descriptor valid (n ≥ 0, the others > 0, the elements of a sample within
    /// the limit), the same C, ε and ReLU everywhere, and C small enough for a
    /// step's own memory (C ≥ 2⁴⁰ never is).
    static func groupIsValid(_ calls: [RankCall]) -> Bool {
        for call in calls {
            let s = call.shape
            guard s.n >= 0, s.c > 0, s.h > 0, s.w > 0, s.c < 1 << 40, call.epsilon.isFinite, call.epsilon > 0,
                  (try? Check.product([max(1, s.n), s.c, s.h, s.w], "shape")) != nil else { return false }
        }
        return Set(calls.map(\.shape.c)).count == 1 && Set(calls.map(\.epsilon)).count == 1
            && Set(calls.map(\.relu)).count == 1
    }

    mutating func fuzzSynchronized(_ label: String) {
        let ranks = int(1...3), backward = chance(0.4)
        let template = TensorShape(n: 1, c: dimension(1...4), h: dimension(1...3), w: dimension(1...4),
                                   layout: chance(0.5) ? .nchw : .nhwc)
        let eps = epsilon(), relu = chance(0.3)
        var calls = (0..<ranks).map { _ in
            RankCall(shape: TensorShape(n: chance(0.2) ? 0 : int(1...3), c: template.c, h: template.h, w: template.w,
                                        layout: template.layout), epsilon: eps, relu: relu)
        }
        // Per-rank variations: legal ones (another n, h, w or layout) and illegal ones.
        for r in calls.indices {
            if chance(0.1), (1...3).contains(template.h) { calls[r].shape.h = template.h + int(0...2) }
            if chance(0.1) { calls[r].shape.layout = chance(0.5) ? .nchw : .nhwc }
            if chance(0.03) { calls[r].shape.n = dimension() }
            if chance(0.02), template.c < Int.max { calls[r].shape.c = template.c + 1 }
            if chance(0.02) { calls[r].epsilon = calls[r].epsilon == 1e-3 ? 1e-5 : 1e-3 }
            if chance(0.02) { calls[r].relu.toggle() }
        }
        let valid = Self.groupIsValid(calls)
        // A valid group of huge tensors is only constructed (its buffers are not allocated).
        let callable = valid && calls.allSatisfy { $0.shape.c <= 64 && $0.shape.count <= 60_000 }
        let threading = threading()
        let c = calls[0].shape.c
        if callable {
            // Backward: every rank passes the statistics of one forward (ordinary values).
            let saved = savedStatistics(c)
            for r in calls.indices {
                draw(&calls[r], backward: backward)
                calls[r].saved = saved
                if backward, chance(0.02) {
                    calls[r].saved = SavedStatistics(mean: saved.mean + [0], invStd: saved.invStd)
                    calls[r].legal = false
                }
            }
        }
        // All ranks together must hold more than one value per channel in training.
        // (Only for callable groups: hostile dimensions would overflow the products.)
        let total = callable ? calls.reduce(0) { $0 + ($1.shape.n > 0 ? $1.shape.n * $1.shape.spatial : 0) } : 0
        let legal = callable && calls.allSatisfy(\.legal) && (backward || total >= 2)
        let global = chance(0.5)
        let drawn = calls
        let results: [Result<RankOutcome, any Error>]
        do {
            results = try InProcessExchange.run(ranks: ranks, timeout: 30) { exchange in
                var call = drawn[exchange.rank]
                let bn: SynchronizedBatchNormalization
                do {
                    bn = try SynchronizedBatchNormalization(shape: call.shape, epsilon: call.epsilon, fusedReLU: call.relu,
                                                            threading: threading, exchange: exchange)
                } catch {
                    return RankOutcome(initError: error, memory: [])
                }
                guard callable else { return RankOutcome(memory: []) }
                let buffers = call.buffers
                var callError: (any Error)?
                call.memory.withUnsafeMutableBufferPointer { m in
                    let b = Views(base: m.baseAddress!, buffers: buffers)
                    do {
                        if backward {
                            try bn.backwardTraining(input: b.read("input")!, gradOutput: b.read("gradOutput")!,
                                                    saved: call.saved, scale: b.read("scale"), output: b.read("output"),
                                                    gradInput: b.write("gradInput"), gradScale: b.write("gradScale"),
                                                    gradBias: b.write("gradBias"), parameterGradients: global ? .global : .local)
                        } else {
                            _ = try bn.forwardTraining(input: b.read("input")!, output: b.write("output")!,
                                                       scale: b.read("scale"), bias: b.read("bias"), running: call.running)
                        }
                    } catch { callError = error }
                }
                return RankOutcome(callError: callError, memory: call.memory)
            }
        } catch {
            report.failures.append("\(label): InProcessExchange.run threw \(error)")
            return
        }
        let outcomes: [RankOutcome]
        do { outcomes = try results.map { try $0.get() } } catch {
            report.failures.append("\(label): a rank's body threw \(error)")
            return
        }
        let describe = "ranks \(calls.map { "\($0.shape.n)x\($0.shape.c)x\($0.shape.h)x\($0.shape.w) \($0.shape.layout) ε \($0.epsilon) relu \($0.relu)" })"
        // Construction: all ranks or none.
        let initFailed = outcomes.map { $0.initError != nil }
        if initFailed.contains(true) {
            report.rejectedDescriptors += 1
            if valid { report.failures.append("\(label): a valid group threw at init: \(outcomes.compactMap(\.initError)), \(describe)") }
            if initFailed.contains(false) { report.failures.append("\(label): only ranks \(initFailed) threw at init, \(describe)") }
            return
        }
        if !valid { report.failures.append("\(label): an invalid group was constructed, \(describe)"); return }
        guard callable else { return }
        // The call: every rank throws and writes nothing, or none throws.
        let callFailed = outcomes.map { $0.callError != nil }
        if callFailed.contains(true) {
            report.rejectedCalls += 1
            if legal { report.failures.append("\(label): a legal call threw \(outcomes.compactMap(\.callError)), \(describe)") }
            if callFailed.contains(false) { report.failures.append("\(label): only ranks \(callFailed) threw, \(describe)") }
            for (r, outcome) in outcomes.enumerated() where outcome.memory.map(\.bitPattern) != calls[r].memory.map(\.bitPattern) {
                report.failures.append("\(label): rank \(r) memory written before \(outcome.callError.map { "\($0)" } ?? "another rank's error")")
            }
            for (r, call) in calls.enumerated() {
                if let running = call.running, running.batchesTracked + running.skippedUpdates != 0 {
                    report.failures.append("\(label): rank \(r) running statistics changed by a rejected call")
                }
            }
            return
        }
        if !legal { report.failures.append("\(label): an illegal call was accepted, \(describe)"); return }
        guard !calls.contains(where: { $0.memory.contains { !$0.isFinite || abs($0) > 1e6 } }) else { return }
        checkSynchronized(label, calls, outcomes, backward: backward, global: global, channels: c)
    }

    /// One rank's buffers, memory, running statistics and saved statistics.
    mutating func draw(_ call: inout RankCall, backward: Bool) {
        let t = call.shape.count, c = call.shape.c
        if backward {
            call.buffers = [Buffer(name: "input", role: .input, required: t), Buffer(name: "gradOutput", role: .input, required: t),
                            Buffer(name: "output", role: .input, required: t), Buffer(name: "scale", role: .parameter, required: c),
                            Buffer(name: "gradInput", role: .output, required: t, inPlace: ["input", "gradOutput", "output"]),
                            Buffer(name: "gradScale", role: .output, required: c), Buffer(name: "gradBias", role: .output, required: c)]
            optional(&call.buffers, ["output", "scale", "gradInput", "gradScale", "gradBias"])
        } else {
            call.buffers = Self.affineBuffers(count: t, parameters: c)
            optional(&call.buffers, ["scale", "bias"])
        }
        let size = place(&call.buffers)
        let hostile = chance(0.1)
        if hostile { report.hostileValues += 1 }
        call.memory = values(size, hostile: false)
        for b in call.buffers where b.present && b.role != .output {
            let v = values(b.length, hostile: hostile, positive: b.name == "scale")
            for i in 0..<b.length { call.memory[b.offset + i] = v[i] }
        }
        call.legal = isLegal(call.buffers)
        if backward {
            if call.relu && !call.buffers.contains(where: { $0.name == "output" && $0.present }) { call.legal = false }
        } else if chance(0.5) {
            call.running = try? RunningStatistics(channels: c + (chance(0.03) ? 1 : 0))
            if call.running?.channels != c { call.legal = false }
        }
    }

    /// A legal call on ordinary values against Float64 BatchNorm of the
    /// concatenated batch (each rank's values taken with its own shape).
    mutating func checkSynchronized(_ label: String, _ calls: [RankCall], _ outcomes: [RankOutcome],
                                    backward: Bool, global: Bool, channels c: Int) {
        func input(_ r: Int, _ name: String) -> [Float]? {
            guard let b = calls[r].buffers.first(where: { $0.name == name }), b.present else { return nil }
            return Array(calls[r].memory[b.offset..<(b.offset + b.length)])
        }
        func output(_ r: Int, _ name: String) -> [Float]? {
            guard let b = calls[r].buffers.first(where: { $0.name == name }), b.present else { return nil }
            return Array(outcomes[r].memory[b.offset..<(b.offset + b.length)])
        }
        /// Compares with |error| ≤ tolerance[i]; records the first miss.
        func compare(_ r: Int, _ name: String, _ expected: [Double], _ tolerance: [Double]) {
            guard let actual = output(r, name) else { return }
            report.checkedAgainstReference += 1
            for i in expected.indices where !(abs(Double(actual[i]) - expected[i]) <= tolerance[i]) {
                report.failures.append("\(label): rank \(r) \(name)[\(i)] = \(actual[i]), reference \(expected[i]) ± \(tolerance[i])")
                return
            }
        }
        let ranks = calls.indices
        let relu = calls[0].relu, eps = calls[0].epsilon
        // Per channel: the values of every rank, and each value's place.
        var count = [Double](repeating: 0, count: c)
        var sum = [Double](repeating: 0, count: c)
        for r in ranks where calls[r].shape.n > 0 {
            let s = calls[r].shape, x = input(r, "input")!
            for n in 0..<s.n { for ch in 0..<c { for p in 0..<s.spatial { count[ch] += 1; sum[ch] += Double(x[s.offset(n, ch, p)]) } } }
        }
        if !backward {
            let mean = (0..<c).map { sum[$0] / count[$0] }
            var m2 = [Double](repeating: 0, count: c)
            for r in ranks where calls[r].shape.n > 0 {
                let s = calls[r].shape, x = input(r, "input")!
                for n in 0..<s.n { for ch in 0..<c { for p in 0..<s.spatial {
                    let d = Double(x[s.offset(n, ch, p)]) - mean[ch]; m2[ch] += d * d } } }
            }
            let invStd = (0..<c).map { Reference.invStd(m2[$0] / count[$0], eps) }
            for r in ranks where calls[r].shape.n > 0 {
                let s = calls[r].shape, x = input(r, "input")!, gamma = input(r, "scale"), beta = input(r, "bias")
                var y = [Double](repeating: 0, count: s.count)
                for n in 0..<s.n { for ch in 0..<c { for p in 0..<s.spatial {
                    let i = s.offset(n, ch, p)
                    let v = (Double(x[i]) - mean[ch]) * invStd[ch] * Double(gamma?[ch] ?? 1) + Double(beta?[ch] ?? 0)
                    y[i] = relu ? max(0, v) : v } } }
                let rms = (y.reduce(0) { $0 + $1 * $1 } / Double(max(1, y.count))).squareRoot()
                compare(r, "output", y, y.map { 1e-4 * abs($0) + 1e-4 * max(rms, 1e-30) + 1e-6 })
                if let running = calls[r].running, running.batchesTracked + running.skippedUpdates != 1 {
                    report.failures.append("\(label): rank \(r) running statistics counted \(running.batchesTracked + running.skippedUpdates) updates")
                }
            }
            return
        }
        // Backward: g = dy (0 where y ≤ 0 with ReLU), x̂ = (x − μ)·r with the saved μ, r.
        let mu = calls[0].saved.mean, rs = calls[0].saved.invStd
        var sumG = [[Double]](repeating: [Double](repeating: 0, count: c), count: calls.count)
        var sumGX = sumG, absG = sumG, absGX = sumG
        var g = [[Double]](repeating: [], count: calls.count), xhat = g
        for r in ranks where calls[r].shape.n > 0 {
            let s = calls[r].shape, x = input(r, "input")!, dy = input(r, "gradOutput")!, y = input(r, "output")
            g[r] = [Double](repeating: 0, count: s.count); xhat[r] = g[r]
            for n in 0..<s.n { for ch in 0..<c { for p in 0..<s.spatial {
                let i = s.offset(n, ch, p)
                let gi = relu && y![i] <= 0 ? 0 : Double(dy[i]), xi = (Double(x[i]) - mu[ch]) * rs[ch]
                g[r][i] = gi; xhat[r][i] = xi
                sumG[r][ch] += gi; sumGX[r][ch] += gi * xi; absG[r][ch] += abs(gi); absGX[r][ch] += abs(gi * xi) } } }
        }
        let allG = (0..<c).map { ch in ranks.reduce(0) { $0 + sumG[$1][ch] } }
        let allGX = (0..<c).map { ch in ranks.reduce(0) { $0 + sumGX[$1][ch] } }
        let allAbsG = (0..<c).map { ch in ranks.reduce(0) { $0 + absG[$1][ch] } }
        let allAbsGX = (0..<c).map { ch in ranks.reduce(0) { $0 + absGX[$1][ch] } }
        let e = Double(Float.ulpOfOne)
        for r in ranks {
            let db = global ? allG : sumG[r], dg = global ? allGX : sumGX[r]
            let bb = global ? allAbsG : absG[r], bg = global ? allAbsGX : absGX[r]
            compare(r, "gradBias", db, (0..<c).map { 8 * e * bb[$0] + Double(Float(db[$0]).ulp) + 1e-30 })
            compare(r, "gradScale", dg, (0..<c).map { 8 * e * bg[$0] + Double(Float(dg[$0]).ulp) + 1e-30 })
            guard calls[r].shape.n > 0 else { continue }
            let s = calls[r].shape, gamma = input(r, "scale")
            var dx = [Double](repeating: 0, count: s.count), tolerance = dx
            for n in 0..<s.n { for ch in 0..<c { for p in 0..<s.spatial {
                let i = s.offset(n, ch, p), k = Double(gamma?[ch] ?? 1) * rs[ch]
                let a = allG[ch] / count[ch], b = xhat[r][i] * allGX[ch] / count[ch]
                dx[i] = k * (g[r][i] - a - b)
                // Each term's rounding, and the sums' own error (≤ 8ε·Σ|terms|, the
                // fuzzer's bound for dβ, dγ) carried into dx through a and b.
                let sums = (allAbsG[ch] + abs(xhat[r][i]) * allAbsGX[ch]) / count[ch]
                tolerance[i] = 1e-5 * abs(k) * (abs(g[r][i]) + abs(a) + abs(b) + sums) + 1e-30 } } }
            compare(r, "gradInput", dx, tolerance)
        }
    }
}
