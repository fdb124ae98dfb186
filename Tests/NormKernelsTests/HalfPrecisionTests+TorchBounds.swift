// How the 16-bit PyTorch fixtures of the channel ops (tools/fixtures16_channels.py:
// batchnorm_16bit, groupnorm_16bit, instancenorm_16bit, adain_16bit,
// weightnorm_16bit) are compared with the library: reading a case's tensors,
// running it for its dtype, and the distance rule `TorchBound`.
//
// The bounds, measured on the committed fixtures (`NORMKERNELS_PRINT_TORCH_DISTANCES=1`
// prints every comparison's largest distance; `tools/make_fixtures.py` prints
// PyTorch's distance from the Float64 reference):
// - `output`: PyTorch's 16-bit CPU kernels compute in Float32 and round each
//   output once, as the library does: every forward output of BatchNorm,
//   GroupNorm, InstanceNorm with γ, AdaIN and weight norm is within 1 ulp of
//   ours (measured: 0, and 1 for weight norm's w).
// - `gradient`: likewise every dx of BatchNorm NCHW and [N, D], training and
//   inference, and AdaIN's gradients (measured: 0 ulps); 2 as our backward's bound.
// - `intermediate`: where PyTorch rounds intermediates to the 16-bit type —
//   channels-last BatchNorm dx, GroupNorm, InstanceNorm and weight-norm
//   gradients, InstanceNorm without γ (its pure 16-bit path rounds μ) — an
//   element may be many ulps off where it is far below the tensor's largest
//   value (measured up to 158 ulps), but within 1 ulp of that largest value
//   (measured 1.0 at most): 1.5 of it, or 2 ulps.
// - Offset cases (mean 1e3, std 0.1 in Float16, 2 in BFloat16): PyTorch folds
//   the normalization into y = x·(γ/σ) + (β − μγ/σ), whose Float32 terms are
//   ~10⁴ times the output, so its y is up to 2.97 ulps of the largest value off
//   (BatchNorm Float16; the library stays within 1 ulp of the Float64 reference
//   there, as HalfPrecisionTests+BatchNormHard and +HardCases check): `offsetOutput`,
//   and `intermediate` for their gradients.

import Foundation
import Testing
@testable import NormKernels

/// Ours within `ulps` representable values of PyTorch's 16-bit value, or within
/// `normwise` ulps of the tensor's largest |value| of it:
/// ```
/// |pos(ours) − pos(torch)| ≤ ulps   or   |ours − torch| ≤ normwise · 2^(⌊log₂ max|torch|⌋ − p)
/// ```
/// (p: fraction bits, 7 for BFloat16, 10 for Float16).
struct TorchBound: Sendable {
    var ulps: Int
    var normwise: Double
    /// Both sides round the Float32 result once (see above).
    static let output = TorchBound(ulps: 1, normwise: 0)
    static let gradient = TorchBound(ulps: 2, normwise: 0)
    /// PyTorch rounds intermediates to the 16-bit type.
    static let intermediate = TorchBound(ulps: 2, normwise: 1.5)
    /// The offset cases' forward outputs (PyTorch's folded Float32 terms).
    static let offsetOutput = TorchBound(ulps: 1, normwise: 4)
}

/// Largest distances seen (ulps, normwise), for the message of a failure.
struct TorchDistance: CustomStringConvertible {
    var ulps = 0
    var normwise = 0.0
    var description: String { "\(ulps) ulps, \(normwise) normwise" }
}

/// Checks `ours` against PyTorch's `torch` under `bound`, naming the worst element.
@discardableResult
func expectNearTorch<E: SixteenBitElement>(
    _ ours: [E], _ torch: [E], _ bound: TorchBound, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) -> TorchDistance {
    guard ours.count == torch.count else {
        Issue.record("\(what): \(ours.count) values, PyTorch has \(torch.count)", sourceLocation: sourceLocation)
        return TorchDistance()
    }
    let scale = torch.reduce(0.0) { max($0, Double(E.widen($1)).magnitude.isFinite ? Double(E.widen($1)).magnitude : 0) }
    let unit = scale > 0 ? Double(sign: .plus, exponent: Int(scale.exponent) - E.format.fractionBits, significand: 1) : 0x1p-40
    var seen = TorchDistance(), worst: Int?
    for i in ours.indices {
        let a = Double(E.widen(ours[i])), b = Double(E.widen(torch[i]))
        if a.isNaN && b.isNaN { continue }
        let steps = abs(ulpPosition(ours[i].bits) - ulpPosition(torch[i].bits))
        let normwise = abs(a - b) / unit
        seen.ulps = max(seen.ulps, steps)
        seen.normwise = max(seen.normwise, normwise.isNaN ? .infinity : normwise)
        if !(steps <= bound.ulps || normwise <= bound.normwise), worst == nil { worst = i }
    }
    if printDistances { print("distance \(what): \(seen)") }
    if let i = worst {
        let message = "\(what): [\(i)] ours \(E.widen(ours[i])), PyTorch \(E.widen(torch[i])) (largest: \(seen)); "
            + "bound \(bound.ulps) ulps or \(bound.normwise) normwise"
        Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation)
    }
    return seen
}

/// Float results (dγ, dβ, statistics) against PyTorch's Float32 ones: normwise
/// relative error at most `tolerance` (`expectNormwiseClose`).
func expectNearTorch(_ ours: [Float]?, _ torch: [Double]?, tolerance: Double, _ what: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
    guard let torch else {
        #expect(ours == nil, "\(what): PyTorch has none", sourceLocation: sourceLocation)
        return
    }
    if printDistances, let ours, ours.count == torch.count {
        let scale = torch.reduce(0) { max($0, abs($1)) }
        print("distance \(what): \(zip(ours, torch).reduce(0) { max($0, abs(Double($1.0) - $1.1)) } / scale) relative")
    }
    expectNormwiseClose(ours, torch, tolerance: tolerance, scaleFloor: 1e-30, what, reference: "PyTorch",
                        sourceLocation: sourceLocation)
}

/// `NORMKERNELS_PRINT_TORCH_DISTANCES=1` prints every comparison's largest
/// distance (to remeasure the bounds after regenerating the fixtures).
let printDistances = ProcessInfo.processInfo.environment["NORMKERNELS_PRINT_TORCH_DISTANCES"] != nil

extension Fixture {
    /// A 16-bit tensor stored as raw bit patterns, of `count` values.
    func halfTensor<E: SixteenBitElement>(_ key: String, count: Int, as _: E.Type = E.self) throws -> [E] {
        let bits = try #require(ints(key), "\(name): no \(key)")
        try #require(bits.count == count, "\(name): \(key) has \(bits.count) values, expected \(count)")
        return bits.map { E(bits: UInt16($0)) }
    }

    /// Whether this case is an offset case (mean 1e3, small spread).
    var isOffset: Bool { name.hasSuffix("_offset") }

    /// Runs `body` with the case's element type (bf16 or f16); returns whether it ran.
    func withDtype(_ body: (any SixteenBitElement.Type) throws -> Void) throws -> Bool {
        switch string("dtype") {
        case "bf16": try body(BFloat16.self); return true
        case "f16":
            #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
            try body(Float16.self)
            #endif
            return true
        default:
            Issue.record("\(name): unknown dtype \(string("dtype") ?? "nil")")
            return false
        }
    }
}

/// Two buffers of one element type, for the backward entry points.
func withBuffers<E, R>(_ a: [E], _ b: [E], _ body: (UnsafeBufferPointer<E>, UnsafeBufferPointer<E>) throws -> R)
    rethrows -> R {
    try a.withUnsafeBufferPointer { pa in try b.withUnsafeBufferPointer { pb in try body(pa, pb) } }
}

/// An output array of `count` elements written by `body`, and Float gradients of `parameters` values.
func withGradients<E: NormElement>(
    _: E.Type, _ count: Int, parameters: Int, _ body: (UnsafeMutableBufferPointer<E>, UnsafeMutableBufferPointer<Float>,
                                            UnsafeMutableBufferPointer<Float>) throws -> Void
) rethrows -> (dx: [E], dScale: [Float], dBias: [Float]) {
    var dx = [E](repeating: E.narrow(0), count: count)
    var dg = [Float](repeating: 0, count: parameters), db = dg
    try dx.withUnsafeMutableBufferPointer { x in
        try dg.withUnsafeMutableBufferPointer { g in try db.withUnsafeMutableBufferPointer { b in try body(x, g, b) } }
    }
    return (dx, dg, db)
}
