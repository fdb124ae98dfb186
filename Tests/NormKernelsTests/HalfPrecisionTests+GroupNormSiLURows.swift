// 16-bit GroupNorm + SiLU forward on the row-engine paths (issue 21): feature
// vectors on the fused row engine, which reads x in 16 bits and runs the
// Float32 kernel's SiLU sweep as its epilogue (`SiLUEpilogues.swift`); small
// maps on a widened copy. Every path and row strategy (eight rows per vector,
// row by row, the rows geometry, its blocks of grouped short segments: NHWC
// `[8, 512, 4, 4]`), H·W not a multiple of 8, and the sweep's corner: a run
// with m = 1 and t = 0 keeps silu(v) (v = −0 from γ = 0 without β stays −0):
// y == E.narrow(y32) and the same saved statistics bit for bit, on 1–3
// threads and in place.

import Testing
@testable import NormKernels

/// A row-engine case and the path and strategy it is meant to reach.
private struct RowStrategyCase: CustomStringConvertible {
    let shape: TensorShape, groups: Int, path: String, strategy: String
    var description: String { "\(shape) G=\(groups) (\(path), \(strategy))" }
}

private let rowStrategyCases: [RowStrategyCase] = [
    RowStrategyCase(shape: TensorShape(n: 5, c: 64, h: 1, w: 1, layout: .nhwc), groups: 2,
                    path: "featureVectors", strategy: "eightPerVector"),
    RowStrategyCase(shape: TensorShape(n: 3, c: 1024, h: 1, w: 1), groups: 4, path: "featureVectors", strategy: "rowByRow"),
    RowStrategyCase(shape: TensorShape(n: 2, c: 40000, h: 1, w: 1), groups: 2, path: "featureVectors",
                    strategy: "geometry"),
    RowStrategyCase(shape: TensorShape(n: 2, c: 16, h: 4, w: 4), groups: 4, path: "expandedAffine",
                    strategy: "eightPerVector"),
    RowStrategyCase(shape: TensorShape(n: 2, c: 64, h: 5, w: 5), groups: 8, path: "expandedAffine", strategy: "rowByRow"),
    RowStrategyCase(shape: TensorShape(n: 1, c: 1024, h: 7, w: 7), groups: 2, path: "expandedAffine",
                    strategy: "geometry"),
    RowStrategyCase(shape: TensorShape(n: 8, c: 512, h: 4, w: 4, layout: .nhwc), groups: 32, path: "groupSegments",
                    strategy: "geometry"),
    RowStrategyCase(shape: TensorShape(n: 2, c: 96, h: 3, w: 5, layout: .nhwc), groups: 4, path: "groupSegments",
                    strategy: "geometry"),
]

private func strategyName(_ gn: GroupNormalization) -> String {
    let rows: RowPlan
    switch gn.path {
    case .featureVectors(let plan, _), .expandedAffine(let plan, _), .groupSegments(let plan, _): rows = plan
    case .channelGroups: return "channelGroups"
    }
    switch rows.strategy {
    case .eightPerVector: return "eightPerVector"
    case .rowByRow: return "rowByRow"
    case .geometry: return "geometry"
    }
}

extension HalfPrecisionTests {
    @Test("GroupNorm + SiLU forward, row engine: x read in 16 bits, the sweep as epilogue, every strategy, bit for bit")
    func groupNormSiLURowStrategies() throws {
        func check<E: SixteenBitElement>(_: E.Type) throws {
            for (c, variant) in product(rowStrategyCases, ["plain", "modulated", "m = 1, t = 0, γ = 0"]) {
                let context = "\(E.typeName) GroupNorm + SiLU forward \(c) \(variant)"
                let (x16, _, base) = siluInputs16(E.self, c.shape, context, modulated: variant != "plain")
                var i = base
                if variant == "m = 1, t = 0, γ = 0" {
                    // Every third (n, c) unmodulated, every fifth channel's γ zero, no β.
                    for k in stride(from: 0, to: c.shape.n * c.shape.c, by: 3) { i.scale![k] = 0; i.shift![k] = 0 }
                    for ch in stride(from: 1, to: c.shape.c, by: 5) { i.gamma![ch] = 0 }
                    i.beta = nil
                }
                var first: [UInt16]?
                for threads in 1...3 {
                    let threading = Threading(threads: threads, parallelThreshold: 1024, spinMicroseconds: 0)
                    let gn = try GroupNormalization(shape: c.shape, groups: c.groups, threading: threading)
                    if threads == 1 {
                        #expect(pathName(gn) == c.path && strategyName(gn) == c.strategy, "\(context): path")
                    }
                    let half = try runGroupNormSiLU(gn, x: x16, i)
                    let single = try runGroupNormSiLU(gn, x: i.x, i)
                    #expect(half.y.map(\.bits) == single.y.map { E.narrow($0).bits }, "\(context), \(threads) threads: y")
                    expectIdentical(half.saved, single.saved, "\(context), \(threads) threads")
                    let inPlace = try runGroupNormSiLU(gn, x: x16, i, inPlace: true)
                    #expect(inPlace.y.map(\.bits) == half.y.map(\.bits), "\(context), \(threads) threads: in place")
                    if let first { #expect(half.y.map(\.bits) == first, "\(context): \(threads) threads against 1") }
                    first = first ?? half.y.map(\.bits)
                }
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }
}
