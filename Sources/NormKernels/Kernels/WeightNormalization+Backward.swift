extension WeightNormalization {
    /// Gradients of `forward` (w = g·v/‖v‖) with respect to `v` and `g`, given the
    /// upstream gradient dw and the norms `forward` returned; pass only the gradient
    /// buffers you want.
    ///
    /// Per index i of `dim` (n = ‖v_i‖):
    /// ```
    /// dg[i] = Σ dw · v / n
    /// dv    = (g/n)·(dw − (dg/n)·v)  =  (g/n)·dw − (g·dg/n²)·v
    /// ```
    /// (from ∂w_j/∂v_k = g·(δ_jk/n − v_j·v_k/n³); PyTorch's `_weight_norm_interface_backward`).
    /// dg is formed per block in Float32 lanes and merged in Float64 in a fixed tree:
    /// bitwise identical for any thread count. A zero `v` slice gives NaN, as forward.
    ///
    /// **Memory passes**: reads `v` and `dw` twice with `gradV` (the second from cache
    /// when an index's slice fits in L2) and writes dv once; `gradG` alone is one pass.
    /// `gradV` may be `v` or `gradWeight` (in place); `gradG` may be `g`.
    public func backward(
        v: UnsafeBufferPointer<Float>, g: UnsafeBufferPointer<Float>, gradWeight: UnsafeBufferPointer<Float>,
        norms: [Double], gradV: UnsafeMutableBufferPointer<Float>? = nil,
        gradG: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardElements(v: v, g: g, gradWeight: gradWeight, norms: norms, gradV: gradV, gradG: gradG)
    }

    /// The backward of every element type: the checks, then the passes specialized for `E`.
    @inline(__always)
    func backwardElements<E: NormElement>(
        v: UnsafeBufferPointer<E>, g: UnsafeBufferPointer<Float>, gradWeight: UnsafeBufferPointer<E>,
        norms: [Double], gradV: UnsafeMutableBufferPointer<E>?, gradG: UnsafeMutableBufferPointer<Float>?
    ) throws {
        try Check.length(v.count, count, "v")
        try Check.length(g.count, size, "g")
        try Check.length(gradWeight.count, count, "gradWeight")
        try Check.saved(norms, size, "norms")
        try Check.length(gradV, count, "gradV")
        try Check.length(gradG, size, "gradG")
        try Check.buffers(
            writes: [("gradV", MemorySpan(gradV)), ("gradG", MemorySpan(gradG))],
            reads: [("v", MemorySpan(v)), ("gradWeight", MemorySpan(gradWeight)), ("g", MemorySpan(g))],
            inPlace: [("gradV", "v"), ("gradV", "gradWeight"), ("gradG", "g")])
        let x = try Check.base(v, "v"), dw = try Check.base(gradWeight, "gradWeight")
        let dv = gradV?.baseAddress
        guard dv != nil || gradG != nil else { return }
        // g may be gradG (in place): it is read in the pass, gradG written after it.
        let gains = g
        let workspace = self.workspace.take()
        defer { self.workspace.recycle(workspace) }
        let xhat = CoefficientTable(count: size, in: workspace)
        for i in 0..<size { xhat[i] = AffineCoefficients(pivot: 0, scale: Float(1 / norms[i]), shift: 0) }
        let dg = SlotBuffer(count: size, initial: 0.0, in: workspace)
        let table: GradientTable? = dv != nil ? GradientTable(count: size, in: workspace) : nil
        let geometry = self.geometry   // the forward's blocks (short runs grouped)
        geometry.reduceThenApply(
            threading: threading, workspace: workspace,
            reduce: { b in
                BlockGradients.segmented(x + b.offset, dw + b.offset, length: b.count, stride: geometry.segmentStride,
                                         segments: b.segmentCount, xhat[b.unit], mask: nil, gamma: nil)
            },
            finalize: { i, parts in
                let d = GradientSums.treeSum(parts).dyXhat
                dg[i] = d
                if let table {
                    let n = norms[i], gain = Double(gains[i])
                    table[i] = GradientCoefficients(pivot: 0, a: Float(gain / n), b: Float(-gain * d / (n * n)), c: 0)
                }
            },
            writesOutput: dv != nil,
            apply: { b in
                BlockGradients.apply(x: x + b.offset, dy: dw + b.offset, mask: nil, gamma: nil,
                                     dv! + b.offset, b.count, table![b.unit])
            })
        if let gradG { for i in 0..<size { gradG[i] = Float(dg[i]) } }
    }
}
