/// InstanceNorm NHWC on small maps: 8 consecutive channels of one sample are the
/// 8 lanes of a vector, and instance (n, c) is a column of H·W values C apart, so
/// every step of the Welford chain (and of the backward sums and outputs) is one
/// contiguous vector load. The columns geometry treats each sample as an H·W × C
/// matrix and pays its per-matrix and per-column work (partials, Float64
/// merges, a coefficient table) on 2–16 rows: `[64, 1024, 2, 2]` took 2.2 ms
/// forward against PyTorch's 1.8 ms.
///
/// A lane's results depend only on its own column, so they do not depend on the
/// thread count; items (n, 8-channel block) go to workers in fixed chunks.
extension InstanceNormalization {
    /// Longest H·W taken, forward and backward (1–2 threads, two alternating
    /// rounds, docs/PERFORMANCE-HISTORY.md, "InstanceNorm NHWC on small maps, 8
    /// channels per vector"): the forward is 2× faster at 4×4
    /// and 3–4× at 2×2; the backward 1.8× at 2×2 but 0.83× at 4×4, where the
    /// per-instance coefficients (scalar Float64) outweigh the vector loads.
    static let tinyChannelsMaxSpatial = 16
    static let tinyChannelsMaxSpatialBackward = 4

    static func usesTinyChannels(_ shape: TensorShape, backward: Bool = false) -> Bool {
        shape.layout == .nhwc && shape.spatial > 1 && shape.c % 8 == 0
            && shape.spatial <= (backward ? tinyChannelsMaxSpatialBackward : tinyChannelsMaxSpatial)
    }

    /// `body(n, c0)` for every sample n and channel block c0 = 0, 8, …, through
    /// `ChunkSchedule.forEachChunk` over the N·C instances (n·C + c): its 512-instance
    /// chunks hold whole 8-channel blocks because C % 8 == 0.
    func forEachChannelBlock(valuesPerUnit: Int, _ body: (_ n: Int, _ c0: Int) -> Void) {
        let C = shape.c
        ChunkSchedule.forEachChunk(units: shape.n * C, valuesPerUnit: valuesPerUnit, threading: threading) { chunk in
            for first in stride(from: chunk.lowerBound, to: chunk.upperBound, by: 8) { body(first / C, first % C) }
        }
    }

    /// Training forward: Welford over the H·W positions in 8 lanes (x − K, K = the
    /// first position; non-finite lanes redone in Float64), then `y = (x − p)·s + t`
    /// with γ, β folded into s and t, a vector per position.
    func tinyChannelsForwardTraining<E: NormElement>(_ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>,
                                                     gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?,
                                     kept: UnsafeMutablePointer<Moments>?) -> SavedStatistics {
        let hw = shape.spatial, C = shape.c, units = shape.n * C, eps = epsilon
        let saved = SavedStatistics.filling(count: units) { meanBase, invBase in
            let weights = WelfordWeights.table
            forEachChannelBlock(valuesPerUnit: hw) { n, c0 in
                let base = n * hw * C + c0
                let k = E.load8(x + base)
                var m = F8(), s = F8()
                for i in 0..<hw {
                    let (r, q) = WelfordWeights.step(i + 1, weights)
                    welfordStep(E.load8(x + base + i * C) - k, &m, &s, r: r, q: q)
                }
                var p = F8(), scale = F8(), shift = F8()
                for j in 0..<8 {
                    var moments = Moments(count: Double(hw), mean: Double(k[j]) + Double(m[j]), m2: Double(s[j]))
                    if !(moments.mean.isFinite && moments.m2.isFinite) {
                        moments = BlockMoments.columnFloat64(x + base + j, rows: hw, stride: C)
                    }
                    let u = n * C + c0 + j, r = inverseStandardDeviation(moments.biasedVariance, eps)
                    (meanBase + u).initialize(to: moments.mean)
                    (invBase + u).initialize(to: r)
                    kept?[u] = moments
                    let a = AffineCoefficients(mean: moments.mean, invStd: r, gamma: Double(gamma?[c0 + j] ?? 1),
                                               beta: Double(beta?[c0 + j] ?? 0))
                    p[j] = a.pivot; scale[j] = a.scale; shift[j] = a.shift
                }
                // scalar math: y = (x − p)·s + t
                for i in 0..<hw {
                    let o = base + i * C
                    E.store8(muladd(E.load8(x + o) - p, scale, shift), y + o)
                }
            }
        }
        return saved
    }

    /// Backward: Σdy and Σdy·x̂ per lane into `sums[n·C + c]` (Float32 lanes of
    /// ≤ 16 values; non-finite lanes redone by `BlockGradients`), then, with `dx`,
    /// `dx = a·dy + (b·(x − p) + c)` a vector per position, coefficients from
    /// `coefficients(slot, sums)`.
    func tinyChannelsBackward<E: NormElement>(_ x: UnsafePointer<E>, _ dy: UnsafePointer<E>, mean: [Double],
                                              invStd: [Double], dx: UnsafeMutablePointer<E>?, sums: UnsafeMutablePointer<GradientSums>,
                              coefficients: (Int, GradientSums) -> GradientCoefficients) {
        let hw = shape.spatial, C = shape.c
        forEachChannelBlock(valuesPerUnit: 2 * hw) { n, c0 in
            let base = n * hw * C + c0
            var p = F8(), s = F8(), t = F8()
            for j in 0..<8 {
                let u = n * C + c0 + j, a = AffineCoefficients(mean: mean[u], invStd: invStd[u])
                p[j] = a.pivot; s[j] = a.scale; t[j] = a.shift
            }
            var g = F8(), h = F8()
            // scalar math: Σdy, Σdy·x̂ with x̂ = (x − p)·s + t
            for i in 0..<hw {
                let o = base + i * C, d = E.load8(dy + o)
                g += d
                h = muladd(d, muladd(E.load8(x + o) - p, s, t), h)
            }
            var qa = F8(), qb = F8(), qc = F8(), pivot = F8()
            for j in 0..<8 {
                let u = n * C + c0 + j
                var lane = GradientSums(dy: Double(g[j]), dyXhat: Double(h[j]))
                if !lane.isFinite {
                    lane = BlockGradients.segmented(x + base + j, dy + base + j, length: 1, stride: C, segments: hw,
                                                    AffineCoefficients(mean: mean[u], invStd: invStd[u]), mask: nil, gamma: nil)
                }
                sums[u] = lane
                guard dx != nil else { continue }
                let k = coefficients(u, lane)
                pivot[j] = k.pivot; qa[j] = k.a; qb[j] = k.b; qc[j] = k.c
            }
            guard let dx else { return }
            for i in 0..<hw {
                let o = base + i * C
                E.store8(muladd(qa, E.load8(dy + o), muladd(qb, E.load8(x + o) - pivot, qc)), dx + o)
            }
        }
    }
}
