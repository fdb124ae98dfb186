// The first pass of GroupNorm + SiLU's backward (`GroupNormalization+SiLUBackward.swift`):
// per element, z recomputed from x, then g = dy·silu′(z)·m; per (n, c), A = Σ dz
// and B = Σ dz·x̂ when asked for. x and dy have the tensors' element type
// (widened exactly on load); g and the sums are Float32/Float64 for every type.
// On a CPU with AVX-512 the vector loops run 16 lanes at a time in C
// (`SiLUWide.swift`), with the same bits.

import CNormSupport

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
    /// Rows per NHWC work item (and per Float32 partial sum).
    static let rowBlock = 256

    init(shape: TensorShape, groups: Int, mean: [Double], invStd: [Double],
         gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, modulation: SiLUModulation,
         in workspace: Arena) {
        self.shape = shape
        let count = shape.n * shape.c, size = shape.c / groups
        let all = workspace.take(Float.self, count: 6 * count)
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

    /// g (when not nil) and the sums (A, B) per (n, c) (when not nil); NHWC
    /// block partials from `workspace`.
    func run<E: NormElement>(x: UnsafePointer<E>, dy: UnsafePointer<E>, g: UnsafeMutablePointer<Float>?,
             sums: UnsafeMutablePointer<SIMD2<Double>>?, threading: Threading, workspace: Arena) {
        let hw = shape.spatial, channels = shape.c
        if shape.layout == .nchw || hw == 1 {
            Parallel.forEach(count: shape.n * channels, elementsPerItem: hw, threading: threading) { range in
                for k in range {
                    let o = k * hw
                    let s = self.channel(x + o, dy + o, g.map { $0 + o }, hw, k, wantSums: sums != nil)
                    sums?[k] = s
                }
            }
            return
        }
        // NHWC: blocks of `rowBlock` rows of one sample, swept in memory order;
        // each block's per-channel sums go to its own slot, merged per (n, c)
        // down the blocks in order afterwards (the same for any thread count).
        let rowBlock = SiLUGradientPass.rowBlock, blocks = (hw + rowBlock - 1) / rowBlock
        let partials: UnsafeMutablePointer<SIMD2<Double>>? = sums != nil
            ? workspace.take(SIMD2<Double>.self, count: shape.n * blocks * channels) : nil
        Parallel.forEach(count: shape.n * blocks, elementsPerItem: rowBlock * channels, threading: threading) { range in
            for item in range {
                let n = item / blocks, first = (item - n * blocks) * rowBlock
                self.rows(x, dy, g, partials.map { $0 + item * channels }, sample: n, first: first,
                          count: min(rowBlock, hw - first))
            }
        }
        if let sums, let partials {
            for n in 0..<shape.n {
                for c in 0..<channels {
                    var total = SIMD2<Double>()
                    for block in 0..<blocks { total += partials[(n * blocks + block) * channels + c] }
                    sums[n * channels + c] = total
                }
            }
        }
    }

    /// One (n, c) run of `count` contiguous values (NCHW), slot k. Returns (A, B).
    /// Out of line, as `rows`: its own registers, not the caller's closure context.
    /// (Also the 16-bit unit loop's first step, `GroupNormalization+SiLUBackwardUnits.swift`.)
    @inline(never)
    func channel<E: NormElement>(_ x: UnsafePointer<E>, _ dy: UnsafePointer<E>, _ g: UnsafeMutablePointer<Float>?,
                     _ count: Int, _ k: Int, wantSums: Bool) -> SIMD2<Double> {
        let p = F8(repeating: pivot[k]), s = F8(repeating: zScale[k]), t = F8(repeating: zShift[k])
        let r = F8(repeating: hatScale[k]), h = F8(repeating: hatShift[k]), m = F8(repeating: multiplier[k])
        var total = SIMD2<Double>()
        var start = 0
        while start < count {
            let n = min(SiLUGradientPass.chunk, count - start)
            var a = F8(), b = F8(), i = start
            if n >= 16, let code = SiLUWide.enabled(E.self) {
                // AVX-512: the two-vector loop below, 16 lanes at a time in C
                // (SiLUWide.swift; the same bits, A and B summed in the same order).
                let steps = n / 16 * 16
                var acc = SIMD16<Float>(lowHalf: a, highHalf: b)
                var table = F8(pivot[k], zScale[k], zShift[k], hatScale[k], hatShift[k], multiplier[k], 0, 0)
                withUnsafeMutableBytes(of: &acc) { accumulators in
                    withUnsafeBytes(of: &table) { coefficients in
                        nk_silu512_gradient_run(x + i, dy + i, g.map { $0 + i }, steps,
                                                coefficients.baseAddress!.assumingMemoryBound(to: Float.self),
                                                code, wantSums ? 1 : 0,
                                                accumulators.baseAddress!.assumingMemoryBound(to: Float.self))
                    }
                }
                a = acc.lowHalf; b = acc.highHalf
                i += steps
            }
            // scalar math: z = (x − p)·s + t, dz = dy·silu′(z), g = dz·m, A += dz, B += dz·((x − p)·r + h)
            // (written out twice, vector loop and tail: as a nested function the
            // loop's accumulators went through memory.)
            while i + 16 <= start + n {
                // Two vectors per step (their divisions overlap), summed in the
                // order of the one-vector loop below.
                let d0 = E.load8(x + i) - p, dz0 = siluGradient8(muladd(d0, s, t), E.load8(dy + i))
                let d1 = E.load8(x + i + 8) - p, dz1 = siluGradient8(muladd(d1, s, t), E.load8(dy + i + 8))
                if wantSums {
                    a += dz0; b = muladd(dz0, muladd(d0, r, h), b)
                    a += dz1; b = muladd(dz1, muladd(d1, r, h), b)
                }
                if let g { store8(dz0 * m, g + i); store8(dz1 * m, g + i + 8) }
                i += 16
            }
            while i + 8 <= start + n {
                let d = E.load8(x + i) - p, dz = siluGradient8(muladd(d, s, t), E.load8(dy + i))
                if wantSums { a += dz; b = muladd(dz, muladd(d, r, h), b) }
                if let g { store8(dz * m, g + i) }
                i += 8
            }
            if i < start + n {
                // The tail in the lanes of one vector, padded with dy = 0 (adds 0 to the sums).
                var xv = F8(), dv = F8()
                for l in 0..<(start + n - i) { xv[l] = E.widen(x[i + l]); dv[l] = E.widen(dy[i + l]) }
                let d = xv - p, dz = siluGradient8(muladd(d, s, t), dv)
                if wantSums { a += dz; b = muladd(dz, muladd(d, r, h), b) }
                let v = dz * m
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
    private func float64Sums<E: NormElement>(_ x: UnsafePointer<E>, _ dy: UnsafePointer<E>, _ count: Int, _ k: Int,
                             stride: Int = 1) -> SIMD2<Double> {
        var total = SIMD2<Double>()
        for i in 0..<count {
            let d = E.widen(x[i * stride]) - pivot[k]
            let dz = siluGradient8(F8(repeating: muladd(d, zScale[k], zShift[k])),
                                   F8(repeating: E.widen(dy[i * stride])))[0]
            let hat = muladd(d, hatScale[k], hatShift[k])
            total += SIMD2(Double(dz), Double(dz) * Double(hat))
        }
        return total
    }

    /// NHWC: rows first ..< first + count of sample n, all C channels, in
    /// memory order; the block's sums per channel into `partial` (C slots).
    /// Whole vectors of channels in Float32 vectors, then Float64 (redone in
    /// Float64 on overflow); the last C % 8 channels one value at a time.
    @inline(never)
    private func rows<E: NormElement>(_ x: UnsafePointer<E>, _ dy: UnsafePointer<E>, _ g: UnsafeMutablePointer<Float>?,
                      _ partial: UnsafeMutablePointer<SIMD2<Double>>?, sample n: Int, first: Int, count: Int) {
        let channels = shape.c, vectors = channels / 8, full = vectors * 8
        let base = (n * shape.spatial + first) * channels, k0 = n * channels
        let wantSums = partial != nil
        // The accumulators from the thread's scratch (`withScratch`): a block's
        // call must not touch the heap.
        withScratch(of: F8.self, capacity: max(1, 2 * vectors)) { lanes in
            withScratch(of: SIMD2<Double>.self, capacity: max(1, channels - full)) { tailBuffer in
                let a = lanes.baseAddress!, b = a + vectors, tail = tailBuffer.baseAddress!
                a.initialize(repeating: F8(), count: 2 * vectors)
                tail.initialize(repeating: SIMD2(), count: channels - full)
                let wide = full > 0 ? SiLUWide.enabled(E.self) : nil
                if let code = wide {
                    // AVX-512: the vector loop below for every row of the block, 16
                    // channels at a time in C (SiLUWide.swift; the same bits, each
                    // channel's lanes summed row by row as here).
                    let lanes = UnsafeMutableRawPointer(a).assumingMemoryBound(to: Float.self)
                    nk_silu512_gradient_rows(x + base, dy + base, g.map { $0 + base }, count, full, channels,
                                             pivot + k0, zScale + k0, zShift + k0, hatScale + k0, hatShift + k0,
                                             multiplier + k0, code, wantSums ? 1 : 0, lanes, lanes + full)
                }
                for row in 0..<count {
                    let o = base + row * channels
                    for v in 0..<(wide == nil ? vectors : 0) {
                        let j = 8 * v, k = k0 + j
                        // scalar math: as `run`
                        let d = E.load8(x + o + j) - load8(pivot + k)
                        let dz = siluGradient8(muladd(d, load8(zScale + k), load8(zShift + k)), E.load8(dy + o + j))
                        if let g { store8(dz * load8(multiplier + k), g + o + j) }
                        if wantSums {
                            a[v] += dz
                            b[v] = muladd(dz, muladd(d, load8(hatScale + k), load8(hatShift + k)), b[v])
                        }
                    }
                    for j in full..<channels {
                        let k = k0 + j, d = E.widen(x[o + j]) - pivot[k]
                        let dz = siluGradient8(F8(repeating: muladd(d, zScale[k], zShift[k])),
                                               F8(repeating: E.widen(dy[o + j])))[0]
                        g?[o + j] = dz * multiplier[k]
                        if wantSums { tail[j - full] += SIMD2(Double(dz), Double(dz) * Double(muladd(d, hatScale[k], hatShift[k]))) }
                    }
                }
                guard let partial else { return }
                for j in 0..<full {
                    let v = j / 8, l = j % 8
                    var sum = SIMD2(Double(a[v][l]), Double(b[v][l]))
                    if !(sum[0].isFinite && sum[1].isFinite) {
                        sum = float64Sums(x + base + j, dy + base + j, count, k0 + j, stride: channels)
                    }
                    partial[j] = sum
                }
                for j in full..<channels { partial[j] = tail[j - full] }
            }
        }
    }
}
