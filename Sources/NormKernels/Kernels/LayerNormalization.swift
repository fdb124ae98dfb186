/// Layer normalization over the trailing `features` values of each of `rows` rows:
/// `[N, D]`, or `[N, C, H, W]` normalized over C·H·W (then `features` = C·H·W and
/// γ, β follow the tensor's memory order).
///
/// ```
/// y[n, i] = (x[n, i] − μ[n]) / √(σ²[n] + ε) · γ[i] + β[i]      σ² biased
/// ```
/// γ and β are optional (PyTorch's `elementwise_affine`, `bias`). N = 1 is legal.
///
/// **Memory passes**: reads `x` twice (statistics, then normalization; the second
/// from cache when a row fits in L2), reads γ and β once per row, writes `y` once.
/// In place (`output` is `input`) is allowed.
public struct LayerNormalization: Sendable {
    public let rows: Int
    public let features: Int
    public let epsilon: Float
    public let threading: Threading

    public init(rows: Int, features: Int, epsilon: Float = 1e-5, threading: Threading = .default) throws {
        try Check.positive(rows, "rows")
        try Check.positive(features, "features")
        _ = try Check.product([rows, features], "rows × features")
        try Check.epsilon(epsilon)
        self.rows = rows
        self.features = features
        self.epsilon = epsilon
        self.threading = threading
    }

    /// LayerNorm over C·H·W of an image tensor (PyTorch `normalized_shape = [C, H, W]`).
    public init(shape: TensorShape, epsilon: Float = 1e-5, threading: Threading = .default) throws {
        try shape.validate("shape")
        try self.init(rows: shape.n, features: shape.c * shape.spatial, epsilon: epsilon, threading: threading)
    }

    public func plan() -> PlanDescription { rowsPlan(rows: rows, features: features, .moments, threading: threading) }

    /// Normalizes each row; returns per-row mean and 1/σ for backward.
    @discardableResult
    public func forward(
        input: UnsafeBufferPointer<Float>, output: UnsafeMutableBufferPointer<Float>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        let total = rows * features
        try Check.length(input.count, total, "input")
        try Check.length(output.count, total, "output")
        try Check.length(scale, features, "scale (γ)")
        try Check.length(bias, features, "bias (β)")
        try Check.forwardBuffers(input: ("input", input), output: ("output", output),
                                 parameters: ("scale (γ)", scale), ("bias (β)", bias))
        let x = try Check.base(input, "input"), y = try Check.base(output, "output")
        return normalizeRows(x, y, rows: rows, features: features, epsilon: epsilon, threading: threading,
                             gamma: scale?.baseAddress, beta: bias?.baseAddress, affineOffset: { _ in 0 })
    }
}

/// LayerNorm's forward over `rows` rows of `features` values: statistics of a
/// row, then `y = ((x − p)·r + t)·γ[i] + β[i]` while the row is in cache. γ and β
/// of row u start at `affineOffset(u)` (0 for LayerNorm; the group's first
/// channel when GroupNorm normalizes feature vectors group by group).
func normalizeRows(
    _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, features: Int,
    epsilon eps: Float, threading: Threading,
    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, affineOffset: (Int) -> Int
) -> SavedStatistics {
    if features <= TinyUnits.maxRowLength(.moments) {
        return normalizeTinyRows(x, y, rows: rows, features: features, statistic: .moments, epsilon: eps,
                                 threading: threading, gamma: gamma, beta: beta, affineOffset: affineOffset)
    }
    if rowByRowMoments.contains(features) {
        return normalizeRowByRow(x, y, rows: rows, features: features, statistic: .moments, epsilon: eps,
                                 threading: threading, gamma: gamma, beta: beta, affineOffset: affineOffset)
    }
    return normalizeUnits(x, y, geometry: RowsGeometry(units: rows, segmentLength: features, unitStride: features),
                   epsilon: eps, threading: threading, gamma: gamma, beta: beta, affineOffset: affineOffset,
                   streamingAllowed: true)
}

/// The forward plan of `normalizeRows` / `normalizeTinyRows` for rows of `features` values.
func rowsPlan(rows: Int, features: Int, _ statistic: RowStatistic, threading: Threading) -> PlanDescription {
    let rowByRow = statistic == .moments ? rowByRowMoments.contains(features) : RMSNormalization.shortRows.contains(features)
    if rowByRow {
        return ChunkSchedule.plan(units: rows, length: features, naming: "rows", lanes: "one row at a time", threading: threading)
    }
    return features <= TinyUnits.maxRowLength(statistic)
        ? ChunkSchedule.plan(units: rows, length: features, naming: "rows", threading: threading)
        : RowsGeometry(units: rows, segmentLength: features, unitStride: features).plan(threading: threading)
}

/// Rows of ≤ `TinyUnits.maxRowLength` values: the rows geometry pays ~70 ns of fixed
/// work per row (reduce, lane merge, finalize, output call), more than the
/// arithmetic of 64 values, and PyTorch was 1.4–1.9× faster on LayerNorm
/// `[16384, 32]`–`[4096, 128]`. Here 8 rows fill the lanes of a vector
/// (`TinyUnits.moments8` / `meanSquare8`), then each row is written while its
/// values are in L1: `y = ((x − p)·r + t)·γ[i] + β[i]` (RMSNorm: p = t = 0).
/// A row's result depends only on its own values: the same for any thread count.
func normalizeTinyRows(
    _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, features: Int,
    statistic: RowStatistic, epsilon eps: Float, threading: Threading,
    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, affineOffset: (Int) -> Int
) -> SavedStatistics {
    // Rows of whole 32-byte groups keep every streamed line whole (see `Apply.columns`).
    let streaming = features % 8 == 0 && Int(bitPattern: UInt(bitPattern: y)) & 31 == 0
        && prefersStreamingStores(elements: rows * features, output: y, inputs: x)
    let centered = statistic == .moments
    let saved = SavedStatistics.filling(count: rows) { meanBase, invBase in
        ChunkSchedule.forEachChunk(units: rows, valuesPerUnit: features, threading: threading) { chunk in
            withUnsafeTemporaryAllocation(of: Moments.self, capacity: 8) { eight in
                let m8 = eight.baseAddress!
                for first in stride(from: chunk.lowerBound, to: chunk.upperBound, by: 8) {
                    if centered {
                        TinyUnits.moments8(x, first: first, last: chunk.upperBound - 1, length: features, into: m8)
                    } else {
                        TinyUnits.meanSquare8(x, first: first, last: chunk.upperBound - 1, length: features, into: m8)
                    }
                    for u in first..<min(chunk.upperBound, first + 8) {
                        let m = m8[u - first]
                        let r = inverseStandardDeviation(centered ? m.biasedVariance : m.mean, eps)
                        (meanBase + u).initialize(to: centered ? m.mean : 0)
                        (invBase + u).initialize(to: r)
                        let k = AffineCoefficients(mean: centered ? m.mean : 0, invStd: r)
                        let o = u * features, a = affineOffset(u)
                        Apply.elementwise(x + o, y + o, features, pivot: k.pivot, invStd: k.scale, shift: k.shift,
                                          gamma: gamma.map { $0 + a }, beta: beta.map { $0 + a },
                                          streaming: streaming)
                    }
                }
            }
        }
    }
    return saved
}

/// Rows taken one at a time, each finished while it is in L1: RMSNorm rows of
/// `RMSNormalization.shortRows` values and LayerNorm rows of
/// `rowByRowMoments` values. Statistics, then
/// `y = ((x − p)·r + t)·γ[i] + β[i]` (RMSNorm: p = t = 0, no β).
///
/// - Mean square (RMSNorm): Σx² in two Float32 vector accumulators joined before
///   one Float64 lane sum (Float64 redo on overflow). Gathering such rows 8 per
///   vector (`normalizeTinyRows`) costs 8 scalar loads and 7 inserts per position,
///   more than the row's own arithmetic.
/// - Moments (LayerNorm): `BlockMoments.contiguous` (Welford lanes on x − x[0],
///   Chan's merge), the rows geometry's own block reduction, without the
///   geometry's per-row bookkeeping (block descriptors, batch slots, calls
///   through its closures).
///
/// A row's result depends only on its values; chunks are `TinyUnits`'s fixed ones.
func normalizeRowByRow(
    _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, features n: Int,
    statistic: RowStatistic, epsilon eps: Float, threading: Threading,
    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, affineOffset: (Int) -> Int
) -> SavedStatistics {
    let streaming = n % 8 == 0 && Int(bitPattern: UInt(bitPattern: y)) & 31 == 0
        && prefersStreamingStores(elements: rows * n, output: y, inputs: x)
    return SavedStatistics.filling(count: rows) { meanBase, invBase in
        // One loop per statistic (the choice is made once, not per row).
        @inline(__always) func sweep(_ chunk: Range<Int>, centered: Bool) {
            for u in chunk {
                let row = x + u * n
                let k: AffineCoefficients
                if centered {
                    let m = BlockMoments.contiguous(row, n)
                    let r = inverseStandardDeviation(m.biasedVariance, eps)
                    (meanBase + u).initialize(to: m.mean)
                    (invBase + u).initialize(to: r)
                    k = AffineCoefficients(mean: m.mean, invStd: r)
                } else {
                    let r = inverseStandardDeviation(meanSquare(row, n), eps)
                    (meanBase + u).initialize(to: 0)
                    (invBase + u).initialize(to: r)
                    k = AffineCoefficients(pivot: 0, scale: Float(r), shift: 0)
                }
                let a = affineOffset(u)
                Apply.elementwise(row, y + u * n, n, pivot: k.pivot, invStd: k.scale, shift: k.shift,
                                  gamma: gamma.map { $0 + a }, beta: beta.map { $0 + a }, streaming: streaming)
            }
        }
        ChunkSchedule.forEachChunk(units: rows, valuesPerUnit: n, threading: threading) { chunk in
            if statistic == .moments { sweep(chunk, centered: true) } else { sweep(chunk, centered: false) }
        }
    }
}

/// LayerNorm row lengths `normalizeRows` takes one row at a time (shorter rows go
/// 8 per vector, longer ones through the rows geometry). Eighth pass, alternating
/// rounds against the rows geometry: 160–256 values 1.16–1.43× faster on one and
/// two threads (docs/PERFORMANCE-HISTORY.md).
let rowByRowMoments = 129...256

/// Σx²/n of a short row (see `normalizeRowByRow`).
@inline(__always)
private func meanSquare(_ row: UnsafePointer<Float>, _ n: Int) -> Double {
    var s0 = F8(), s1 = F8(), i = 0
    // scalar math: Σx²
    while i + 16 <= n {
        let v0 = load8(row + i), v1 = load8(row + i + 8)
        s0 = muladd(v0, v0, s0)
        s1 = muladd(v1, v1, s1)
        i += 16
    }
    if i + 8 <= n {
        let v0 = load8(row + i)
        s0 = muladd(v0, v0, s0)
        i += 8
    }
    var sum = 0.0
    let lanes = s0 + s1
    for l in 0..<8 { sum += Double(lanes[l]) }
    while i < n { sum += Double(row[i]) * Double(row[i]); i += 1 }
    if !sum.isFinite {
        // Σx² beyond Float32's range: redo the row in Float64.
        sum = 0
        for j in 0..<n { sum += Double(row[j]) * Double(row[j]) }
    }
    return sum / Double(n)
}

/// The same over any rows geometry whose units each have their own statistics and
/// whose γ, β run along a segment: segment position i of unit u uses γ[affineOffset(u) + i].
/// GroupNorm NHWC with small H·W is one: unit (n, g) is H·W segments of C/G values,
/// each using γ[g·C/G ..< (g+1)·C/G]. Its segments are a few vectors long and
/// interleaved with other units' segments, so `streamingAllowed` is false there:
/// non-temporal stores of partial lines would each go to memory on their own.
func normalizeUnits(
    _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, geometry: RowsGeometry,
    epsilon eps: Float, threading: Threading,
    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, affineOffset: (Int) -> Int,
    streamingAllowed: Bool
) -> SavedStatistics {
    var geometry = geometry
    geometry.applyWholeBlocks = true
    let units = geometry.units, segmentStride = geometry.segmentStride
    let mean = SlotBuffer(count: units, initial: 0.0), invStd = SlotBuffer(count: units, initial: 0.0)
    let table = CoefficientTable(count: units)
    defer { mean.deallocate(); invStd.deallocate(); table.deallocate() }
    let streaming = streamingAllowed
        && prefersStreamingStores(elements: units * geometry.unitElements, output: y, inputs: x)
    geometry.reduceThenApply(x, statistic: .moments, threading: threading,
            finalize: { unit, m in
                mean[unit] = m.mean
                invStd[unit] = inverseStandardDeviation(m.biasedVariance, eps)
                // (x − μ)·r = (x − p)·r + t with p = Float(μ), t = −(μ − p)·r.
                table[unit] = AffineCoefficients(mean: m.mean, invStd: invStd[unit])
            },
            apply: { b in
                let c = table[b.unit], first = affineOffset(b.unit) + b.start
                Apply.elementwise(x + b.offset, y + b.offset, b.count, pivot: c.pivot, invStd: c.scale, shift: c.shift,
                                  gamma: gamma.map { $0 + first }, beta: beta.map { $0 + first }, streaming: streaming,
                                  segments: b.segmentCount, stride: segmentStride)
            })
    return SavedStatistics(mean: mean.array, invStd: invStd.array)
}

/// RMS normalization over the trailing `features` values of each row
/// (PyTorch `nn.RMSNorm`):
/// ```
/// y[n, i] = x[n, i] / √(mean_i(x[n, i]²) + ε) · γ[i]
/// ```
/// ε defaults to Float32's machine epsilon, as PyTorch's `eps=None`.
///
/// **Memory passes**: reads `x` twice (sum of squares, then scaling; the second from
/// cache when a row fits in L2), writes `y` once. In place is allowed.
public struct RMSNormalization: Sendable {
    public let rows: Int
    public let features: Int
    public let epsilon: Float
    public let threading: Threading

    public init(rows: Int, features: Int, epsilon: Float = .ulpOfOne, threading: Threading = .default) throws {
        try Check.positive(rows, "rows")
        try Check.positive(features, "features")
        _ = try Check.product([rows, features], "rows × features")
        try Check.epsilon(epsilon)
        self.rows = rows
        self.features = features
        self.epsilon = epsilon
        self.threading = threading
    }

    var geometry: RowsGeometry { RowsGeometry(units: rows, segmentLength: features, unitStride: features) }

    /// Row lengths the forward takes one row at a time (`normalizeRowByRow`).
    /// Eighth pass, four alternating rounds against 8 rows per vector (≤ 64) and the
    /// rows geometry (> 64): 1.07–2× faster from 16 to 200 values, level to 1.2× at
    /// 256 (docs/PERFORMANCE-HISTORY.md). Shorter rows stay 8 per vector.
    static let shortRows = 16...256

    public func plan() -> PlanDescription { rowsPlan(rows: rows, features: features, .meanSquare, threading: threading) }

    /// Scales each row; returns per-row 1/rms in `invStd` (means are zero) for backward.
    @discardableResult
    public func forward(
        input: UnsafeBufferPointer<Float>, output: UnsafeMutableBufferPointer<Float>,
        scale: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        let total = rows * features
        try Check.length(input.count, total, "input")
        try Check.length(output.count, total, "output")
        try Check.length(scale, features, "scale (γ)")
        try Check.forwardBuffers(input: ("input", input), output: ("output", output), parameters: ("scale (γ)", scale))
        let x = try Check.base(input, "input"), y = try Check.base(output, "output")
        if RMSNormalization.shortRows.contains(features) {
            return normalizeRowByRow(x, y, rows: rows, features: features, statistic: .meanSquare, epsilon: epsilon,
                                     threading: threading, gamma: scale?.baseAddress, beta: nil, affineOffset: { _ in 0 })
        }
        if features <= TinyUnits.maxRowLength(.meanSquare) {
            return normalizeTinyRows(x, y, rows: rows, features: features, statistic: .meanSquare, epsilon: epsilon,
                                     threading: threading, gamma: scale?.baseAddress, beta: nil, affineOffset: { _ in 0 })
        }
        let invRMS = SlotBuffer(count: rows, initial: 0.0)
        defer { invRMS.deallocate() }
        let gamma = scale?.baseAddress, eps = epsilon
        let streaming = prefersStreamingStores(elements: total, output: y, inputs: x)
        geometry.reduceThenApply(x, statistic: .meanSquare, threading: threading,
            finalize: { row, m in invRMS[row] = inverseStandardDeviation(m.mean, eps) },
            apply: { b in
                Apply.elementwise(x + b.offset, y + b.offset, b.count, pivot: 0, invStd: Float(invRMS[b.unit]), shift: 0,
                                  gamma: gamma.map { $0 + b.start }, beta: nil, streaming: streaming)
            })
        return SavedStatistics(mean: Array(repeating: 0, count: rows), invStd: invRMS.array)
    }
}
