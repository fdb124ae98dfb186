// The fuzzer's block of mixed element types, for the ops of
// `Fuzzer+FusedOperations.swift` and `Fuzzer+HalfPrecision.swift`: tensors in
// Float32, Float16 or BFloat16 beside Float32 parameters, all in one
// allocation counted in 2-byte units (a Float32 buffer starts on an even
// unit), so that a 16-bit output can land exactly on a 16-bit input (a
// documented in-place call) or partially on anything, a Float32 γ included:
// overlaps are decided on bytes, as the library decides them.
//
// The oracle is `Fuzzer.swift`'s: an illegal call throws a `NormError` and
// leaves every byte and the running statistics unchanged; a legal one does not
// throw and, for ordinary values, meets the reference the op returns (Float64
// results on the inputs as stored, widened exactly). 16-bit calls draw
// ordinary values a Float16 holds (|v| ≲ 1e3) and hostile ones from the
// 16-bit patterns (±65504, subnormals, ±∞, quiet and signaling NaNs of both
// formats, BFloat16's largest finite value).

import Foundation
@testable import NormKernels

extension Fuzzer {
    /// A buffer's element type.
    enum Precision: CaseIterable {
        case float, half, bfloat

        /// 2-byte units per element.
        var units: Int { self == .float ? 2 : 1 }
        /// The relative tolerance of an output rounded to this type (the Float32 one is `Fuzzer+Execution`'s).
        var rtol: Double {
            switch self {
            case .float: 1e-4
            case .half: 0x1p-9
            case .bfloat: 0x1p-7
            }
        }
        /// The unit roundoff (a sum of values rounded to this type may be off by it per term).
        var roundoff: Double {
            switch self {
            case .float: 0
            case .half: 0x1p-11
            case .bfloat: 0x1p-8
            }
        }
        /// Outputs whose reference is past this are not compared (they may round to ±∞).
        var largest: Double { self == .half ? 60_000 : 3e38 }
        /// The absolute spacing near 0 (Float16 subnormals).
        var floor: Double {
            switch self {
            case .float: 0
            case .half: 0x1p-23
            case .bfloat: 0x1p-125
            }
        }

        /// `v` rounded to this type (to nearest, ties to even) and widened back.
        func round(_ v: Float) -> Float {
            switch self {
            case .float: v
            case .half: Float(Float16(v))
            case .bfloat: Float(bitPattern: UInt32(BFloat16(v).bitPattern) << 16)
            }
        }

        static func of<E>(_: E.Type) -> Precision {
            E.self == Float.self ? .float : E.self == Float16.self ? .half : .bfloat
        }


        func load(_ p: UnsafeRawPointer) -> Float {
            switch self {
            case .float: Float(bitPattern: p.loadUnaligned(as: UInt32.self))
            case .half: Float(Float16(bitPattern: p.loadUnaligned(as: UInt16.self)))
            case .bfloat: Float(bitPattern: UInt32(p.loadUnaligned(as: UInt16.self)) << 16)
            }
        }

        /// Hostile bit patterns of this type.
        var specials: [UInt32] {
            switch self {
            case .float: [Float.nan, .infinity, -.infinity, 1e38, -1e38, 3e38, -3e38, Float(bitPattern: 0x0001_0000),
                          -Float.leastNonzeroMagnitude, 0].map(\.bitPattern)
            case .half: [0x7BFF, 0xFBFF, 0x0001, 0x8001, 0x03FF, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFE00, 0x0000]
            case .bfloat: [0x7F7F, 0xFF7F, 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0xFFFF, 0x0001, 0x8001, 0x007F, 0x0000]
            }
        }
    }

    /// The buffers of one mixed call over the block.
    struct MixedViews {
        var base: UnsafeMutableRawPointer
        var buffers: [Buffer]

        func raw(_ name: String) -> (UnsafeMutableRawPointer?, Int)? {
            guard let b = buffers.first(where: { $0.name == name }), b.present else { return nil }
            return (b.length == 0 ? nil : base + 2 * b.offset, b.length)
        }
        /// A tensor of element type `E` (the buffer's `element` must be E's).
        func read<E>(_ name: String, _: E.Type) -> UnsafeBufferPointer<E>? {
            write(name, E.self).map { UnsafeBufferPointer($0) }
        }
        func write<E>(_ name: String, _: E.Type) -> UnsafeMutableBufferPointer<E>? {
            raw(name).map { UnsafeMutableBufferPointer(start: $0.0?.assumingMemoryBound(to: E.self), count: $0.1) }
        }
        /// A Float32 parameter or gradient.
        func f(_ name: String) -> UnsafeBufferPointer<Float>? { read(name, Float.self) }
        func fw(_ name: String) -> UnsafeMutableBufferPointer<Float>? { write(name, Float.self) }
    }

    /// `place` in 2-byte units: each buffer in its own region (Float32 ones on
    /// even units), then up to two outputs moved onto other buffers, exactly
    /// (in place, same type and length) or partially. Returns the block's size in units.
    mutating func placeMixed(_ buffers: inout [Buffer]) -> Int {
        var end = 0
        for i in buffers.indices where buffers[i].present {
            let r = rng.unit()
            buffers[i].length = max(0, r < 0.04 ? buffers[i].required + pick([-1, 1]) : r < 0.05 ? 0 : buffers[i].required)
            end += int(0...3)
            if buffers[i].element == .float { end += end & 1 }
            buffers[i].offset = end
            end += buffers[i].length * buffers[i].element.units
        }
        let outputs = buffers.indices.filter { buffers[$0].role == .output && buffers[$0].present }
        for _ in 0..<(chance(0.15) ? 2 : 1) {
            guard let o = outputs.randomElement(using: &rng), chance(0.3) else { continue }
            let others = buffers.indices.filter { $0 != o && buffers[$0].present && buffers[$0].length > 0 }
            guard let target = others.randomElement(using: &rng) else { continue }
            let t = buffers[target], units = buffers[o].length * buffers[o].element.units
            if t.role == .input, buffers[o].inPlace.contains(t.name), t.element == buffers[o].element, chance(0.6) {
                buffers[o].offset = t.offset
            } else {
                var offset = max(0, t.offset + int(-max(0, units - 1)...max(0, t.length * t.element.units - 1)))
                if buffers[o].element == .float { offset -= offset & 1 }
                buffers[o].offset = offset
            }
            end = max(end, buffers[o].offset + units)
        }
        return end + 2
    }

    /// `isLegal` on bytes: lengths right, and every overlap an output exactly on
    /// an input it may replace (same offset, type and length).
    func isLegalMixed(_ buffers: [Buffer]) -> Bool {
        let present = buffers.filter(\.present)
        guard present.allSatisfy({ $0.length == $0.required }) else { return false }
        for (i, a) in present.enumerated() where a.role == .output {
            for (j, b) in present.enumerated() where j != i {
                let aEnd = a.offset + a.length * a.element.units, bEnd = b.offset + b.length * b.element.units
                guard a.offset < bEnd, b.offset < aEnd, a.length > 0, b.length > 0 else { continue }
                let exact = a.offset == b.offset && aEnd == bEnd && a.element == b.element
                if !(b.role == .input && a.inPlace.contains(b.name) && exact) { return false }
            }
        }
        return true
    }

    /// Ordinary or hostile values for a buffer of `element`. `narrow`: a call
    /// with 16-bit tensors, whose ordinary values (parameters included) stay
    /// where a Float16 holds them and its results.
    mutating func mixedValues(_ count: Int, _ element: Precision, hostile: Bool, positive: Bool, narrow: Bool) -> [UInt32] {
        var v: [Float]
        if narrow {
            let scale = pick([1e-2, 1.0, 30.0]), offset = positive ? 2 * scale : scale * pick([0.0, 1.0, -30.0])
            v = (0..<count).map { _ in Float(offset + scale * (positive ? abs(rng.normal()) + 0.5 : rng.normal())) }
        } else {
            v = values(count, hostile: false, positive: positive)
        }
        var bits = v.map { x -> UInt32 in
            switch element {
            case .float: x.bitPattern
            case .half: UInt32(Float16(x).bitPattern)
            case .bfloat: UInt32(BFloat16(x).bitPattern)
            }
        }
        if hostile, count > 0 {
            for _ in 0..<int(1...max(1, count / 4)) { bits[int(0...(count - 1))] = pick(element.specials) }
        }
        return bits
    }

    /// Places and fills the buffers, calls `body`, and judges the outcome as
    /// `execute` does. `reference(inputs, outputs)` (both widened to Float) returns
    /// expected outputs by name, with optional per-element entries `name|tol`
    /// (absolute tolerances), `name|scale` (magnitudes the error may be
    /// relative to, besides the value's own) or `name` + `floorSuffix` (Σ|terms| of a sum).
    mutating func executeMixed(
        _ label: String, _ buffers: inout [Buffer], narrow: Bool, running: RunningStatistics?,
        runningChannels: Int? = nil, singleValue: Bool = false, mustThrow: Bool = false,
        _ body: (MixedViews) throws -> Void,
        reference: (_ inputs: [String: [Float]], _ outputs: [String: [Float]]) -> [String: [Double]]
    ) {
        let units = placeMixed(&buffers)
        let hostile = chance(0.15)
        if hostile { report.hostileValues += 1 }
        let memory = UnsafeMutableRawPointer.allocate(byteCount: 2 * units, alignment: 64)
        defer { memory.deallocate() }
        // Whatever is there (outputs need not be initialized): random bits, NaNs among them.
        for u in 0..<units { memory.storeBytes(of: UInt16(truncatingIfNeeded: rng.next()), toByteOffset: 2 * u, as: UInt16.self) }
        for b in buffers where b.present && b.role != .output {
            let positive = b.name == "scale" || b.name == "g"
            let bits = mixedValues(b.length, b.element, hostile: hostile, positive: positive, narrow: narrow)
            for i in 0..<b.length {
                let p = memory + 2 * (b.offset + i * b.element.units)
                if b.element == .float { p.storeBytes(of: bits[i], as: UInt32.self) } else { p.storeBytes(of: UInt16(bits[i]), as: UInt16.self) }
            }
        }
        let runningBad = running.map { r in
            r.mean.count != r.channels || r.variance.count != r.channels || r.channels != runningChannels
        } ?? false
        let legal = isLegalMixed(buffers) && !mustThrow && !runningBad && !singleValue
        func widened(_ b: Buffer) -> [Float] {
            (0..<b.length).map { b.element.load(memory + 2 * (b.offset + $0 * b.element.units)) }
        }
        var inputs = [String: [Float]]()
        for b in buffers where b.present && b.role != .output { inputs[b.name] = widened(b) }
        let before = Array(UnsafeRawBufferPointer(start: memory, count: 2 * units))
        let runningBefore = running.map(RunningSnapshot.init)
        var thrown: Error?
        do { try body(MixedViews(base: memory, buffers: buffers)) } catch { thrown = error }
        let unchanged = Array(UnsafeRawBufferPointer(start: memory, count: 2 * units)) == before
        let layout = buffers.map { "\($0.name):\($0.present ? "\($0.element) \($0.offset)+\($0.length)/\($0.required)" : "-")" }
        if let thrown {
            report.rejectedCalls += 1
            if !(thrown is NormError) { report.failures.append("\(label): threw \(thrown), not a NormError") }
            if legal { report.failures.append("\(label): a legal call threw \(thrown) (\(layout))") }
            if !unchanged { report.failures.append("\(label): memory written before \(thrown) (\(layout))") }
            if let running, RunningSnapshot(running) != runningBefore! {
                report.failures.append("\(label): running statistics changed before \(thrown)")
            }
            return
        }
        if !legal { report.failures.append("\(label): an illegal call was accepted (\(layout))") }
        guard legal, !hostile else { return }
        var outputs = [String: [Float]]()
        for b in buffers where b.present && b.role == .output { outputs[b.name] = widened(b) }
        let expectations = reference(inputs, outputs)
        for (name, expected) in expectations where !name.contains("|") {
            guard let b = buffers.first(where: { $0.name == name }), b.present, let actual = outputs[name] else { continue }
            report.checkedAgainstReference += 1
            let e = b.element, tol = expectations[name + "|tol"], scale = expectations[name + "|scale"]
            let floor = expectations[name + Self.floorSuffix]
            let finite = expected.filter { $0.isFinite }
            let rms = (finite.reduce(0) { $0 + $1 * $1 } / Double(max(1, finite.count))).squareRoot()
            let magnitude = finite.reduce(0) { max($0, abs($1)) }
            for (i, (a, x)) in zip(actual, expected).enumerated() where x.isFinite && abs(x) <= e.largest {
                let bound = tol?[i] ?? floor.map { 8 * Double(Float.ulpOfOne) * $0[i] + Double(Float(x).ulp) }
                    ?? e.rtol * (abs(x) + rms + (scale?[i] ?? 0)) + 1e-6 * magnitude + e.floor
                if !(abs(Double(a) - x) <= bound) {
                    report.failures.append("\(label): \(name)[\(i)] = \(a), reference \(x) (bound \(bound)), \(expected.count) values, \(e)")
                    break
                }
            }
        }
        // Ordinary values give finite outputs. Not in a Float16 call: a 16-bit
        // intermediate may overflow to ±∞ there (E(z), E(dy·gate), dx16), and the
        // documented results (d gate, dγ, d inputBias over them) with it; the
        // references, where finite, still hold those outputs.
        guard !buffers.contains(where: { $0.element == .half }) else { return }
        for b in buffers where b.present && b.role == .output {
            if let bad = outputs[b.name]!.firstIndex(where: { !$0.isFinite }) {
                report.failures.append("\(label): \(b.name)[\(bad)] = \(outputs[b.name]![bad]) from ordinary values (\(b.element))")
            }
        }
    }

    /// Σ over rows of a [rows, features] matrix, with the bound of a sum of
    /// `element` values: (8ε + 4u)·Σ|terms| plus the result's ulp. `extra`: a
    /// tensor each term was rounded after adding (residual ds: dx16 = E(E(·) + ds)),
    /// whose magnitudes the rounding errors may be relative to.
    static func columnSums(_ v: [Float], features: Int, _ element: Precision, _ name: String,
                           extra: [Float]? = nil) -> [String: [Double]] {
        var sums = [Double](repeating: 0, count: features), absolute = sums
        for (i, x) in v.enumerated() {
            sums[i % features] += Double(x)
            absolute[i % features] += abs(Double(x)) + abs(Double(extra?[i] ?? 0))
        }
        let tol = zip(sums, absolute).map { (8 * Double(Float.ulpOfOne) + 4 * element.roundoff) * $1 + Double(Float($0).ulp) }
        return [name: sums, name + "|tol": tol]
    }
}
