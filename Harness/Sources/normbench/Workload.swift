import NormKernels

/// A 64-byte-aligned tensor that frees itself. Kernels get its pointers; the
/// class keeps them valid for as long as a closure holds the buffer.
///
/// `pointer` holds the values as Float32, which the reference reads. A 16-bit
/// buffer (`dtype` f16, bf16) also holds the elements the kernels read and
/// write (`elements`): `roundToElements()` rounds the Float32 values once into
/// them and widens them back, so the reference sees exactly the kernel's input;
/// `widenElements()` copies a 16-bit output back for the check.
final class Buffer {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int
    let dtype: DType
    /// The 16-bit elements; nil for f32 (the kernels use `pointer`).
    private let halves: UnsafeMutableRawPointer?
    /// Frees the memory (`Placement.allocate`).
    private let free: [() -> Void]

    init(count: Int, dtype: DType = .f32) {
        self.count = count
        self.dtype = dtype
        // The Float32 values first, then the 16-bit elements the kernels use:
        // the buffer the kernels touch gets its own place in `Placement`'s order.
        let values = Placement.allocate(byteCount: max(1, count) * 4)
        pointer = values.pointer.bindMemory(to: Float.self, capacity: max(1, count))
        if dtype == .f32 {
            halves = nil
            free = [values.free]
        } else {
            let elements = Placement.allocate(byteCount: max(1, count) * 2)
            halves = elements.pointer
            free = [values.free, elements.free]
        }
    }

    deinit { for f in free { f() } }

    var mutable: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }
    var readOnly: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: pointer, count: count) }
    subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }

    /// The tensor as the kernels see it, for the element type of `dtype`.
    func mutableElements<E: NormElement>(_: E.Type) -> UnsafeMutableBufferPointer<E> {
        precondition(MemoryLayout<E>.size == dtype.elementBytes, "normbench: \(E.self) buffer of a \(dtype) case")
        let base = halves ?? UnsafeMutableRawPointer(pointer)
        return UnsafeMutableBufferPointer(start: base.bindMemory(to: E.self, capacity: max(1, count)), count: count)
    }

    func elements<E: NormElement>(_ type: E.Type) -> UnsafeBufferPointer<E> { UnsafeBufferPointer(mutableElements(type)) }

    /// The start of the memory the kernels write (for the black hole of `Measurement`).
    var kernelPointer: UnsafeRawPointer { UnsafeRawPointer(halves ?? UnsafeMutableRawPointer(pointer)) }

    /// 16-bit: rounds every Float32 value once to the element type and widens it back.
    func roundToElements() {
        func round<E: NormElement>(_: E.Type) {
            let e = mutableElements(E.self)
            for i in 0..<count { e[i] = E.narrow(pointer[i]); pointer[i] = E.widen(e[i]) }
        }
        switch dtype {
        case .f32: break
        case .f16: round(Float16.self)
        case .bf16: round(BFloat16.self)
        }
    }

    /// 16-bit: the elements widened into the Float32 values (after a kernel wrote them).
    func widenElements() {
        func widen<E: NormElement>(_: E.Type) {
            let e = mutableElements(E.self)
            for i in 0..<count { pointer[i] = E.widen(e[i]) }
        }
        switch dtype {
        case .f32: break
        case .f16: widen(Float16.self)
        case .bf16: widen(BFloat16.self)
        }
    }

    /// NaN everywhere: a kernel that skips an element cannot pass the check
    /// with a previous case's (or repetition's) values.
    func poison() {
        pointer.update(repeating: .nan, count: count)
        if halves != nil { roundToElements() }
    }
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
        // Activation tensors in the case's dtype (generated in Float32 and rounded
        // once: the same data at every element size); parameters in Float32.
        self.key = key
        Placement.beginCase()
        let s = key.shape, operands = key.op.operands(s), dtype = key.dtype
        x = Workload.tensor(s, key.memoryLayout, seed: 1, dtype: dtype)
        out = Buffer(count: s.count, dtype: dtype)
        style = operands.style ? Workload.tensor(s, key.memoryLayout, seed: 2, dtype: dtype) : nil
        dy = key.direction == .backward ? Workload.uniform(count: s.count, seed: 3, scale: 1, dtype: dtype) : nil
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
    static func tensor(_ s: Shape, _ layout: Layout, seed: UInt64, dtype: DType = .f32) -> Buffer {
        let buffer = Buffer(count: s.count, dtype: dtype)
        let p = buffer.pointer, hw = s.spatial, c = s.c
        for i in 0..<s.count {
            let channel = layout == .nchw ? (i / hw) % c : i % c
            p[i] = Deterministic.offset(channel: channel)
                + Deterministic.spread(channel: channel) * Deterministic.symmetric(seed: seed, index: i)
        }
        buffer.roundToElements()
        return buffer
    }

    static func uniform(count: Int, seed: UInt64, scale: Float, dtype: DType = .f32) -> Buffer {
        let buffer = Buffer(count: count, dtype: dtype)
        for i in 0..<count { buffer[i] = scale * Deterministic.symmetric(seed: seed, index: i) }
        buffer.roundToElements()
        return buffer
    }
}
