// Comparisons of the test toolkit: tolerances for reductions, elementwise and
// normwise closeness that name the worst element, and bit-for-bit equality.

import Foundation
import Testing
@testable import NormKernels

// MARK: - Comparisons

/// Tolerance for O(1) normalized outputs of a reduction over `count` values:
/// rounding grows with the depth of the merge tree, i.e. with log2(count).
func reductionTolerance(_ count: Int) -> Double { 1e-5 * (1 + log2(Double(max(1, count)))) }

/// Relative tolerance for a saved 1/σ (or σ) over `count` values: well below the
/// 1/(2·count) by which M2/(n − 1) moves 1/σ away from M2/n, so a biased/unbiased
/// swap always fails (a quarter of it, capped by `reductionTolerance`), but never
/// under 1e-7 (about one Float32 ulp: what the kernels are asked to reach).
func invStdTolerance(_ count: Int) -> Double {
    max(1e-7, min(reductionTolerance(count), 0.25 / Double(max(1, count))))
}

/// Whether every saved 1/σ is within `invStdTolerance(count)` of the reference
/// (no expectation recorded: for checks that a wrong reference is rejected).
func invStdWithin(_ actual: [Double], _ expected: [Double], count: Int) -> Bool {
    let tol = invStdTolerance(count)
    return actual.count == expected.count && zip(actual, expected).allSatisfy { abs($0 - $1) <= tol * abs($1) }
}

/// Checks `|actual − expected| ≤ atol + rtol·|expected|` for every element (NaN
/// must match NaN, ±∞ must match exactly) with one expectation whose message
/// names the worst element, its values and the combination.
@discardableResult
func expectAllClose<T: BinaryFloatingPoint>(
    _ actual: [T], _ expected: [Double], atol: Double, rtol: Double = 0,
    _ what: String, _ context: String, sourceLocation: SourceLocation = #_sourceLocation
) -> Bool {
    guard actual.count == expected.count else {
        Issue.record("\(what): \(actual.count) values, expected \(expected.count) — \(context)", sourceLocation: sourceLocation)
        return false
    }
    var worst = 0.0, at = -1
    for i in actual.indices {
        let a = Double(actual[i]), e = expected[i]
        let ratio: Double
        if a.isNaN || e.isNaN || a.isInfinite || e.isInfinite {
            ratio = (a.isNaN && e.isNaN) || a == e ? 0 : .infinity
        } else {
            ratio = abs(a - e) / (atol + rtol * abs(e))
        }
        if ratio > worst || (ratio.isNaN && !worst.isNaN) { worst = ratio; at = i }
        if worst == .infinity { break }
    }
    let ok = worst <= 1
    let message = ok ? "" : "\(what): element \(at) of \(actual.count) is \(actual[at]), expected \(expected[at]) "
        + "(|Δ| = \(abs(Double(actual[at]) - expected[at])), atol \(atol), rtol \(rtol), error/tolerance \(worst)) — \(context)"
    #expect(ok, Comment(rawValue: message), sourceLocation: sourceLocation)
    return ok
}

/// Bitwise equality (NaNs with equal payloads compare equal), naming the first difference.
@discardableResult
func expectIdentical(_ actual: [Float], _ expected: [Float], _ what: String, _ context: String,
                     sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
    guard actual.count == expected.count else {
        Issue.record("\(what): \(actual.count) values, expected \(expected.count) — \(context)", sourceLocation: sourceLocation)
        return false
    }
    let first = actual.indices.first { actual[$0].bitPattern != expected[$0].bitPattern }
    let message = first.map { "\(what): element \($0) is \(actual[$0]), expected \(expected[$0]) bit for bit — \(context)" } ?? ""
    #expect(first == nil, Comment(rawValue: message), sourceLocation: sourceLocation)
    return first == nil
}

func expectIdentical(_ actual: [Double], _ expected: [Double], _ what: String, _ context: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
    expectIdentical(actual.map { Float($0) }, expected.map { Float($0) }, what + " (as Float)", context,
                    sourceLocation: sourceLocation)
    let first = actual.indices.first { actual[$0].bitPattern != expected[$0].bitPattern }
    let message = first.map { "\(what): element \($0) is \(actual[$0]), expected \(expected[$0]) bit for bit — \(context)" } ?? ""
    #expect(actual.count == expected.count && first == nil, Comment(rawValue: message), sourceLocation: sourceLocation)
}

func maxAbs(_ values: [Double]) -> Double { values.reduce(0) { max($0, abs($1)) } }

/// |actual − expected| ≤ tolerance · max(1, |expected|) elementwise (the PyTorch
/// forward fixtures' criterion).
func expectClose<A: Collection, B: Collection>(
    _ actual: A, _ expected: B, tolerance: Double = 1e-5, _ label: String,
    sourceLocation: SourceLocation = #_sourceLocation
) where A.Element: BinaryFloatingPoint, B.Element: BinaryFloatingPoint {
    #expect(actual.count == expected.count, "\(label): \(actual.count) values, expected \(expected.count)",
            sourceLocation: sourceLocation)
    var worst = 0.0, at = -1
    for (i, (a, e)) in zip(actual, expected).enumerated() {
        let error = abs(Double(a) - Double(e)) / max(1, abs(Double(e)))
        if !(error <= worst) { worst = error; at = i }
    }
    #expect(worst <= tolerance, "\(label): worst relative error \(worst) at \(at)", sourceLocation: sourceLocation)
}

/// Checks a training pass's output and saved statistics against the reference.
func expectMatches(_ output: [Float], _ saved: SavedStatistics, _ reference: Reference.Normalized,
                   count: Int, _ context: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let tol = reductionTolerance(count)
    expectAllClose(output, reference.output, atol: tol, rtol: tol, "output", context, sourceLocation: sourceLocation)
    expectAllClose(saved.mean, reference.mean, atol: tol / 10, rtol: tol / 10, "saved mean", context,
                sourceLocation: sourceLocation)
    // 1/σ tighter than the output: M2/(n − 1) in place of M2/n moves it by 1/(2n).
    expectAllClose(saved.invStd, reference.invStd, atol: 0, rtol: invStdTolerance(count), "saved invStd", context,
                   sourceLocation: sourceLocation)
}

// MARK: - Normwise errors (gradients)

/// Normwise relative error max|a − e| / max|e|.
func normwiseRelativeError(_ a: [Float], _ e: [Double]) -> Double {
    var worst = 0.0, scale = 0.0
    for i in 0..<e.count {
        worst = max(worst, abs(Double(a[i]) - e[i]))
        scale = max(scale, abs(e[i]))
    }
    return worst / scale
}

/// Records an issue unless max|actual − expected| ≤ tolerance · max(max|expected|,
/// `scaleFloor`), naming the worst element; a missing or wrongly sized `actual`
/// is an issue too. `reference` names the expected side in the message.
func expectNormwiseClose(_ actual: [Float]?, _ expected: [Double], tolerance: Double, scaleFloor: Double,
                         _ what: String, reference: String = "expected",
                         sourceLocation: SourceLocation = #_sourceLocation) {
    guard let actual else {
        Issue.record("\(what): gradient missing", sourceLocation: sourceLocation)
        return
    }
    guard actual.count == expected.count else {
        Issue.record("\(what): \(actual.count) values, \(reference) has \(expected.count)", sourceLocation: sourceLocation)
        return
    }
    var worst = 0.0, scale = 0.0, at = 0
    for i in 0..<expected.count {
        let e = abs(Double(actual[i]) - expected[i])
        if !(e <= worst) { worst = e; at = i }
        scale = max(scale, abs(expected[i]))
    }
    let relative = worst / max(scale, scaleFloor)
    if !(relative <= tolerance) {
        Issue.record("\(what): relative error \(relative) at [\(at)]: ours \(actual[at]), \(reference) \(expected[at])",
                     sourceLocation: sourceLocation)
    }
}

// MARK: - Bit patterns

func bitPatterns(_ x: [Float]?) -> [UInt32]? { x.map { $0.map(\.bitPattern) } }
func bitPatterns(_ x: [Double]) -> [UInt64] { x.map(\.bitPattern) }

/// Doubles as pairs of Float32 bit patterns (low word, high word), so Float64
/// statistics join a bitwise comparison of Float arrays.
func doubleBits(_ values: [Double]) -> [Float] {
    values.flatMap {
        [Float(bitPattern: UInt32(truncatingIfNeeded: $0.bitPattern)), Float(bitPattern: UInt32(truncatingIfNeeded: $0.bitPattern >> 32))]
    }
}

/// Every gradient bit for bit, each named in its own expectation.
func expectIdentical(_ a: NormGradients, _ b: NormGradients, _ what: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(bitPatterns(a.input) == bitPatterns(b.input), "\(what): dx", sourceLocation: sourceLocation)
    #expect(bitPatterns(a.scale) == bitPatterns(b.scale), "\(what): dγ", sourceLocation: sourceLocation)
    #expect(bitPatterns(a.bias) == bitPatterns(b.bias), "\(what): dβ", sourceLocation: sourceLocation)
}

func expectIdentical(_ a: SavedStatistics, _ b: SavedStatistics, _ what: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(bitPatterns(a.mean) == bitPatterns(b.mean), "\(what): saved mean", sourceLocation: sourceLocation)
    #expect(bitPatterns(a.invStd) == bitPatterns(b.invStd), "\(what): saved 1/σ", sourceLocation: sourceLocation)
}
