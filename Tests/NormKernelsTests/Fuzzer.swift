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
        /// The element type (`Fuzzer+Mixed.swift`; the Float32 ops above use only `.float`).
        var element: Precision = .float
    }

    var rng: SplitMix64
    var report = Report()
    /// Set for Float16 array and span calls (`judge`): their outputs may overflow to ±∞.
    var float16Call = false

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
}
