// Saved statistics against exact closed forms (issue 19, "tests that can fail"):
// every unit holds a shuffled arithmetic progression (`progression`), whose mean
// and biased variance are known exactly, at 4097, 8192 and 50001 values per unit,
// for every op and layout. Mean and 1/σ are checked at rtol 1e-6 — far below the
// 1/(2n) that separates M2/n from M2/(n − 1) — and the check itself is shown to
// reject the unbiased variance.

import Foundation
import Testing
@testable import NormKernels

/// Values per reduction unit of the closed-form tests.
let closedFormCounts = [4097, 8192, 50001]

/// The closed-form tolerance of the brief: rtol 1e-6 on mean and 1/σ.
let closedFormRtol = 1e-6

/// One unit's exact statistics.
struct ClosedFormUnit {
    var count: Int
    var mean: Double
    var step: Double
    /// Biased variance step²·(n² − 1)/12.
    var variance: Double { step * step * (Double(count) * Double(count) - 1) / 12 }
    var unbiasedVariance: Double { variance * Double(count) / Double(count - 1) }
    var sigma: Double { variance.squareRoot() }
}

/// Fills every unit (a list of element offsets, all of one length) with its own
/// shuffled progression: step 2^-(u % 4), mean ±(1 + u % 3)·σ rounded to a multiple
/// of the step, so the mean is as large as the spread (rtol on the mean is
/// meaningful) and every value is exact in Float32.
func closedFormFill(count total: Int, units: [[Int]], label: String) -> (x: [Float], units: [ClosedFormUnit]) {
    var rng = SplitMix64("closed-form \(label)")
    var x = [Float](repeating: .nan, count: total)
    var stats: [ClosedFormUnit] = []
    for (u, offsets) in units.enumerated() {
        let n = offsets.count
        let step = 1 / Double(1 << (u % 4))
        let sigma = step * ((Double(n) * Double(n) - 1) / 12).squareRoot()
        let sign: Double = u % 2 == 0 ? 1 : -1
        let mean = sign * ((Double(1 + u % 3) * sigma) / step).rounded() * step
        let values = progression(n, mean: mean, step: step, &rng)
        for (k, i) in offsets.enumerated() { x[i] = values[k] }
        stats.append(ClosedFormUnit(count: n, mean: mean, step: step))
    }
    #expect(!x.contains { $0.isNaN }, "every element belongs to a unit — \(label)")
    return (x, stats)
}

/// Offsets of every (n, c) slot of `shape` mapped to `slots` units (as `Reference.normalize`).
func closedFormUnits(_ shape: TensorShape, slots: Int, slot: (Int, Int) -> Int) -> [[Int]] {
    var units = [[Int]](repeating: [], count: slots)
    for n in 0..<shape.n {
        for c in 0..<shape.c {
            let k = slot(n, c)
            for s in 0..<shape.spatial { units[k].append(shape.offset(n, c, s)) }
        }
    }
    return units
}

/// Largest relative error max|a − e|/|e| and where.
func closedFormWorst(_ actual: [Double], _ expected: [Double]) -> (error: Double, at: Int) {
    var worst = 0.0, at = -1
    for i in expected.indices {
        let e = abs(actual[i] - expected[i]) / abs(expected[i])
        if !(e <= worst) { worst = e; at = i }
    }
    return (worst, at)
}

/// (op, layout, values per unit, statistic) whose closed-form error is above
/// rtol 1e-6 in this build today: the accuracy work of issue 19 (item 4) is to
/// bring them in. Each is checked under `withKnownIssue`, so a fix makes the test
/// report that the known issue is gone. Filled from the measured errors (see the
/// report of the test-strength branch).
let closedFormKnownIssues: [String: String] = [:]

/// Checks saved means and 1/σ (or σ, `inverse: false`) against the closed form at
/// rtol 1e-6, under a known issue when the key is listed.
func expectClosedForm(_ key: String, mean: [Double]?, invStd: [Double], units: [ClosedFormUnit],
                      epsilon: Float, unbiased: Bool = false, inverse: Bool = true, meanSquare: Bool = false,
                      sourceLocation: SourceLocation = #_sourceLocation) {
    let expectedMean = units.map(\.mean)
    let expectedInv = units.map { u -> Double in
        var v = unbiased ? u.unbiasedVariance : u.variance
        if meanSquare { v += u.mean * u.mean }
        let s = (v + Double(epsilon)).squareRoot()
        return inverse ? 1 / s : s
    }
    func check(_ what: String, _ actual: [Double], _ expected: [Double]) {
        let (error, at) = closedFormWorst(actual, expected)
        let fullKey = "\(key) \(what)"
        let message = "\(fullKey): worst relative error \(error) at unit \(at) (\(at >= 0 ? actual[at] : .nan) vs exactly \(at >= 0 ? expected[at] : .nan)), rtol \(closedFormRtol)"
        if let known = closedFormKnownIssues[fullKey] {
            withKnownIssue("\(known) — now \(message)", isIntermittent: true) {
                #expect(error <= closedFormRtol, Comment(rawValue: message), sourceLocation: sourceLocation)
            }
        } else {
            #expect(error <= closedFormRtol, Comment(rawValue: message), sourceLocation: sourceLocation)
        }
        // Always printed, so the accuracy of every case is on record in the log.
        if ProcessInfo.processInfo.environment["NORMKERNELS_CLOSED_FORM_LOG"] != nil {
            print("closed-form \(fullKey): \(error)")
        }
    }
    if let mean { check("mean", mean, expectedMean) }
    check(inverse ? "invStd" : "std", invStd, expectedInv)
}

@Suite("Closed-form statistics: progressions at 4097, 8192, 50001 values per unit")
struct ClosedFormStatisticsTests {
    /// (N, H·W) with N·H·W = count: several samples per channel where count factors.
    static func batchSplit(_ count: Int) -> (n: Int, spatial: Int) {
        switch count {
        case 4097: return (17, 241)
        case 8192: return (4, 2048)
        case 50001: return (3, 16667)
        default: return (1, count)
        }
    }

    @Test("BatchNorm NCHW, NHWC and [N, D]", arguments: closedFormCounts)
    func batchNorm(count: Int) throws {
        let (n, spatial) = Self.batchSplit(count)
        let shapes = [TensorShape(n: n, c: 5, h: spatial, w: 1), TensorShape(n: n, c: 5, h: spatial, w: 1, layout: .nhwc),
                      TensorShape.matrix(count, 5)]
        for (shape, name) in zip(shapes, ["NCHW", "NHWC", "[N, D]"]) {
            let key = "BatchNorm \(name) \(count)"
            let units = closedFormUnits(shape, slots: shape.c) { _, c in c }
            let (x, stats) = closedFormFill(count: shape.count, units: units, label: key)
            let (_, saved) = try BatchNormalization(shape: shape).forwardTraining(x)
            expectClosedForm(key, mean: saved.mean, invStd: saved.invStd, units: stats, epsilon: 1e-5)
        }
    }

    @Test("LayerNorm and RMSNorm", arguments: closedFormCounts)
    func rowNorms(count: Int) throws {
        let rows = 3
        let units = (0..<rows).map { r in Array((r * count)..<((r + 1) * count)) }
        let (x, stats) = closedFormFill(count: rows * count, units: units, label: "rows \(count)")
        let (_, saved) = try LayerNormalization(rows: rows, features: count).forward(x)
        expectClosedForm("LayerNorm \(count)", mean: saved.mean, invStd: saved.invStd, units: stats, epsilon: 1e-5)
        let (_, rms) = try RMSNormalization(rows: rows, features: count).forward(x)
        expectClosedForm("RMSNorm \(count)", mean: nil, invStd: rms.invStd, units: stats, epsilon: .ulpOfOne, meanSquare: true)
    }

    @Test("InstanceNorm NCHW and NHWC", arguments: closedFormCounts)
    func instanceNorm(count: Int) throws {
        for layout in Layout.allCases {
            let shape = TensorShape(n: 2, c: 3, h: count, w: 1, layout: layout)
            let key = "InstanceNorm \(layout) \(count)"
            let units = closedFormUnits(shape, slots: shape.n * shape.c) { n, c in n * shape.c + c }
            let (x, stats) = closedFormFill(count: shape.count, units: units, label: key)
            let (_, saved) = try InstanceNormalization(shape: shape).forwardTraining(x)
            expectClosedForm(key, mean: saved.mean, invStd: saved.invStd, units: stats, epsilon: 1e-5)
        }
    }

    @Test("GroupNorm NCHW and NHWC (several channels per group)", arguments: closedFormCounts)
    func groupNorm(count: Int) throws {
        // (C/G, H·W) with C/G·H·W = count.
        let (size, spatial) = Self.batchSplit(count)
        for layout in Layout.allCases {
            let groups = 2
            let shape = TensorShape(n: 2, c: groups * size, h: spatial, w: 1, layout: layout)
            let key = "GroupNorm \(layout) \(count)"
            let units = closedFormUnits(shape, slots: shape.n * groups) { n, c in n * groups + c / size }
            let (x, stats) = closedFormFill(count: shape.count, units: units, label: key)
            let (_, saved) = try GroupNormalization(shape: shape, groups: groups).forward(x)
            expectClosedForm(key, mean: saved.mean, invStd: saved.invStd, units: stats, epsilon: 1e-5)
        }
    }

    @Test("AdaIN content and style, NCHW and NHWC, biased and unbiased", arguments: closedFormCounts)
    func adaIN(count: Int) throws {
        for (layout, unbiased) in product(Layout.allCases, [false, true]) {
            let cs = TensorShape(n: 2, c: 3, h: count, w: 1, layout: layout)
            let ss = TensorShape(n: 2, c: 3, h: count, w: 1, layout: layout == .nchw ? .nhwc : .nchw)
            let key = "AdaIN \(layout) \(unbiased ? "unbiased" : "biased") \(count)"
            let (content, cstats) = closedFormFill(
                count: cs.count, units: closedFormUnits(cs, slots: 6) { n, c in n * 3 + c }, label: key + " content")
            let (style, sstats) = closedFormFill(
                count: ss.count, units: Array(closedFormUnits(ss, slots: 6) { n, c in n * 3 + c }.reversed()), label: key + " style")
            let sstatsInSlotOrder = Array(sstats.reversed())
            let (_, saved) = try AdaptiveInstanceNormalization(content: cs, style: ss, unbiasedVariance: unbiased)
                .forward(content: content, style: style)
            expectClosedForm(key + " content", mean: saved.contentMean, invStd: saved.contentInvStd, units: cstats,
                             epsilon: 1e-5, unbiased: unbiased)
            expectClosedForm(key + " style", mean: saved.styleMean, invStd: saved.styleStd, units: sstatsInSlotOrder,
                             epsilon: 1e-5, unbiased: unbiased, inverse: false)
        }
    }

    @Test("the closed-form check rejects M2/(n − 1) in place of M2/n (and the sweeps' invStd tolerance does too)",
          arguments: closedFormCounts)
    func rejectsUnbiasedSwap(count: Int) throws {
        let rows = 2
        let units = (0..<rows).map { r in Array((r * count)..<((r + 1) * count)) }
        let (x, stats) = closedFormFill(count: rows * count, units: units, label: "swap \(count)")
        let (_, saved) = try LayerNormalization(rows: rows, features: count).forward(x)
        let unbiasedInv = stats.map { 1 / ($0.unbiasedVariance + Double(Float(1e-5))).squareRoot() }
        let (error, _) = closedFormWorst(saved.invStd, unbiasedInv)
        #expect(error > closedFormRtol, "M2/(n − 1) would pass the closed-form check: error \(error)")
        #expect(error > invStdTolerance(count), "M2/(n − 1) would pass invStdTolerance(\(count)) = \(invStdTolerance(count))")
        // Same for the random-data reference path of the sweeps.
        var rng = SplitMix64("swap random \(count)")
        let xr = activations(TensorShape(n: rows, c: 1, h: count), &rng)
        let (_, savedr) = try LayerNormalization(rows: rows, features: count).forward(xr)
        let ref = Reference.layerNorm(xr, rows: rows, features: count)
        let swapped = ref.unbiasedVariance.map { 1 / ($0 + Double(Float(1e-5))).squareRoot() }
        #expect(!invStdWithin(savedr.invStd, swapped, count: count), "the sweeps' invStd check accepts M2/(n − 1) at \(count)")
        #expect(invStdWithin(savedr.invStd, ref.invStd, count: count), "the sweeps' invStd check rejects the right answer at \(count)")
    }
}
