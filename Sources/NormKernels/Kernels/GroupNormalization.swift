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

    public init(shape: TensorShape, groups: Int, epsilon: Float = 1e-5, threading: Threading = .default) throws {
        try shape.validate("shape")
        try Check.positive(groups, "groups")
        guard shape.c % groups == 0 else { throw NormError.groupsDoNotDivideChannels(groups: groups, channels: shape.c) }
        try Check.epsilon(epsilon)
        self.shape = shape
        self.groups = groups
        self.epsilon = epsilon
        self.threading = threading
    }

    public func plan() -> PlanDescription {
        if shape.spatial == 1 {
            return rowsPlan(rows: shape.n * groups, features: shape.c / groups, .moments, threading: threading)
        }
        switch smallMapPath {
        case .expandedAffine:
            return rowsPlan(rows: shape.n * groups, features: shape.c / groups * shape.spatial, .moments, threading: threading)
        case .groupSegments:
            return groupSegmentsGeometry.plan(threading: threading)
        case nil:
            return groupedPlan(shape: shape, groupSize: shape.c / groups, threading: threading)
        }
    }

    /// Normalizes; returns mean and 1/σ per (n, g), n-major, for backward.
    @discardableResult
    public func forward(
        input: UnsafeBufferPointer<Float>, output: UnsafeMutableBufferPointer<Float>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try Check.length(input.count, shape.count, "input")
        try Check.length(output.count, shape.count, "output")
        try Check.length(scale, shape.c, "scale (γ)")
        try Check.length(bias, shape.c, "bias (β)")
        try Check.forwardBuffers(input: ("input", input), output: ("output", output),
                                 parameters: ("scale (γ)", scale), ("bias (β)", bias))
        let x = try Check.base(input, "input"), y = try Check.base(output, "output")
        if shape.spatial == 1 {
            return featureVectors(x, y, scale: scale?.baseAddress, bias: bias?.baseAddress)
        }
        switch smallMapPath {
        case .expandedAffine:
            return expandedAffine(x, y, scale: scale?.baseAddress, bias: bias?.baseAddress)
        case .groupSegments:
            return groupSegments(x, y, scale: scale?.baseAddress, bias: bias?.baseAddress)
        case nil:
            break
        }
        let slots = shape.n * groups, size = shape.c / groups, channels = shape.c, G = groups, eps = epsilon
        let mean = SlotBuffer(count: slots, initial: 0.0), invStd = SlotBuffer(count: slots, initial: 0.0)
        let table = CoefficientTable(count: shape.n * shape.c, streaming: prefersStreamingStores(elements: shape.count, output: y, inputs: x))
        defer { mean.deallocate(); invStd.deallocate(); table.deallocate() }
        groupedNormalize(shape: shape, groupSize: size, input: x, output: y, table: table, threading: threading) { slot, m in
            mean[slot] = m.mean
            invStd[slot] = inverseStandardDeviation(m.biasedVariance, eps)
            let n = slot / G, first = (slot - n * G) * size
            for c in first..<(first + size) {
                table[n * channels + c] = AffineCoefficients(
                    mean: m.mean, invStd: invStd[slot],
                    gamma: Double(scale?[c] ?? 1), beta: Double(bias?[c] ?? 0))
            }
        }
        return SavedStatistics(mean: mean.array, invStd: invStd.array)
    }

    /// H·W = 1 (GroupNorm over feature vectors [N, C]): each (n, g) group is one
    /// row of C/G values, normalized as LayerNorm normalizes a row, with γ and β
    /// read at the group's first channel. The general path would build a
    /// coefficient per (n, c) — as many as there are values — which cost more
    /// than the normalization itself.
    private func featureVectors(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                scale gamma: UnsafePointer<Float>?, bias beta: UnsafePointer<Float>?) -> SavedStatistics {
        let size = shape.c / groups, G = groups
        return normalizeRows(x, y, rows: shape.n * groups, features: size, epsilon: epsilon, threading: threading,
                             gamma: gamma, beta: beta, affineOffset: { ($0 % G) * size })
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
        /// γ[g·C/G ...] as it stands (`normalizeUnits` over a runs geometry).
        case groupSegments
    }

    /// NCHW takes the small-map path below this H·W. 1 thread, interleaved rounds
    /// (docs/PERFORMANCE-HISTORY.md): forward and backward faster up to 7×7 (backward
    /// `[64, 1024, 2, 2]` 3.9 → 0.19 ms); at 8×8 the forward is 1.13× slower, at
    /// 16×16 both directions are.
    static let smallMapSpatial = 64
    /// NHWC takes it up to this H·W, with groups of ≥ 8 channels: at 4×4 both
    /// directions gain 1.3–1.5×, at 7×7 with 8- or 16-channel groups they lose 2×
    /// (one short segment per position: the Welford chains run a few steps each).
    static let smallMapSpatialNHWC = 16

    var smallMapPath: SmallMapPath? { Self.smallMapPath(shape, groups: groups) }

    static func smallMapPath(_ shape: TensorShape, groups: Int) -> SmallMapPath? {
        guard shape.spatial > 1, shape.spatial < smallMapSpatial else { return nil }
        if shape.layout == .nchw { return .expandedAffine }
        // Segments shorter than one vector would pay a call per few values.
        return shape.c / groups >= 8 && shape.spatial <= smallMapSpatialNHWC ? .groupSegments : nil
    }

    private func expandedAffine(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                scale gamma: UnsafePointer<Float>?, bias beta: UnsafePointer<Float>?) -> SavedStatistics {
        let length = shape.c / groups * shape.spatial, G = groups
        let affine = ExpandedAffine(gamma: gamma, beta: beta, channels: shape.c, spatial: shape.spatial)
        defer { affine.deallocate() }
        return normalizeRows(x, y, rows: shape.n * groups, features: length, epsilon: epsilon, threading: threading,
                             gamma: affine.gamma, beta: affine.beta, affineOffset: { ($0 % G) * length })
    }

    private func groupSegments(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                               scale gamma: UnsafePointer<Float>?, bias beta: UnsafePointer<Float>?) -> SavedStatistics {
        let size = shape.c / groups, G = groups
        return normalizeUnits(x, y, geometry: groupSegmentsGeometry, epsilon: epsilon, threading: threading,
                              gamma: gamma, beta: beta, affineOffset: { ($0 % G) * size }, streamingAllowed: false)
    }

    /// NHWC unit (n, g): H·W segments of C/G values, C apart, starting at n·C·H·W + g·C/G.
    var groupSegmentsGeometry: RowsGeometry {
        let size = shape.c / groups
        return RowsGeometry(units: shape.n * groups, segments: shape.spatial, segmentLength: size, unitStride: size,
                            segmentStride: shape.c, unitsPerRun: groups, runStride: shape.c * shape.spatial,
                            groupShortSegments: true)
    }
}

/// γ and β repeated over the H·W positions of each channel (NCHW order,
/// C·H·W values each), for kernels that treat a sample's channels as one row.
/// Absent γ or β stay absent.
struct ExpandedAffine {
    let gamma: UnsafeMutablePointer<Float>?
    let beta: UnsafeMutablePointer<Float>?

    init(gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, channels: Int, spatial: Int) {
        func expand(_ v: UnsafePointer<Float>?) -> UnsafeMutablePointer<Float>? {
            guard let v else { return nil }
            let out = UnsafeMutablePointer<Float>.allocate(capacity: channels * spatial)
            for c in 0..<channels { (out + c * spatial).initialize(repeating: v[c], count: spatial) }
            return out
        }
        self.gamma = expand(gamma)
        self.beta = expand(beta)
    }

    func deallocate() {
        gamma?.deallocate()
        beta?.deallocate()
    }
}
