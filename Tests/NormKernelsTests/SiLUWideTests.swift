// GroupNorm + SiLU with the 16-lane AVX-512 SiLU loops (SiLUWide.swift,
// SiLUAVX512.h) against the 8-lane Swift loops they replace: the same inputs
// through both (`nk_avx512_silu_set(0)` takes the Swift loops), the same bits
// for y, dx, dγ, dβ and the modulation's gradients, on shapes whose runs and
// rows are not multiples of 16 (NCHW runs with Swift tails, NHWC rows with
// masked lanes), in Float32, BFloat16 and Float16, on 1 and 3 threads. The
// wide runs must actually call the C loops (a thread-local call count, read on
// 1 thread, where the work runs on the calling thread) and the Swift runs must
// not. Skipped, with the reason, in a build without FMA/F16C or on a CPU
// without AVX-512 F/VL/BW/DQ, where the loops are never chosen.
// Serialized, so that one test's switch does not fall inside another's wide run;
// other suites running meanwhile only change loops, never a result.

import CNormSupport
import Foundation
import Testing
@testable import NormKernels

private let wideBuildFuses = nk_build_has_fma() != 0 && nk_build_has_f16c() != 0
private let wideCPUSupports = nk_cpu_has_avx512() != 0
private let wideNotSwitchedOff = ProcessInfo.processInfo.environment["NORMKERNELS_AVX512_SILU"] != "never"
/// Whether the wide loops' BFloat16 stores round with `vcvtneps2bf16` here (AVX-512 BF16, switch on).
private let wideRoundsBFloat16 = nk_avx512bf16_set(1) != 0

/// (AVX-512 SiLU loops, AVX-512 BF16 rounding) switches of the loop tests'
/// runs: wide with the hardware rounding (where the CPU has it), wide with the
/// integer formula, the Swift loops.
private let wideConfigurations: [(Int32, Int32)] = [(1, 1), (1, 0), (0, 0)]

private struct WideCase: CustomStringConvertible {
    let shape: TensorShape, groups: Int, note: String
    var description: String { "\(shape) G=\(groups) (\(note))" }
}

private let wideCases: [WideCase] = [
    WideCase(shape: TensorShape(n: 2, c: 12, h: 9, w: 11), groups: 4, note: "NCHW runs of 99: 6·16 + 3"),
    WideCase(shape: TensorShape(n: 1, c: 6, h: 17, w: 13), groups: 3, note: "NCHW runs of 221"),
    WideCase(shape: TensorShape(n: 1, c: 2, h: 45, w: 47), groups: 1, note: "NCHW runs of 2115: backward chunks 1024, 1024, 67"),
    WideCase(shape: TensorShape(n: 2, c: 40, h: 7, w: 5, layout: .nhwc), groups: 8, note: "NHWC 40 = 2·16 + 8 masked"),
    WideCase(shape: TensorShape(n: 2, c: 37, h: 6, w: 7, layout: .nhwc), groups: 1, note: "NHWC 37: odd channels"),
    WideCase(shape: TensorShape(n: 1, c: 24, h: 19, w: 17, layout: .nhwc), groups: 4, note: "NHWC 323 rows: 2 backward blocks"),
    WideCase(shape: TensorShape(n: 1, c: 1032, h: 5, w: 5, layout: .nhwc), groups: 8, note: "NHWC 1032 ≥ 1024 columns"),
]

/// The tensors and parameters of a case: x with outliers, and every third
/// channel's γ large, so z reaches σ's cutoffs (|z| > 87.34) as well as 0.
private struct WideInputs {
    let x: [Float], dy: [Float], gamma: [Float], beta: [Float], scale: [Float], shift: [Float]

    init(_ shape: TensorShape, _ label: String) {
        var rng = SplitMix64(label)
        var x = rng.normals(shape.count, mean: 0.5, std: 2)
        for k in Swift.stride(from: 7, to: x.count, by: 61) { x[k] = Float(rng.uniform(-60...60)) }
        self.x = x
        dy = rng.normals(shape.count)
        gamma = (0..<shape.c).map { $0 % 3 == 0 ? 40 : Float(rng.uniform(0.5...3)) }
        beta = rng.uniforms(shape.c, -2...2)
        scale = rng.uniforms(shape.n * shape.c, -0.5...0.5)
        shift = rng.uniforms(shape.n * shape.c, -1...1)
    }
}

/// The raw bytes of each result, by name.
private struct ResultBits: Equatable {
    var parts: [String: [UInt8]] = [:]
    mutating func add<T>(_ name: String, _ values: [T]) { parts[name] = values.withUnsafeBytes { Array($0) } }

    /// The names of the parts that differ from `other`'s.
    func differences(_ other: ResultBits) -> [String] {
        Set(parts.keys).union(other.parts.keys).sorted().filter { parts[$0] != other.parts[$0] }
    }
}

@Suite(.serialized) struct SiLUWideTests {
    /// Forward then backward with every gradient; the bits and the C loop calls
    /// made on this thread by each direction.
    private func run<E: NormElement>(_ gn: GroupNormalization, _ x: [E], _ dy: [E], _ d: WideInputs,
                                     modulated: Bool) throws -> (bits: ResultBits, forward: UInt64, backward: UInt64) {
        let count = x.count, c = gn.shape.c, perSample = gn.shape.n * c
        var y = [E](repeating: E.narrow(0), count: count), dx = y
        var dgamma = [Float](repeating: 0, count: c), dbeta = dgamma
        var dscale = [Float](repeating: 0, count: perSample), dshift = dscale
        let c0 = nk_silu512_thread_calls()
        let saved: SavedStatistics = try x.withUnsafeBufferPointer { xp in
            try y.withUnsafeMutableBufferPointer { yp in
                try d.gamma.withUnsafeBufferPointer { g in
                    try d.beta.withUnsafeBufferPointer { b in
                        try d.scale.withUnsafeBufferPointer { s in
                            try d.shift.withUnsafeBufferPointer { t in
                                try gn.forwardSiLUElements(input: xp, output: yp, scale: g, bias: b,
                                                           modulationScale: modulated ? s : nil,
                                                           modulationShift: modulated ? t : nil)
                            }
                        }
                    }
                }
            }
        }
        let c1 = nk_silu512_thread_calls()
        try x.withUnsafeBufferPointer { xp in
            try dy.withUnsafeBufferPointer { dyp in
                try d.gamma.withUnsafeBufferPointer { g in
                    try d.beta.withUnsafeBufferPointer { b in
                        try d.scale.withUnsafeBufferPointer { s in
                            try d.shift.withUnsafeBufferPointer { t in
                                try dx.withUnsafeMutableBufferPointer { dxp in
                                    try dgamma.withUnsafeMutableBufferPointer { dg in
                                        try dbeta.withUnsafeMutableBufferPointer { db in
                                            try dscale.withUnsafeMutableBufferPointer { ds in
                                                try dshift.withUnsafeMutableBufferPointer { dt in
                                                    try gn.backwardSiLUElements(
                                                        input: xp, gradOutput: dyp, saved: saved, scale: g, bias: b,
                                                        modulationScale: modulated ? s : nil,
                                                        modulationShift: modulated ? t : nil,
                                                        gradInput: dxp, gradScale: dg, gradBias: db,
                                                        gradModulationScale: ds, gradModulationShift: dt)
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let c2 = nk_silu512_thread_calls()
        var bits = ResultBits()
        bits.add("y", y); bits.add("mean", saved.mean); bits.add("invStd", saved.invStd)
        bits.add("dx", dx); bits.add("dγ", dgamma); bits.add("dβ", dbeta)
        bits.add("d modulationScale", dscale); bits.add("d modulationShift", dshift)
        return (bits, c1 - c0, c2 - c1)
    }

    private func check<E: NormElement>(_: E.Type, _ name: String) throws {
        for c in wideCases {
            let d = WideInputs(c.shape, "silu wide \(c)")
            let x = d.x.map { E.narrow($0) }, dy = d.dy.map { E.narrow($0) }
            for modulated in [true, false] {
                let context = "\(name) \(c)\(modulated ? " modulated" : "")"
                var first: ResultBits?
                for threads in [1, 3] {
                    let threading = Threading(threads: threads, parallelThreshold: 1024, spinMicroseconds: 0)
                    let gn = try GroupNormalization(shape: c.shape, groups: c.groups, threading: threading)
                    guard case .channelGroups = gn.path else {
                        Issue.record("\(context): not the channel-groups path")
                        continue
                    }
                    _ = nk_avx512_silu_set(1)
                    defer { _ = nk_avx512_silu_set(1) }
                    let wide = try run(gn, x, dy, d, modulated: modulated)
                    _ = nk_avx512_silu_set(0)
                    let swift = try run(gn, x, dy, d, modulated: modulated)
                    _ = nk_avx512_silu_set(1)
                    #expect(wide.bits.differences(swift.bits) == [], "\(context), \(threads) threads: AVX-512 vs Swift")
                    #expect(swift.forward == 0 && swift.backward == 0, "\(context): Swift run called the C loops")
                    if threads == 1 {
                        #expect(wide.forward > 0, "\(context): forward did not reach the AVX-512 loops")
                        #expect(wide.backward > 0, "\(context): backward did not reach the AVX-512 loops")
                    }
                    if let first {
                        #expect(wide.bits.differences(first) == [], "\(context): 1 vs \(threads) threads")
                    }
                    first = first ?? wide.bits
                }
            }
        }
    }

    @Test("GroupNorm + SiLU: AVX-512 SiLU loops == Swift loops bit for bit, odd shapes, NCHW and NHWC, 1 and 3 threads",
          .enabled(if: wideBuildFuses, "build without FMA/F16C (-Xcc -march=x86-64-v3): the AVX-512 SiLU loops are never chosen"),
          .enabled(if: wideCPUSupports, "CPU without AVX-512 F/VL/BW/DQ: the AVX-512 SiLU loops are never chosen"),
          .enabled(if: wideNotSwitchedOff, "NORMKERNELS_AVX512_SILU=never: the AVX-512 SiLU loops are off"))
    func groupNormSiLU() throws {
        try check(Float.self, "Float32")
        try check(BFloat16.self, "BFloat16")
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self, "Float16")
        #endif
    }

    /// The output loops alone on special values (±0, ±∞, NaN, subnormals, the
    /// cutoffs ±87.34, huge values) and random ones, through the cache and
    /// streaming, at offsets that leave heads and tails; wide with BFloat16
    /// rounded by `vcvtneps2bf16` (AVX-512 BF16) and by the integer formula, and
    /// the Swift loops: the same bits.
    private func checkLoops<E: NormElement>(_: E.Type, _ name: String) {
        let specials: [Float] = [0, -0, .infinity, -.infinity, .nan, -.nan, 0x1p-140, -0x1p-130, 0x1p-127, -0x1.8p-129,
                                 0x1.fep-127, 87.3, -87.3, 87.4,
                                 -87.4, 88.8, -88.8, 1e30, -1e30, 1, -1, 0.5, -0.5]
        var rng = SplitMix64("silu wide loops \(name)")
        let values = specials + rng.normals(1200, mean: 0, std: 30)
        let x = values.map { E.narrow($0) }
        // The second set passes x through (z = x): silu of subnormal z is subnormal,
        // which `vcvtneps2bf16` would flush (the BFloat16 stores take the formula there).
        for c in [AffineCoefficients(pivot: 0.25, scale: 1.5, shift: -0.5),
                  AffineCoefficients(pivot: 0, scale: 1, shift: 0)] {
            for n in [16, 37, 100, 1205] {
                for streaming in [false, true] {
                    var out: [[E]] = []
                    var calls: [UInt64] = [], hardware: [UInt64] = []
                    bfloat16RoundingSwitch.lock()
                    defer { bfloat16RoundingSwitch.unlock() }
                    for (wide, rounding) in wideConfigurations {
                        _ = nk_avx512_silu_set(wide)
                        _ = nk_avx512bf16_set(rounding)
                        var y = [E](repeating: E.narrow(7), count: n + 3)
                        let c0 = nk_silu512_thread_calls(), h0 = nk_silu512_bf16_hardware_thread_calls()
                        x.withUnsafeBufferPointer { xp in
                            y.withUnsafeMutableBufferPointer { yp in
                                Apply.affine(xp.baseAddress! + 1, yp.baseAddress! + 1, n, c, streaming: streaming,
                                             activation: SiLUActivation.self)
                            }
                        }
                        calls.append(nk_silu512_thread_calls() - c0)
                        hardware.append(nk_silu512_bf16_hardware_thread_calls() - h0)
                        nk_stream_fence()
                        out.append(y)
                    }
                    _ = nk_avx512_silu_set(1)
                    _ = nk_avx512bf16_set(1)
                    let context = "\(name) affine \(c) n \(n) streaming \(streaming)"
                    for k in 1..<out.count {
                        let same = out[0].withUnsafeBytes { a in out[k].withUnsafeBytes { b in a.elementsEqual(b) } }
                        #expect(same, "\(context): \(wideConfigurations[k]) vs \(wideConfigurations[0])")
                    }
                    // (Streaming, up to 7 head values go first: n = 16 may leave no 16-value step.)
                    // (Both wide runs make the same calls.)
                    #expect((calls[0] > 0 || (streaming && n < 32)) && calls[1] == calls[0] && calls[2] == 0,
                            "\(context): calls \(calls)")
                    // The hardware rounding ran exactly in the wide BFloat16 run with the rounding on.
                    let rounds = E.self == BFloat16.self && wideRoundsBFloat16 && calls[0] > 0
                    #expect(hardware == [rounds ? calls[0] : 0, 0, 0], "\(context): hardware roundings \(hardware)")
                }
            }
        }
        for (rows, columns) in [(7, 16), (9, 37), (5, 130), (3, 1030)] {
            let pivot = rng.uniforms(columns, -1...1), scale = rng.uniforms(columns, -40...40)
            let shift = rng.uniforms(columns, -3...3)
            let data = (0..<(rows * columns)).map { x[$0 % x.count] }
            var out: [[E]] = []
            bfloat16RoundingSwitch.lock()
            defer { bfloat16RoundingSwitch.unlock() }
            for (wide, rounding) in wideConfigurations {
                _ = nk_avx512_silu_set(wide)
                _ = nk_avx512bf16_set(rounding)
                var y = [E](repeating: E.narrow(7), count: rows * columns)
                data.withUnsafeBufferPointer { xp in
                    y.withUnsafeMutableBufferPointer { yp in
                        Apply.columns(xp.baseAddress!, yp.baseAddress!, rows: rows, columns: columns, stride: columns,
                                      pivot: pivot, scale: scale, shift: shift, streaming: false,
                                      activation: SiLUActivation.self)
                    }
                }
                out.append(y)
            }
            _ = nk_avx512_silu_set(1)
            _ = nk_avx512bf16_set(1)
            for k in 1..<out.count {
                let same = out[0].withUnsafeBytes { a in out[k].withUnsafeBytes { b in a.elementsEqual(b) } }
                #expect(same, "\(name) columns \(rows)x\(columns): \(wideConfigurations[k]) vs \(wideConfigurations[0])")
            }
        }
    }

    @Test("SiLU output loops: AVX-512 == Swift bit for bit on special values, heads, tails and masked columns",
          .enabled(if: wideBuildFuses, "build without FMA/F16C (-Xcc -march=x86-64-v3): the AVX-512 SiLU loops are never chosen"),
          .enabled(if: wideCPUSupports, "CPU without AVX-512 F/VL/BW/DQ: the AVX-512 SiLU loops are never chosen"),
          .enabled(if: wideNotSwitchedOff, "NORMKERNELS_AVX512_SILU=never: the AVX-512 SiLU loops are off"))
    func outputLoops() {
        checkLoops(Float.self, "Float32")
        checkLoops(BFloat16.self, "BFloat16")
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        checkLoops(Float16.self, "Float16")
        #endif
    }

    /// Runs in every build: says which way the loops go here, and that the
    /// switch turns them off.
    @Test("AVX-512 SiLU loops: chosen exactly where the build and CPU allow, and the switch turns them off")
    func selection() {
        let expected = wideBuildFuses && wideCPUSupports && wideNotSwitchedOff
        #expect((nk_avx512_silu_set(1) != 0) == expected,
                "build fuses \(wideBuildFuses), CPU supports \(wideCPUSupports), switch on \(wideNotSwitchedOff)")
        #expect(SiLUWide.available == expected)
        #expect(nk_avx512_silu_set(0) == 0 && !SiLUWide.available)
        _ = nk_avx512_silu_set(1)
        if !expected {
            print("SiLUWideTests: AVX-512 SiLU loops not chosen here (build fuses \(wideBuildFuses), "
                  + "CPU has AVX-512 F/VL/BW/DQ \(wideCPUSupports), switch on \(wideNotSwitchedOff)); "
                  + "the bit-for-bit tests are skipped")
        }
    }
}
