/// The two sums every normalization backward reduces, in Float64:
/// ```
/// dy     = Σ g            (g = dy, masked by the ReLU and/or scaled by γ where the kernel says so)
/// dyXhat = Σ g · x̂        (x̂ = (x − μ)·invStd, the centered form: no Σx·dy − μ·Σdy cancellation)
/// ```
/// Block partials are formed in Float32 SIMD lanes, converted to Float64 and merged
/// with `treeSum`, whose pairing depends only on the number of parts; results are
/// therefore the same for any thread count.
struct GradientSums: Hashable {
    var dy: Double
    var dyXhat: Double

    static let zero = GradientSums(dy: 0, dyXhat: 0)

    @inline(__always)
    static func + (a: GradientSums, b: GradientSums) -> GradientSums {
        GradientSums(dy: a.dy + b.dy, dyXhat: a.dyXhat + b.dyXhat)
    }

    var isFinite: Bool { dy.isFinite && dyXhat.isFinite }

    /// Pairwise sum in a fixed tree: ((0,1),(2,3)),…; the shape depends only on `count`.
    /// One and two parts (one row block, one block per unit: the common cases) are
    /// summed inline; the recursion is a call.
    @inline(__always)
    static func treeSum(count: Int, _ element: (Int) -> GradientSums) -> GradientSums {
        switch count {
        case 0: return .zero
        case 1: return element(0)
        case 2: return element(0) + element(1)
        default: return treeSum(0, count, element)
        }
    }

    private static func treeSum(_ lo: Int, _ hi: Int, _ element: (Int) -> GradientSums) -> GradientSums {
        switch hi - lo {
        case 0: return .zero
        case 1: return element(lo)
        case 2: return element(lo) + element(lo + 1)
        default:
            let mid = lo + (hi - lo) / 2
            return treeSum(lo, mid, element) + treeSum(mid, hi, element)
        }
    }

    static func treeSum(_ parts: UnsafeBufferPointer<GradientSums>) -> GradientSums {
        treeSum(count: parts.count) { parts[$0] }
    }
}

/// Per-slot coefficients of the backward output pass:
/// ```
/// dx = a · g + (b · (x − pivot) + c)
/// ```
/// For the centered normalizations (x̂ = (x − μ)·r with r = invStd, gain k = γ or σ_style),
/// ```
/// dx = k·r · (g − m₁ − x̂·m₂)            m₁ = mean(g), m₂ = Σ g·x̂ / M′ (both times k)
///    = a·g + b·(x − p) + c               p = Float(μ), t = −(μ − p)·r
/// a = k·r      b = −r²·m₂      c = −r·(m₁ + t·m₂)
/// ```
/// Subtracting the Float32 pivot first keeps x − p exact for data far from zero,
/// so dx keeps its precision at mean 1e4, std 1e-2.
struct GradientCoefficients {
    var pivot: Float
    var a: Float
    var b: Float
    var c: Float

    init(pivot: Float, a: Float, b: Float, c: Float) {
        self.pivot = pivot
        self.a = a
        self.b = b
        self.c = c
    }

    /// Centered form: `m1` and `m2` already carry the gain (mean of g·k and Σ g·k·x̂ / M′).
    @inline(__always)
    init(mean: Double, invStd r: Double, a: Double, m1: Double, m2: Double) {
        let p = Float(mean)
        let t = -(mean - Double(p)) * r
        pivot = p
        self.a = Float(a)
        b = Float(-r * r * m2)
        c = Float(-r * (m1 + t * m2))
    }
}

/// `GradientCoefficients` per slot, struct of arrays (the NHWC pass loads 8 channels'
/// coefficients with one vector load each). Workers write disjoint slots.
struct GradientTable {
    let pivot: UnsafeMutablePointer<Float>
    let a: UnsafeMutablePointer<Float>
    let b: UnsafeMutablePointer<Float>
    let c: UnsafeMutablePointer<Float>
    let count: Int

    /// Carved from the call's workspace (valid until the call returns it).
    init(count: Int, in workspace: Arena) {
        self.count = count
        pivot = workspace.take(Float.self, count: count)
        a = workspace.take(Float.self, count: count)
        b = workspace.take(Float.self, count: count)
        c = workspace.take(Float.self, count: count)
    }

    @inline(__always)
    subscript(slot: Int) -> GradientCoefficients {
        get { GradientCoefficients(pivot: pivot[slot], a: a[slot], b: b[slot], c: c[slot]) }
        nonmutating set {
            pivot[slot] = newValue.pivot
            a[slot] = newValue.a
            b[slot] = newValue.b
            c[slot] = newValue.c
        }
    }
}

/// g = dy · γ[i] (γ when given), 0 where the forward output y ≤ 0 (fused ReLU);
/// dy and the mask of any element type, widened exactly.
@inline(__always)
func gradient8<E: NormElement>(_ dy: UnsafePointer<E>, _ mask: UnsafePointer<E>?,
                               _ gamma: UnsafePointer<Float>?, _ i: Int) -> F8 {
    var d = E.load8(dy + i)
    if let mask { d.replace(with: F8(), where: E.load8(mask + i) .<= F8()) }
    if let gamma { d *= load8(gamma + i) }
    return d
}

@inline(__always)
func gradient1<E: NormElement>(_ dy: UnsafePointer<E>, _ mask: UnsafePointer<E>?,
                               _ gamma: UnsafePointer<Float>?, _ i: Int) -> Float {
    var d = E.widen(dy[i])
    if let mask, E.widen(mask[i]) <= 0 { d = 0 }
    if let gamma { d *= gamma[i] }
    return d
}
