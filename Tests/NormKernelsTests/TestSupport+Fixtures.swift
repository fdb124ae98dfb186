// PyTorch fixtures of the test toolkit: tools/make_fixtures.py (torch, float32,
// one thread) writes Fixtures/*.json, committed, so the tests never need torch.
// Tensors are flattened in their layout's memory order; shapes are logical
// [N, C, H, W].

import Foundation
import Testing
@testable import NormKernels

struct Fixture {
    let fields: [String: Any]

    /// The cases of `op`.json; at least `atLeast` of them (the count committed
    /// today), so a truncated or renamed fixture cannot pass by checking nothing.
    static func cases(_ op: String, atLeast minimum: Int) throws -> [Fixture] {
        let url = try #require(Bundle.module.url(forResource: op, withExtension: "json", subdirectory: "Fixtures"),
                               "fixture \(op).json missing")
        let root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let cases = try #require(root["cases"] as? [[String: Any]])
        try #require(cases.count >= minimum, "fixture \(op).json has \(cases.count) cases, expected at least \(minimum)")
        return cases.map(Fixture.init)
    }

    var name: String { fields["name"] as? String ?? "?" }
    func floats(_ key: String) -> [Float]? { (fields[key] as? [NSNumber])?.map { $0.floatValue } }
    func ints(_ key: String) -> [Int]? { (fields[key] as? [NSNumber])?.map { $0.intValue } }
    func double(_ key: String) -> Double? { (fields[key] as? NSNumber)?.doubleValue }
    func int(_ key: String) -> Int? { (fields[key] as? NSNumber)?.intValue }
    func bool(_ key: String) -> Bool { (fields[key] as? Bool) ?? false }
    func string(_ key: String) -> String? { fields[key] as? String }
    var steps: [Fixture] { (fields["steps"] as? [[String: Any]] ?? []).map(Fixture.init) }

    /// A JSON array of numbers as Float64, torch's gradients compared without a
    /// Float32 rounding (nil for null or absent; a null element reads as NaN).
    func doubles(_ key: String) -> [Double]? {
        guard let array = fields[key] as? [Any] else { return nil }
        return array.map { v in
            if let d = v as? Double { return d }
            if let i = v as? Int { return Double(i) }
            if let n = v as? NSNumber { return n.doubleValue }
            return .nan
        }
    }

    /// A logical [N, C, H, W] shape in the case's layout; a missing or short
    /// entry fails the test instead of trapping.
    func shape(_ key: String = "shape") throws -> TensorShape {
        let s = try #require(ints(key), "\(name): no \(key)")
        try #require(s.count == 4, "\(name): \(key) \(s) is not [N, C, H, W]")
        return TensorShape(n: s[0], c: s[1], h: s[2], w: s[3], layout: string("layout") == "nhwc" ? .nhwc : .nchw)
    }
}

/// How many comparisons of each gradient actually ran (a gradient torch has none
/// of is skipped): each must reach the count the committed fixtures give, so a
/// renamed key or a truncated file cannot pass by comparing nothing.
struct ComparisonCounts {
    var counts: [String: Int] = [:]
    mutating func add(_ key: String, _ checked: Bool) { if checked { counts[key, default: 0] += 1 } }
    func expect(_ minimums: [String: Int], _ fixture: String, sourceLocation: SourceLocation = #_sourceLocation) {
        for (key, minimum) in minimums.sorted(by: { $0.key < $1.key }) {
            #expect(counts[key, default: 0] >= minimum,
                    "\(fixture).json: \(counts[key, default: 0]) cases compared \(key), expected at least \(minimum)",
                    sourceLocation: sourceLocation)
        }
    }
}

/// Backward conformance: ours against torch's gradient, normwise (max|ours −
/// torch| ≤ 1e-4 · max|torch|), skipped when torch has none. Returns whether a
/// comparison ran.
@discardableResult
func matchTorch(_ ours: [Float]?, _ expected: [Double]?, _ what: String,
                sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
    guard let expected else { return false }
    guard ours != nil else {
        Issue.record("\(what): 0 values, torch has \(expected.count)", sourceLocation: sourceLocation)
        return true
    }
    expectNormwiseClose(ours, expected, tolerance: 1e-4, scaleFloor: 1e-30, what, reference: "torch",
                        sourceLocation: sourceLocation)
    return true
}
