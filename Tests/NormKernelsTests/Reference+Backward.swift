// Float64 references for the backward kernels, written from the math and
// nothing else: normalization over explicit slots (lists of memory offsets), the
// closed form of the centered backward, the affine gradients, and central
// differences for finite-difference checks.

import Testing
@testable import NormKernels

extension Reference {
    /// Memory offsets of each statistics slot of `shape`: per (n, group of
    /// `groupSize` channels), or per channel over N·H·W when `batch`.
    static func slots(_ shape: TensorShape, groupSize: Int, batch: Bool = false) -> [[Int]] {
        if batch {
            return (0..<shape.c).map { c in
                (0..<shape.n).flatMap { n in (0..<shape.spatial).map { shape.offset(n, c, $0) } }
            }
        }
        return (0..<shape.n).flatMap { n in
            (0..<(shape.c / groupSize)).map { g in
                (0..<groupSize).flatMap { j in (0..<shape.spatial).map { shape.offset(n, g * groupSize + j, $0) } }
            }
        }
    }

    /// `y = (x − μ)·r·gain + shift` per slot with r = 1/√(M2/m + ε) (M2/(m − 1)
    /// when `unbiased`), plain sums: the forward that finite differences go through.
    static func normalize(_ x: [Double], slots: [[Int]], eps: Double, unbiased: Bool = false,
                          gain: (Int) -> Double, shift: (Int) -> Double) -> [Double] {
        var y = x
        for slot in slots {
            let m = Double(slot.count)
            let mean = slot.reduce(0) { $0 + x[$1] } / m
            let m2 = slot.reduce(0) { $0 + (x[$1] - mean) * (x[$1] - mean) }
            let r = 1 / (m2 / (unbiased ? m - 1 : m) + eps).squareRoot()
            for i in slot { y[i] = (x[i] - mean) * r * gain(i) + shift(i) }
        }
        return y
    }

    /// Closed form of the centered backward for each slot of values:
    /// dx = r·(g − mean(g) − x̂·mean(g·x̂)), g = gain·dy, with the slot's exact
    /// Float64 statistics.
    static func centeredBackward(_ x: [Float], _ dy: [Float], _ slots: [[Int]], eps: Double,
                                 gain: (Int) -> Double) -> [Double] {
        var dx = [Double](repeating: 0, count: x.count)
        for slot in slots {
            let m = Double(slot.count)
            let mean = slot.reduce(0.0) { $0 + Double(x[$1]) } / m
            let variance = slot.reduce(0.0) { $0 + (Double(x[$1]) - mean) * (Double(x[$1]) - mean) } / m
            let r = 1 / (variance + eps).squareRoot()
            var sumG = 0.0, sumGX = 0.0
            for i in slot {
                let g = gain(i) * Double(dy[i])
                sumG += g
                sumGX += g * (Double(x[i]) - mean) * r
            }
            for i in slot {
                let xhat = (Double(x[i]) - mean) * r
                dx[i] = r * (gain(i) * Double(dy[i]) - sumG / m - xhat * sumGX / m)
            }
        }
        return dx
    }

    /// dγ[j] = Σ dy·x̂ and dβ[j] = Σ dy when value i uses parameter i % `parameters`
    /// (LayerNorm features, NHWC channels), x̂ from each slot's exact Float64
    /// statistics (ε = Float(1e-5)).
    static func affineGradients(_ x: [Float], _ dy: [Float], _ slots: [[Int]], parameters: Int)
        -> (scale: [Double], bias: [Double]) {
        var dgamma = [Double](repeating: 0, count: parameters), dbeta = dgamma
        for slot in slots {
            let m = Double(slot.count)
            let mean = slot.reduce(0.0) { $0 + Double(x[$1]) } / m
            let variance = slot.reduce(0.0) { $0 + (Double(x[$1]) - mean) * (Double(x[$1]) - mean) } / m
            let r = 1 / (variance + Double(Float(1e-5))).squareRoot()
            for i in slot {
                dgamma[i % parameters] += Double(dy[i]) * (Double(x[i]) - mean) * r
                dbeta[i % parameters] += Double(dy[i])
            }
        }
        return (dgamma, dbeta)
    }

    /// Central differences of `loss` at `p`, step 1e-5·max(1, |p[i]|).
    static func numericGradient(_ p: [Double], _ loss: ([Double]) -> Double) -> [Double] {
        var q = p
        return (0..<p.count).map { i in
            let h = 1e-5 * max(1, abs(p[i]))
            q[i] = p[i] + h
            let up = loss(q)
            q[i] = p[i] - h
            let down = loss(q)
            q[i] = p[i]
            return (up - down) / (2 * h)
        }
    }

    /// Σ a·b, the loss L = Σ dy·f(·) whose gradient the backward kernels compute.
    static func dot(_ a: [Double], _ b: [Float]) -> Double {
        var s = 0.0
        for i in 0..<a.count { s += a[i] * Double(b[i]) }
        return s
    }
}

/// An analytic Float32 gradient against central differences: normwise relative
/// error ≤ `tolerance` (scale at least 1e-6).
func expectMatchesNumeric(_ analytic: [Float]?, _ numeric: [Double], _ what: String,
                          tolerance: Double = 1e-3, sourceLocation: SourceLocation = #_sourceLocation) {
    expectNormwiseClose(analytic, numeric, tolerance: tolerance, scaleFloor: 1e-6, what, reference: "numeric",
                        sourceLocation: sourceLocation)
}
