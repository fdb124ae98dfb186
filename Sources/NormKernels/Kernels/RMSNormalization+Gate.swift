// RMSNorm × gate (issue 21), the input of a gated MLP in one pass:
//
//     z = RMSNorm(x)·γ,    y = z ⊙ gate          (gate: a tensor of x's shape)
//
// Forward: `normalizeRowsFused` with `PlainRows` and `GateEpilogue`: one
// Float32 multiply of the rounded z, so y equals the plain RMSNorm forward
// followed by `y ⊙ gate` bit for bit, for any thread count; z is never stored.
//
// Backward, with x̂ = x·r (r = 1/rms, saved):
//
//     d gate = dy ⊙ z      (z re-formed from x and r exactly as the forward formed it)
//     g      = dy ⊙ gate   (the gradient reaching RMSNorm's output)
//     dx, dγ = the plain RMSNorm backward with g as its dy
//
// With many row blocks, each block's g goes to the worker's block scratch,
// formed right before the engine reads it (eight rows at a time in the
// short-row sweep, `BlockwiseRowBackward`): x, dy and the gate read once, d gate
// and dx written once, g and x read back from L1. Otherwise one pass
// (`gateRows`) reads x, dy and the gate and writes d gate and g (into
// gradInput's memory when it may hold it, so no workspace), then the plain row
// backward runs on x and g, writing dx over g in place.
//
// 16-bit tensors (x, gate, y, dy, dx, d gate in `Float16`/`BFloat16`): z is
// rounded once to the element type before the multiply, in the forward and in
// d gate, and g is stored rounded — our unfused sequence (plain 16-bit
// RMSNorm, then a 16-bit multiply) and PyTorch's composed `rms_norm(x) * gate`
// bit for bit, each product computed in Float32 and rounded once.

extension RMSNormalization {
    /// RMSNorm × gate: `output = (RMSNorm(input)·γ) ⊙ gate`. Returns 1/rms of each
    /// row of `input` in `invStd`.
    ///
    /// The output equals, bit for bit and for any thread count,
    /// ``forward(input:output:scale:)-(UnsafeBufferPointer<Float>,_,_)`` followed by
    /// an elementwise Float32 multiply by `gate`.
    ///
    /// **Memory passes**: the plain forward's, plus one read of `gate` in the
    /// output pass.
    ///
    /// **Aliasing**: `output` may be exactly `input` or exactly `gate`; any other
    /// overlap of `output` throws. `input` and `gate` may share memory.
    /// Throws before writing anything on a wrong length or a forbidden overlap.
    @discardableResult
    public func forward(
        input: UnsafeBufferPointer<Float>, gate: UnsafeBufferPointer<Float>,
        output: UnsafeMutableBufferPointer<Float>, scale: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try gatedForward(input: input, gate: gate, output: output, scale: scale)
    }

    /// The gated forward on any element type (validation, then the fused engine).
    func gatedForward<E: NormElement>(
        input: UnsafeBufferPointer<E>, gate: UnsafeBufferPointer<E>,
        output: UnsafeMutableBufferPointer<E>, scale: UnsafeBufferPointer<Float>?
    ) throws -> SavedStatistics {
        let total = rows * features
        try Check.length(input.count, total, "input")
        try Check.length(gate.count, total, "gate")
        try Check.length(output.count, total, "output")
        try Check.length(scale, features, "scale (γ)")
        try Check.buffers(
            writes: [("output", MemorySpan(output))],
            reads: [("input", MemorySpan(input)), ("gate", MemorySpan(gate)), ("scale (γ)", MemorySpan(scale))],
            inPlace: [("output", "input"), ("output", "gate")])
        let x = try Check.base(input, "input"), g = try Check.base(gate, "gate")
        let y = try Check.base(output, "output")
        return normalizeRowsFused(forwardPlan, PlainRows(x: x), y, epsilon: epsilon, gamma: scale?.baseAddress,
                                  beta: nil, GateEpilogue(gate: g),
                                  streaming: forwardPlan.store.streaming(output: y, reading: x, g))
    }

    /// Gradients of the gated forward: `gradGate` = dy ⊙ (RMSNorm(x)·γ), and
    /// `gradInput`, `gradScale` as the plain backward given dy ⊙ gate.
    ///
    /// **Memory passes**: with many row blocks (rows of ≤ 4096 values), one pass
    /// reading `input`, `gradOutput` and `gate` and writing `gradGate` and dx;
    /// else one pass reading them and writing `gradGate` and dy ⊙ gate, then the
    /// plain backward's.
    ///
    /// **Aliasing**: `gradInput` may be exactly `gradOutput` or `input`;
    /// `gradGate` may be exactly `gate` or `gradOutput` (not both outputs over
    /// the same input). Other outputs share nothing. Throws before writing anything.
    public func backward(
        input: UnsafeBufferPointer<Float>, gate: UnsafeBufferPointer<Float>,
        gradOutput: UnsafeBufferPointer<Float>, saved: SavedStatistics,
        scale: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float>? = nil,
        gradGate: UnsafeMutableBufferPointer<Float>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try gatedBackward(input: input, gate: gate, gradOutput: gradOutput, saved: saved, scale: scale,
                          gradInput: gradInput, gradGate: gradGate, gradScale: gradScale)
    }

    /// The gated backward on any element type.
    func gatedBackward<E: NormElement>(
        input: UnsafeBufferPointer<E>, gate: UnsafeBufferPointer<E>,
        gradOutput: UnsafeBufferPointer<E>, saved: SavedStatistics, scale: UnsafeBufferPointer<Float>?,
        gradInput: UnsafeMutableBufferPointer<E>?, gradGate: UnsafeMutableBufferPointer<E>?,
        gradScale: UnsafeMutableBufferPointer<Float>?
    ) throws {
        let total = rows * features
        try Check.length(input.count, total, "input")
        try Check.length(gate.count, total, "gate")
        try Check.length(gradOutput.count, total, "gradOutput")
        try Check.saved(saved.invStd, rows, "saved.invStd")
        try Check.length(scale, features, "scale (γ)")
        try Check.length(gradInput, total, "gradInput")
        try Check.length(gradGate, total, "gradGate")
        try Check.length(gradScale, features, "gradScale (dγ)")
        try Check.buffers(
            writes: [("gradInput", MemorySpan(gradInput)), ("gradGate", MemorySpan(gradGate)),
                     ("gradScale", MemorySpan(gradScale))],
            reads: [("input", MemorySpan(input)), ("gate", MemorySpan(gate)), ("gradOutput", MemorySpan(gradOutput)),
                    ("scale (γ)", MemorySpan(scale))],
            inPlace: [("gradInput", "input"), ("gradInput", "gradOutput"), ("gradGate", "gate"),
                      ("gradGate", "gradOutput")])
        let x = try Check.base(input, "input"), g = try Check.base(gate, "gate")
        let dy = try Check.base(gradOutput, "gradOutput")
        let needsRMS = gradInput != nil || gradScale != nil
        // dy ⊙ gate goes where dx will be, unless dx is absent or is x (still to be read).
        let dxBase = gradInput?.baseAddress
        let inGradInput = dxBase != nil && UnsafePointer(dxBase!) != x
        let gamma = scale?.baseAddress, dGate = gradGate?.baseAddress, D = features
        let steps = BlockwiseRowBackward(plan: backwardPlan, mean: nil, invStd: saved.invStd, gamma: gamma,
                                         gradScale: gradScale?.baseAddress, gradBias: nil)
        // dy ⊙ gate goes to a scratch tensor from the plan's workspace pool when
        // it cannot go where dx goes (the engine takes an arena of its own).
        if needsRMS && steps.blockwise(threading) {
            // Each block's dy ⊙ gate goes to the worker's block scratch, formed
            // right before the engine reads it: in the short-row sweep eight rows
            // at a time, so x and dy ⊙ gate are read back from L1, and dx (not
            // over dy ⊙ gate) needs no separate column-sum pass.
            steps.run(
                blockScratch: true,
                before: { r0, _, blockScratch in
                    (x + r0 * D, UnsafePointer(blockScratch!), dxBase.map { $0 + r0 * D })
                },
                prepare: { r0, first, rows, gated in
                    gateRows(first, rows, x: x, gate: g, dy: dy, invStd: saved.invStd, gamma: gamma,
                             gated: UnsafeMutablePointer(mutating: gated) + (first - r0) * D, gradGate: dGate)
                },
                after: { _, _, _, _, _ in },
                finish: { _ in })
            return
        }
        let pool = backwardPlan.workspace
        let workspace = pool.take()
        defer { pool.recycle(workspace) }
        let scratch: UnsafeMutablePointer<E>? = needsRMS && !inGradInput ? workspace.take(E.self, count: total) : nil
        let gated = inGradInput ? dxBase : scratch
        ChunkSchedule.forEachChunk(units: rows, valuesPerUnit: D, chunk: ChunkSchedule.rowChunk(length: D),
                                   threading: threading) { chunk in
            gateRows(chunk.lowerBound, chunk.count, x: x, gate: g, dy: dy, invStd: saved.invStd, gamma: gamma,
                     gated: gated.map { $0 + chunk.lowerBound * D }, gradGate: dGate)
        }
        guard let gated else { return }
        rowNormalizationBackward(backwardPlan, x: x, dy: UnsafePointer(gated), mean: nil, invStd: saved.invStd,
                                 gamma: gamma, dx: dxBase, gradScale: gradScale?.baseAddress, gradBias: nil)
    }

    /// Rows `first ..< first + count`: `gated = dy ⊙ gate` (from `gated`, which
    /// points at row `first`) and `gradGate = dy ⊙ z`, z = (x·r)·γ formed as the
    /// forward forms it. Elementwise: any split of the rows gives the same values.
    /// Each element is read before it is written (the in-place cases).
    private func gateRows<E: NormElement>(
        _ first: Int, _ count: Int, x: UnsafePointer<E>, gate: UnsafePointer<E>, dy: UnsafePointer<E>,
        invStd: [Double], gamma: UnsafePointer<Float>?, gated: UnsafeMutablePointer<E>?,
        gradGate: UnsafeMutablePointer<E>?
    ) {
        guard gated != nil || gradGate != nil else { return }
        let n = features
        for u in first..<(first + count) {
            let k = AffineCoefficients(pivot: 0, scale: Float(invStd[u]), shift: 0), o = u * n
            let g = gated.map { $0 + (u - first) * n }
            let s = F8(repeating: k.scale), zero = F8()
            var i = 0
            // scalar math: z = E((x·r)·γ);  d gate = dy·z;  g = dy·gate
            while i + 8 <= n {
                let d = E.load8(dy + o + i), t = E.load8(gate + o + i)
                var z = muladd(E.load8(x + o + i) - zero, s, zero)
                if let gamma { z *= load8(gamma + i) }
                if let gradGate { E.store8(d * roundedThrough(E.self, z), gradGate + o + i) }
                if let g { E.store8(d * t, g + i) }
                i += 8
            }
            while i < n {
                let d = E.widen(dy[o + i]), t = E.widen(gate[o + i])
                var z = muladd(E.widen(x[o + i]) - k.pivot, k.scale, k.shift)
                if let gamma { z *= gamma[i] }
                gradGate?[o + i] = E.narrow(d * E.widen(E.narrow(z)))
                g?[i] = E.narrow(d * t)
                i += 1
            }
        }
    }
}
