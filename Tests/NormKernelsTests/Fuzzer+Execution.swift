// The fuzzer's plumbing: running statistics and saved statistics to pass,
// buffers placed in one block of memory, and the call that checks an illegal
// call wrote nothing.

import Foundation
@testable import NormKernels

extension Fuzzer {
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
