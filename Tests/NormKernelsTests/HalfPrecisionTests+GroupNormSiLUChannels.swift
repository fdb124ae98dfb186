// 16-bit GroupNorm + SiLU backward on the channel-groups path (issue 21): its
// GroupNorm passes read x in 16 bits and g in Float32 and round dx once on
// store. Shapes that reach each branch of those passes (NCHW: a loop over units
// and the geometry's batches; NHWC: fewer than 8 channels, row by row with a
// remainder, summing strips, dx strips) must give dx == E.narrow(dx32) and the
// Float32 gradients bit for bit, dx32 from the Float32 kernel on the widened
// tensors, on 1–3 threads and in place over x or dy. (The suite's second pass,
// `NORMKERNELS_STREAMING=always`, runs the same cases with streaming stores.)

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
}
