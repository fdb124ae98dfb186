// LayerNorm and RMSNorm forward on 16-bit tensors (issue 20), for Float16 and
// BFloat16:
// (a) exactness: y16 == E.narrow(y32) bit for bit, y32 being the Float32 kernel
//     on the widened input, and the same saved statistics, on shapes that reach
//     each path of the row plan (8 rows per vector, row by row, rows geometry);
// (b) the Float64 reference, computed from the 16-bit inputs: within 1 ulp of
//     the correctly rounded 16-bit result (`expectNearReference` says where the
//     Float32 arithmetic's own error takes over: outputs far below 1);
// (c) the same bits on 1, 2, 3 and 4 threads;
// (d) hard cases: values near Float16's max, subnormals, mean 1e3 with std 0.1,
//     constant rows, a row of 2²⁰ values;
// (e) errors: wrong lengths and overlapping buffers throw, and nothing is written.

import Testing
@testable import NormKernels

/// What the tests need of a 16-bit element type beyond `NormElement`.
protocol SixteenBitElement: NormElement, Equatable {
    static var format: SmallFormat { get }
    static var typeName: String { get }
    var bits: UInt16 { get }
    init(bits: UInt16)
}

extension BFloat16: SixteenBitElement {
    static var format: SmallFormat { .bfloat }
    static var typeName: String { "BFloat16" }
    var bits: UInt16 { bitPattern }
    init(bits: UInt16) { self.init(bitPattern: bits) }
}

#if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
extension Float16: SixteenBitElement {
    static var format: SmallFormat { .half }
    static var typeName: String { "Float16" }
    var bits: UInt16 { bitPattern }
    init(bits: UInt16) { self.init(bitPattern: bits) }
}
#endif

/// Position of a 16-bit pattern on the number line, in ulps (±0 both 0): the
/// distance between two positions counts the representable values between them.
func ulpPosition(_ bits: UInt16) -> Int {
    bits & 0x8000 != 0 ? -Int(bits & 0x7FFF) : Int(bits)
}

enum RowOp: String, CaseIterable, Sendable {
    case layerNorm, rmsNorm
}

/// One row-normalization call: shape, the path its plan must take, γ/β or not.
struct HalfCase: CustomStringConvertible, Sendable {
    var op: RowOp
    var rows: Int
    var features: Int
    /// The path the plan must take (nil: any).
    var path: String?
    var description: String { "\(op) [\(rows), \(features)] (\(path ?? "any path"))" }
}

enum HalfPaths {
    static let eight = "8 rows per vector", rowByRow = "row by row", geometry = "rows geometry"

    static func name(_ plan: RowPlan) -> String {
        switch plan.strategy {
        case .eightPerVector: return eight
        case .rowByRow: return rowByRow
        case .geometry: return geometry
        }
    }

    /// Shapes reaching every path of both ops, at each end of each path's range
    /// (read from the plan's own limits, so that retuning them keeps the
    /// coverage), with odd lengths for the scalar ends.
    static let cases: [HalfCase] = {
        let tiny = TinyUnits.maxRowLength(.moments), byRow = rowByRowMoments
        let short = RMSNormalization.shortRows
        return [
            HalfCase(op: .layerNorm, rows: 37, features: 13, path: eight),
            HalfCase(op: .layerNorm, rows: 21, features: tiny, path: eight),
            HalfCase(op: .layerNorm, rows: 11, features: byRow.lowerBound, path: HalfPaths.rowByRow),
            HalfCase(op: .layerNorm, rows: 7, features: byRow.lowerBound + 74, path: HalfPaths.rowByRow),
            HalfCase(op: .layerNorm, rows: 3, features: byRow.upperBound, path: HalfPaths.rowByRow),
            HalfCase(op: .layerNorm, rows: 3, features: byRow.upperBound + 1, path: geometry),
            HalfCase(op: .layerNorm, rows: 2, features: byRow.upperBound + 3843, path: geometry),
            HalfCase(op: .rmsNorm, rows: 37, features: 7, path: eight),
            HalfCase(op: .rmsNorm, rows: 21, features: short.lowerBound - 1, path: eight),
            HalfCase(op: .rmsNorm, rows: 13, features: short.lowerBound, path: HalfPaths.rowByRow),
            HalfCase(op: .rmsNorm, rows: 5, features: short.upperBound, path: HalfPaths.rowByRow),
            HalfCase(op: .rmsNorm, rows: 3, features: short.upperBound + 1, path: geometry),
            HalfCase(op: .rmsNorm, rows: 2, features: short.upperBound + 3843, path: geometry),
        ]
    }()
}

struct RowResult<E> {
    var output: [E]
    var saved: SavedStatistics
    var path: String
}

/// Runs one op on `x` (any element type, through the overload of its type).
/// `inPlace`: the output is the input's own buffer.
func runRows<E: NormElement>(
    _ op: RowOp, rows: Int, features: Int, _ x: [E], gamma: [Float]?, beta: [Float]?,
    epsilon: Float? = nil, threading: Threading = .serial, inPlace: Bool = false
) throws -> RowResult<E> {
    var y = x
    var input = x
    let plan: RowPlan
    let saved: SavedStatistics
    func call(_ xp: UnsafeBufferPointer<E>, _ yp: UnsafeMutableBufferPointer<E>) throws -> SavedStatistics {
        try withOptionalBuffer(gamma) { g in
            try withOptionalBuffer(beta) { b in
                switch op {
                case .layerNorm:
                    let ln = try LayerNormalization(rows: rows, features: features, epsilon: epsilon ?? 1e-5,
                                                    threading: threading)
                    return try ln.forwardAnyElement(input: xp, output: yp, scale: g, bias: b)
                case .rmsNorm:
                    let rms = try RMSNormalization(rows: rows, features: features, epsilon: epsilon ?? .ulpOfOne,
                                                   threading: threading)
                    return try rms.forwardAnyElement(input: xp, output: yp, scale: g)
                }
            }
        }
    }
    switch op {
    case .layerNorm:
        plan = try LayerNormalization(rows: rows, features: features, threading: threading).forwardPlan
    case .rmsNorm:
        plan = try RMSNormalization(rows: rows, features: features, threading: threading).forwardPlan
    }
    if inPlace {
        saved = try input.withUnsafeMutableBufferPointer { p in try call(UnsafeBufferPointer(p), p) }
        y = input
    } else {
        saved = try x.withUnsafeBufferPointer { xp in try y.withUnsafeMutableBufferPointer { try call(xp, $0) } }
    }
    return RowResult(output: y, saved: saved, path: HalfPaths.name(plan))
}

/// The Float64 reference output of `op` on the widened values.
func referenceRows(_ op: RowOp, rows: Int, features: Int, _ x: [Float], gamma: [Float]?, beta: [Float]?,
                   epsilon: Float? = nil) -> [Double] {
    switch op {
    case .layerNorm:
        return Reference.layerNorm(x, rows: rows, features: features, epsilon: epsilon ?? 1e-5,
                                   scale: gamma, bias: beta).output
    case .rmsNorm:
        return Reference.rmsNorm(x, rows: rows, features: features, epsilon: epsilon ?? .ulpOfOne, scale: gamma).output
    }
}

/// (a) and (b) for one case: runs the 16-bit kernel on `values` rounded to E,
/// the Float32 kernel on the same values widened, and the Float64 reference.
/// Returns the 16-bit result.
@discardableResult
func expectExactAndNearReference<E: SixteenBitElement>(
    _: E.Type, _ c: HalfCase, values: [Float], gamma: [Float]?, beta: [Float]?, epsilon: Float? = nil,
    label: String = "", sourceLocation: SourceLocation = #_sourceLocation
) throws -> [E] {
    let context = "\(E.typeName) \(c)\(gamma == nil ? "" : " γ")\(beta == nil ? "" : " β") \(label)"
    let x16 = values.map { E.narrow($0) }
    let widened = x16.map { E.widen($0) }
    let half = try runRows(c.op, rows: c.rows, features: c.features, x16, gamma: gamma, beta: beta, epsilon: epsilon)
    let single = try runRows(c.op, rows: c.rows, features: c.features, widened, gamma: gamma, beta: beta,
                             epsilon: epsilon)
    #expect(c.path == nil || half.path == c.path, "\(context): plan takes \(half.path)", sourceLocation: sourceLocation)
    // (a) One rounding of the Float32 kernel's result, and its statistics.
    let expected = single.output.map { E.narrow($0).bits }
    let got = half.output.map(\.bits)
    let first = got.indices.first { got[$0] != expected[$0] }
    let message = first.map { "\(context): y[\($0)] = \(half.output[$0]), y32 = \(single.output[$0])" } ?? ""
    #expect(first == nil, Comment(rawValue: message), sourceLocation: sourceLocation)
    expectIdentical(half.saved, single.saved, context, sourceLocation: sourceLocation)
    // (b) The Float64 reference of the 16-bit inputs.
    let reference = referenceRows(c.op, rows: c.rows, features: c.features, widened, gamma: gamma, beta: beta,
                                  epsilon: epsilon)
    expectNearReference(half.output, reference, beta: beta, features: c.features, context,
                        sourceLocation: sourceLocation)
    return half.output
}

/// Every output within 1 ulp of the correctly rounded 16-bit value of the
/// reference `r`, or, where the 16-bit grid is finer than the Float32
/// arithmetic that produced it, within that arithmetic's error of `r`:
/// ```
/// |y − r| ≤ 2⁻²⁰ · (1 + |r − β| + |β|)      (|r − β| = |x̂·γ|)
/// ```
/// The Float32 output is a few multiply-adds on terms of size |x̂·γ| and |β|,
/// each rounded by 2⁻²⁴ relative; the bound only matters below |y| ≈ 2⁻¹⁰
/// for Float16 (2⁻¹⁷ for BFloat16), where a 16-bit ulp is below 2⁻²⁰.
func expectNearReference<E: SixteenBitElement>(
    _ y: [E], _ r: [Double], beta: [Float]?, features: Int, _ context: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    var worst = -1, worstSteps = 0, floorUsed = 0
    for i in y.indices {
        let rounded = E.format.rounded(r[i])
        let target = E.narrow(Float(rounded)).bits  // exact: `rounded` is a value of E
        let steps = abs(ulpPosition(y[i].bits) - ulpPosition(target))
        if steps <= 1 { continue }
        let b = Double(beta?[i % features] ?? 0)
        let bound = 0x1p-20 * (1 + abs(r[i] - b) + abs(b))
        if abs(Double(E.widen(y[i])) - r[i]) <= bound { floorUsed += 1; continue }
        if steps > worstSteps { worstSteps = steps; worst = i }
    }
    let message = worst < 0 ? ""
        : "\(context): y[\(worst)] = \(E.widen(y[worst])) is \(worstSteps) ulps from the reference \(r[worst])"
    #expect(worst < 0, Comment(rawValue: message), sourceLocation: sourceLocation)
    // Far from zero the 1-ulp rule alone must hold: the floor is for tiny outputs.
    #expect(floorUsed * 20 <= y.count, "\(context): \(floorUsed) of \(y.count) outputs needed the Float32 bound",
            sourceLocation: sourceLocation)
}

/// Normal-ish data with a mean and a spread per row.
func rowValues(_ rows: Int, _ features: Int, _ label: String, center: ClosedRange<Double> = -3...3,
               spread: ClosedRange<Double> = 0.5...2) -> [Float] {
    var rng = SplitMix64(label)
    var x: [Float] = []
    x.reserveCapacity(rows * features)
    for _ in 0..<rows {
        let mean = rng.uniform(center), std = rng.uniform(spread)
        for _ in 0..<features { x.append(Float(mean + std * rng.normal())) }
    }
    return x
}

func halfParameters(_ features: Int, _ label: String) -> (gamma: [Float], beta: [Float]) {
    var rng = SplitMix64(label)
    let p = Affine.both.parameters(features, &rng)
    return (p.scale!, p.bias!)
}

@Suite("16-bit tensors: LayerNorm and RMSNorm, forward and backward")
struct HalfPrecisionTests {
    @Test("(a, b) every path: one rounding of the Float32 result, within 1 ulp of Float64")
    func everyPath() {
        func check<E: SixteenBitElement>(_: E.Type) {
            sweep(product(HalfPaths.cases, [false, true])) { item, _ in
                let (c, affine) = item
                let x = rowValues(c.rows, c.features, "half \(c)")
                let p = halfParameters(c.features, "half γβ \(c)")
                try expectExactAndNearReference(E.self, c, values: x, gamma: affine ? p.gamma : nil,
                                                beta: affine && c.op == .layerNorm ? p.beta : nil)
            }
        }
        check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        check(Float16.self)
        #endif
    }

    @Test("(c) the same bits on 1, 2, 3 and 4 threads; in place gives the same bits")
    func threadsAndInPlace() throws {
        func check<E: SixteenBitElement>(_: E.Type) throws {
            let shapes: [(RowOp, Int, Int)] = [
                (.layerNorm, 4096, 33), (.layerNorm, 2048, 200), (.layerNorm, 64, 4097), (.layerNorm, 3, 50001),
                (.rmsNorm, 4096, 9), (.rmsNorm, 2048, 100), (.rmsNorm, 64, 4097), (.rmsNorm, 3, 50001),
            ]
            for (op, rows, features) in shapes {
                let context = "\(E.typeName) \(op) [\(rows), \(features)]"
                let x = rowValues(rows, features, "threads \(context)").map { E.narrow($0) }
                let p = halfParameters(features, "threads γβ \(context)")
                let beta = op == .layerNorm ? p.beta : nil
                let one = try runRows(op, rows: rows, features: features, x, gamma: p.gamma, beta: beta,
                                      threading: Threading(threads: 1, parallelThreshold: 4096, spinMicroseconds: 0))
                for t in 2...4 {
                    let threading = Threading(threads: t, parallelThreshold: 4096, spinMicroseconds: 0)
                    let r = try runRows(op, rows: rows, features: features, x, gamma: p.gamma, beta: beta,
                                        threading: threading)
                    #expect(r.output.map(\.bits) == one.output.map(\.bits), "\(context): \(t) threads")
                    expectIdentical(r.saved, one.saved, "\(context): \(t) threads")
                }
                let inPlace = try runRows(op, rows: rows, features: features, x, gamma: p.gamma, beta: beta,
                                          threading: Threading(threads: 2, parallelThreshold: 4096), inPlace: true)
                #expect(inPlace.output.map(\.bits) == one.output.map(\.bits), "\(context): in place")
                expectIdentical(inPlace.saved, one.saved, "\(context): in place")
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("array conveniences give the pointer overloads' bits")
    func arrays() throws {
        func check<E: SixteenBitElement>(_: E.Type) throws {
            let x = rowValues(9, 300, "arrays \(E.typeName)").map { E.narrow($0) }
            let p = halfParameters(300, "arrays γβ")
            let ln = try LayerNormalization(rows: 9, features: 300)
            let (y, saved) = try ln.forward(x, scale: p.gamma, bias: p.beta)
            let direct = try runRows(.layerNorm, rows: 9, features: 300, x, gamma: p.gamma, beta: p.beta)
            #expect(y.map(\.bits) == direct.output.map(\.bits), "\(E.typeName) LayerNorm array")
            expectIdentical(saved, direct.saved, "\(E.typeName) LayerNorm array")
            let rms = try RMSNormalization(rows: 9, features: 300)
            let (z, _) = try rms.forward(x, scale: p.gamma)
            let rmsDirect = try runRows(.rmsNorm, rows: 9, features: 300, x, gamma: p.gamma, beta: nil)
            #expect(z.map(\.bits) == rmsDirect.output.map(\.bits), "\(E.typeName) RMSNorm array")
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
        // An array literal still means [Float].
        let ln = try LayerNormalization(rows: 1, features: 3)
        let (y, _) = try ln.forward([1, 2, 3])
        #expect(type(of: y) == [Float].self)
    }
}
