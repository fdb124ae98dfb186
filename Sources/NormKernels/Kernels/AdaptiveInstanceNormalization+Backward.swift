extension AdaptiveInstanceNormalization {
    /// Gradients of `forward` with respect to the content `x` and the style `y`
    /// (through μ_y and σ_y); pass only the gradient buffers you want.
    ///
    /// Per (n, c), with M = content H·W, S = style H·W, and M′, S′ = M, S (biased)
    /// or M − 1, S − 1 (`unbiasedVariance`); μ_x, r = 1/σ_x, μ_y, σ_y from `saved`:
    /// ```
    /// x̂ = (x − μ_x)·r,   out = σ_y·x̂ + μ_y
    /// dμ_y = Σ dout,   dσ_y = Σ dout·x̂
    /// dx  = σ_y·r·(dout − dμ_y/M − x̂·dσ_y/M′)
    /// dy  = dμ_y/S + dσ_y·(y − μ_y)/(S′·σ_y)          (∂σ_y/∂y = (y − μ_y)/(S′·σ_y), ε inside σ_y)
    /// ```
    /// Both are `a·dout + b·(v − p) + c` per (n, c), p = Float(mean), as in
    /// InstanceNorm backward. Sums are per block in Float32 lanes, merged in Float64
    /// fixed trees: bitwise identical for any thread count.
    ///
    /// **Memory passes**: reads the content and `gradOutput` twice with
    /// `gradContent` (once with only `gradStyle`), writes dcontent once; reads the
    /// style once and writes dstyle once.
    ///
    /// **Aliasing**: `gradContent` may be `content` or `gradOutput`, `gradStyle` may
    /// be `style` (in place); no other sharing. Throws before writing anything.
    public func backward(
        content input: UnsafeBufferPointer<Float>, style styleInput: UnsafeBufferPointer<Float>,
        gradOutput: UnsafeBufferPointer<Float>, saved: Saved,
        gradContent: UnsafeMutableBufferPointer<Float>? = nil,
        gradStyle: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardElements(content: input, style: styleInput, gradOutput: gradOutput, saved: saved,
                             gradContent: gradContent, gradStyle: gradStyle)
    }

    /// The backward of every element type: the checks, then the passes
    /// specialized for `E`.
    @inline(__always)
    func backwardElements<E: NormElement>(
        content input: UnsafeBufferPointer<E>, style styleInput: UnsafeBufferPointer<E>,
        gradOutput: UnsafeBufferPointer<E>, saved: Saved,
        gradContent: UnsafeMutableBufferPointer<E>?, gradStyle: UnsafeMutableBufferPointer<E>?
    ) throws {
        let slots = content.n * content.c
        try Check.length(input.count, content.count, "content")
        try Check.length(styleInput.count, style.count, "style")
        try Check.length(gradOutput.count, content.count, "gradOutput")
        try Check.saved(saved.contentMean, slots, "saved.contentMean")
        try Check.saved(saved.contentInvStd, slots, "saved.contentInvStd")
        try Check.saved(saved.styleMean, slots, "saved.styleMean")
        try Check.saved(saved.styleStd, slots, "saved.styleStd")
        try Check.length(gradContent, content.count, "gradContent")
        try Check.length(gradStyle, style.count, "gradStyle")
        try Check.buffers(
            writes: [("gradContent", MemorySpan(gradContent)), ("gradStyle", MemorySpan(gradStyle))],
            reads: [("content", MemorySpan(input)), ("style", MemorySpan(styleInput)), ("gradOutput", MemorySpan(gradOutput))],
            inPlace: [("gradContent", "content"), ("gradContent", "gradOutput"), ("gradStyle", "style")])
        let x = try Check.base(input, "content"), ys = try Check.base(styleInput, "style")
        let dy = try Check.base(gradOutput, "gradOutput")
        let dx = gradContent?.baseAddress, dstyle = gradStyle?.baseAddress
        guard dx != nil || dstyle != nil else { return }

        let m = Double(content.spatial), mPrime = unbiasedVariance ? m - 1 : m
        let s = Double(style.spatial), sPrime = unbiasedVariance ? s - 1 : s
        let contentMean = saved.contentMean, contentInvStd = saved.contentInvStd
        let styleMean = saved.styleMean, styleStd = saved.styleStd
        let workspace = contentPlan.workspace.take()
        defer { contentPlan.workspace.recycle(workspace) }
        let xhat = CoefficientTable(count: slots, in: workspace)
        for i in 0..<slots { xhat[i] = AffineCoefficients(mean: contentMean[i], invStd: contentInvStd[i]) }
        let sums = SlotBuffer(count: slots, initial: GradientSums.zero, in: workspace)
        let table: GradientTable? = dx != nil ? GradientTable(count: slots, in: workspace) : nil
        channelGroupsBackward(contentPlan, x: x, dy: dy, xhat: xhat, channelSums: sums.base,
                              table: table, dx: dx, workspace: workspace) { slot, slotSums in
            guard let table else { return }
            let gain = styleStd[slot], r = contentInvStd[slot], sum = slotSums[0]
            table[slot] = GradientCoefficients(mean: contentMean[slot], invStd: r, a: gain * r,
                                               m1: gain * sum.dy / m, m2: gain * sum.dyXhat / mPrime)
        }

        guard let dstyle else { return }
        // dy_style = dμ/S + b·(y − μ_y) = b·(y − p) + (dμ/S + b·(p − μ_y)),  b = dσ/(S′·σ_y)
        let styleTable = GradientTable(count: slots, in: workspace)
        for i in 0..<slots {
            let b = sums[i].dyXhat / (sPrime * styleStd[i])
            let p = Float(styleMean[i])
            styleTable[i] = GradientCoefficients(pivot: p, a: 0, b: Float(b),
                                                 c: Float(sums[i].dy / s + b * (Double(p) - styleMean[i])))
        }
        let channels = style.c
        // The style's backward geometry (NHWC: columns, NCHW: one unit per (n, c)).
        switch stylePlan.backward {
        case .columns(let g):
            g.apply(threading: threading) { n, first, rows in
                let o = n * g.matrixElements + first * channels
                BlockGradients.applyColumns(x: ys + o, dy: nil as UnsafePointer<E>?, mask: nil, dstyle + o, rows: rows,
                                            columns: channels, stride: channels, table: styleTable, slot: n * channels)
            }
        case .rows(let g):
            g.apply(threading: threading) { b in
                BlockGradients.apply(x: ys + b.offset, dy: nil as UnsafePointer<E>?, mask: nil, gamma: nil,
                                     dstyle + b.offset, b.count, styleTable[b.unit])
            }
        }
    }
}
