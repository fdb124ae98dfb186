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
    /// The forward's and the backward's paths for this shape and threading.
    let forwardPlan: RowPlan
    let backwardPlan: RowBackwardPlan

    public init(rows: Int, features: Int, epsilon: Float = 1e-5, threading: Threading = .default) throws {
        try Check.positive(rows, "rows")
        try Check.positive(features, "features")
        _ = try Check.product([rows, features], "rows × features")
        try Check.epsilon(epsilon)
        self.rows = rows
        self.features = features
        self.epsilon = epsilon
        self.threading = threading
        forwardPlan = RowPlan(rows: rows, features: features, .moments, threading: threading)
        backwardPlan = RowBackwardPlan(rows: rows, features: features, centered: true, threading: threading)
    }

    /// LayerNorm over C·H·W of an image tensor (PyTorch `normalized_shape = [C, H, W]`).
    public init(shape: TensorShape, epsilon: Float = 1e-5, threading: Threading = .default) throws {
        try shape.validate("shape")
        try self.init(rows: shape.n, features: shape.c * shape.spatial, epsilon: epsilon, threading: threading)
    }

    /// How the forward runs for this shape and threading (chosen at `init`).
    public func plan() -> PlanDescription { forwardPlan.description }

    /// Normalizes each row; returns per-row mean and 1/σ for backward.
    @discardableResult
    public func forward(
        input: UnsafeBufferPointer<Float>, output: UnsafeMutableBufferPointer<Float>,
        scale: UnsafeBufferPointer<Float>? = nil, bias: UnsafeBufferPointer<Float>? = nil
    ) throws -> SavedStatistics {
        try forwardElements(input: input, output: output, scale: scale, bias: bias)
    }

    /// The forward of every element type (the public overloads: this file, and
    /// `RowNormalization+HalfPrecision.swift`): validation, then the row engine
    /// specialized for `E`.
    @inline(__always)
    func forwardElements<E: NormElement>(
        input: UnsafeBufferPointer<E>, output: UnsafeMutableBufferPointer<E>,
        scale: UnsafeBufferPointer<Float>?, bias: UnsafeBufferPointer<Float>?
    ) throws -> SavedStatistics {
        let total = rows * features
        try Check.length(input.count, total, "input")
        try Check.length(output.count, total, "output")
        try Check.length(scale, features, "scale (γ)")
        try Check.length(bias, features, "bias (β)")
        try Check.forwardBuffers(input: ("input", input), output: ("output", output),
                                 parameters: ("scale (γ)", scale), ("bias (β)", bias))
        let x = try Check.base(input, "input"), y = try Check.base(output, "output")
        return normalizeRows(forwardPlan, x, y, epsilon: epsilon, gamma: scale?.baseAddress, beta: bias?.baseAddress)
    }
}
