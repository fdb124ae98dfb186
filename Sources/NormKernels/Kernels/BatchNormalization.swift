/// Batch normalization over `[N, D]`, NCHW or NHWC: statistics per channel over
/// N·H·W values.
///
/// ```
/// training:  y = γ[c] · (x − μ_B[c]) / √(σ²_B[c] + ε) + β[c]     σ²_B biased (÷ N·H·W)
/// inference: y = γ[c] · (x − running_mean[c]) / √(running_var[c] + ε) + β[c]
/// ```
/// then `max(y, 0)` when `fusedReLU`. Both fold into one per-channel
/// `(x − pivot)·scale + shift` pass (see `AffineCoefficients`).
///
/// **Memory passes** (N·C·H·W = T values):
/// - training: reads `x` twice (statistics, then normalization) and writes `y`
///   once. Per channel (NCHW) or per block of rows (NHWC) the second read comes
///   from cache when that slice fits in L2/L3; T·4 bytes each otherwise.
/// - inference: reads `x` once, writes `y` once.
///
/// **Aliasing**: `output` may be the same buffer as `input` (in place); any
/// other overlap throws `NormError.partialOverlap`.
public struct BatchNormalization: Sendable {
    public let shape: TensorShape
    public let epsilon: Float
    public let fusedReLU: Bool
    public let threading: Threading
    /// The path and store policies for this shape and threading.
    let paths: BatchNormPlan

    /// - Parameters:
    ///   - shape: every dimension > 0; `[N, D]` is `TensorShape.matrix(N, D)`.
    ///   - epsilon: finite, > 0 (PyTorch's default 1e-5).
    ///   - fusedReLU: apply max(·, 0) to the output in the same pass.
    ///   - threading: threads and pinning (see ``Threading``); results do not depend on it.
    public init(shape: TensorShape, epsilon: Float = 1e-5, fusedReLU: Bool = false,
                threading: Threading = .default) throws {
        try shape.validate("shape")
        try Check.epsilon(epsilon)
        self.shape = shape
        self.epsilon = epsilon
        self.fusedReLU = fusedReLU
        self.threading = threading
        paths = BatchNormPlan(shape: shape, threading: threading)
    }

    /// NCHW: unit = channel, N segments of H·W values, C·H·W apart (the plan
    /// holds the one its path uses; these two are for tests).
    var rows: RowsGeometry { BatchNormPlan.channelRows(shape) }

    /// NHWC and [N, D]: one N·H·W × C matrix.
    var columns: ColumnsGeometry { BatchNormPlan.columns(shape) }

    /// How the work is partitioned for this shape and threading (chosen at `init`).
    public func plan() -> PlanDescription {
        switch paths.path {
        case .columns(let g): return g.plan(threading: threading)
        case .channelRuns(let g), .shortRuns(let g, _): return g.plan(threading: threading)
        }
    }

    /// Lengths and overlaps of a forward call; `identity` (the fused add's
    /// residual) may be exactly `output`, as `input` may.
    private func validate<E: NormElement>(
        _ input: UnsafeBufferPointer<E>, _ output: UnsafeMutableBufferPointer<E>,
        _ scale: UnsafeBufferPointer<Float>?, _ bias: UnsafeBufferPointer<Float>?,
        _ running: RunningStatistics?, identity: UnsafeBufferPointer<E>? = nil
    ) throws {
        try Check.length(input.count, shape.count, "input")
        try Check.length(identity, shape.count, "identity")
        try Check.length(output.count, shape.count, "output")
        try Check.length(scale, shape.c, "scale (γ)")
        try Check.length(bias, shape.c, "bias (β)")
        if let identity {
            try Check.buffers(writes: [("output", MemorySpan(output))],
                              reads: [("input", MemorySpan(input)), ("identity", MemorySpan(identity)),
                                      ("scale (γ)", MemorySpan(scale)), ("bias (β)", MemorySpan(bias))],
                              inPlace: [("output", "input"), ("output", "identity")], bareNameAgainst: "input")
        } else {
            try Check.forwardBuffers(input: ("input", input), output: ("output", output),
                                     parameters: ("scale (γ)", scale), ("bias (β)", bias))
        }
        try RunningStatistics.validate(running, channels: shape.c)
    }

    /// Normalizes with the batch's statistics, updates `running` if given, and
    /// returns the per-channel mean and 1/σ for the backward pass.
    ///
    /// Throws before writing anything if a buffer length is wrong, buffers
    /// partially overlap, or N·H·W = 1 (one value per channel has no variance).
    @discardableResult
    public func forwardTraining(
        input: UnsafeBufferPointer<Float>, output: UnsafeMutableBufferPointer<Float>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try training(input: input, identity: nil, output: output, scale: scale, bias: bias, running: running)
    }

    /// `forwardTraining`, with `identity` (when given) added before the ReLU, for
    /// every element type (the 16-bit overloads: `BatchNormalization+HalfPrecision.swift`).
    func training<E: NormElement>(
        input: UnsafeBufferPointer<E>, identity: UnsafeBufferPointer<E>?,
        output: UnsafeMutableBufferPointer<E>, scale: UnsafeBufferPointer<Float>?,
        bias: UnsafeBufferPointer<Float>?, running: RunningStatistics?
    ) throws -> SavedStatistics {
        try validate(input, output, scale, bias, running, identity: identity)
        let perChannel = shape.n * shape.spatial
        guard perChannel > 1 else { throw NormError.singleValuePerChannel(argument: "input", valuesPerChannel: perChannel) }
        let x = try Check.base(input, "input"), y = try Check.base(output, "output")
        let id = try identity.map { try Check.base($0, "identity") }
        let c = shape.c
        let workspace = paths.workspace.take()
        defer { paths.workspace.recycle(workspace) }
        let moments = SlotBuffer(count: c, initial: Moments.empty, in: workspace)
        let table = CoefficientTable(count: c, streaming: paths.training.streaming(output: y, reading: x, id),
                                     in: workspace)
        let relu = fusedReLU, eps = epsilon
        func coefficients(_ channel: Int, _ m: Moments) {
            moments[channel] = m
            table[channel] = AffineCoefficients(
                mean: m.mean, invStd: inverseStandardDeviation(m.biasedVariance, eps),
                gamma: Double(scale?[channel] ?? 1), beta: Double(bias?[channel] ?? 0))
        }
        switch paths.path {
        case .columns(let g):
            g.reduceThenApply(x, threading: threading, workspace: workspace,
                finalize: { _, channels, merged in for ch in channels { coefficients(ch, merged[ch]) } },
                apply: { m, first, rows in
                    table.applyColumns(x, y, matrix: m, geometry: g, first: first, rows: rows, relu: relu, identity: id)
                })
        case .shortRuns(let g, let memoryOrder):
            // Short runs (H·W = 49): the channel-major output pass would jump C·H·W
            // values between runs; gather statistics channel by channel, then write
            // the output in memory order as inference does.
            g.reduce(x, statistic: .moments, threading: threading, workspace: workspace, finalize: coefficients)
            applyInMemoryOrder(memoryOrder, x, y, table, identity: id, workspace: workspace)
        case .channelRuns(let g):
            g.reduceThenApply(x, statistic: .moments, threading: threading, workspace: workspace,
                finalize: coefficients,
                apply: { table.applyRuns(x, y, $0, run: g.segmentLength, runsPerSegment: 1, relu: relu, identity: id) })
        }
        let batch = moments.buffer
        let updated = running?.fold(batch: batch) ?? false
        return SavedStatistics(mean: batch.map(\.mean),
                               invStd: batch.map { inverseStandardDeviation($0.biasedVariance, eps) },
                               runningStatisticsUpdated: updated)
    }

    /// Normalizes with `running`'s mean and variance (one read of `x`, one write of `y`).
    public func forwardInference(
        input: UnsafeBufferPointer<Float>, output: UnsafeMutableBufferPointer<Float>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics
    ) throws {
        try inference(input: input, identity: nil, output: output, scale: scale, bias: bias, running: running)
    }

    /// `forwardInference`, with `identity` (when given) added before the ReLU, for
    /// every element type.
    func inference<E: NormElement>(
        input: UnsafeBufferPointer<E>, identity: UnsafeBufferPointer<E>?,
        output: UnsafeMutableBufferPointer<E>, scale: UnsafeBufferPointer<Float>?,
        bias: UnsafeBufferPointer<Float>?, running: RunningStatistics
    ) throws {
        try validate(input, output, scale, bias, nil, identity: identity)
        // One consistent copy, checked, before anything is written: another thread
        // may fold a batch into (or reassign) `running` while this call runs.
        let (runningMean, runningVariance) = try running.snapshot(expectedChannels: shape.c)
        let x = try Check.base(input, "input"), y = try Check.base(output, "output")
        let id = try identity.map { try Check.base($0, "identity") }
        let workspace = paths.workspace.take()
        defer { paths.workspace.recycle(workspace) }
        let table = CoefficientTable(count: shape.c, streaming: paths.inference.streaming(output: y, reading: x, id),
                                     in: workspace)
        for ch in 0..<shape.c {
            table[ch] = AffineCoefficients(
                mean: Double(runningMean[ch]),
                invStd: inverseStandardDeviation(Double(runningVariance[ch]), epsilon),
                gamma: Double(scale?[ch] ?? 1), beta: Double(bias?[ch] ?? 0))
        }
        let relu = fusedReLU
        switch paths.path {
        case .columns(let g):
            g.apply(threading: threading) { m, first, rows in
                table.applyColumns(x, y, matrix: m, geometry: g, first: first, rows: rows, relu: relu, identity: id)
            }
        case .channelRuns, .shortRuns:
            applyInMemoryOrder(paths.memoryOrder, x, y, table, identity: id, workspace: workspace)
        }
    }

    /// Below this H·W, NCHW training writes its output in a separate memory-order pass.
    static let shortRunSpatial = 256

    /// NCHW output pass in memory order: one unit per sample, runs of H·W values
    /// cycling through the channels' coefficients. Channel by channel, the walk
    /// would jump C·H·W values between runs; with H·W = 49 the prefetchers give up
    /// (BatchNorm inference [64, 512, 7, 7]: 1.45 → 0.36 ms on 2 threads).
    ///
    /// Planes of 2–7 values (`Apply.tinyRuns`): the coefficients expanded to one
    /// per position of a sample (TinyRuns.swift), so every block is one row of
    /// per-column coefficients (`applyRuns` with run 1), the same bits.
    private func applyInMemoryOrder<E: NormElement>(_ g: RowsGeometry, _ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>,
                                                    _ table: CoefficientTable, identity: UnsafePointer<E>?,
                                                    workspace: Arena) {
        let hw = shape.spatial, c = shape.c, relu = fusedReLU
        if Apply.tinyRuns(hw) {
            let wide = table.expanded(run: hw, channels: c, in: workspace)
            g.apply(threading: threading) {
                wide.applyRuns(x, y, $0, run: 1, runsPerSegment: c * hw, slotsPerUnit: 0, relu: relu, identity: identity)
            }
            return
        }
        g.apply(threading: threading) {
            table.applyRuns(x, y, $0, run: hw, runsPerSegment: c, slotsPerUnit: 0, relu: relu, identity: identity)
        }
    }
}

/// BatchNorm's path for a shape, and its store policies: fixed at `init`.
struct BatchNormPlan: Sendable {
    enum Path: Sendable {
        /// NHWC and [N, D]: per-column statistics down one N·H·W × C matrix.
        case columns(ColumnsGeometry)
        /// NCHW with H·W ≥ `BatchNormalization.shortRunSpatial`: unit = channel,
        /// statistics then output channel by channel.
        case channelRuns(RowsGeometry)
        /// NCHW with shorter runs: statistics channel by channel (first geometry),
        /// every pass that writes walks memory in order, one unit per sample (second).
        case shortRuns(RowsGeometry, RowsGeometry)
    }

    let path: Path
    /// NCHW's memory-order output pass (inference, and training with short runs).
    let memoryOrder: RowsGeometry
    /// Training forward (two passes), backward (two passes over x and dy) and
    /// inference (one pass).
    let training: StorePolicy
    let backward: StorePolicy
    let inference: StorePolicy
    /// Where a call's workspace comes from.
    let workspace = WorkspacePool()

    init(shape: TensorShape, threading: Threading) {
        memoryOrder = RowsGeometry(units: shape.n, segmentLength: shape.c * shape.spatial,
                                   unitStride: shape.c * shape.spatial)
        if shape.isChannelsLast {
            path = .columns(Self.columns(shape))
        } else if shape.spatial < BatchNormalization.shortRunSpatial {
            path = .shortRuns(Self.channelRows(shape), memoryOrder)
        } else {
            path = .channelRuns(Self.channelRows(shape))
        }
        // NCHW planes of 2–255 values keep cached stores (`unlessShortRuns`);
        // H·W = 1 writes whole rows of C values.
        let shortPlanes = !shape.isChannelsLast && shape.spatial > 1 && shape.spatial < BatchNormalization.shortRunSpatial
        training = StorePolicy(twoPass: shape.count, threads: threading.threads).unlessShortRuns(shortPlanes)
        backward = StorePolicy(backward: shape.count, threads: threading.threads).unlessShortRuns(shortPlanes)
        inference = StorePolicy(singlePass: shape.count, threads: threading.threads,
                                wideRows: shape.c >= Apply.stripColumns && (shape.isChannelsLast || shape.spatial == 1))
            .unlessShortRuns(shortPlanes)
    }

    static func channelRows(_ shape: TensorShape) -> RowsGeometry {
        RowsGeometry(units: shape.c, segments: shape.n, segmentLength: shape.spatial,
                     unitStride: shape.spatial, segmentStride: shape.c * shape.spatial,
                     groupShortSegments: true)
    }

    static func columns(_ shape: TensorShape) -> ColumnsGeometry {
        ColumnsGeometry(matrices: 1, rows: shape.n * shape.spatial, columns: shape.c)
    }
}
