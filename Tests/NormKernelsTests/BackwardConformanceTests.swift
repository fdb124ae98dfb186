// Backward against PyTorch autograd (Tests/NormKernelsTests/Fixtures/*.json, written
// by tools/make_fixtures.py): dx, dγ, dβ, dcontent, dstyle, dv, dg matched to 1e-4
// relative (normwise: max|ours − torch| ≤ 1e-4 · max|torch|). Saved statistics come
// from our own forward on the fixture's input, as in real use.
import Foundation
import Testing
@testable import NormKernels

// MARK: - Helpers (fileprivate, prefixed bw)

fileprivate func bwFixtureCases(_ name: String, atLeast minimum: Int) throws -> [[String: Any]] {
    let url = try #require(Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures"),
                           "fixture \(name).json missing")
    let data = try Data(contentsOf: url)
    let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    let cases = try #require(root["cases"] as? [[String: Any]])
    try #require(cases.count >= minimum, "fixture \(name).json has \(cases.count) cases, expected at least \(minimum)")
    return cases
}

/// How many comparisons of each gradient actually ran (`bwMatch` skips a gradient
/// torch has none of): each must reach the count the committed fixtures give, so
/// a renamed key or a truncated file cannot pass by comparing nothing.
fileprivate struct BwChecked {
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

/// A JSON array of numbers (nil for null or absent).
fileprivate func bwNumbers(_ value: Any?) -> [Double]? {
    guard let array = value as? [Any] else { return nil }
    return array.map { v in
        if let d = v as? Double { return d }
        if let i = v as? Int { return Double(i) }
        if let n = v as? NSNumber { return n.doubleValue }
        return .nan
    }
}

fileprivate func bwFloats(_ value: Any?) -> [Float]? { bwNumbers(value)?.map { Float($0) } }

fileprivate func bwInts(_ value: Any?) -> [Int]? { bwNumbers(value)?.map { Int($0) } }

fileprivate func bwNumber(_ value: Any?) -> Double? {
    if let d = value as? Double { return d }
    if let i = value as? Int { return Double(i) }
    return (value as? NSNumber)?.doubleValue
}

fileprivate func bwShape(_ dims: [Int], _ layout: String) -> TensorShape {
    TensorShape(n: dims[0], c: dims[1], h: dims[2], w: dims[3], layout: layout == "nhwc" ? .nhwc : .nchw)
}

fileprivate let bwTolerance = 1e-4

/// Normwise relative match of `ours` to torch's `expected` (skipped when torch has none).
/// Returns whether a comparison ran.
@discardableResult
fileprivate func bwMatch(_ ours: [Float]?, _ expected: [Double]?, _ what: String,
                         sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
    guard let expected else { return false }
    guard let ours, ours.count == expected.count else {
        Issue.record("\(what): \(ours?.count ?? 0) values, torch has \(expected.count)", sourceLocation: sourceLocation)
        return true
    }
    var worst = 0.0, scale = 0.0, at = 0
    for i in 0..<expected.count {
        let e = abs(Double(ours[i]) - expected[i])
        if !(e <= worst) { worst = e; at = i }
        scale = max(scale, abs(expected[i]))
    }
    let relative = worst / max(scale, 1e-30)
    if !(relative <= bwTolerance) {
        Issue.record("\(what): relative error \(relative) at [\(at)]: ours \(ours[at]), torch \(expected[at])",
                     sourceLocation: sourceLocation)
    }
    return true
}

struct BackwardConformanceTests {
    @Test("BatchNorm training backward (incl. NHWC, [N, D], fused ReLU) matches PyTorch autograd")
    func batchNorm() throws {
        var checked = BwChecked()
        for c in try bwFixtureCases("batchnorm", atLeast: 11) {
            let name = c["name"] as? String ?? "?"
            let shape = bwShape(try #require(bwInts(c["shape"])), c["layout"] as? String ?? "nchw")
            let eps = Float(bwNumber(c["eps"]) ?? 1e-5)
            let relu = c["relu"] as? Bool ?? false
            let steps = try #require(c["steps"] as? [[String: Any]])
            let x = try #require(bwFloats(steps.last?["input"]))
            let dy = try #require(bwFloats(c["dy"]))
            let gamma = bwFloats(c["gamma"]), beta = bwFloats(c["beta"])
            let bn = try BatchNormalization(shape: shape, epsilon: eps, fusedReLU: relu)
            let (y, saved) = try bn.forwardTraining(x, scale: gamma, bias: beta)
            let grads = try bn.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma, output: y)
            checked.add("dx", bwMatch(grads.input, bwNumbers(c["dx"]), "\(name) dx"))
            checked.add("dγ", bwMatch(grads.scale, bwNumbers(c["dgamma"]), "\(name) dγ"))
            checked.add("dβ", bwMatch(grads.bias, bwNumbers(c["dbeta"]), "\(name) dβ"))
        }
        checked.expect(["dx": 11, "dγ": 7, "dβ": 7], "batchnorm")
    }

    @Test("InstanceNorm backward matches PyTorch autograd")
    func instanceNorm() throws {
        var checked = BwChecked()
        for c in try bwFixtureCases("instancenorm", atLeast: 9) {
            let name = c["name"] as? String ?? "?"
            let shape = bwShape(try #require(bwInts(c["shape"])), c["layout"] as? String ?? "nchw")
            let eps = Float(bwNumber(c["eps"]) ?? 1e-5)
            let steps = try #require(c["steps"] as? [[String: Any]])
            let x = try #require(bwFloats(steps.last?["input"]))
            let dy = try #require(bwFloats(c["dy"]))
            let gamma = bwFloats(c["gamma"]), beta = bwFloats(c["beta"])
            let norm = try InstanceNormalization(shape: shape, epsilon: eps)
            let (_, saved) = try norm.forwardTraining(x, scale: gamma, bias: beta)
            let grads = try norm.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma)
            checked.add("dx", bwMatch(grads.input, bwNumbers(c["dx"]), "\(name) dx"))
            checked.add("dγ", bwMatch(grads.scale, bwNumbers(c["dgamma"]), "\(name) dγ"))
            checked.add("dβ", bwMatch(grads.bias, bwNumbers(c["dbeta"]), "\(name) dβ"))
        }
        checked.expect(["dx": 9, "dγ": 5, "dβ": 5], "instancenorm")
    }

    @Test("GroupNorm backward (NCHW and NHWC) matches PyTorch autograd")
    func groupNorm() throws {
        var checked = BwChecked()
        for c in try bwFixtureCases("groupnorm", atLeast: 16) {
            let name = c["name"] as? String ?? "?"
            let shape = bwShape(try #require(bwInts(c["shape"])), c["layout"] as? String ?? "nchw")
            let groups = Int(try #require(bwNumber(c["groups"])))
            let eps = Float(bwNumber(c["eps"]) ?? 1e-5)
            let x = try #require(bwFloats(c["input"])), dy = try #require(bwFloats(c["dy"]))
            let gamma = bwFloats(c["gamma"]), beta = bwFloats(c["beta"])
            let norm = try GroupNormalization(shape: shape, groups: groups, epsilon: eps)
            let (_, saved) = try norm.forward(x, scale: gamma, bias: beta)
            let grads = try norm.backward(x, gradOutput: dy, saved: saved, scale: gamma)
            checked.add("dx", bwMatch(grads.input, bwNumbers(c["dx"]), "\(name) dx"))
            checked.add("dγ", bwMatch(grads.scale, bwNumbers(c["dgamma"]), "\(name) dγ"))
            checked.add("dβ", bwMatch(grads.bias, bwNumbers(c["dbeta"]), "\(name) dβ"))
        }
        checked.expect(["dx": 16, "dγ": 8, "dβ": 8], "groupnorm")
    }

    @Test("LayerNorm backward matches PyTorch autograd")
    func layerNorm() throws {
        var checked = BwChecked()
        for c in try bwFixtureCases("layernorm", atLeast: 9) {
            let name = c["name"] as? String ?? "?"
            let rows = Int(try #require(bwNumber(c["rows"]))), features = Int(try #require(bwNumber(c["features"])))
            let eps = Float(bwNumber(c["eps"]) ?? 1e-5)
            let x = try #require(bwFloats(c["input"])), dy = try #require(bwFloats(c["dy"]))
            let gamma = bwFloats(c["gamma"]), beta = bwFloats(c["beta"])
            let norm = try LayerNormalization(rows: rows, features: features, epsilon: eps)
            let (_, saved) = try norm.forward(x, scale: gamma, bias: beta)
            let grads = try norm.backward(x, gradOutput: dy, saved: saved, scale: gamma)
            checked.add("dx", bwMatch(grads.input, bwNumbers(c["dx"]), "\(name) dx"))
            checked.add("dγ", bwMatch(grads.scale, bwNumbers(c["dgamma"]), "\(name) dγ"))
            checked.add("dβ", bwMatch(grads.bias, bwNumbers(c["dbeta"]), "\(name) dβ"))
        }
        checked.expect(["dx": 9, "dγ": 5, "dβ": 5], "layernorm")
    }

    @Test("RMSNorm backward matches PyTorch autograd")
    func rmsNorm() throws {
        var checked = BwChecked()
        for c in try bwFixtureCases("rmsnorm", atLeast: 12) {
            let name = c["name"] as? String ?? "?"
            let rows = Int(try #require(bwNumber(c["rows"]))), features = Int(try #require(bwNumber(c["features"])))
            let eps = Float(try #require(bwNumber(c["eps"])))
            let x = try #require(bwFloats(c["input"])), dy = try #require(bwFloats(c["dy"]))
            let weight = bwFloats(c["weight"])
            let norm = try RMSNormalization(rows: rows, features: features, epsilon: eps)
            let (_, saved) = try norm.forward(x, scale: weight)
            let grads = try norm.backward(x, gradOutput: dy, saved: saved, scale: weight)
            checked.add("dx", bwMatch(grads.input, bwNumbers(c["dx"]), "\(name) dx"))
            checked.add("dγ", bwMatch(grads.scale, bwNumbers(c["dweight"]), "\(name) dγ"))
        }
        checked.expect(["dx": 12, "dγ": 6], "rmsnorm")
    }

    @Test("AdaIN backward (content and style) matches PyTorch autograd")
    func adain() throws {
        var checked = BwChecked()
        for c in try bwFixtureCases("adain", atLeast: 4) {
            let name = c["name"] as? String ?? "?"
            let layout = c["layout"] as? String ?? "nchw"
            let content = bwShape(try #require(bwInts(c["content_shape"])), layout)
            let style = bwShape(try #require(bwInts(c["style_shape"])), layout)
            let eps = Float(bwNumber(c["eps"]) ?? 1e-5)
            let x = try #require(bwFloats(c["content"])), s = try #require(bwFloats(c["style"]))
            let dy = try #require(bwFloats(c["dy"]))
            let ada = try AdaptiveInstanceNormalization(content: content, style: style, epsilon: eps)
            let (_, saved) = try ada.forward(content: x, style: s)
            let grads = try ada.backward(content: x, style: s, gradOutput: dy, saved: saved)
            checked.add("dcontent", bwMatch(grads.content, bwNumbers(c["dcontent"]), "\(name) dcontent"))
            checked.add("dstyle", bwMatch(grads.style, bwNumbers(c["dstyle"]), "\(name) dstyle"))
        }
        checked.expect(["dcontent": 4, "dstyle": 4], "adain")
    }

    @Test("WeightNorm backward matches PyTorch autograd")
    func weightNorm() throws {
        var checked = BwChecked()
        for c in try bwFixtureCases("weightnorm", atLeast: 6) {
            let name = c["name"] as? String ?? "?"
            let shape = try #require(bwInts(c["shape"]))
            let dim = bwNumber(c["dim"]).map { Int($0) }
            let v = try #require(bwFloats(c["v"])), g = try #require(bwFloats(c["g"]))
            let dw = try #require(bwFloats(c["dw"]))
            let wn = try WeightNormalization(shape: shape, dim: dim)
            let (_, norms) = try wn.forward(v: v, g: g)
            let grads = try wn.backward(v: v, g: g, gradWeight: dw, norms: norms)
            checked.add("dv", bwMatch(grads.v, bwNumbers(c["dv"]), "\(name) dv"))
            checked.add("dg", bwMatch(grads.g, bwNumbers(c["dg"]), "\(name) dg"))
        }
        checked.expect(["dv": 6, "dg": 6], "weightnorm")
    }
}
