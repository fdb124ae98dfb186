// The AVX-512 Float16 dx loop (nk_f16_dx512_gradient, Float16Gradient.swift)
// against the Swift loop it replaces (`BlockGradients.apply` with the loop off:
// `nk_f16_dx512_set(0)`), bit for bit:
// - the loop alone on 1…4103 values (lengths that do not fill a 16- or
//   32-value step, so the Swift tail runs after it), with and without the
//   ReLU mask, cached and streaming stores, out of place and in place (dx over
//   x, dx over dy), on random 16-bit patterns (NaN, ±∞, subnormals) and
//   coefficients from 2⁻³⁰ to 2³⁰ (outputs that overflow, and Float16
//   subnormals);
// - BatchNorm NCHW backward on Float16 (with and without fused ReLU; runs of
//   ≥ 256 values that prefetch, runs split into blocks, short runs): dx, dγ,
//   dβ, 1, 3 and 16 threads, all equal to the Swift loop's on 1 thread.
// With the loop on, calls of 16 values or more must call it (this thread's
// count); with it off, never. In a build without FMA and F16C (the default
// build) or on a CPU without AVX-512, both runs are the Swift loop and only
// the counts are skipped.

import CNormSupport
import Foundation
import Testing
@testable import NormKernels

/// Serializes the tests that switch the Float16 dx loop (a process-wide flag).
private let float16GradientSwitch = NSLock()

#if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
@Suite(.serialized) struct Float16GradientTests {
    /// Whether this build and CPU run the C loop.
    var available: Bool { nk_build_has_fma() != 0 && nk_f16_dx512_detect() != 0 }

    /// `body` with the C loop on, then off, with the C loop calls of each on this thread.
    func twoWays<R>(_ body: () throws -> R) rethrows -> [(result: R, calls: UInt64)] {
        float16GradientSwitch.lock()
        defer { _ = nk_f16_dx512_set(1); float16GradientSwitch.unlock() }
        var out: [(R, UInt64)] = []
        for on in [1, 0] as [Int32] {
            _ = nk_f16_dx512_set(on)
            let c0 = nk_f16_dx512_thread_calls()
            let r = try body()
            out.append((r, nk_f16_dx512_thread_calls() - c0))
        }
        return out
    }

    func patterns<E: NormElement>(_: E.Type, _ count: Int, _ rng: inout SplitMix64) -> [E] {
        (0..<count).map { _ in unsafeBitCast(UInt16(truncatingIfNeeded: rng.next()), to: E.self) }
    }

    func normal<E: NormElement>(_: E.Type, _ count: Int, _ rng: inout SplitMix64) -> [E] {
        (0..<count).map { _ in
            let u = max(rng.unit(), 1e-300), v = rng.unit()
            return E.narrow(Float((-2 * log(u)).squareRoot() * cos(2 * Double.pi * v)))
        }
    }

    func bits<E: NormElement>(_ a: [E]) -> [UInt16] { a.map { unsafeBitCast($0, to: UInt16.self) } }

    /// Values that differ (a count, so that a failure prints a number, not the arrays).
    func differing<T: Equatable>(_ a: [T], _ b: [T]) -> Int {
        a.count == b.count ? zip(a, b).filter { $0 != $1 }.count : max(a.count, b.count)
    }

    /// ± 2^e · (1 + u), e in −30…30.
    func coefficient(_ rng: inout SplitMix64) -> Float {
        let sign: Float = rng.next() & 1 == 0 ? 1 : -1
        return sign * Float(1 + rng.unit()) * Float(sign: .plus, exponent: Int(rng.next() % 61) - 30, significand: 1)
    }

    static let lengths = [1, 15, 16, 17, 31, 32, 33, 48, 100, 1000, 3136, 4103]

    /// dx of one `BlockGradients.apply` call on `n` values at offset 3 of the arrays
    /// (so that streaming stores need a scalar head), as bits.
    func applied(_ x: [Float16], _ dy: [Float16], _ mask: [Float16]?, _ n: Int, _ k: GradientCoefficients,
                 streaming: Bool, inPlace: Int = 0) -> [UInt16] {
        var out = [Float16](repeating: Float16(bitPattern: 0x7E01), count: x.count)
        var xs = x, dys = dy
        let m = mask ?? []
        xs.withUnsafeMutableBufferPointer { xb in
            dys.withUnsafeMutableBufferPointer { db in
                m.withUnsafeBufferPointer { mb in
                    out.withUnsafeMutableBufferPointer { ob in
                        // inPlace 1: dx over x; 2: dx over dy.
                        let dst = inPlace == 1 ? xb.baseAddress! : inPlace == 2 ? db.baseAddress! : ob.baseAddress!
                        BlockGradients.apply(x: UnsafePointer(xb.baseAddress! + 3), dy: UnsafePointer(db.baseAddress! + 3),
                                             mask: mask == nil ? nil : mb.baseAddress! + 3, gamma: nil, dst + 3, n, k,
                                             streaming: streaming)
                    }
                }
            }
        }
        return bits(inPlace == 1 ? xs : inPlace == 2 ? dys : out)
    }

    @Test(arguments: lengths)
    func loopAgainstSwift(n: Int) {
        let on = available
        for data in ["normal", "patterns"] {
            var rng = SplitMix64("f16 dx \(n) \(data)")
            let total = n + 3 + 64
            let x = data == "normal" ? normal(Float16.self, total, &rng) : patterns(Float16.self, total, &rng)
            let dy = data == "normal" ? normal(Float16.self, total, &rng) : patterns(Float16.self, total, &rng)
            let mask = patterns(Float16.self, total, &rng)
            for round in 0..<3 {
                let k = round == 0
                    ? GradientCoefficients(pivot: Float(x[5]), a: 0.75, b: -0.375, c: 0.125)
                    : GradientCoefficients(pivot: coefficient(&rng), a: coefficient(&rng), b: coefficient(&rng),
                                           c: coefficient(&rng))
                for useMask in [false, true] {
                    for streaming in [false, true] {
                        let context = "\(data) n \(n) round \(round) mask \(useMask) streaming \(streaming)"
                        let m = useMask ? mask : nil
                        let runs = twoWays { applied(x, dy, m, n, k, streaming: streaming) }
                        let (wide, swift) = (runs[0].result, runs[1].result)
                        #expect(differing(wide, swift) == 0, "\(context): C loop vs Swift loop")
                        // Streaming stores start with up to 7 scalar values (to 16-byte alignment):
                        // from 32 values on, at least 16 remain for the C loop.
                        if on && (!streaming || n >= 32 || n < 16) {
                            #expect(runs[0].calls == (n >= 16 ? 1 : 0), "\(context): C loop calls")
                        }
                        #expect(runs[1].calls == 0, "\(context): the C loop ran while off")
                        if !streaming {
                            // In place (the API allows dx over x or dy): the out-of-place bits.
                            let inPlace = twoWays {
                                [applied(x, dy, m, n, k, streaming: false, inPlace: 1),
                                 applied(x, dy, m, n, k, streaming: false, inPlace: 2)]
                            }
                            func window(_ a: [UInt16]) -> [UInt16] { Array(a[3..<(3 + n)]) }
                            for (r, name) in [(0, "on"), (1, "off")] {
                                #expect(differing(window(inPlace[r].result[0]), window(swift)) == 0,
                                        "\(context): dx over x, loop \(name)")
                                #expect(differing(window(inPlace[r].result[1]), window(swift)) == 0,
                                        "\(context): dx over dy, loop \(name)")
                            }
                        }
                    }
                }
            }
        }
    }

    /// dx, dγ, dβ of one BatchNorm backward as bytes.
    func backward(_ bn: BatchNormalization, _ x: [Float16], _ dy: [Float16], _ y: [Float16], _ saved: SavedStatistics,
                  _ gamma: [Float]) throws -> [UInt8] {
        var dx = [Float16](repeating: Float16(bitPattern: 0x7E01), count: x.count)
        var dg = [Float](repeating: 0, count: gamma.count), dbeta = [Float](repeating: 0, count: gamma.count)
        try x.withUnsafeBufferPointer { xb in
            try dy.withUnsafeBufferPointer { db in
                try y.withUnsafeBufferPointer { yb in
                    try gamma.withUnsafeBufferPointer { g in
                        try dx.withUnsafeMutableBufferPointer { dxb in
                            try dg.withUnsafeMutableBufferPointer { dgb in
                                try dbeta.withUnsafeMutableBufferPointer { dbb in
                                    try bn.backwardTraining(input: xb, gradOutput: db, saved: saved, scale: g,
                                                            output: bn.fusedReLU ? yb : nil, gradInput: dxb,
                                                            gradScale: dgb, gradBias: dbb)
                                }
                            }
                        }
                    }
                }
            }
        }
        return dx.withUnsafeBytes { Array($0) } + dg.withUnsafeBytes { Array($0) } + dbeta.withUnsafeBytes { Array($0) }
    }

    @Test func batchNormBackward() throws {
        let on = available
        // Runs of 576 and 4900 values far apart (the prefetching blocks; 4900 in
        // two blocks), 100-value runs grouped, and 399 values with a tail.
        let shapes = [TensorShape(n: 3, c: 4, h: 24, w: 24), TensorShape(n: 2, c: 3, h: 70, w: 70),
                      TensorShape(n: 40, c: 3, h: 10, w: 10), TensorShape(n: 2, c: 8, h: 21, w: 19)]
        for relu in [false, true] {
            for (index, shape) in shapes.enumerated() {
                var rng = SplitMix64("f16 dx batchnorm \(index) \(relu)")
                let x = normal(Float16.self, shape.count, &rng), dy = normal(Float16.self, shape.count, &rng)
                let gamma = (0..<shape.c).map { Float(1 + $0) / 4 }
                let context = "\(shape) relu \(relu)"
                var results: [[UInt8]] = []
                for threads in [1, 3, 16] {
                    let threading = Threading(threads: threads, parallelThreshold: 1024, spinMicroseconds: 0)
                    let bn = try BatchNormalization(shape: shape, fusedReLU: relu, threading: threading)
                    var y = [Float16](repeating: 0, count: shape.count)
                    let saved = try x.withUnsafeBufferPointer { xb in
                        try y.withUnsafeMutableBufferPointer { try bn.forwardTraining(input: xb, output: $0) }
                    }
                    let runs = try twoWays { try backward(bn, x, dy, y, saved, gamma) }
                    #expect(runs[0].result == runs[1].result, "\(context) threads \(threads): C loop vs Swift loop")
                    // Runs of ≥ 16 values through `BlockGradients.apply` (shapes 0, 1, 3; shape 2's
                    // 100-value runs take the short-run loops) call the C loop.
                    if on && threads == 1 && index != 2 {
                        #expect(runs[0].calls > 0, "\(context): the C loop did not run")
                    }
                    #expect(runs[1].calls == 0, "\(context): the C loop ran while off")
                    results.append(runs[0].result)
                }
                #expect(results[1] == results[0], "\(context): 3 threads vs 1")
                #expect(results[2] == results[0], "\(context): 16 threads vs 1")
            }
        }
    }
}
#endif
