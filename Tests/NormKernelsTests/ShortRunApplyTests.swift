// The NCHW output pass over short channel runs (`Apply.shortRuns`: the whole
// runs of a block, 8 ≤ H·W < 256 (64 for BFloat16), several per call, each run's last vector
// overlapping the one before): BatchNorm inference (with and without the fused
// residual add, ReLU on and off) and the training forward's memory-order output
// pass equal, bit for bit, a per-element evaluation of `Apply.affine`'s formula
//
//     y = act(((x − p[c])·s[c] + t[c]) + r)        (one subtract, one `muladd`)
//
// for H·W around the vector width and the limits, channel counts that are not multiples of 8,
// segments cut into blocks inside a run (C·H·W past `RowsGeometry`'s 4096-value
// blocks), out of place and in place (y = x, y = identity), Float, Float16 and
// BFloat16, 1 and 3 threads. On one thread the thread's call counter
// (`nk_short_runs_thread_calls`) proves the loop ran exactly where it should;
// `nk_tiny_runs_thread_calls` likewise for planes of 2–7 values, which go as one
// row of expanded per-position coefficients (TinyRuns.swift).

import CNormSupport
import Testing
@testable import NormKernels

private let streams = SeededStreams(salt: 0x5407_7A11)

@Suite struct ShortRunApplyTests {
    static let spatials = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 49, 63, 64, 65, 255, 256]

    /// A few channels (one partial group of 8), and enough that a sample's
    /// C·H·W values span more than one 4096-value block.
    static func shapes(_ hw: Int) -> [TensorShape] {
        [TensorShape(n: 3, c: 11, h: hw, w: 1, layout: .nchw),
         TensorShape(n: 2, c: (5000 / hw) | 1, h: 1, w: hw, layout: .nchw)]
    }

    @Test("BatchNorm NCHW forward on short runs: bitwise the per-element formula, in place and not, every type",
          arguments: spatials)
    func shortRuns(hw: Int) throws {
        for shape in Self.shapes(hw) {
            try check(Float.self, shape)
            try check(Float16.self, shape)
            try check(BFloat16.self, shape)
        }
    }

    /// Whether `Apply.shortRuns` takes the whole runs of this shape (cached stores).
    private static func takesShortRuns<E: NormElement>(_: E.Type, _ shape: TensorShape, streaming: Bool) -> Bool {
        !streaming && shape.spatial >= Apply.shortRunsMinimum && shape.spatial < Apply.shortRunsLimit(E.self)
    }

    private func check<E: NormElement>(_: E.Type, _ shape: TensorShape) throws {
        var rng = streams.generator(UInt64(shape.count) &* 31 &+ UInt64(MemoryLayout<E>.size))
        let c = shape.c, hw = shape.spatial
        // Channel means away from 0 so that the pivot matters; about half the outputs negative.
        let offsets = rng.normals(c, std: 3)
        let x = rng.normals(shape.count).enumerated().map { E.narrow($0.element + offsets[($0.offset / hw) % c]) }
        let identity = rng.normals(shape.count).map { E.narrow($0) }
        let gamma = rng.uniforms(c, -2...2), beta = rng.normals(c)
        let mean = rng.normals(c, std: 3), variance = rng.uniforms(c, 0.05...4)
        let running = try RunningStatistics(channels: c, mean: mean, variance: variance)
        let eps: Float = 1e-5
        let inference = (0..<c).map {
            AffineCoefficients(mean: Double(mean[$0]), invStd: inverseStandardDeviation(Double(variance[$0]), eps),
                               gamma: Double(gamma[$0]), beta: Double(beta[$0]))
        }
        /// `Apply.affine`'s formula, value by value.
        func reference(_ k: [AffineCoefficients], relu: Bool, residual: [E]?) -> [UInt8] {
            var y = x
            for i in 0..<x.count {
                let a = k[(i / hw) % c]
                var v = muladd(E.widen(x[i]) - a.pivot, a.scale, a.shift)
                if let residual { v = v + E.widen(residual[i]) }
                y[i] = E.narrow(relu && v < 0 ? 0 : v)
            }
            return bytes(y)
        }
        for threads in [1, 3] {
            for relu in [false, true] {
                let bn = try BatchNormalization(shape: shape, epsilon: eps, fusedReLU: relu,
                                                threading: Threading(threads: threads, parallelThreshold: 1))
                let what = "\(E.self) \(shape) relu \(relu), \(threads) threads"
                for withIdentity in [false, true] {
                    let expected = reference(inference, relu: relu, residual: withIdentity ? identity : nil)
                    // 0: out of place; 1: in place over x; 2: in place over identity.
                    for aliasing in withIdentity ? [0, 1, 2] : [0, 1] {
                        var y = aliasing == 2 ? identity : x
                        if aliasing == 0 { y = [E](repeating: E.narrow(.nan), count: x.count) }
                        var streaming = false
                        let before = nk_short_runs_thread_calls(), beforeTiny = nk_tiny_runs_thread_calls()
                        try x.withUnsafeBufferPointer { xp in
                            try identity.withUnsafeBufferPointer { ip in
                                try gamma.withUnsafeBufferPointer { g in
                                    try beta.withUnsafeBufferPointer { b in
                                        try y.withUnsafeMutableBufferPointer { yp in
                                            let input = aliasing == 1 ? UnsafeBufferPointer(yp) : xp
                                            let id = withIdentity ? (aliasing == 2 ? UnsafeBufferPointer(yp) : ip) : nil
                                            streaming = bn.paths.inference.streaming(
                                                output: yp.baseAddress!, reading: input.baseAddress, id?.baseAddress)
                                            try bn.inference(input: input, identity: id, output: yp, scale: g, bias: b,
                                                             running: running)
                                        }
                                    }
                                }
                            }
                        }
                        let context = "\(what), identity \(withIdentity), aliasing \(aliasing)"
                        #expect(bytes(y) == expected, "inference \(context)")
                        if threads == 1 {
                            #expect((nk_short_runs_thread_calls() > before) == Self.takesShortRuns(E.self, shape, streaming: streaming),
                                    "inference \(context): short-run loop calls")
                            #expect((nk_tiny_runs_thread_calls() > beforeTiny) == Apply.tinyRuns(hw),
                                    "inference \(context): tiny-run pass calls")
                        }
                    }
                }
                // Training forward: the memory-order output pass, coefficients from
                // the saved (Float64) mean and 1/σ as the kernel folds them.
                for inPlace in [false, true] {
                    var y = inPlace ? x : [E](repeating: E.narrow(.nan), count: x.count)
                    var streaming = false
                    let before = nk_short_runs_thread_calls(), beforeTiny = nk_tiny_runs_thread_calls()
                    let saved = try x.withUnsafeBufferPointer { xp in
                        try gamma.withUnsafeBufferPointer { g in
                            try beta.withUnsafeBufferPointer { b in
                                try y.withUnsafeMutableBufferPointer { yp in
                                    let input = inPlace ? UnsafeBufferPointer(yp) : xp
                                    streaming = bn.paths.training.streaming(output: yp.baseAddress!,
                                                                            reading: input.baseAddress)
                                    return try bn.training(input: input, identity: nil, output: yp, scale: g, bias: b,
                                                           running: nil)
                                }
                            }
                        }
                    }
                    let k = (0..<c).map {
                        AffineCoefficients(mean: saved.mean[$0], invStd: saved.invStd[$0],
                                           gamma: Double(gamma[$0]), beta: Double(beta[$0]))
                    }
                    let context = "\(what), in place \(inPlace)"
                    #expect(bytes(y) == reference(k, relu: relu, residual: nil), "training \(context)")
                    if threads == 1 {
                        // Short runs reach the memory-order pass below 256 values (`shortRunSpatial`).
                        #expect((nk_short_runs_thread_calls() > before) == Self.takesShortRuns(E.self, shape, streaming: streaming),
                                "training \(context): short-run loop calls")
                        #expect((nk_tiny_runs_thread_calls() > beforeTiny) == Apply.tinyRuns(hw),
                                "training \(context): tiny-run pass calls")
                    }
                }
            }
        }
    }

    private func bytes<E>(_ v: [E]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }
}
