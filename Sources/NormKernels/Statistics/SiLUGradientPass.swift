// The first pass of GroupNorm + SiLU's backward (`GroupNormalization+SiLUBackward.swift`):
// per element, z recomputed from x, then g = dy·silu′(z)·m; per (n, c), A = Σ dz
// and B = Σ dz·x̂ when asked for.

/// Per-(n, c) coefficients of the pass, as Float32 arrays (struct of arrays, so
/// NHWC rows load 8 channels' coefficients per vector):
/// z = (x − p)·zScale + zShift (the forward's folded coefficients),
/// x̂ = (x − p)·r + t (per group), and m = 1 + scale.
struct SiLUGradientPass {
    let shape: TensorShape
    let pivot: UnsafeMutablePointer<Float>
    let zScale: UnsafeMutablePointer<Float>
    let zShift: UnsafeMutablePointer<Float>
    let hatScale: UnsafeMutablePointer<Float>
    let hatShift: UnsafeMutablePointer<Float>
    let multiplier: UnsafeMutablePointer<Float>

    /// Values per Float32 partial sum before it joins the Float64 total.
    static let chunk = 1024
    /// Channels per NHWC work item (one item = one sample's channel block over all rows).
    static let channelBlock = 64

    init(shape: TensorShape, groups: Int, mean: [Double], invStd: [Double],
         gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, modulation: SiLUModulation) {
        self.shape = shape
        let count = shape.n * shape.c, size = shape.c / groups
        let all = UnsafeMutablePointer<Float>.allocate(capacity: 6 * count)
        pivot = all; zScale = all + count; zShift = all + 2 * count
        hatScale = all + 3 * count; hatShift = all + 4 * count; multiplier = all + 5 * count
        for k in 0..<count {
            let n = k / shape.c, c = k - n * shape.c, slot = n * groups + c / size
            let z = modulation.coefficients(mean: mean[slot], invStd: invStd[slot], gamma: gamma, beta: beta,
                                            channel: c, slot: k)
            let hat = AffineCoefficients(mean: mean[slot], invStd: invStd[slot])
            pivot[k] = z.pivot; zScale[k] = z.scale; zShift[k] = z.shift
            hatScale[k] = hat.scale; hatShift[k] = hat.shift; multiplier[k] = modulation.multiplier(k)
        }
    }

    func deallocate() { pivot.deallocate() }

    /// g (when not nil) and the sums (A, B) per (n, c) (when not nil).
    func run(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, g: UnsafeMutablePointer<Float>?,
             sums: UnsafeMutablePointer<SIMD2<Double>>?, threading: Threading) {
        let hw = shape.spatial, channels = shape.c
        if shape.layout == .nchw || hw == 1 {
            Parallel.forEach(count: shape.n * channels, elementsPerItem: hw, threading: threading) { range in
                for k in range {
                    let o = k * hw
                    let s = self.run(x + o, dy + o, g.map { $0 + o }, hw, k, wantSums: sums != nil)
                    sums?[k] = s
                }
            }
            return
        }
        let block = SiLUGradientPass.channelBlock, blocks = (channels + block - 1) / block
        Parallel.forEach(count: shape.n * blocks, elementsPerItem: hw * min(block, channels), threading: threading) { range in
            for item in range {
                let n = item / blocks, first = (item - n * blocks) * block
                self.columns(x, dy, g, sums, sample: n, first: first, width: min(block, channels - first))
            }
        }
    }

    /// One (n, c) run of `count` contiguous values (NCHW), slot k. Returns (A, B).
    @inline(__always)
    private func run(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>?,
                     _ count: Int, _ k: Int, wantSums: Bool) -> SIMD2<Double> {
        let p = F8(repeating: pivot[k]), s = F8(repeating: zScale[k]), t = F8(repeating: zShift[k])
        let r = F8(repeating: hatScale[k]), h = F8(repeating: hatShift[k]), m = F8(repeating: multiplier[k])
        var total = SIMD2<Double>()
        var start = 0
        while start < count {
            let n = min(SiLUGradientPass.chunk, count - start)
            var a = F8(), b = F8(), i = start
            // scalar math: z = (x − p)·s + t, dz = dy·silu′(z), g = dz·m, A += dz, B += dz·((x − p)·r + h)
            @inline(__always) func step(_ xv: F8, _ dv: F8) -> F8 {
                let d = xv - p, dz = siluGradient8(muladd(d, s, t), dv)
                if wantSums { a += dz; b = muladd(dz, muladd(d, r, h), b) }
                return dz * m
            }
            while i + 8 <= start + n {
                let v = step(load8(x + i), load8(dy + i))
                if let g { store8(v, g + i) }
                i += 8
            }
            if i < start + n {
                // The tail in the lanes of one vector, padded with dy = 0 (adds 0 to the sums).
                var xv = F8(), dv = F8()
                for l in 0..<(start + n - i) { xv[l] = x[i + l]; dv[l] = dy[i + l] }
                let v = step(xv, dv)
                if let g { for l in 0..<(start + n - i) { g[i + l] = v[l] } }
            }
            if wantSums {
                var partial = SIMD2(laneSum64(a), laneSum64(b))
                if !(partial[0].isFinite && partial[1].isFinite) {
                    partial = float64Sums(x + start, dy + start, n, k)
                }
                total += partial
            }
            start += n
        }
        return total
    }

    /// The sums of `count` values of slot k (stride `stride`) in Float64, when the
    /// Float32 lanes overflowed.
    private func float64Sums(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ count: Int, _ k: Int,
                             stride: Int = 1) -> SIMD2<Double> {
        var total = SIMD2<Double>()
        for i in 0..<count {
            let d = x[i * stride] - pivot[k]
            let dz = siluGradient8(F8(repeating: muladd(d, zScale[k], zShift[k])), F8(repeating: dy[i * stride]))[0]
            let hat = muladd(d, hatScale[k], hatShift[k])
            total += SIMD2(Double(dz), Double(dz) * Double(hat))
        }
        return total
    }

    /// NHWC: channels first ..< first + width of sample n over all H·W rows, rows
    /// in order; the sums in Float32 per 1024 rows, then Float64.
    private func columns(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ g: UnsafeMutablePointer<Float>?,
                         _ sums: UnsafeMutablePointer<SIMD2<Double>>?, sample n: Int, first: Int, width: Int) {
        let hw = shape.spatial, channels = shape.c, base = n * hw * channels + first, k0 = n * channels + first
        let wantSums = sums != nil
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * width) { acc in
            let a = acc.baseAddress!, b = a + width
            if let sums { for j in 0..<width { sums[k0 + j] = SIMD2() } }
            var start = 0
            while start < hw {
                let rows = min(SiLUGradientPass.chunk, hw - start)
                if wantSums { a.initialize(repeating: 0, count: 2 * width) }
                for row in start..<(start + rows) {
                    let o = base + row * channels
                    var j = 0
                    while j < width {
                        let lanes = min(8, width - j), k = k0 + j
                        let xv: F8, dv: F8
                        if lanes == 8 {
                            xv = load8(x + o + j); dv = load8(dy + o + j)
                        } else {
                            var xs = F8(), ds = F8()
                            for l in 0..<lanes { xs[l] = x[o + j + l]; ds[l] = dy[o + j + l] }
                            xv = xs; dv = ds
                        }
                        let d = xv - padded(pivot + k, lanes)
                        let dz = siluGradient8(muladd(d, padded(zScale + k, lanes), padded(zShift + k, lanes)), dv)
                        let v = dz * padded(multiplier + k, lanes)
                        if let g {
                            if lanes == 8 { store8(v, g + o + j) } else { for l in 0..<lanes { g[o + j + l] = v[l] } }
                        }
                        if wantSums {
                            let hat = muladd(d, padded(hatScale + k, lanes), padded(hatShift + k, lanes))
                            var av = padded(a + j, lanes), bv = padded(b + j, lanes)
                            av += dz
                            bv = muladd(dz, hat, bv)
                            for l in 0..<lanes { a[j + l] = av[l]; b[j + l] = bv[l] }
                        }
                        j += 8
                    }
                }
                if let sums {
                    for j in 0..<width {
                        var partial = SIMD2(Double(a[j]), Double(b[j]))
                        if !(partial[0].isFinite && partial[1].isFinite) {
                            partial = float64Sums(x + base + start * channels + j, dy + base + start * channels + j,
                                                  rows, k0 + j, stride: channels)
                        }
                        sums[k0 + j] += partial
                    }
                }
                start += rows
            }
        }
    }
}

/// `lanes` values from p in a vector, the rest 0 (a full load when lanes = 8).
@inline(__always)
private func padded(_ p: UnsafePointer<Float>, _ lanes: Int) -> F8 {
    if lanes == 8 { return load8(p) }
    var v = F8()
    for l in 0..<lanes { v[l] = p[l] }
    return v
}

@inline(__always)
private func padded(_ p: UnsafeMutablePointer<Float>, _ lanes: Int) -> F8 { padded(UnsafePointer(p), lanes) }
