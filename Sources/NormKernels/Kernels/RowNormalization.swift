/// The row-normalization engine, forward: units of contiguous values (rows), or
/// of a few segments (`RowsGeometry`), each normalized by its own statistics:
/// ```
/// y = ((x − p)·r + t)·γ[i] + β[i]      r = 1/√(σ² + ε), p = Float(μ), t = −(μ − p)·r
/// ```
/// (RMSNorm: μ = p = t = 0, r = 1/√(mean(x²) + ε).) It runs LayerNorm,
/// RMSNorm, GroupNorm on feature vectors (H·W = 1) and on small maps (NCHW with
/// γ, β expanded; NHWC group segments). `RowPlan` picks one strategy per
/// descriptor at `init`; there is one function per strategy below.
/// The backward engine is in `RowNormalization+Backward.swift`.

/// How one row-normalization forward runs: resolved once, at the descriptor's
/// `init`, from the shape and the threading, and read by `forward` and `plan()`.
struct RowPlan: Sendable {
    enum Strategy: Sendable {
        /// Rows of ≤ `TinyUnits.maxRowLength` values, 8 rows in the lanes of a
        /// vector (`normalizeEightRowsPerVector`).
        case eightPerVector
        /// Rows taken one at a time, each finished while it is in L1
        /// (`normalizeRowByRow`): LayerNorm rows of `rowByRowMoments` values,
        /// RMSNorm rows of `RMSNormalization.shortRows` values.
        case rowByRow
        /// The rows geometry (`normalizeRowsGeometry`): blocks of a row, rows in
        /// batches; longer rows, and units of several segments.
        case geometry(RowsGeometry)
    }

    /// Units (rows) and values per unit.
    let units: Int
    let length: Int
    let statistic: RowStatistic
    let strategy: Strategy
    /// γ and β of unit u start at `(u % affinePeriod) · affineStride` (plus the
    /// block's position in its segment): 0 for LayerNorm (period 1); the group's
    /// first channel when GroupNorm normalizes its groups as rows.
    let affinePeriod: Int
    let affineStride: Int
    let store: StorePolicy
    let threading: Threading
    /// Where a call's workspace comes from (`workspaceBytes`).
    let workspace = WorkspacePool()

    /// `rows` rows of `features` contiguous values.
    init(rows: Int, features: Int, _ statistic: RowStatistic, affinePeriod: Int = 1, threading: Threading) {
        let rowByRow = statistic == .moments
            ? rowByRowMoments.contains(features) : RMSNormalization.shortRows.contains(features)
        let strategy: Strategy
        if rowByRow {
            strategy = .rowByRow
        } else if features <= TinyUnits.maxRowLength(statistic) {
            strategy = .eightPerVector
        } else {
            var geometry = RowsGeometry(units: rows, segmentLength: features, unitStride: features)
            geometry.applyWholeBlocks = true
            strategy = .geometry(geometry)
        }
        // The per-row kernels stream only rows of whole 8-value groups, so every
        // streamed line is whole (see `Apply.columns`).
        let store: StorePolicy
        if case .geometry = strategy {
            store = StorePolicy(twoPass: rows * features, threads: threading.threads)
        } else {
            store = features % 8 == 0 ? StorePolicy(twoPass: rows * features, threads: threading.threads, requiresAlignedOutput: true) : .cached
        }
        self.init(units: rows, length: features, statistic: statistic, strategy: strategy,
                  affinePeriod: affinePeriod, affineStride: features, store: store, threading: threading)
    }

    /// The units of `geometry` (moments), whose γ and β run along a segment:
    /// GroupNorm NHWC with small H·W, unit (n, g) = H·W segments of C/G values.
    /// Those segments are a few vectors long and interleaved with other units'
    /// segments, so the output goes through the cache: non-temporal stores of
    /// partial lines would each go to memory on their own.
    init(units geometry: RowsGeometry, affinePeriod: Int, threading: Threading) {
        var geometry = geometry
        geometry.applyWholeBlocks = true
        self.init(units: geometry.units, length: geometry.unitElements, statistic: .moments,
                  strategy: .geometry(geometry), affinePeriod: affinePeriod, affineStride: geometry.segmentLength,
                  store: .cached, threading: threading)
    }

    private init(units: Int, length: Int, statistic: RowStatistic, strategy: Strategy,
                 affinePeriod: Int, affineStride: Int, store: StorePolicy, threading: Threading) {
        self.units = units
        self.length = length
        self.statistic = statistic
        self.strategy = strategy
        self.affinePeriod = affinePeriod
        self.affineStride = affineStride
        self.store = store
        self.threading = threading
    }

    /// Where γ and β of unit u start.
    @inline(__always)
    func affineOffset(_ u: Int) -> Int { affinePeriod == 1 ? 0 : (u % affinePeriod) * affineStride }

    /// Workspace a call carves from `workspace` (bytes, before alignment): the
    /// rows geometry's per-unit coefficients (its split strategy adds a partial
    /// per block); every strategy writes mean and 1/σ straight into the returned
    /// arrays.
    var workspaceBytes: Int {
        guard case .geometry = strategy else { return 0 }
        return units * 3 * MemoryLayout<Float>.stride
    }

    var description: PlanDescription {
        switch strategy {
        case .eightPerVector:
            return ChunkSchedule.plan(units: units, length: length, naming: "rows", threading: threading)
        case .rowByRow:
            return ChunkSchedule.plan(units: units, length: length, naming: "rows", lanes: "one row at a time",
                                      chunk: ChunkSchedule.rowChunk(length: length),
                                      threading: threading)
        case .geometry(let geometry):
            return geometry.plan(threading: threading)
        }
    }
}

/// LayerNorm row lengths taken one row at a time (shorter rows go 8 per vector,
/// longer ones through the rows geometry). Alternating rounds against the rows
/// geometry: 160–256 values 1.16–1.43× faster on one and two threads
/// (docs/PERFORMANCE-HISTORY.md, "Short rows: backward row sums inline, forwards
/// one row at a time"), and on the Xeon (L2 2 MiB) 512–4096 values 1.15–1.3×
/// faster on one and two threads (commit 8719d07's message): a row of up to 64 KiB is read, reduced and written while it sits
/// in L1/L2, without the geometry's batches, block descriptors and closures.
/// Longer rows keep the geometry, which splits one row over several blocks.
let rowByRowMoments = 129...16384

/// The forward of a row plan: statistics of each unit, then its outputs;
/// returns per-unit mean and 1/σ (RMSNorm: mean 0, 1/rms).
///
/// Generic over the tensors' element type (`Float`, `Float16`, `BFloat16`; one
/// specialization each): x is widened exactly to Float32 as it is loaded, every
/// statistic and coefficient is the Float32 kernel's, and each output is rounded
/// once from the Float32 value the Float32 kernel would store. So a 16-bit
/// result is bit for bit `E.narrow` of the Float32 kernel's result on the
/// widened input. 16-bit tensors use the Float32 plan as it is (blocks and
/// batches counted in values, so a batch holds half the bytes), its store policy
/// included: where it streams, 16-bit outputs go out in 16-byte non-temporal
/// stores of 8 values (`E.stream8`).
func normalizeRows<E: NormElement>(
    _ plan: RowPlan, _ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>, epsilon: Float,
    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?
) -> SavedStatistics {
    let streaming = plan.store.streaming(output: y, reading: x)
    switch plan.strategy {
    case .eightPerVector:
        return normalizeEightRowsPerVector(plan, x, y, epsilon: epsilon, gamma: gamma, beta: beta, streaming: streaming)
    case .rowByRow:
        return normalizeRowByRow(plan, x, y, epsilon: epsilon, gamma: gamma, beta: beta, streaming: streaming)
    case .geometry(let geometry):
        return normalizeRowsGeometry(plan, geometry, x, y, epsilon: epsilon, gamma: gamma, beta: beta,
                                     streaming: streaming)
    }
}

/// Rows of ≤ `TinyUnits.maxRowLength` values: the rows geometry pays ~70 ns of
/// fixed work per row (reduce, lane merge, finalize, output call), more than the
/// arithmetic of 64 values, and PyTorch was 1.4–1.9× faster on LayerNorm
/// `[16384, 32]`–`[4096, 128]`. Here 8 rows fill the lanes of a vector
/// (`TinyUnits.moments8` / `meanSquare8`), then each row is written while its
/// values are in L1. A row's result depends only on its own values: the same
/// for any thread count.
private func normalizeEightRowsPerVector<E: NormElement>(
    _ plan: RowPlan, _ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>, epsilon eps: Float,
    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, streaming: Bool
) -> SavedStatistics {
    let rows = plan.units, features = plan.length
    let centered = plan.statistic == .moments
    return SavedStatistics.filling(count: rows) { meanBase, invBase in
        ChunkSchedule.forEachChunk(units: rows, valuesPerUnit: features, threading: plan.threading) { chunk in
            withScratch(of: Moments.self, capacity: 8) { eight in
                let m8 = eight.baseAddress!
                /// Statistics of units `first ... last` (≤ 8) of `p` into `m8`.
                @inline(__always) func statistics<T: NormElement>(_ p: UnsafePointer<T>, first: Int, last: Int) {
                    if centered {
                        TinyUnits.moments8(p, first: first, last: last, length: features, into: m8)
                    } else {
                        TinyUnits.meanSquare8(p, first: first, last: last, length: features, into: m8)
                    }
                }
                /// Saved statistics and outputs of rows `first ..< first + 8` (within the chunk).
                @inline(__always) func write(_ first: Int) {
                    for u in first..<min(chunk.upperBound, first + 8) {
                        let k = rowCoefficients(m8[u - first], centered: centered, eps, mean: meanBase + u,
                                                invStd: invBase + u)
                        let o = u * features, a = plan.affineOffset(u)
                        Apply.elementwise(x + o, y + o, features, pivot: k.pivot, invStd: k.scale, shift: k.shift,
                                          gamma: gamma.map { $0 + a }, beta: beta.map { $0 + a },
                                          streaming: streaming)
                    }
                }
                if E.self == Float.self {
                    for first in stride(from: chunk.lowerBound, to: chunk.upperBound, by: 8) {
                        statistics(x, first: first, last: chunk.upperBound - 1)
                        write(first)
                    }
                    return
                }
                // 16-bit rows: 8 rows at a time widened into an L1 scratch (8 values per
                // `E.load8`), then the lane code on Float32. Its gathers load one value
                // at a time, and one Float16 value at a time converts through a library
                // call in a build without F16C. The same values: the same bits.
                withScratch(of: Float.self, capacity: 8 * features) { wide in
                    for first in stride(from: chunk.lowerBound, to: chunk.upperBound, by: 8) {
                        let count = min(8, chunk.upperBound - first)
                        widen(x + first * features, into: wide.baseAddress!, count * features)
                        statistics(UnsafePointer(wide.baseAddress!), first: 0, last: count - 1)
                        write(first)
                    }
                }
            }
        }
    }
}

/// Rows taken one at a time, each finished while it is in L1. Statistics, then
/// the outputs:
///
/// - Mean square (RMSNorm): Σx² in two Float32 vector accumulators joined before
///   one Float64 lane sum (Float64 redo on overflow). Gathering such rows 8 per
///   vector costs 8 scalar loads and 7 inserts per position, more than the
///   row's own arithmetic.
/// - Moments (LayerNorm): shifted sums (`ShiftedRowSums`), each row's sums in
///   the loop that writes the previous row (`normalizeMomentRowsPipelined`).
///
/// A row's result depends only on its values; chunks are `TinyUnits`'s fixed ones.
private func normalizeRowByRow<E: NormElement>(
    _ plan: RowPlan, _ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>, epsilon eps: Float,
    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, streaming: Bool
) -> SavedStatistics {
    if plan.statistic == .moments {
        return normalizeMomentRowsPipelined(plan, x, y, epsilon: eps, gamma: gamma, beta: beta, streaming: streaming)
    }
    let rows = plan.units, n = plan.length
    return SavedStatistics.filling(count: rows) { meanBase, invBase in
        // One loop per statistic (the choice is made once, not per row).
        @inline(__always) func sweep(_ chunk: Range<Int>, centered: Bool) {
            for u in chunk {
                let row = x + u * n
                let k = rowCoefficients(row, n, centered: centered, eps, mean: meanBase + u, invStd: invBase + u)
                let a = plan.affineOffset(u)
                Apply.elementwise(row, y + u * n, n, pivot: k.pivot, invStd: k.scale, shift: k.shift,
                                  gamma: gamma.map { $0 + a }, beta: beta.map { $0 + a }, streaming: streaming)
            }
        }
        ChunkSchedule.forEachChunk(units: rows, valuesPerUnit: n, chunk: ChunkSchedule.rowChunk(length: n),
                                   threading: plan.threading) { chunk in
            sweep(chunk, centered: false)
        }
    }
}

/// `dst[i] = Float(src[i])` for i < n, eight values per `E.load8` (also the
/// fused engine's eight-rows-per-vector strategy, `RowNormalization+Fused.swift`).
@inline(__always)
func widen<E: NormElement>(_ src: UnsafePointer<E>, into dst: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    while i + 8 <= n { store8(E.load8(src + i), dst + i); i += 8 }
    while i < n { dst[i] = E.widen(src[i]); i += 1 }
}

/// One row's statistics (moments, or the mean square without centering), written
/// to the saved `mean`/`invStd` slots, and the affine coefficients that normalize
/// the row: x̂ = (x − μ)·r with r = 1/√(σ² + ε), or x·r with r = 1/√(mean(x²) + ε).
@inline(__always)
func rowCoefficients<E: NormElement>(
    _ row: UnsafePointer<E>, _ n: Int, centered: Bool, _ eps: Float,
    mean: UnsafeMutablePointer<Double>, invStd: UnsafeMutablePointer<Double>
) -> AffineCoefficients {
    if centered {
        // The statistics of `normalizeMomentRowsPipelined` (the same bits).
        let m = ShiftedRowSums.moments(row, n)
        let r = inverseStandardDeviation(m.variance, eps)
        mean.initialize(to: m.mean)
        invStd.initialize(to: r)
        return AffineCoefficients(mean: m.mean, invStd: r)
    }
    let r = inverseStandardDeviation(meanSquare(row, n), eps)
    mean.initialize(to: 0)
    invStd.initialize(to: r)
    return AffineCoefficients(pivot: 0, scale: Float(r), shift: 0)
}

/// `rowCoefficients` from a row's moments already formed (the eight-rows
/// strategies: `TinyUnits`' lanes hold the mean and biased variance, or the
/// mean square in `mean`): writes the saved mean and 1/σ, returns the output's
/// coefficients.
@inline(__always)
func rowCoefficients(
    _ m: Moments, centered: Bool, _ eps: Float,
    mean: UnsafeMutablePointer<Double>, invStd: UnsafeMutablePointer<Double>
) -> AffineCoefficients {
    let r = inverseStandardDeviation(centered ? m.biasedVariance : m.mean, eps)
    mean.initialize(to: centered ? m.mean : 0)
    invStd.initialize(to: r)
    return AffineCoefficients(mean: centered ? m.mean : 0, invStd: r)
}

/// Σx²/n of a short row (see `normalizeRowByRow`).
@inline(__always)
func meanSquare<E: NormElement>(_ row: UnsafePointer<E>, _ n: Int) -> Double {
    var s0 = F8(), s1 = F8(), i = 0
    // scalar math: Σx²
    while i + 16 <= n {
        let v0 = E.load8(row + i), v1 = E.load8(row + i + 8)
        s0 = muladd(v0, v0, s0)
        s1 = muladd(v1, v1, s1)
        i += 16
    }
    if i + 8 <= n {
        let v0 = E.load8(row + i)
        s0 = muladd(v0, v0, s0)
        i += 8
    }
    var sum = 0.0
    let lanes = s0 + s1
    for l in 0..<8 { sum += Double(lanes[l]) }
    while i < n { let v = Double(E.widen(row[i])); sum += v * v; i += 1 }
    if !sum.isFinite {
        // Σx² beyond Float32's range: redo the row in Float64.
        sum = 0
        for j in 0..<n { let v = Double(E.widen(row[j])); sum += v * v }
    }
    return sum / Double(n)
}

/// Units through the rows geometry (blocks of a unit reduced and merged in a
/// fixed tree, units in batches; `RowsGeometry.reduceThenApply`). Segment
/// position i of unit u uses γ[affineOffset(u) + i].
private func normalizeRowsGeometry<E: NormElement>(
    _ plan: RowPlan, _ geometry: RowsGeometry, _ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>,
    epsilon eps: Float, gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, streaming: Bool
) -> SavedStatistics {
    let units = geometry.units, segmentStride = geometry.segmentStride
    let centered = plan.statistic == .moments
    let workspace = plan.workspace.take()
    defer { plan.workspace.recycle(workspace) }
    let table = CoefficientTable(count: units, in: workspace)
    return SavedStatistics.filling(count: units) { mean, invStd in
        geometry.reduceThenApply(x, statistic: plan.statistic, threading: plan.threading, workspace: workspace,
            finalize: { unit, m in
                if centered {
                    mean[unit] = m.mean
                    invStd[unit] = inverseStandardDeviation(m.biasedVariance, eps)
                    // (x − μ)·r = (x − p)·r + t with p = Float(μ), t = −(μ − p)·r.
                    table[unit] = AffineCoefficients(mean: m.mean, invStd: invStd[unit])
                } else {
                    // RMSNorm: m.mean is mean(x²).
                    mean[unit] = 0
                    invStd[unit] = inverseStandardDeviation(m.mean, eps)
                    table[unit] = AffineCoefficients(pivot: 0, scale: Float(invStd[unit]), shift: 0)
                }
            },
            apply: { b in
                let c = table[b.unit], first = plan.affineOffset(b.unit) + b.start
                Apply.elementwise(x + b.offset, y + b.offset, b.count, pivot: c.pivot, invStd: c.scale, shift: c.shift,
                                  gamma: gamma.map { $0 + first }, beta: beta.map { $0 + first }, streaming: streaming,
                                  segments: b.segmentCount, stride: segmentStride)
            })
    }
}
