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
    /// The forward's and the backward's paths for this shape and threading.
    let forwardPlan: RowPlan
    let backwardPlan: RowBackwardPlan

    public init(rows: Int, features: Int, epsilon: Float = .ulpOfOne, threading: Threading = .default) throws {
        try Check.positive(rows, "rows")
        try Check.positive(features, "features")
        _ = try Check.product([rows, features], "rows × features")
        try Check.epsilon(epsilon)
        self.rows = rows
        self.features = features
        self.epsilon = epsilon
        self.threading = threading
        forwardPlan = RowPlan(rows: rows, features: features, .meanSquare, threading: threading)
        backwardPlan = RowBackwardPlan(rows: rows, features: features, centered: false, threading: threading)
    }

    /// Row lengths the forward takes one row at a time (`RowPlan.Strategy.rowByRow`).
    /// Four alternating rounds against 8 rows per vector (≤ 64) and the rows
    /// geometry (> 64): 1.07–2× faster from 16 to 200 values, level to 1.2× at 256
    /// (docs/PERFORMANCE-HISTORY.md, "Short rows: backward row sums inline,
    /// forwards one row at a time"). Shorter rows stay 8 per vector.
    static let shortRows = 16...256

    /// How the forward runs for this shape and threading (chosen at `init`).
    public func plan() -> PlanDescription { forwardPlan.description }

    /// Scales each row; returns per-row 1/rms in `invStd` (means are zero) for backward.
    @discardableResult
    public func forward(
        input: UnsafeBufferPointer<Float>, output: UnsafeMutableBufferPointer<Float>,
        scale: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try forwardElements(input: input, output: output, scale: scale)
    }

    /// The forward of every element type (the public overloads: this file, and
    /// `RowNormalization+HalfPrecision.swift`): validation, then the row engine
    /// specialized for `E`.
    @inline(__always)
    func forwardElements<E: NormElement>(
        input: UnsafeBufferPointer<E>, output: UnsafeMutableBufferPointer<E>, scale: UnsafeBufferPointer<Float>?
    ) throws -> SavedStatistics {
        let total = rows * features
        try Check.length(input.count, total, "input")
        try Check.length(output.count, total, "output")
        try Check.length(scale, features, "scale (γ)")
        try Check.forwardBuffers(input: ("input", input), output: ("output", output), parameters: ("scale (γ)", scale))
        let x = try Check.base(input, "input"), y = try Check.base(output, "output")
        return normalizeRows(forwardPlan, x, y, epsilon: epsilon, gamma: scale?.baseAddress, beta: nil)
    }
}
