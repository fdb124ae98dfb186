// Backward of GroupNorm + SiLU (`GroupNormalization+SiLU.swift`), without the
// pre-activation stored: z is recomputed from x and the saved statistics.
//
// With x̂ = (x − μ)·r per (n, g), m = 1 + scale[n, c] and z = (x̂·γ + β)·m + shift:
//
//     dz = dy·silu′(z),  silu′(z) = σ(z)·(1 + z·(1 − σ(z)))
//     g  = dz·m                                  (the gradient reaching GN(x)·γ + β)
//     dx, dγ, dβ   = GroupNorm's backward with g as its dy
//     A[n, c] = Σ_hw dz,  B[n, c] = Σ_hw dz·x̂
//     d shift[n, c] = A,   d scale[n, c] = γ·B + β·A
//
// One pass (`SiLUGradientPass`) reads x and dy and writes g (into gradInput when
// it may hold it, else a scratch tensor) and, when the modulation's gradients
// are asked for, A and B per (n, c), each summed by one worker in a fixed order
// (Float32 lanes per 1024 values, then Float64; the chunk is redone in Float64
// when its Float32 sum overflows). GroupNorm's backward then runs on g as it
// stands, on every `GroupNormPlan` path. So the whole is bitwise identical for
// any thread count.

extension GroupNormalization {
    /// Gradients of
    /// ``forwardSiLU(input:output:scale:bias:modulationScale:modulationShift:)-(UnsafeBufferPointer<Float>,_,_,_,_,_)``: dx,
    /// dγ, dβ, and per (n, c) d `modulationScale`, d `modulationShift`; pass only the
    /// gradient buffers you want. `scale`, `bias` and the modulation must be those
    /// of the forward (z is recomputed from them and `saved`).
    ///
    /// **Memory passes**: one pass reading `x` and `dy` and writing g (the
    /// gradient before the normalization, into `gradInput` when given and it is
    /// not `input`, else into a scratch tensor), then
    /// GroupNorm's
    /// ``backward(input:gradOutput:saved:scale:gradInput:gradScale:gradBias:)-(UnsafeBufferPointer<Float>,_,_,_,_,_,_)``
    /// on g. With only the modulation's gradients, the first pass alone.
    ///
    /// **Aliasing**: `gradInput` may be exactly `gradOutput` or exactly `input` (in
    /// place; over `input` a scratch tensor holds g); gradient buffers must not
    /// otherwise share memory with any argument. Throws before writing anything.
    public func backwardSiLU(
        input: UnsafeBufferPointer<Float>, gradOutput: UnsafeBufferPointer<Float>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        modulationScale: UnsafeBufferPointer<Float>? = nil, modulationShift: UnsafeBufferPointer<Float>? = nil,
        gradInput: UnsafeMutableBufferPointer<Float>? = nil,
        gradScale: UnsafeMutableBufferPointer<Float>? = nil, gradBias: UnsafeMutableBufferPointer<Float>? = nil,
        gradModulationScale: UnsafeMutableBufferPointer<Float>? = nil,
        gradModulationShift: UnsafeMutableBufferPointer<Float>? = nil
    ) throws {
        try backwardSiLUElements(input: input, gradOutput: gradOutput, saved: saved, scale: scale, bias: bias,
                                 modulationScale: modulationScale, modulationShift: modulationShift,
                                 gradInput: gradInput, gradScale: gradScale, gradBias: gradBias,
                                 gradModulationScale: gradModulationScale, gradModulationShift: gradModulationShift)
    }

    /// The backward of every element type (16-bit entry points:
    /// `GroupNormalization+SiLUHalfPrecision.swift`). On 16-bit types g is always
    /// a Float32 scratch tensor (rounding it to 16 bits would change dx). On the
    /// channel-groups path GroupNorm's passes then read x in 16 bits and g in
    /// Float32, each widened exactly on load, and round dx once on store: the
    /// Float32 kernel's arithmetic on the widened values, so dx == E.narrow(the
    /// Float32 dx) bit for bit. The row-engine paths (H·W = 1, small maps) run
    /// GroupNorm's Float32 backward on x widened into a second scratch tensor (dx
    /// computed there in place, then rounded once into gradInput): two more
    /// passes, on tensors small enough to sit in cache. 16-bit NCHW with
    /// channels of one block and whole units per worker runs unit by unit with
    /// no g tensor (`GroupNormalization+SiLUBackwardUnits.swift`; the same bits).
    func backwardSiLUElements<E: NormElement>(
        input: UnsafeBufferPointer<E>, gradOutput: UnsafeBufferPointer<E>,
        saved: SavedStatistics, scale: UnsafeBufferPointer<Float>?, bias: UnsafeBufferPointer<Float>?,
        modulationScale: UnsafeBufferPointer<Float>?, modulationShift: UnsafeBufferPointer<Float>?,
        gradInput: UnsafeMutableBufferPointer<E>?,
        gradScale: UnsafeMutableBufferPointer<Float>?, gradBias: UnsafeMutableBufferPointer<Float>?,
        gradModulationScale: UnsafeMutableBufferPointer<Float>?,
        gradModulationShift: UnsafeMutableBufferPointer<Float>?
    ) throws {
        let perSample = shape.n * shape.c, slots = shape.n * groups
        try Check.length(input.count, shape.count, "input")
        try Check.length(gradOutput.count, shape.count, "gradOutput")
        try Check.saved(saved.mean, slots, "saved.mean")
        try Check.saved(saved.invStd, slots, "saved.invStd")
        try Check.length(scale, shape.c, "scale (γ)")
        try Check.length(bias, shape.c, "bias (β)")
        try Check.length(modulationScale, perSample, "modulationScale")
        try Check.length(modulationShift, perSample, "modulationShift")
        try Check.length(gradInput, shape.count, "gradInput")
        try Check.length(gradScale, shape.c, "gradScale (dγ)")
        try Check.length(gradBias, shape.c, "gradBias (dβ)")
        try Check.length(gradModulationScale, perSample, "gradModulationScale")
        try Check.length(gradModulationShift, perSample, "gradModulationShift")
        try Check.buffers(
            writes: [("gradInput", MemorySpan(gradInput)), ("gradScale", MemorySpan(gradScale)),
                     ("gradBias", MemorySpan(gradBias)), ("gradModulationScale", MemorySpan(gradModulationScale)),
                     ("gradModulationShift", MemorySpan(gradModulationShift))],
            reads: [("input", MemorySpan(input)), ("gradOutput", MemorySpan(gradOutput)),
                    ("scale (γ)", MemorySpan(scale)), ("bias (β)", MemorySpan(bias)),
                    ("modulationScale", MemorySpan(modulationScale)), ("modulationShift", MemorySpan(modulationShift))],
            inPlace: [("gradInput", "input"), ("gradInput", "gradOutput")])
        let x = try Check.base(input, "input"), dy = try Check.base(gradOutput, "gradOutput")
        let normGradients = gradInput != nil || gradScale != nil || gradBias != nil
        let modulationGradients = gradModulationScale != nil || gradModulationShift != nil
        guard normGradients || modulationGradients else { return }

        // g goes into gradInput unless that is x (still needed), absent, or 16-bit.
        let isFloat = E.self == Float.self
        let intoGradInput = isFloat && (gradInput.flatMap { $0.baseAddress.map { UnsafePointer($0) != x } } ?? false)
        // Scratch g, the sums and the pass's tables come from the path's workspace
        // pool (GroupNorm's backward below takes an arena of its own from it).
        let pool = path.workspace
        let workspace = pool.take()
        defer { pool.recycle(workspace) }
        // 16-bit NCHW with short channels: g per unit in the worker's cache, no g
        // tensor (`GroupNormalization+SiLUBackwardUnits.swift`; the same bits).
        var unitPlan: ChannelGroupsPlan?
        if !isFloat, normGradients, case .channelGroups(let plan) = path, Self.siluBackwardRunsUnits(plan) {
            unitPlan = plan
        }
        let scratch: UnsafeMutablePointer<Float>? = normGradients && !intoGradInput && unitPlan == nil
            ? workspace.take(Float.self, count: shape.count) : nil
        let g: UnsafeMutablePointer<Float>? = normGradients && unitPlan == nil
            ? (intoGradInput ? UnsafeMutableRawPointer(gradInput!.baseAddress!).assumingMemoryBound(to: Float.self)
                             : scratch!)
            : nil
        let sums: UnsafeMutablePointer<SIMD2<Double>>? = modulationGradients
            ? workspace.take(SIMD2<Double>.self, count: perSample) : nil

        let pass = SiLUGradientPass(
            shape: shape, groups: groups, mean: saved.mean, invStd: saved.invStd,
            gamma: scale?.baseAddress, beta: bias?.baseAddress,
            modulation: SiLUModulation(scale: modulationScale?.baseAddress, shift: modulationShift?.baseAddress),
            in: workspace)
        if let plan = unitPlan {
            siluBackwardUnits(plan, pass: pass, x: x, dy: dy, saved: saved, gamma: scale?.baseAddress,
                              dx: gradInput?.baseAddress, gradScale: gradScale?.baseAddress,
                              gradBias: gradBias?.baseAddress, modulationSums: sums, workspace: workspace)
            writeModulationGradients(sums, scale: scale, bias: bias, gradModulationScale: gradModulationScale,
                                     gradModulationShift: gradModulationShift)
            return
        }
        pass.run(x: x, dy: dy, g: g, sums: sums, threading: threading, workspace: workspace)

        writeModulationGradients(sums, scale: scale, bias: bias, gradModulationScale: gradModulationScale,
                                 gradModulationShift: gradModulationShift)
        guard let g else { return }
        let count = shape.count, gradient = UnsafeBufferPointer(start: g, count: count)
        if isFloat {
            let x32: UnsafeBufferPointer<Float> = retyped(input)
            try backward(input: x32, gradOutput: gradient, saved: saved, scale: scale,
                         gradInput: gradInput.map { retyped($0) as UnsafeMutableBufferPointer<Float> },
                         gradScale: gradScale, gradBias: gradBias)
            return
        }
        if case .channelGroups(let plan) = path {
            // What `backward` runs on this path after its checks (done above for
            // these buffers; gradInput may be x or dy, g is neither).
            channelGroupsPathBackward(plan, x, UnsafePointer(g), saved: saved, gamma: scale?.baseAddress,
                                      dx: gradInput?.baseAddress, gradScale: gradScale?.baseAddress,
                                      gradBias: gradBias?.baseAddress)
            return
        }
        let wide = workspace.take(Float.self, count: count)
        widen(x, into: wide, count: count, threading: threading)
        try backward(input: UnsafeBufferPointer(start: wide, count: count), gradOutput: gradient, saved: saved,
                     scale: scale, gradInput: gradInput == nil ? nil : UnsafeMutableBufferPointer(start: wide, count: count),
                     gradScale: gradScale, gradBias: gradBias)
        if let dx = gradInput?.baseAddress { narrow(wide, into: dx, count: count, threading: threading) }
    }

    /// d shift[n, c] = A and d scale[n, c] = γ·B + β·A from the per-(n, c) sums (A, B).
    private func writeModulationGradients(
        _ sums: UnsafeMutablePointer<SIMD2<Double>>?, scale: UnsafeBufferPointer<Float>?,
        bias: UnsafeBufferPointer<Float>?, gradModulationScale: UnsafeMutableBufferPointer<Float>?,
        gradModulationShift: UnsafeMutableBufferPointer<Float>?
    ) {
        guard let sums else { return }
        for k in 0..<(shape.n * shape.c) {
            let c = k % shape.c
            let a = sums[k][0], b = sums[k][1]
            gradModulationShift?[k] = Float(a)
            gradModulationScale?[k] = Float(Double(scale?[c] ?? 1) * b + Double(bias?[c] ?? 0) * a)
        }
    }
}
