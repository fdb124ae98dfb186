/// Memory order of a 4-D activation tensor.
public enum Layout: String, Sendable, Hashable, CaseIterable {
    /// `[N, C, H, W]`, W fastest (PyTorch's default contiguous format).
    case nchw
    /// `[N, H, W, C]`, C fastest (PyTorch's channels_last, TensorFlow's default).
    case nhwc
}

/// Logical shape `[N, C, H, W]` of an activation and its memory layout.
///
/// `[N, D]` (BatchNorm1d, fully connected) is `TensorShape.matrix(n, d)`: C = D
/// and H = W = 1, where NCHW and NHWC are the same memory. `[N, C, L]` is H = L, W = 1.
public struct TensorShape: Sendable, Hashable, CustomStringConvertible {
    public var n: Int
    public var c: Int
    public var h: Int
    public var w: Int
    public var layout: Layout

    public init(n: Int, c: Int, h: Int = 1, w: Int = 1, layout: Layout = .nchw) {
        self.n = n
        self.c = c
        self.h = h
        self.w = w
        self.layout = layout
    }

    /// `[rows, features]`, e.g. BatchNorm1d input.
    public static func matrix(_ rows: Int, _ features: Int) -> TensorShape {
        TensorShape(n: rows, c: features, h: 1, w: 1, layout: .nhwc)
    }

    /// H·W.
    public var spatial: Int { h * w }
    /// N·C·H·W.
    public var count: Int { n * c * h * w }

    public var description: String {
        layout == .nchw ? "[\(n), \(c), \(h), \(w)] NCHW" : "[\(n), \(h), \(w), \(c)] NHWC"
    }

    /// All dimensions > 0 and the element count fits in Int.
    func validate(_ argument: String) throws {
        try Check.positive(n, "\(argument).n")
        try Check.positive(c, "\(argument).c")
        try Check.positive(h, "\(argument).h")
        try Check.positive(w, "\(argument).w")
        _ = try Check.product([n, c, h, w], argument)
    }

    /// NCHW with H·W = 1 and NHWC are the same memory; kernels use the cheaper geometry.
    var isChannelsLast: Bool { layout == .nhwc || spatial == 1 }
}
