/// Weight normalization (Salimans & Kingma 2016; PyTorch `torch._weight_norm`):
/// ```
/// w = g · v / ‖v‖
/// ```
/// with one norm per index of dimension `dim` (over all other dimensions), or one
/// norm of the whole tensor when `dim` is nil. `dim = 0` is the usual "per output
/// row" of a linear or convolution weight. A zero `v` slice gives NaN, as PyTorch.
///
/// Viewing `v` as `[outer, size, inner]` around `dim`, index i's values are `outer`
/// runs of `inner` contiguous values — the same rows geometry as BatchNorm NCHW.
/// The squared norm is a sum of squares (no cancellation), formed in Float32
/// blocks and merged in Float64; blocks that overflow Float32 are redone in Float64.
///
/// **Memory passes**: reads `v` twice (norms, then scaling), writes `w` once.
public struct WeightNormalization: Sendable {
    public let shape: [Int]
    public let dim: Int?
    public let threading: Threading
    let outer: Int, size: Int, inner: Int
    /// Index i's values as the rows geometry's unit i (short runs grouped),
    /// forward and backward, and the forward's store policy: fixed at `init`.
    let geometry: RowsGeometry
    let store: StorePolicy
    /// Where a call's workspace comes from.
    let workspace = WorkspacePool()

    public init(shape: [Int], dim: Int? = 0, threading: Threading = .default) throws {
        guard !shape.isEmpty else { throw NormError.invalidArgument(argument: "shape", reason: "needs at least one dimension") }
        for (i, d) in shape.enumerated() { try Check.positive(d, "shape[\(i)]") }
        let total = try Check.product(shape, "shape")
        if let dim {
            guard (0..<shape.count).contains(dim) else {
                throw NormError.invalidArgument(argument: "dim", reason: "must be in 0..<\(shape.count), got \(dim)")
            }
            outer = shape[..<dim].reduce(1, *)
            size = shape[dim]
            inner = shape[(dim + 1)...].reduce(1, *)
        } else {
            outer = 1; size = 1; inner = total
        }
        self.shape = shape
        self.dim = dim
        self.threading = threading
        geometry = RowsGeometry(units: size, segments: outer, segmentLength: inner, unitStride: inner,
                                segmentStride: size * inner, groupShortSegments: true)
        store = StorePolicy(twoPass: total, threads: threading.threads)
    }

    /// Number of norms (and of `g` values): `shape[dim]`, or 1 when `dim` is nil.
    public var normCount: Int { size }
    public var count: Int { outer * size * inner }

    /// How the forward runs for this shape and threading (chosen at `init`).
    public func plan() -> PlanDescription { geometry.plan(threading: threading) }

    /// Writes `w = g · v / ‖v‖`; returns the norms ‖v‖ (Float64) for backward.
    @discardableResult
    public func forward(v: UnsafeBufferPointer<Float>, g: UnsafeBufferPointer<Float>,
                        output: UnsafeMutableBufferPointer<Float>) throws -> [Double] {
        try forwardElements(v: v, g: g, output: output)
    }

    /// The forward of every element type (the 16-bit overloads:
    /// `WeightNormalization+HalfPrecision.swift`): validation, then the rows
    /// geometry and `Apply.affine` specialized for `E`.
    @inline(__always)
    func forwardElements<E: NormElement>(v: UnsafeBufferPointer<E>, g: UnsafeBufferPointer<Float>,
                                         output: UnsafeMutableBufferPointer<E>) throws -> [Double] {
        try Check.length(v.count, count, "v")
        try Check.length(g.count, size, "g")
        try Check.length(output.count, count, "output (w)")
        try Check.forwardBuffers(input: ("v", v), output: ("output (w)", output), parameters: ("g", g))
        let x = try Check.base(v, "v"), y = try Check.base(output, "output (w)")
        let streaming = store.streaming(output: y, reading: x)
        let workspace = self.workspace.take()
        defer { self.workspace.recycle(workspace) }
        let scale = SlotBuffer(count: size, initial: Float(0), in: workspace)
        // The norms go straight into the returned array.
        return [Double](unsafeUninitializedCapacity: size) { norms, initialized in
            geometry.reduceThenApply(x, statistic: .meanSquare, threading: threading, workspace: workspace,
                finalize: { i, m in
                    norms[i] = (m.mean * m.count).squareRoot()
                    scale[i] = Float(Double(g[i]) / norms[i])
                },
                apply: { b in
                    Apply.affine(x + b.offset, y + b.offset, b.count,
                                 AffineCoefficients(pivot: 0, scale: scale[b.unit], shift: 0), relu: false,
                                 streaming: streaming)
                })
            initialized = size
        }
    }
}
