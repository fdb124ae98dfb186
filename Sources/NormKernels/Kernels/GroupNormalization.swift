/// Group normalization (PyTorch `F.group_norm`): the C channels form G groups of
/// C/G consecutive channels; statistics per (n, g) over (C/G)·H·W values, affine per channel.
/// ```
/// y[n, c, h, w] = (x − μ[n, g(c)]) / √(σ²[n, g(c)] + ε) · γ[c] + β[c]      σ² biased
/// ```
/// G = 1 is LayerNorm over C·H·W with per-channel affine; G = C is InstanceNorm.
///
/// **Memory passes**: reads `x` twice (statistics, normalization; the second from
/// cache when one sample's group — NCHW — or one sample — NHWC — fits in L2), writes
/// `y` once. In place is allowed.
public struct GroupNormalization: Sendable {
    public let shape: TensorShape
    public let groups: Int
    public let epsilon: Float
    public let threading: Threading
    // The path and its forward and backward plans for this shape and threading,
    // chosen at `init` (`GroupNormPlan`): feature vectors and small maps run on the
    // row engine (`RowNormalization.swift`), everything else on the channel-groups
    // engine (`ChannelGroups.swift`). The backward is in `GroupNormalization+Backward.swift`.
    let path: GroupNormPlan

    public init(shape: TensorShape, groups: Int, epsilon: Float = 1e-5, threading: Threading = .default) throws {
        try shape.validate("shape")
        try Check.positive(groups, "groups")
        guard shape.c % groups == 0 else { throw NormError.groupsDoNotDivideChannels(groups: groups, channels: shape.c) }
        try Check.epsilon(epsilon)
        self.shape = shape
        self.groups = groups
        self.epsilon = epsilon
        self.threading = threading
        path = GroupNormPlan(shape: shape, groups: groups, threading: threading)
    }

    /// How the forward runs for this shape and threading (chosen at `init`).
    public func plan() -> PlanDescription {
        switch path {
        case .featureVectors(let rows, _), .expandedAffine(let rows, _), .groupSegments(let rows, _):
            return rows.description
        case .channelGroups(let plan):
            return plan.description
        }
    }

    /// Normalizes; returns mean and 1/σ per (n, g), n-major, for backward.
    @discardableResult
    public func forward(
        input: UnsafeBufferPointer<Float>, output: UnsafeMutableBufferPointer<Float>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try forwardElements(input: input, output: output, scale: scale, bias: bias)
    }

    /// The forward of every element type (the 16-bit overloads:
    /// `GroupNormalization+HalfPrecision.swift`): validation, then the path's
    /// engine specialized for `E`.
    @inline(__always)
    func forwardElements<E: NormElement>(
        input: UnsafeBufferPointer<E>, output: UnsafeMutableBufferPointer<E>,
        scale: UnsafeBufferPointer<Float>?, bias: UnsafeBufferPointer<Float>?
    ) throws -> SavedStatistics {
        try Check.length(input.count, shape.count, "input")
        try Check.length(output.count, shape.count, "output")
        try Check.length(scale, shape.c, "scale (γ)")
        try Check.length(bias, shape.c, "bias (β)")
        try Check.forwardBuffers(input: ("input", input), output: ("output", output),
                                 parameters: ("scale (γ)", scale), ("bias (β)", bias))
        let x = try Check.base(input, "input"), y = try Check.base(output, "output")
        let gamma = scale?.baseAddress, beta = bias?.baseAddress
        switch path {
        case .featureVectors(let rows, _), .groupSegments(let rows, _):
            return normalizeRows(rows, x, y, epsilon: epsilon, gamma: gamma, beta: beta)
        case .expandedAffine(let rows, _):
            let workspace = rows.workspace.take()
            defer { rows.workspace.recycle(workspace) }
            let affine = ExpandedAffine(gamma: gamma, beta: beta, channels: shape.c, spatial: shape.spatial, in: workspace)
            return normalizeRows(rows, x, y, epsilon: epsilon, gamma: affine.gamma, beta: affine.beta)
        case .channelGroups(let plan):
            return channelGroupsPathForward(plan, x, y, scale: scale?.baseAddress, bias: bias?.baseAddress)
        }
    }

    /// The channel-groups path: per-(n, g) statistics, one coefficient per (n, c)
    /// with γ and β folded in.
    private func channelGroupsPathForward<E: NormElement>(_ plan: ChannelGroupsPlan, _ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>,
                                      scale: UnsafePointer<Float>?, bias: UnsafePointer<Float>?) -> SavedStatistics {
        let slots = shape.n * groups, size = shape.c / groups, channels = shape.c, G = groups, eps = epsilon
        let workspace = plan.workspace.take()
        defer { plan.workspace.recycle(workspace) }
        let table = CoefficientTable(count: shape.n * shape.c,
                                     streaming: plan.store.streaming(output: y, reading: x),
                                     in: workspace)
        return SavedStatistics.filling(count: slots) { mean, invStd in
            normalizeChannelGroups(plan, input: x, output: y, table: table, workspace: workspace) { slot, m in
                mean[slot] = m.mean
                invStd[slot] = inverseStandardDeviation(m.biasedVariance, eps)
                let n = slot / G, first = (slot - n * G) * size
                for c in first..<(first + size) {
                    table[n * channels + c] = AffineCoefficients(
                        mean: m.mean, invStd: invStd[slot],
                        gamma: Double(scale?[c] ?? 1), beta: Double(bias?[c] ?? 0))
                }
            }
        }
    }

    /// Small spatial maps (H·W < `smallMapSpatial`) leave the per-(n, c) engine:
    /// there every channel is one short run with its own coefficients, and each run
    /// cost ~1 µs of fixed work (`[32, 512, 4, 4]` NCHW backward: 1.4 ms against
    /// PyTorch's 0.14 ms).
    enum SmallMapPath {
        /// NCHW: unit (n, g) is one contiguous run of (C/G)·H·W values; γ and β are
        /// expanded to one value per (c, h, w) position, so the unit is a LayerNorm row.
        case expandedAffine
        /// NHWC: unit (n, g) is H·W segments of C/G values, C apart, each using
        /// γ[g·C/G ...] as it stands (the row engine over a runs geometry).
        case groupSegments
    }

    /// NCHW takes the small-map path below this H·W. 1 thread, interleaved rounds
    /// (docs/PERFORMANCE-HISTORY.md, section "…: small spatial maps"): forward and
    /// backward faster up to 7×7 (backward `[64, 1024, 2, 2]` 3.9 → 0.19 ms); at
    /// 8×8 the forward is 1.13× slower, at 16×16 both directions are.
    static let smallMapSpatial = 64
    /// NHWC takes it up to this H·W, with groups of ≥ 8 channels: at 4×4 both
    /// directions gain 1.3–1.5×, at 7×7 with 8- or 16-channel groups they lose 2×
    /// (one short segment per position: the Welford chains run a few steps each).
    static let smallMapSpatialNHWC = 16
    /// Row blocks at least of the NCHW small-map backward (its rows are samples).
    /// Measured on Zen 4 (6 rounds, one binary, docs/data/2026-12-07-smallbwd):
    /// against one block, 2 blocks gave 2.01× / 1.44× at 2 threads on [128, 256, 4, 4]
    /// / [256, 128, 2, 2] and 0.98× / 1.00× at 1 thread; 4 blocks 1.89× / 1.41× and
    /// 0.94× / 0.99×; 8 blocks 1.61× / 1.58× and 0.89× / 0.97× (each block adds a
    /// row of column partials to write and merge).
    static let smallMapRowBlocks = 2

    static func smallMapPath(_ shape: TensorShape, groups: Int) -> SmallMapPath? {
        guard shape.spatial > 1, shape.spatial < smallMapSpatial else { return nil }
        if shape.layout == .nchw { return .expandedAffine }
        // Segments shorter than one vector would pay a call per few values.
        return shape.c / groups >= 8 && shape.spatial <= smallMapSpatialNHWC ? .groupSegments : nil
    }
}

/// GroupNorm's path for a shape, with the row or channel-groups plans it runs,
/// forward and backward.
enum GroupNormPlan: Sendable {
    /// H·W = 1 (feature vectors [N, C]): each (n, g) group is one row of C/G
    /// values, normalized as LayerNorm normalizes a row, with γ and β read at the
    /// group's first channel. The channel-groups path would build a coefficient
    /// per (n, c) — as many as there are values — which cost more than the
    /// normalization itself. Backward: each sample is one row of C values in G
    /// groups (the per-(n, c) path would keep ~48 bytes of side tables per 12
    /// bytes of data here).
    case featureVectors(RowPlan, RowBackwardPlan)
    /// NCHW with small H·W (`GroupNormalization.SmallMapPath.expandedAffine`):
    /// unit (n, g) is one row of (C/G)·H·W values with γ, β expanded per position.
    /// Backward: each sample is one row of C·H·W values in G groups.
    case expandedAffine(RowPlan, RowBackwardPlan)
    /// NHWC with small H·W (`GroupNormalization.SmallMapPath.groupSegments`):
    /// unit (n, g) is H·W segments of C/G values, C apart. Backward: rows are the
    /// N·H·W positions of C values; H·W consecutive rows (one sample) share each
    /// group's statistics, and γ, dγ, dβ are per column.
    case groupSegments(RowPlan, RowBackwardPlan)
    /// Everything else: the channel-groups engine.
    case channelGroups(ChannelGroupsPlan)

    init(shape: TensorShape, groups: Int, threading: Threading) {
        let size = shape.c / groups, n = shape.n, hw = shape.spatial
        if hw == 1 {
            self = .featureVectors(
                RowPlan(rows: n * groups, features: size, .moments, affinePeriod: groups, threading: threading),
                RowBackwardPlan(rows: n, features: shape.c, groups: groups, centered: true, threading: threading))
            return
        }
        switch GroupNormalization.smallMapPath(shape, groups: groups) {
        case .expandedAffine:
            // Backward rows of C·H·W ≤ 4096 values are one tile, so with the
            // natural row block (≥ 128 rows) [128, 256, 4, 4] was one item and one
            // worker at any thread count; two row blocks give two workers work.
            self = .expandedAffine(
                RowPlan(rows: n * groups, features: size * hw, .moments, affinePeriod: groups, threading: threading),
                RowBackwardPlan(rows: n, features: shape.c * hw, groups: groups, centered: true,
                                rowBlocksAtLeast: GroupNormalization.smallMapRowBlocks, threading: threading))
        case .groupSegments:
            let units = RowsGeometry(units: n * groups, segments: hw, segmentLength: size, unitStride: size,
                                     segmentStride: shape.c, unitsPerRun: groups, runStride: shape.c * hw,
                                     groupShortSegments: true)
            self = .groupSegments(
                RowPlan(units: units, affinePeriod: groups, threading: threading),
                RowBackwardPlan(rows: n * hw, features: shape.c, groups: groups, rowsPerSlot: hw, centered: true,
                                threading: threading))
        case nil:
            self = .channelGroups(ChannelGroupsPlan(shape: shape, groupSize: size, threading: threading))
        }
    }

    /// The backward's workspace pool, for the buffers of a fused step around
    /// the backward (GroupNorm + SiLU's g and sums).
    var workspace: WorkspacePool {
        switch self {
        case .featureVectors(_, let rows), .expandedAffine(_, let rows), .groupSegments(_, let rows):
            return rows.workspace
        case .channelGroups(let plan):
            return plan.workspace
        }
    }
}

/// γ and β repeated over the H·W positions of each channel (NCHW order,
/// C·H·W values each), for kernels that treat a sample's channels as one row.
/// Absent γ or β stay absent. Carved from the call's workspace.
struct ExpandedAffine {
    let gamma: UnsafeMutablePointer<Float>?
    let beta: UnsafeMutablePointer<Float>?

    init(gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, channels: Int, spatial: Int, in workspace: Arena) {
        func expand(_ v: UnsafePointer<Float>?) -> UnsafeMutablePointer<Float>? {
            guard let v else { return nil }
            let out = workspace.take(Float.self, count: channels * spatial)
            for c in 0..<channels { (out + c * spatial).initialize(repeating: v[c], count: spatial) }
            return out
        }
        self.gamma = expand(gamma)
        self.beta = expand(beta)
    }
}
