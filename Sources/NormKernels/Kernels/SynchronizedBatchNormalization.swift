/// Batch normalization whose statistics span the batches of several processes
/// (data-parallel training): PyTorch's `SyncBatchNorm`, on CPU, over any
/// ``StatisticsExchange`` (``InProcessExchange``, or `MPIExchange` from `NormKernelsMPI`).
///
/// Each rank holds its own slice `[Nᵣ, C, H, W]` (NCHW, NHWC or `[Nᵣ, D]`;
/// Nᵣ may be 0, and ranks may differ in N, H, W and layout, not in C). Per
/// training step, forward:
/// ```
/// rank r:     (nᵣ, μᵣ[c], M2ᵣ[c]) = BatchNorm's per-channel moments of its slice    (Float64)
///             (or of each subtree of the merge tree lying in its blocks: its nodes)
/// exchange:   every rank receives every rank's (nᵣ, μᵣ, M2ᵣ)                         2C + 1 values + 1 header
///             (K nodes: 1 + K·(2C + 1) values)
/// every rank: (n, μ, M2)[c] = Chan merge in the fixed tree (`SynchronizedMergePlan`)
///             y = γ·(x − μ)/√(M2/n + ε) + β,   running statistics get (n, μ, M2/(n − 1))
/// ```
/// so every rank normalizes with the same bits and updates its running
/// statistics identically. The merge tree is BatchNorm's own tree over the
/// blocks of the concatenated batch when the ranks' blocks are those blocks
/// (then the result is single-process BatchNorm's bit for bit), else the same
/// kind of tree over rank order; exactly when is `singleProcessEquivalence(rankShapes:)`
/// (docs/SYNCBN.md, "When results are bitwise identical"). It is always bitwise identical for any thread count on
/// any rank, and on one rank (size 1, no exchange) it is BatchNorm itself.
///
/// **Failures are collective.** Construction exchanges (C, ε, fusedReLU, the shape) once;
/// every call exchanges one header with its statistics. A rank whose own
/// arguments are wrong still takes part in the exchange, then throws its
/// `NormError`; every other rank throws ``SynchronizationError/peerRejectedArguments(ranks:)``.
/// Nothing is written on any rank before the exchange has succeeded. A batch
/// with NaN or ±∞ on any rank makes the merged statistics non-finite on every
/// rank, so every rank refuses the running-statistics update (see
/// ``RunningStatistics``); ranks whose running statistics start equal stay equal.
///
/// Construction and every call are collective: all ranks of the exchange make
/// them, in the same order.
public struct SynchronizedBatchNormalization: Sendable {
    /// This rank's slice; `n` may be 0 (the rank still takes part in every exchange).
    public let shape: TensorShape
    public let epsilon: Float
    public let fusedReLU: Bool
    public let threading: Threading
    public let exchange: any StatisticsExchange
    /// The local kernel (nil when this rank holds no samples).
    let local: BatchNormalization?
    /// Where a call's workspace comes from.
    let workspace = WorkspacePool()
    /// How the forward's moments and the backward's sums are cut and merged,
    /// from every rank's shape (exchanged by `init`).
    let forwardPlan: SynchronizedMergePlan
    let backwardPlan: SynchronizedMergePlan

    /// Collective: exchanges (C, ε, fusedReLU) with every rank and throws on
    /// every rank if they disagree (``SynchronizationError/channelMismatch(channels:)``,
    /// ``SynchronizationError/configurationMismatch(argument:values:)``) or if any
    /// rank's own arguments are invalid.
    /// - Parameters:
    ///   - shape: this rank's slice: n ≥ 0, c, h, w > 0.
    ///   - epsilon: finite, > 0; the same on every rank.
    ///   - fusedReLU: apply max(·, 0) to the output in the same pass; the same on every rank.
    ///   - threading: this rank's threads and pinning; results do not depend on it.
    ///   - exchange: the group; with `size` 1 nothing is ever exchanged.
    public init(shape: TensorShape, epsilon: Float = 1e-5, fusedReLU: Bool = false,
                threading: Threading = .default, exchange: any StatisticsExchange) throws {
        // At most 2²⁰ ranks: the gathered step (size × its length) stays far from overflow.
        guard exchange.size >= 1, exchange.size <= 1 << 20, exchange.rank >= 0, exchange.rank < exchange.size else {
            throw SynchronizationError.invalidGroup(rank: exchange.rank, size: exchange.size)
        }
        var local: BatchNormalization?
        var localError: (any Error)?
        do {
            if shape.n == 0 {
                try TensorShape(n: 1, c: shape.c, h: shape.h, w: shape.w, layout: shape.layout).validate("shape")
                try Check.epsilon(epsilon)
            } else {
                try Check.positive(shape.n, "shape.n")
                local = try BatchNormalization(shape: shape, epsilon: epsilon, fusedReLU: fusedReLU, threading: threading)
            }
        } catch { localError = error }
        // `isChannelsLast` multiplies H·W: only for a shape that passed validation
        // (H = Int.max, W = 2 overflowed here, a trap before the exchange).
        let relu: Double = fusedReLU ? 1 : 0
        let channelsLast: Double = localError == nil && shape.isChannelsLast ? 1 : 0
        var header: [Double] = [0, Double(shape.c), Double(epsilon), relu,
                                Double(shape.n), Double(shape.h), Double(shape.w), channelsLast]
        let length = header.count
        let gathered = try Self.exchangeStep(.handshake, &header, localError: localError, exchange: exchange)
        // The peers validated their own descriptors, but the exchange is the
        // caller's code (MPI, a custom transport): a header that is not one of ours
        // must be an error, not a trap in Int(_:) or an overflow in the plan.
        let channels = try stride(from: 1, to: gathered.count, by: length).map { try Self.headerCount(gathered[$0]) }
        guard Set(channels).count == 1 else { throw SynchronizationError.channelMismatch(channels: channels) }
        for (slot, name) in [(2, "epsilon"), (3, "fusedReLU")] {
            let values = stride(from: slot, to: gathered.count, by: length).map { gathered[$0] }
            guard Set(values).count == 1 else { throw SynchronizationError.configurationMismatch(argument: name, values: values) }
        }
        var shapes: [TensorShape] = []
        for o in stride(from: 0, to: gathered.count, by: length) {
            let layout: Layout = gathered[o + 7] == 1 ? .nhwc : .nchw
            let peer = TensorShape(n: try Self.headerCount(gathered[o + 4]), c: shape.c, h: try Self.headerCount(gathered[o + 5]),
                                   w: try Self.headerCount(gathered[o + 6]), layout: layout)
            do {
                try TensorShape(n: max(1, peer.n), c: peer.c, h: peer.h, w: peer.w).validate("shape")
            } catch {
                throw SynchronizationError.protocolMismatch(reason: "rank \(shapes.count) sent the shape \(peer), which is not valid")
            }
            shapes.append(peer)
        }
        forwardPlan = SynchronizedMergePlan(shapes: shapes, backward: false)
        backwardPlan = SynchronizedMergePlan(shapes: shapes, backward: true)
        // A call's own memory: its contribution and the gathered contributions
        // (`stepLength` values per rank, Float64), the merge stack (one row of C
        // per program step, 24-byte moments) and the x̂ coefficients (16 bytes per
        // channel). An empty rank (n = 0) may describe 2⁴⁰ channels with no tensor
        // behind them; the same count on every rank makes every rank throw here.
        let nodes = Double(max(forwardPlan.nodesPerRank, backwardPlan.nodesPerRank))
        let step = 1 + nodes * (2 * Double(shape.c) + 1)
        let program = Double(max(forwardPlan.program.count, backwardPlan.program.count))
        try Check.ownMemory(8 * step * Double(exchange.size + 1) + Double(shape.c) * (24 * program + 16),
                            "shape.c", "a synchronized step of \(shape.c) channels on \(exchange.size) ranks")
        self.shape = shape
        self.epsilon = epsilon
        self.fusedReLU = fusedReLU
        self.threading = threading
        self.exchange = exchange
        self.local = local
    }

    /// Normalizes this rank's slice with the statistics of all ranks' slices,
    /// updates `running` (if given) with them, and returns the global per-channel
    /// mean and 1/σ for `backwardTraining`.
    ///
    /// Collective. Throws on every rank, before anything is written on any rank,
    /// if a rank's buffers are wrong (that rank: its `NormError`; the others:
    /// `peerRejectedArguments`), if the exchange fails, or if all ranks together
    /// hold at most one value per channel (`singleValuePerChannel`, on every rank).
    @discardableResult
    public func forwardTraining(
        input: UnsafeBufferPointer<Float>, output: UnsafeMutableBufferPointer<Float>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil,
        running: RunningStatistics? = nil
    ) throws -> SavedStatistics {
        try trainingElements(input: input, output: output, scale: scale, bias: bias, running: running)
    }

    /// `forwardTraining` for any element type (`Float`, and the 16-bit types of
    /// `SynchronizedBatchNormalization+HalfPrecision.swift`): statistics of the
    /// exactly widened values, y rounded once to `E`.
    func trainingElements<E: NormElement>(
        input: UnsafeBufferPointer<E>, output: UnsafeMutableBufferPointer<E>,
        scale: UnsafeBufferPointer<Float>?, bias: UnsafeBufferPointer<Float>?, running: RunningStatistics?
    ) throws -> SavedStatistics {
        let c = shape.c
        var payload = [Double](repeating: 0, count: stepLength)
        var localError: (any Error)?
        let workspace = self.workspace.take()
        defer { self.workspace.recycle(workspace) }
        do {
            try Check.length(input.count, shape.count, "input")
            try Check.length(output.count, shape.count, "output")
            try Check.length(scale, c, "scale (γ)")
            try Check.length(bias, c, "bias (β)")
            try Check.forwardBuffers(input: ("input", input), output: ("output", output),
                                     parameters: ("scale (γ)", scale), ("bias (β)", bias))
            try RunningStatistics.validate(running, channels: c)
            if let local {
                let x = try Check.base(input, "input")
                let nodes = forwardPlan.nodes[exchange.rank]
                if nodes.count == 1 {
                    // The rank's blocks form one subtree (or the ranks are the leaves):
                    // BatchNorm's own per-channel moments.
                    let moments = workspace.take(Moments.self, count: c)
                    local.channelMoments(x, into: moments, workspace: workspace)
                    payload[1] = moments[0].count
                    for ch in 0..<c {
                        payload[2 + ch] = moments[ch].mean
                        payload[2 + c + ch] = moments[ch].m2
                    }
                } else {
                    let shift = forwardPlan.leafStart[exchange.rank]
                    payload.withUnsafeMutableBufferPointer { p in
                        local.nodeMoments(x, nodes: nodes.map { ($0.lowerBound - shift)..<($0.upperBound - shift) },
                                          workspace: workspace,
                                          into: p.baseAddress! + 1)
                    }
                }
            }
        } catch { localError = error }
        let gathered = try Self.exchangeStep(.forward, &payload, localError: localError, exchange: exchange)

        // Chan's merge of the ranks' nodes in the plan's fixed tree (BatchNorm's
        // own tree over its blocks, or the tree over rank order).
        let batch = merged(gathered, forwardPlan, workspace: workspace) { Moments(count: $0, mean: $1, m2: $2) }
        let total = batch.first?.count ?? 0
        guard total > 1 else {
            throw NormError.singleValuePerChannel(argument: "input (all ranks)", valuesPerChannel: Int(total))
        }
        let eps = epsilon
        let invStd = batch.map { inverseStandardDeviation($0.biasedVariance, eps) }
        if let local {
            let x = try Check.base(input, "input"), y = try Check.base(output, "output")
            let table = CoefficientTable(count: c, streaming: StorePolicy(twoPass: shape.count, threads: threading.threads).streaming(output: y, reading: x),
                                         in: workspace)
            for ch in 0..<c {
                table[ch] = AffineCoefficients(mean: batch[ch].mean, invStd: invStd[ch],
                                               gamma: Double(scale?[ch] ?? 1), beta: Double(bias?[ch] ?? 0))
            }
            local.applyChannels(x, y, table)
        }
        let updated = running?.fold(batch: UnsafeBufferPointer(batch)) ?? false
        return SavedStatistics(mean: batch.map(\.mean), invStd: invStd, runningStatisticsUpdated: updated)
    }
}

extension SynchronizedBatchNormalization {
    /// Which collective call a contribution belongs to: slot 0 of every
    /// contribution holds the step's code, negated when that rank's own
    /// arguments were rejected.
    enum Step: Double {
        case handshake = 1
        case forward = 2
        case backward = 3
    }

    /// Values each rank contributes per forward or backward step: a header, the
    /// rank's value count per channel, then 2C per-channel values (forward: means
    /// and M2s; backward: Σg and Σg·x̂). Both steps have the same length, so a
    /// forward meeting a backward is reported by the header, not by a transport
    /// error on mismatched lengths.
    /// With several nodes per rank (`SynchronizedMergePlan`), each node holds its
    /// value count and its 2C values, so a rank's contribution is
    /// 1 + K·(2C + 1) values, K the most nodes any rank sends in either direction
    /// (K = 1 for equal splits on 2 or 4 ranks, and whenever the ranks are the leaves).
    var stepLength: Int { 1 + max(forwardPlan.nodesPerRank, backwardPlan.nodesPerRank) * (2 * shape.c + 1) }

    /// Per channel, the plan's tree over the gathered nodes: node k of rank r
    /// is at r · L + 1 + k · (2C + 1) (L the contribution's length), holding
    /// its count, then C values of the first quantity, then C of the second.
    /// The plan's program runs on whole rows of C channels (a stack of rows),
    /// so each channel sees the same merges in the same order as a per-channel
    /// tree, without a walk of the program per channel (which showed in a
    /// profile of `[256, 64]`: docs/SYNCBN.md, "Cost of a step"). The stack and
    /// the result (its first row) are carved from the call's `workspace`.
    func merged<P: TreeMergeable>(_ gathered: [Double], _ plan: SynchronizedMergePlan, workspace: Arena,
                                  _ part: (_ count: Double, _ first: Double, _ second: Double) -> P)
        -> UnsafeMutableBufferPointer<P> {
        let c = shape.c, length = gathered.count / exchange.size, node = 2 * c + 1
        let rows = workspace.take(P.self, count: plan.program.count * c)
        gathered.withUnsafeBufferPointer { g in
            let base = g.baseAddress!
            var top = 0
            for step in plan.program {
                switch step {
                case let .node(rank, slot):
                    let o = base + rank * length + 1 + slot * node, row = rows + top * c
                    let count = o[0]
                    for ch in 0..<c { (row + ch).initialize(to: part(count, o[1 + ch], o[1 + c + ch])) }
                    top += 1
                case .combine:
                    top -= 1
                    let earlier = rows + (top - 1) * c, later = rows + top * c
                    for ch in 0..<c { earlier[ch] = P.combine(earlier[ch], later[ch]) }
                }
            }
        }
        return UnsafeMutableBufferPointer(start: rows, count: c)
    }

    /// Exchanges `payload` (its slot 0 set here) and settles the step: this
    /// rank's own error first, then ranks in different steps, then the ranks
    /// that rejected their arguments. With one rank nothing is exchanged.
    /// A count from a peer's header: a whole number ≥ 0 that fits in an `Int`.
    static func headerCount(_ value: Double) throws -> Int {
        guard let count = Int(exactly: value), count >= 0 else {
            throw SynchronizationError.protocolMismatch(reason: "a peer's header holds \(value), not a count")
        }
        return count
    }

    static func exchangeStep(_ step: Step, _ payload: inout [Double], localError: (any Error)?,
                             exchange: any StatisticsExchange) throws -> [Double] {
        payload[0] = localError == nil ? step.rawValue : -step.rawValue
        guard exchange.size > 1 else {
            if let localError { throw localError }
            return payload
        }
        let length = payload.count
        var gathered = [Double](repeating: 0, count: exchange.size * length)
        try payload.withUnsafeBufferPointer { send in
            try gathered.withUnsafeMutableBufferPointer { try exchange.allGather(send, into: $0) }
        }
        if let localError { throw localError }
        let codes = (0..<exchange.size).map { gathered[$0 * length] }
        if let other = codes.first(where: { abs($0) != step.rawValue }) {
            throw SynchronizationError.protocolMismatch(
                reason: "this rank is in step \(step), another sent step code \(other)")
        }
        let rejected = codes.indices.filter { codes[$0] < 0 }
        guard rejected.isEmpty else { throw SynchronizationError.peerRejectedArguments(ranks: rejected) }
        return gathered
    }
}
