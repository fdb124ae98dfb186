import NormKernels

/// A 64-byte-aligned Float32 buffer that frees itself. Kernels get its pointers;
/// the class keeps them valid for as long as a closure holds the buffer.
final class Buffer {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(count: Int) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(1, count))
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    var mutable: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }
    var readOnly: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: pointer, count: count) }
    subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }

    /// NaN everywhere: a kernel that skips an element cannot pass the check
    /// with a previous case's (or repetition's) values.
    func poison() { pointer.update(repeating: .nan, count: count) }
}

/// SplitMix64 (Steele, Lea & Flood 2014) used as a hash of the element index,
/// so every value depends only on (seed, index): the same case gets the same
/// data in every run, on every thread count, in any fill order.
enum Deterministic {
    @inline(__always)
    static func mix(_ z0: UInt64) -> UInt64 {
        var z = z0 &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [-1, 1) with 24 random bits (exact in Float32).
    @inline(__always)
    static func symmetric(seed: UInt64, index: Int) -> Float {
        let bits = mix(seed ^ (UInt64(truncatingIfNeeded: index) &* 0xD1B5_4A32_D192_ED03)) >> 40
        return Float(bits) * 0x1p-23 - 1
    }

    /// Per-channel offset and spread: channels get different means (−1.5 … 1.5)
    /// and scales (1 … 1.5), so a kernel that mixes up channels, or forgets to
    /// subtract a mean, fails the reference check.
    @inline(__always)
    static func offset(channel c: Int) -> Float { Float(c % 7 - 3) * 0.5 }
    @inline(__always)
    static func spread(channel c: Int) -> Float { 1 + Float(c % 3) * 0.25 }
}

/// Inputs and outputs of one `CaseKey`, generated once and shared by all its
/// thread counts.
final class Workload {
    let key: CaseKey
    /// The op's input (x, or v for weight normalization), in `key.memoryLayout`.
    let x: Buffer
    /// Output written by each repetition: y for forward, dx for backward.
    let out: Buffer
    /// AdaIN's style tensor (same shape and layout as the content).
    let style: Buffer?
    /// Upstream gradient for backward cases.
    let dy: Buffer?
    /// γ and β, sized by the op (`BenchOp.operands`): C values, C·H·W for
    /// LayerNorm/RMSNorm; for weight normalization `gamma` holds g (N values) and
    /// `beta` is empty.
    let gamma: Buffer
    let beta: Buffer
    /// Backward only: receive dγ and dβ (dg for weight normalization), sized like γ and β.
    let gradGamma: Buffer?
    let gradBeta: Buffer?
    /// Running mean and variance for inference (C values), else empty.
    let runningMean: [Float]
    let runningVariance: [Float]

    static let epsilon: Float = 1e-5

    init(key: CaseKey) {
        // The buffers hold Float; 16-bit dtypes are refused when the grid is read.
        precondition(key.dtype == .f32, "normbench: \(key.dtype.rawValue) workloads are not yet supported")
        self.key = key
        let s = key.shape, operands = key.op.operands(s)
        x = Workload.tensor(s, key.memoryLayout, seed: 1)
        out = Buffer(count: s.count)
        style = operands.style ? Workload.tensor(s, key.memoryLayout, seed: 2) : nil
        dy = key.direction == .backward ? Workload.uniform(count: s.count, seed: 3, scale: 1) : nil
        gamma = Buffer(count: operands.gamma)
        beta = Buffer(count: operands.beta)
        for i in 0..<operands.gamma {
            gamma[i] = 1 + 0.25 * Deterministic.symmetric(seed: 4, index: i)
        }
        for i in 0..<operands.beta {
            beta[i] = 0.25 * Deterministic.symmetric(seed: 5, index: i)
        }
        gradGamma = key.direction == .backward ? Buffer(count: gamma.count) : nil
        gradBeta = key.direction == .backward ? Buffer(count: beta.count) : nil
        if key.direction == .forwardInference {
            runningMean = (0..<s.c).map { Deterministic.offset(channel: $0) + 0.1 * Deterministic.symmetric(seed: 6, index: $0) }
            runningVariance = (0..<s.c).map {
                let spread = Deterministic.spread(channel: $0)
                return spread * spread / 3 * (1 + 0.1 * Deterministic.symmetric(seed: 7, index: $0))
            }
        } else {
            runningMean = []
            runningVariance = []
        }
    }

    var tensorShape: TensorShape { key.shape.tensor(key.memoryLayout) }

    /// γ of the unit's element i (see `Unit.parameters`), in Float64.
    func scale(_ unit: Unit, _ i: Int) -> Double { Double(gamma[unit.parameters[i]]) }
    /// β of the unit's element i, or 0 for ops without β.
    func shift(_ unit: Unit, _ i: Int) -> Double { beta.count > 0 ? Double(beta[unit.parameters[i]]) : 0 }

    /// x[n, c, h, w] = offset(c) + spread(c)·u, u uniform in [-1, 1), stored in `layout`.
    static func tensor(_ s: Shape, _ layout: Layout, seed: UInt64) -> Buffer {
        let buffer = Buffer(count: s.count)
        let p = buffer.pointer, hw = s.spatial, c = s.c
        for i in 0..<s.count {
            let channel = layout == .nchw ? (i / hw) % c : i % c
            p[i] = Deterministic.offset(channel: channel)
                + Deterministic.spread(channel: channel) * Deterministic.symmetric(seed: seed, index: i)
        }
        return buffer
    }

    static func uniform(count: Int, seed: UInt64, scale: Float) -> Buffer {
        let buffer = Buffer(count: count)
        for i in 0..<count { buffer[i] = scale * Deterministic.symmetric(seed: seed, index: i) }
        return buffer
    }
}
