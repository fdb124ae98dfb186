// 16-bit GroupNorm + SiLU backward on the channel-groups path (issue 21): its
// GroupNorm passes read x in 16 bits and g in Float32 and round dx once on
// store. Shapes that reach each branch of those passes (NCHW: a loop over units
// and the geometry's batches; NHWC: fewer than 8 channels, row by row with a
// remainder, summing strips, dx strips) must give dx == E.narrow(dx32) and the
// Float32 gradients bit for bit, dx32 from the Float32 kernel on the widened
// tensors, on 1–3 threads and in place over x or dy. (The suite's second pass,
// `NORMKERNELS_STREAMING=always`, runs the same cases with streaming stores.)

import CNormSupport
import Testing
@testable import NormKernels

/// A channel-groups case and the branch of the backward it is meant to reach.
private struct ChannelBranchCase: CustomStringConvertible {
    let shape: TensorShape, groups: Int, branch: String
    var description: String { "\(shape) G=\(groups) (\(branch))" }
}

private let channelBranchCases: [ChannelBranchCase] = [
    ChannelBranchCase(shape: TensorShape(n: 2, c: 64, h: 16, w: 16), groups: 8, branch: "NCHW units"),
    ChannelBranchCase(shape: TensorShape(n: 1, c: 8, h: 160, w: 160), groups: 2, branch: "NCHW blocks"),
    ChannelBranchCase(shape: TensorShape(n: 2, c: 4, h: 12, w: 12, layout: .nhwc), groups: 2, branch: "NHWC periodic"),
    ChannelBranchCase(shape: TensorShape(n: 2, c: 20, h: 9, w: 9, layout: .nhwc), groups: 4, branch: "NHWC rows"),
    ChannelBranchCase(shape: TensorShape(n: 1, c: 256, h: 6, w: 6, layout: .nhwc), groups: 32, branch: "NHWC strips"),
    ChannelBranchCase(shape: TensorShape(n: 1, c: 1280, h: 5, w: 5, layout: .nhwc), groups: 32,
                      branch: "NHWC dx strips"),
]

/// Whether `gn` runs `c`'s branch (so the case tests what it names).
private func reachesBranch(_ gn: GroupNormalization, _ c: ChannelBranchCase) -> Bool {
    guard case .channelGroups(let plan) = gn.path else { return false }
    let columns = c.shape.c
    switch (plan.backward, c.branch) {
    case (.rows, "NCHW units"): return plan.backwardLoopsOverUnits
    case (.rows, "NCHW blocks"): return !plan.backwardLoopsOverUnits
    case (.columns, "NHWC periodic"): return columns < 8
    case (.columns, "NHWC rows"): return columns >= 8 && columns % 8 != 0 && !BlockGradients.usesStrips(columns: columns)
    case (.columns, "NHWC strips"): return BlockGradients.usesStrips(columns: columns)
    case (.columns, "NHWC dx strips"): return columns >= BlockGradients.stripColumns
    default: return false
    }
}

extension HalfPrecisionTests {
    @Test("GroupNorm + SiLU backward, channel groups: x and dx in 16 bits in GroupNorm's passes, every branch, bit for bit")
    func groupNormSiLUChannelBranches() throws {
        func check<E: SixteenBitElement>(_: E.Type) throws {
            for (c, modulated) in product(channelBranchCases, [true, false]) {
                let context = "\(E.typeName) GroupNorm + SiLU backward \(c)\(modulated ? " modulated" : "")"
                let (x16, dy16, i) = siluInputs16(E.self, c.shape, context, modulated: modulated)
                let dy32 = dy16.map { E.widen($0) }
                var first: SiLUGradients16<E>?
                for threads in 1...3 {
                    let threading = Threading(threads: threads, parallelThreshold: 1024, spinMicroseconds: 0)
                    let gn = try GroupNormalization(shape: c.shape, groups: c.groups, threading: threading)
                    if threads == 1 { #expect(reachesBranch(gn, c), "\(context): branch") }
                    let saved = try runGroupNormSiLU(gn, x: x16, i).saved
                    let half = try runGroupNormSiLUBackward(gn, x: x16, dy: dy16, saved: saved, i)
                    let single = try runGroupNormSiLUBackward(gn, x: i.x, dy: dy32, saved: saved, i)
                    expectSameGradients(half, single, "\(context), \(threads) threads")
                    let dxOnly = try runGroupNormSiLUBackward(gn, x: x16, dy: dy16, saved: saved, i,
                                                              parameters: false, modulation: false)
                    #expect(dxOnly.dx?.map(\.bits) == half.dx?.map(\.bits), "\(context), \(threads) threads: dx alone")
                    for place in [SiLUBackwardPlace.overGradOutput, .overInput] {
                        let r = try runGroupNormSiLUBackward(gn, x: x16, dy: dy16, saved: saved, i, place: place)
                        #expect(r.dx?.map(\.bits) == half.dx?.map(\.bits), "\(context), \(threads) threads: \(place)")
                        #expect(bitPatterns(r.dgamma) == bitPatterns(half.dgamma), "\(context): \(place) dγ")
                    }
                    if let first {
                        #expect(half.dx?.map(\.bits) == first.dx?.map(\.bits), "\(context): \(threads) threads, dx")
                        #expect(bitPatterns(half.dgamma) == bitPatterns(first.dgamma), "\(context): \(threads) threads, dγ")
                    }
                    first = first ?? half
                }
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    /// The 16-bit NCHW unit loop (`GroupNormalization+SiLUBackwardUnits.swift`)
    /// against the two-pass form it replaces (a Float32 g tensor, then GroupNorm's
    /// backward on it; `SiLUBackwardUnits.set(false)`) and against the Float32
    /// kernel: odd runs (heads, tails, one lane-vector runs), σ's cutoffs,
    /// ±0 and ±60000 in dy, each gradient alone, 1 and 3 threads, in place.
    @Test("GroupNorm + SiLU 16-bit backward, NCHW units: the unit loop runs and gives the two-pass form's bits")
    func groupNormSiLUUnitLoop() throws {
        let cases: [(TensorShape, Int)] = [
            (TensorShape(n: 2, c: 12, h: 9, w: 11), 4),    // runs of 99 = 6·16 + 3
            (TensorShape(n: 3, c: 6, h: 8, w: 8), 3),      // runs of 64, odd N
            (TensorShape(n: 1, c: 10, h: 17, w: 13), 5),   // runs of 221, 2 channels per group
            (TensorShape(n: 2, c: 8, h: 45, w: 47), 1),    // one group of runs of 2115: chunks 1024, 1024, 67
            (TensorShape(n: 4, c: 32, h: 8, w: 9), 8),     // 32 units: whole units per worker on 3 threads too
        ]
        func check<E: SixteenBitElement>(_: E.Type) throws {
            for ((shape, groups), modulated) in product(cases, [true, false]) {
                let context = "\(E.typeName) unit loop \(shape) G=\(groups)\(modulated ? " modulated" : "")"
                var (x16, dy16, i) = siluInputs16(E.self, shape, context, modulated: modulated, gammaSpread: 60)
                // Outliers past σ's cutoffs (|z| > 87.34 with γ up to ±60), ±0 and large dy
                // (finite in both 16-bit types).
                for k in Swift.stride(from: 5, to: x16.count, by: 53) { x16[k] = E.narrow(k % 2 == 0 ? 9 : -9) }
                i.x = x16.map { E.widen($0) }
                let specials: [Float] = [0, -0, 60000, -60000]
                for (j, k) in Swift.stride(from: 11, to: dy16.count, by: 997).enumerated() {
                    dy16[k] = E.narrow(specials[j % specials.count])
                }
                let dy32 = dy16.map { E.widen($0) }
                var first: SiLUGradients16<E>?
                for threads in [1, 3] {
                    let threading = Threading(threads: threads, parallelThreshold: 1024, spinMicroseconds: 0)
                    let gn = try GroupNormalization(shape: shape, groups: groups, threading: threading)
                    guard case .channelGroups(let plan) = gn.path else {
                        Issue.record("\(context): not the channel-groups path")
                        continue
                    }
                    // Few units on 3 threads: the geometry spreads each unit's blocks over the
                    // workers (`splitsUnits`), and the two-pass form runs (the 1-thread bits still hold).
                    let chosen = GroupNormalization.siluBackwardRunsUnits(plan)
                    if threads == 1 || shape.n * groups >= 12 { #expect(chosen, "\(context): unit loop not chosen") }
                    let saved = try runGroupNormSiLU(gn, x: x16, i).saved
                    let before = nk_silu_units_thread_calls()
                    let units = try runGroupNormSiLUBackward(gn, x: x16, dy: dy16, saved: saved, i)
                    let calls = nk_silu_units_thread_calls() - before
                    SiLUBackwardUnits.set(false)
                    defer { SiLUBackwardUnits.set(true) }
                    let twoPass = try runGroupNormSiLUBackward(gn, x: x16, dy: dy16, saved: saved, i)
                    let twoPassCalls = nk_silu_units_thread_calls() - before - calls
                    SiLUBackwardUnits.set(true)
                    #expect(calls == (chosen ? 1 : 0) && twoPassCalls == 0,
                            "\(context), \(threads) threads: unit loop calls \(calls), \(twoPassCalls)")
                    // BFloat16 dx rounded by the integer formula instead of `vcvtne2ps2bf16`
                    // (where the CPU has AVX-512 BF16 and the build FMA: nk_bf16_hw_gradient_f32).
                    bfloat16RoundingSwitch.lock()
                    _ = nk_avx512bf16_set(0)
                    let formula = try? runGroupNormSiLUBackward(gn, x: x16, dy: dy16, saved: saved, i)
                    _ = nk_avx512bf16_set(1)
                    bfloat16RoundingSwitch.unlock()
                    #expect(formula?.dx?.map(\.bits) == units.dx?.map(\.bits), "\(context): dx, BFloat16 formula")
                    let single = try runGroupNormSiLUBackward(gn, x: i.x, dy: dy32, saved: saved, i)
                    expectSameGradients(units, single, "\(context), \(threads) threads: vs Float32")
                    #expect(units.dx?.map(\.bits) == twoPass.dx?.map(\.bits), "\(context), \(threads) threads: dx")
                    #expect(bitPatterns(units.dgamma) == bitPatterns(twoPass.dgamma), "\(context): dγ")
                    #expect(bitPatterns(units.dbeta) == bitPatterns(twoPass.dbeta), "\(context): dβ")
                    #expect(bitPatterns(units.dscale) == bitPatterns(twoPass.dscale), "\(context): d scale")
                    #expect(bitPatterns(units.dshift) == bitPatterns(twoPass.dshift), "\(context): d shift")
                    for (wantsDx, parameters, modulation) in [(true, false, false), (false, true, false),
                                                              (false, true, true)] {
                        let alone = try runGroupNormSiLUBackward(gn, x: x16, dy: dy16, saved: saved, i, dx: wantsDx,
                                                                 parameters: parameters, modulation: modulation)
                        let what = "\(context), \(threads) threads, dx \(wantsDx) dγβ \(parameters) ds dt \(modulation)"
                        #expect(alone.dx.map { $0.map(\.bits) } == (wantsDx ? units.dx?.map(\.bits) : nil), "\(what): dx")
                        #expect(bitPatterns(alone.dgamma) == (parameters ? bitPatterns(units.dgamma) : nil), "\(what): dγ")
                        #expect(bitPatterns(alone.dscale) == (modulation ? bitPatterns(units.dscale) : nil), "\(what): ds")
                    }
                    for place in [SiLUBackwardPlace.overGradOutput, .overInput] {
                        let r = try runGroupNormSiLUBackward(gn, x: x16, dy: dy16, saved: saved, i, place: place)
                        #expect(r.dx?.map(\.bits) == units.dx?.map(\.bits), "\(context), \(threads) threads: \(place)")
                        #expect(bitPatterns(r.dshift) == bitPatterns(units.dshift), "\(context): \(place) d shift")
                    }
                    if let first {
                        #expect(units.dx?.map(\.bits) == first.dx?.map(\.bits), "\(context): 1 vs 3 threads, dx")
                        #expect(bitPatterns(units.dgamma) == bitPatterns(first.dgamma), "\(context): 1 vs 3 threads, dγ")
                        #expect(bitPatterns(units.dscale) == bitPatterns(first.dscale), "\(context): 1 vs 3 threads, ds")
                    }
                    first = first ?? units
                }
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }
}
