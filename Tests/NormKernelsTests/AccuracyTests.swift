// Accuracy of the statistics and gradients against Float64 references, in the
// units of issue 19 part 4 ("statistics as accurate as double accumulation"):
// - saved mean: |μ − μ_ref| / (ε·σ), ε = Float32 epsilon (2⁻²³), target ≤ 1;
// - saved 1/σ: |r − r_ref| / ulp(Float(r_ref)), target ≤ 1;
// - y and dx: max |a − e| / (1e-6·rms(e) + 1e-4·|e|) (allclose), target ≤ 1,
//   also reported as max |a − e| / (ε·rms(e)) ("ulp of the scale");
// - dγ, dβ: |s − s_ref| / (ε·Σ|terms|), target ≤ 2.
// Shapes: the audit's, 37–300 values per channel on the column paths, across
// the 4096-value block and the 128-row column chunk, and past the serial /
// parallel threshold (2¹⁹ elements). The test prints a table of the worst figures
// per case and asserts the targets.

import Foundation
import Testing
@testable import NormKernels

/// Worst errors of one case, in the units above.
struct AccuracyFigures: CustomStringConvertible {
    var mean = 0.0, invStd = 0.0, y = 0.0, yScale = 0.0
    var dgamma = 0.0, dbeta = 0.0, dx = 0.0, dxScale = 0.0
    var backward = false

    var description: String {
        func f(_ v: Double) -> String { String(format: "%7.3f", v) }
        var s = "mean \(f(mean)) εσ  invStd \(f(invStd)) ulp  y \(f(y)) (\(f(yScale)) ε·rms)"
        if backward { s += "  dγ \(f(dgamma)) dβ \(f(dbeta)) ε·Σ|t|  dx \(f(dx)) (\(f(dxScale)) ε·rms)" }
        return s
    }
}

/// Which slot and which parameter every element belongs to, for one op and shape.
struct AccuracyProblem {
    enum Op: String { case batchNorm = "BatchNorm", instanceNorm = "InstanceNorm", groupNorm = "GroupNorm", layerNorm = "LayerNorm" }
    var op: Op
    var shape: TensorShape
    var groups = 1
    var label: String

    var count: Int { shape.count }
    var slots: Int {
        switch op {
        case .batchNorm: shape.c
        case .instanceNorm: shape.n * shape.c
        case .groupNorm: shape.n * groups
        case .layerNorm: shape.n
        }
    }
    var parameters: Int { op == .layerNorm ? shape.c * shape.spatial : shape.c }

    /// (slot, parameter) of every element index.
    func membership() -> (slot: [Int], parameter: [Int]) {
        var slot = [Int](repeating: 0, count: count), parameter = slot
        if op == .layerNorm {
            let f = parameters
            for i in 0..<count { slot[i] = i / f; parameter[i] = i % f }
            return (slot, parameter)
        }
        for n in 0..<shape.n {
            for c in 0..<shape.c {
                let k: Int
                switch op {
                case .batchNorm: k = c
                case .instanceNorm: k = n * shape.c + c
                case .groupNorm: k = n * groups + c / (shape.c / groups)
                case .layerNorm: k = 0
                }
                for s in 0..<shape.spatial { let i = shape.offset(n, c, s); slot[i] = k; parameter[i] = c }
            }
        }
        return (slot, parameter)
    }
}

enum Accuracy {
    static let eps = Double(Float.ulpOfOne)

    /// allclose ratio max |a − e| / (1e-6·rms(e) + 1e-4·|e|) and max |a − e| / (ε·rms(e)).
    static func closeness(_ a: [Float], _ e: [Double]) -> (ratio: Double, scale: Double) {
        let rms = (e.reduce(0) { $0 + $1 * $1 } / Double(max(1, e.count))).squareRoot()
        var ratio = 0.0, worst = 0.0
        for i in 0..<e.count {
            let d = abs(Double(a[i]) - e[i])
            ratio = max(ratio, d / (1e-6 * rms + 1e-4 * abs(e[i])))
            worst = max(worst, d)
        }
        return (ratio, rms > 0 ? worst / (eps * rms) : 0)
    }

    static func ulp32(_ v: Double) -> Double { Double(Float(v).ulp) }

    /// Runs forward (and backward) of one problem and measures it.
    static func measure(_ p: AccuracyProblem, center: ClosedRange<Double>, spread: ClosedRange<Double>,
                        backward: Bool) throws -> AccuracyFigures {
        var rng = SplitMix64("accuracy \(p.label) \(p.shape) \(center)")
        let x = activations(p.shape, &rng, center: center, spread: spread)
        let gamma = rng.uniforms(p.parameters, 0.5...1.5), beta = rng.uniforms(p.parameters, -1...1)
        let (slotOf, paramOf) = p.membership()

        // Float64 two-pass statistics per slot.
        var values = [[Double]](repeating: [], count: p.slots)
        for i in 0..<p.count { values[slotOf[i]].append(Double(x[i])) }
        let stats = values.map(Reference.statistics)
        let epsilon = Float(1e-5)
        let refMean = stats.map(\.mean)
        let refInv = stats.map { Reference.invStd($0.biasedVariance, epsilon) }

        let y: [Float], saved: SavedStatistics
        switch p.op {
        case .batchNorm: (y, saved) = try BatchNormalization(shape: p.shape).forwardTraining(x, scale: gamma, bias: beta)
        case .instanceNorm: (y, saved) = try InstanceNormalization(shape: p.shape).forwardTraining(x, scale: gamma, bias: beta)
        case .groupNorm: (y, saved) = try GroupNormalization(shape: p.shape, groups: p.groups).forward(x, scale: gamma, bias: beta)
        case .layerNorm:
            (y, saved) = try LayerNormalization(rows: p.shape.n, features: p.parameters).forward(x, scale: gamma, bias: beta)
        }

        var fig = AccuracyFigures()
        for k in 0..<p.slots {
            let sigma = stats[k].biasedVariance.squareRoot()
            if sigma > 0 { fig.mean = max(fig.mean, abs(saved.mean[k] - refMean[k]) / (eps * sigma)) }
            fig.invStd = max(fig.invStd, abs(saved.invStd[k] - refInv[k]) / ulp32(refInv[k]))
        }
        var yRef = [Double](repeating: 0, count: p.count)
        for i in 0..<p.count {
            let k = slotOf[i], j = paramOf[i]
            yRef[i] = Double(gamma[j]) * (Double(x[i]) - refMean[k]) * refInv[k] + Double(beta[j])
        }
        (fig.y, fig.yScale) = closeness(y, yRef)
        guard backward else { return fig }

        // Backward from the exact statistics, so it is measured on its own.
        fig.backward = true
        let dy = rng.normals(p.count, mean: 0.01, std: 1)
        let exact = SavedStatistics(mean: refMean, invStd: refInv)
        let grads: NormGradients
        switch p.op {
        case .batchNorm:
            grads = try BatchNormalization(shape: p.shape).backwardTraining(x, gradOutput: dy, saved: exact, scale: gamma)
        case .instanceNorm:
            grads = try InstanceNormalization(shape: p.shape).backwardTraining(x, gradOutput: dy, saved: exact, scale: gamma)
        case .groupNorm:
            grads = try GroupNormalization(shape: p.shape, groups: p.groups).backward(x, gradOutput: dy, saved: exact, scale: gamma)
        case .layerNorm:
            grads = try LayerNormalization(rows: p.shape.n, features: p.parameters)
                .backward(x, gradOutput: dy, saved: exact, scale: gamma)
        }
        var dg = [Reference.Sum](repeating: .init(), count: p.parameters), db = dg
        var dgAbs = [Double](repeating: 0, count: p.parameters), dbAbs = dgAbs
        var sumG = [Reference.Sum](repeating: .init(), count: p.slots), sumGX = sumG
        for i in 0..<p.count {
            let k = slotOf[i], j = paramOf[i]
            let xhat = (Double(x[i]) - refMean[k]) * refInv[k], d = Double(dy[i])
            dg[j].add(d * xhat); dgAbs[j] += abs(d * xhat)
            db[j].add(d); dbAbs[j] += abs(d)
            let g = Double(gamma[j]) * d
            sumG[k].add(g); sumGX[k].add(g * xhat)
        }
        for j in 0..<p.parameters {
            fig.dgamma = max(fig.dgamma, abs(Double(grads.scale![j]) - dg[j].value) / (eps * dgAbs[j]))
            fig.dbeta = max(fig.dbeta, abs(Double(grads.bias![j]) - db[j].value) / (eps * dbAbs[j]))
        }
        let sizes = values.map { Double($0.count) }
        var dxRef = [Double](repeating: 0, count: p.count)
        for i in 0..<p.count {
            let k = slotOf[i], j = paramOf[i]
            let xhat = (Double(x[i]) - refMean[k]) * refInv[k]
            dxRef[i] = refInv[k] * (Double(gamma[j]) * Double(dy[i]) - sumG[k].value / sizes[k]
                                    - xhat * sumGX[k].value / sizes[k])
        }
        (fig.dx, fig.dxScale) = closeness(grads.input!, dxRef)
        return fig
    }

    static func nchw(_ n: Int, _ c: Int, _ h: Int, _ w: Int) -> TensorShape { TensorShape(n: n, c: c, h: h, w: w) }
    static func nhwc(_ n: Int, _ c: Int, _ h: Int, _ w: Int) -> TensorShape {
        TensorShape(n: n, c: c, h: h, w: w, layout: .nhwc)
    }

    /// The measured cases: (problem, backward too).
    static let problems: [(AccuracyProblem, Bool)] = [
        (.init(op: .batchNorm, shape: nchw(6, 40, 31, 29), label: "BN NCHW audit"), true),
        (.init(op: .batchNorm, shape: nchw(37, 8, 1, 3), label: "BN NCHW 111/ch"), true),
        (.init(op: .batchNorm, shape: nchw(2, 16, 65, 65), label: "BN NCHW 2 blocks"), true),
        (.init(op: .batchNorm, shape: nchw(8, 32, 48, 48), label: "BN NCHW parallel"), true),
        (.init(op: .batchNorm, shape: nhwc(1, 40, 37, 1), label: "BN NHWC 37/ch"), true),
        (.init(op: .batchNorm, shape: nhwc(3, 40, 10, 10), label: "BN NHWC 300/ch"), true),
        (.init(op: .batchNorm, shape: nhwc(3, 3, 20, 20), label: "BN NHWC C=3"), true),
        (.init(op: .batchNorm, shape: nhwc(8, 64, 32, 36), label: "BN NHWC parallel"), true),
        (.init(op: .batchNorm, shape: nhwc(37, 64, 1, 1), label: "BN [N,D] 37x64"), true),
        (.init(op: .batchNorm, shape: nhwc(37, 33, 1, 1), label: "BN [N,D] 37x33"), true),
        (.init(op: .batchNorm, shape: nhwc(300, 40, 1, 1), label: "BN [N,D] 300x40"), true),
        (.init(op: .batchNorm, shape: nhwc(300, 256, 1, 1), label: "BN [N,D] 300x256"), true),
        (.init(op: .batchNorm, shape: nhwc(4100, 160, 1, 1), label: "BN [N,D] parallel"), true),
        (.init(op: .layerNorm, shape: nchw(256, 1000, 1, 1), label: "LN audit"), true),
        (.init(op: .layerNorm, shape: nchw(37, 200, 1, 1), label: "LN 37x200"), true),
        (.init(op: .layerNorm, shape: nchw(64, 4097, 1, 1), label: "LN 4097"), true),
        (.init(op: .layerNorm, shape: nchw(600, 1000, 1, 1), label: "LN parallel"), true),
        (.init(op: .layerNorm, shape: nchw(12, 50001, 1, 1), label: "LN 50001"), false),
        (.init(op: .instanceNorm, shape: nchw(2, 16, 19, 17), label: "IN NCHW"), true),
        (.init(op: .instanceNorm, shape: nhwc(2, 40, 19, 17), label: "IN NHWC"), true),
        (.init(op: .instanceNorm, shape: nchw(4, 32, 64, 72), label: "IN NCHW parallel"), false),
        (.init(op: .groupNorm, shape: nchw(2, 32, 28, 28), groups: 8, label: "GN NCHW"), true),
        (.init(op: .groupNorm, shape: nhwc(2, 32, 28, 28), groups: 8, label: "GN NHWC"), true),
        (.init(op: .groupNorm, shape: nhwc(4, 64, 48, 48), groups: 32, label: "GN NHWC parallel"), false),
    ]
}

@Suite("Accuracy against Float64 (issue 19, part 4)")
struct AccuracyTests {
    /// Data as the audit used it (means −3…3, σ 0.5…2) and far from zero
    /// (means 50…100, σ 0.5…2: the pivot's work).
    static let fills: [(String, ClosedRange<Double>, ClosedRange<Double>)] = [
        ("centered", -3...3, 0.5...2), ("offset", 50...100, 0.5...2),
    ]

    @Test("statistics, outputs and gradients meet the targets", arguments: fills.indices)
    func targets(fill: Int) throws {
        let (name, center, spread) = Self.fills[fill]
        var worst = AccuracyFigures()
        for (p, backward) in Accuracy.problems {
            let f = try Accuracy.measure(p, center: center, spread: spread, backward: backward)
            print("accuracy \(name) \(p.label.padding(toLength: 20, withPad: " ", startingAt: 0)) \(f)")
            let context = "\(p.label) \(p.shape) \(name)"
            #expect(f.mean <= 1, "saved mean \(f.mean) ε·σ — \(context)")
            #expect(f.invStd <= 1, "saved invStd \(f.invStd) ulp — \(context)")
            #expect(f.y <= 1, "y allclose ratio \(f.y) — \(context)")
            if backward {
                #expect(f.dgamma <= 2, "dγ \(f.dgamma) ε·Σ|terms| — \(context)")
                #expect(f.dbeta <= 2, "dβ \(f.dbeta) ε·Σ|terms| — \(context)")
                #expect(f.dx <= 1, "dx allclose ratio \(f.dx) — \(context)")
            }
            worst.mean = max(worst.mean, f.mean); worst.invStd = max(worst.invStd, f.invStd)
            worst.y = max(worst.y, f.y); worst.yScale = max(worst.yScale, f.yScale)
            worst.dgamma = max(worst.dgamma, f.dgamma); worst.dbeta = max(worst.dbeta, f.dbeta)
            worst.dx = max(worst.dx, f.dx); worst.dxScale = max(worst.dxScale, f.dxScale)
        }
        worst.backward = true
        print("accuracy \(name) WORST                \(worst)")
    }
}
