// Plain Float64 references for every forward kernel, written from the math in
// the kernels' doc comments and nothing else: statistics in two passes (the
// mean first, then Σ(x − mean)²), sums compensated (Neumaier) so the reference
// is exact to ~1e-16 even for 1e7 values, no blocking, no SIMD, no pivots.

import Foundation
@testable import NormKernels

enum Reference {
    /// Neumaier's compensated sum.
    struct Sum {
        private var sum = 0.0, compensation = 0.0
        mutating func add(_ x: Double) {
            let t = sum + x
            compensation += abs(sum) >= abs(x) ? (sum - t) + x : (x - t) + sum
            sum = t
        }
        var value: Double { sum + compensation }
    }

    /// Count, mean and Σ(x − mean)² of one set of values, two-pass.
    struct Statistics {
        var count: Int
        var mean: Double
        var m2: Double
        var biasedVariance: Double { m2 / Double(count) }
        var unbiasedVariance: Double { m2 / Double(count - 1) }
    }

    static func statistics(_ values: [Double]) -> Statistics {
        var s = Sum()
        for v in values { s.add(v) }
        let mean = s.value / Double(values.count)
        var d = Sum()
        for v in values { d.add((v - mean) * (v - mean)) }
        return Statistics(count: values.count, mean: mean, m2: d.value)
    }

    /// 1/√(var + ε), ε inside the root.
    static func invStd(_ variance: Double, _ epsilon: Float) -> Double { 1 / (variance + Double(epsilon)).squareRoot() }

    /// A normalized tensor (in the input's memory order) with per-slot statistics.
    struct Normalized {
        var output: [Double]
        var statistics: [Statistics]
        var epsilon: Float
        var mean: [Double] { statistics.map(\.mean) }
        var invStd: [Double] { statistics.map { Reference.invStd($0.biasedVariance, epsilon) } }
        var unbiasedVariance: [Double] { statistics.map(\.unbiasedVariance) }
    }

    /// Statistics per slot (slot(n, c) assigns every element of channel c of sample
    /// n), then `y = γ[c]·(x − μ)/√(σ² + ε) + β[c]`, then max(y, 0) when `relu`.
    static func normalize(_ x: [Float], _ shape: TensorShape, slots: Int, slot: (Int, Int) -> Int,
                          epsilon: Float, scale: [Float]?, bias: [Float]?, relu: Bool = false) -> Normalized {
        var values = [[Double]](repeating: [], count: slots)
        for n in 0..<shape.n {
            for c in 0..<shape.c {
                let k = slot(n, c)
                for s in 0..<shape.spatial { values[k].append(Double(x[shape.offset(n, c, s)])) }
            }
        }
        let stats = values.map(statistics)
        var y = [Double](repeating: .nan, count: x.count)
        for n in 0..<shape.n {
            for c in 0..<shape.c {
                let st = stats[slot(n, c)]
                let r = invStd(st.biasedVariance, epsilon)
                let g = Double(scale?[c] ?? 1), b = Double(bias?[c] ?? 0)
                for s in 0..<shape.spatial {
                    let i = shape.offset(n, c, s)
                    let v = g * (Double(x[i]) - st.mean) * r + b
                    y[i] = relu ? (v < 0 ? 0 : v) : v
                }
            }
        }
        return Normalized(output: y, statistics: stats, epsilon: epsilon)
    }

    /// BatchNorm training: statistics per channel over N·H·W.
    static func batchNorm(_ x: [Float], _ shape: TensorShape, epsilon: Float = 1e-5,
                          scale: [Float]? = nil, bias: [Float]? = nil, relu: Bool = false) -> Normalized {
        normalize(x, shape, slots: shape.c, slot: { _, c in c }, epsilon: epsilon, scale: scale, bias: bias, relu: relu)
    }

    /// BatchNorm (and InstanceNorm) inference: `y = γ·(x − running_mean)/√(running_var + ε) + β`.
    static func inference(_ x: [Float], _ shape: TensorShape, mean: [Float], variance: [Float], epsilon: Float = 1e-5,
                          scale: [Float]? = nil, bias: [Float]? = nil, relu: Bool = false) -> [Double] {
        var y = [Double](repeating: .nan, count: x.count)
        for n in 0..<shape.n {
            for c in 0..<shape.c {
                let r = invStd(Double(variance[c]), epsilon)
                let g = Double(scale?[c] ?? 1), b = Double(bias?[c] ?? 0)
                for s in 0..<shape.spatial {
                    let i = shape.offset(n, c, s)
                    let v = g * (Double(x[i]) - Double(mean[c])) * r + b
                    y[i] = relu ? (v < 0 ? 0 : v) : v
                }
            }
        }
        return y
    }

    /// InstanceNorm training: statistics per (n, c), slot n·C + c.
    static func instanceNorm(_ x: [Float], _ shape: TensorShape, epsilon: Float = 1e-5,
                             scale: [Float]? = nil, bias: [Float]? = nil) -> Normalized {
        normalize(x, shape, slots: shape.n * shape.c, slot: { n, c in n * shape.c + c },
                  epsilon: epsilon, scale: scale, bias: bias)
    }

    /// GroupNorm: statistics per (n, g), slot n·G + g, g = c / (C/G).
    static func groupNorm(_ x: [Float], _ shape: TensorShape, groups: Int, epsilon: Float = 1e-5,
                          scale: [Float]? = nil, bias: [Float]? = nil) -> Normalized {
        let size = shape.c / groups
        return normalize(x, shape, slots: shape.n * groups, slot: { n, c in n * groups + c / size },
                         epsilon: epsilon, scale: scale, bias: bias)
    }

    /// LayerNorm over the trailing `features` values of each row; γ, β per feature.
    static func layerNorm(_ x: [Float], rows: Int, features: Int, epsilon: Float = 1e-5,
                          scale: [Float]? = nil, bias: [Float]? = nil) -> Normalized {
        var y = [Double](repeating: .nan, count: x.count)
        var stats: [Statistics] = []
        for row in 0..<rows {
            let base = row * features
            let st = statistics((0..<features).map { Double(x[base + $0]) })
            stats.append(st)
            let r = invStd(st.biasedVariance, epsilon)
            for i in 0..<features {
                y[base + i] = (Double(x[base + i]) - st.mean) * r * Double(scale?[i] ?? 1) + Double(bias?[i] ?? 0)
            }
        }
        return Normalized(output: y, statistics: stats, epsilon: epsilon)
    }

    /// RMSNorm: `y = x/√(mean(x²) + ε)·γ`; returns y and 1/rms per row.
    static func rmsNorm(_ x: [Float], rows: Int, features: Int, epsilon: Float = .ulpOfOne,
                        scale: [Float]? = nil) -> (output: [Double], invRMS: [Double]) {
        var y = [Double](repeating: .nan, count: x.count)
        var inv: [Double] = []
        for row in 0..<rows {
            let base = row * features
            var s = Sum()
            for i in 0..<features { s.add(Double(x[base + i]) * Double(x[base + i])) }
            let r = 1 / (s.value / Double(features) + Double(epsilon)).squareRoot()
            inv.append(r)
            for i in 0..<features { y[base + i] = Double(x[base + i]) * r * Double(scale?[i] ?? 1) }
        }
        return (y, inv)
    }

    struct AdaIN {
        var output: [Double]
        var contentMean: [Double], contentInvStd: [Double], styleMean: [Double], styleStd: [Double]
    }

    /// AdaIN: `y = σ_y·(x − μ_x)/σ_x + μ_y`, σ = √(var + ε), var biased or unbiased.
    static func adaIN(content x: [Float], _ cs: TensorShape, style: [Float], _ ss: TensorShape,
                      epsilon: Float = 1e-5, unbiased: Bool = false) -> AdaIN {
        func variance(_ s: Statistics) -> Double { unbiased ? s.unbiasedVariance : s.biasedVariance }
        let contentStats = normalize(x, cs, slots: cs.n * cs.c, slot: { n, c in n * cs.c + c },
                                     epsilon: epsilon, scale: nil, bias: nil).statistics
        let styleStats = normalize(style, ss, slots: ss.n * ss.c, slot: { n, c in n * ss.c + c },
                                   epsilon: epsilon, scale: nil, bias: nil).statistics
        let contentInv = contentStats.map { invStd(variance($0), epsilon) }
        let styleStd = styleStats.map { (variance($0) + Double(epsilon)).squareRoot() }
        var y = [Double](repeating: .nan, count: x.count)
        for n in 0..<cs.n {
            for c in 0..<cs.c {
                let k = n * cs.c + c
                for s in 0..<cs.spatial {
                    let i = cs.offset(n, c, s)
                    y[i] = styleStd[k] * (Double(x[i]) - contentStats[k].mean) * contentInv[k] + styleStats[k].mean
                }
            }
        }
        return AdaIN(output: y, contentMean: contentStats.map(\.mean), contentInvStd: contentInv,
                     styleMean: styleStats.map(\.mean), styleStd: styleStd)
    }

    /// Weight normalization `w = g·v/‖v‖`, one norm per index of `dim` (over all
    /// other dimensions) or of the whole tensor when `dim` is nil.
    static func weightNorm(_ v: [Float], shape: [Int], dim: Int?, g: [Float]) -> (weight: [Double], norms: [Double]) {
        // index of dim for flat element i: (i / inner) % size
        let inner = dim.map { shape[($0 + 1)...].reduce(1, *) } ?? v.count
        let size = dim.map { shape[$0] } ?? 1
        var sums = [Sum](repeating: Sum(), count: size)
        for i in v.indices { sums[(i / inner) % size].add(Double(v[i]) * Double(v[i])) }
        let norms = sums.map { $0.value.squareRoot() }
        let w = v.indices.map { i -> Double in
            let k = (i / inner) % size
            return Double(g[k]) * Double(v[i]) / norms[k]
        }
        return (w, norms)
    }

    /// BatchNorm folding: k = γ/√(var + ε), W' = W·k, b' = (b − mean)·k + β.
    static func fold(weight: [Float], bias: [Float]?, outChannels: Int, mean: [Float], variance: [Float],
                     scale: [Float]?, shift: [Float]?, epsilon: Float) -> (weight: [Double], bias: [Double]) {
        let per = weight.count / outChannels
        var w = [Double](repeating: 0, count: weight.count), b = [Double](repeating: 0, count: outChannels)
        for o in 0..<outChannels {
            let k = Double(scale?[o] ?? 1) / (Double(variance[o]) + Double(epsilon)).squareRoot()
            for i in (o * per)..<((o + 1) * per) { w[i] = Double(weight[i]) * k }
            b[o] = (Double(bias?[o] ?? 0) - Double(mean[o])) * k + Double(shift?[o] ?? 0)
        }
        return (w, b)
    }
}
