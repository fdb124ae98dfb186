// The 16-bit element types (issue 20): every conversion against a Float64
// reference. Widening is checked on all 2¹⁶ bit patterns; narrowing on every
// rounding boundary of the 16-bit format (each value, each midpoint between
// neighbours, and one Float ulp either side of both), Float subnormals, the
// overflow thresholds, infinities and NaN payloads. The eight-lane loads and
// stores must agree with the scalar conversions lane by lane, at every
// alignment; for Float16, each of the three vector paths (this build's choice,
// the F16C C helpers, the SSE2 formulas) is checked on its own.

import CNormSupport
import Testing
@testable import NormKernels

/// A binary floating-point format with `fractionBits` stored fraction bits.
struct SmallFormat {
    var fractionBits: Int
    var minExponent: Int       // exponent of the least normal value
    var greatestFinite: Double

    static let half = SmallFormat(fractionBits: 10, minExponent: -14, greatestFinite: 65504)
    static let bfloat = SmallFormat(fractionBits: 7, minExponent: -126,
                                    greatestFinite: (2 - 0x1p-7) * 0x1p127)

    /// `x` rounded to this format, to nearest, ties to even, in exact Float64 steps:
    /// ```
    /// e = max(⌊log₂|x|⌋, minExponent),  ulp = 2^(e − fractionBits)
    /// r = round_even(|x| / ulp) · ulp,  ±inf when r > greatestFinite
    /// ```
    /// (|x| / ulp is exact: a power-of-two scaling within Float64's range.)
    func rounded(_ x: Double) -> Double {
        if x.isNaN || x.isInfinite || x == 0 { return x }
        let e = max(Int(x.magnitude.exponent), minExponent)
        let ulp = Double(sign: .plus, exponent: e - fractionBits, significand: 1)
        let r = (x.magnitude / ulp).rounded(.toNearestOrEven) * ulp
        return r > greatestFinite ? Double(sign: x.sign, exponent: 0, significand: .infinity)
                                  : Double(sign: x.sign, exponent: 0, significand: r)
    }
}

/// The correctly rounded Float16 bits of `x` (not NaN).
func referenceHalfBits(_ x: Float) -> UInt16 {
    Float16(SmallFormat.half.rounded(Double(x))).bitPattern  // exact: the value is a Float16
}

/// The correctly rounded BFloat16 bits of `x` (not NaN).
func referenceBFloatBits(_ x: Float) -> UInt16 {
    UInt16(truncatingIfNeeded: Float(SmallFormat.bfloat.rounded(Double(x))).bitPattern >> 16)
}

/// Narrowing test inputs for a 16-bit format whose values widen by `widen`:
/// every finite value, the midpoints between neighbours, one Float ulp either
/// side of each, both signs; then Float subnormals, zeros, infinities, NaNs.
func narrowingInputs(_ widen: (UInt16) -> Float) -> [Float] {
    var positives: [Float] = []
    var previous: Float? = nil
    for bits in UInt16(0)...0x7F80 {  // +0 … +inf, increasing
        let v = widen(bits)
        if v.isNaN { continue }
        positives += [v, v.nextUp, v.nextDown]
        if let p = previous {
            let mid = Float((Double(p) + Double(v)) / 2)  // exact: one more bit than the format
            positives += [mid, mid.nextUp, mid.nextDown]
        }
        previous = v
    }
    positives += [Float.leastNonzeroMagnitude, Float.leastNormalMagnitude, Float.leastNormalMagnitude.nextDown,
                  Float(bitPattern: 0x0001_1000), 65504, 65519.996, 65520, 65520.004, 65536, Float.greatestFiniteMagnitude,
                  3.3895313e38, 3.3961776e38, 3.3961778e38]
    var inputs = positives.filter { !$0.isNaN && $0 >= 0 }
    inputs += inputs.map { -$0 }
    for payload: UInt32 in [0x40_0000, 0x00_0001, 0x00_2000, 0x20_0000, 0x7F_FFFF, 0x12_3456, 0x40_0001] {
        inputs.append(Float(bitPattern: 0x7F80_0000 | payload))
        inputs.append(Float(bitPattern: 0xFF80_0000 | payload))
    }
    return inputs
}

/// Checks a 16-bit NaN result: NaN, same sign, quiet bit set.
func expectQuietNaN(_ bits: UInt16, exponentMask: UInt16, quietBit: UInt16, from x: Float,
                    sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(bits & exponentMask == exponentMask && bits & quietBit != 0, "NaN \(x.bitPattern) → \(bits)",
            sourceLocation: sourceLocation)
    #expect((bits & 0x8000 != 0) == (x.sign == .minus), "NaN sign \(x.bitPattern)", sourceLocation: sourceLocation)
}

/// Runs `body` at every element offset 0…8 of a 64-byte aligned buffer of `count` + 8 elements.
func withElementOffsets<T>(_ count: Int, of _: T.Type, _ body: (UnsafeMutablePointer<T>) -> Void) {
    let raw = UnsafeMutableRawPointer.allocate(byteCount: (count + 8) * MemoryLayout<T>.stride, alignment: 64)
    defer { raw.deallocate() }
    for offset in 0...8 {
        body(raw.advanced(by: offset * MemoryLayout<T>.stride).bindMemory(to: T.self, capacity: count))
    }
}

@Suite struct ElementTests {
    // MARK: Float16

    @Test func float16WideningIsExactForAllPatterns() {
        for chunk in stride(from: 0, to: 65536, by: 8) {
            let halves = SIMD8<UInt16>((0..<8).map { UInt16(chunk + $0) })
            let formula = widenHalfBits(halves)
            let loaded = withUnsafeBytes(of: halves) { Float16.load8($0.baseAddress!.assumingMemoryBound(to: Float16.self)) }
            var helper = [Float](repeating: 0, count: 8)
            if nk_cpu_has_f16c() != 0 { withUnsafeBytes(of: halves) { nk_f16c_widen8($0.baseAddress!, &helper) } }
            for lane in 0..<8 {
                let h = Float16(bitPattern: halves[lane])
                let reference = Float(h)  // Swift's scalar conversion
                #expect(formula[lane].bitPattern == reference.bitPattern, "SSE2 formula \(halves[lane])")
                #expect(Float16.widen(h).bitPattern == reference.bitPattern, "widen \(halves[lane])")
                // Bit for bit, NaNs included (a signaling NaN comes back quiet).
                #expect(loaded[lane].bitPattern == reference.bitPattern, "load8 \(halves[lane])")
                if nk_cpu_has_f16c() != 0 {
                    #expect(helper[lane].bitPattern == reference.bitPattern, "F16C \(halves[lane])")
                }
            }
        }
    }

    @Test func float16NarrowingRoundsToNearestEven() {
        let inputs = narrowingInputs { Float(Float16(bitPattern: $0)) }
        var chunk = [Float](repeating: 0, count: 8)
        for start in stride(from: 0, to: inputs.count, by: 8) {
            for lane in 0..<8 { chunk[lane] = inputs[min(start + lane, inputs.count - 1)] }
            let v = SIMD8<Float>(chunk)
            let formula = narrowHalfBits(v)
            var stored = [Float16](repeating: 0, count: 8)
            Float16.store8(v, &stored)
            var helper = [UInt16](repeating: 0, count: 8)
            if nk_cpu_has_f16c() != 0 { nk_f16c_narrow8(v.lowHalf, v.highHalf, &helper) }
            for lane in 0..<8 {
                let x = chunk[lane]
                let scalar = Float16.narrow(x).bitPattern
                let results = [("SSE2 formula", formula[lane]), ("store8", stored[lane].bitPattern), ("narrow", scalar)]
                    + (nk_cpu_has_f16c() != 0 ? [("F16C", helper[lane])] : [])
                for (path, bits) in results {
                    if x.isNaN {
                        expectQuietNaN(bits, exponentMask: 0x7C00, quietBit: 0x0200, from: x)
                        #expect(bits == Float16(x).bitPattern, "\(path) NaN payload \(x.bitPattern)")
                    } else {
                        #expect(bits == referenceHalfBits(x), "\(path) \(x) (\(x.bitPattern))")
                    }
                }
            }
        }
    }

    @Test func float16LimitsRoundAsDocumented() {
        #expect(Float16.narrow(65504) == 65504)
        #expect(Float16.narrow(65519.996) == 65504)
        #expect(Float16.narrow(65520).isInfinite)
        #expect(Float16.narrow(-65520) == -.infinity)
        #expect(Float16.narrow(0x1p-25).bitPattern == 0)        // tie: to even (zero)
        #expect(Float16.narrow(Float(0x1p-25).nextUp).bitPattern == 1)
        #expect(Float16.narrow(0x1.8p-24).bitPattern == 2)      // tie between 1 and 2 ulps: even
        #expect(Float16.narrow(-0.0).bitPattern == 0x8000)
    }

    // MARK: BFloat16

    @Test func bfloat16WideningIsAShiftForAllPatterns() {
        for chunk in stride(from: 0, to: 65536, by: 8) {
            let values = (0..<8).map { BFloat16(bitPattern: UInt16(chunk + $0)) }
            let loaded = values.withUnsafeBufferPointer { BFloat16.load8($0.baseAddress!) }
            for lane in 0..<8 {
                let expected = UInt32(values[lane].bitPattern) << 16
                #expect(loaded[lane].bitPattern == expected, "load8 \(values[lane].bitPattern)")
                #expect(BFloat16.widen(values[lane]).bitPattern == expected)
                #expect(Float(values[lane]).bitPattern == expected)
            }
        }
    }

    @Test func bfloat16NarrowingRoundsToNearestEven() {
        let inputs = narrowingInputs { Float(bitPattern: UInt32($0) << 16) }
        var chunk = [Float](repeating: 0, count: 8)
        for start in stride(from: 0, to: inputs.count, by: 8) {
            for lane in 0..<8 { chunk[lane] = inputs[min(start + lane, inputs.count - 1)] }
            var stored = [BFloat16](repeating: 0, count: 8)
            BFloat16.store8(SIMD8<Float>(chunk), &stored)
            for lane in 0..<8 {
                let x = chunk[lane]
                for (path, bits) in [("store8", stored[lane].bitPattern), ("narrow", BFloat16.narrow(x).bitPattern),
                                     ("init", BFloat16(x).bitPattern)] {
                    if x.isNaN {
                        expectQuietNaN(bits, exponentMask: 0x7F80, quietBit: 0x0040, from: x)
                    } else {
                        #expect(bits == referenceBFloatBits(x), "\(path) \(x) (\(x.bitPattern))")
                    }
                }
            }
        }
    }

    /// `nk_bf16_round_widen8` (the fused gate's z rounded to BFloat16 in its
    /// 32-bit lanes, `roundedThrough`) against `store8` then `load8`: the same
    /// bits for every input of the narrowing test, NaNs (quieted, sign and top
    /// payload kept), subnormals, ties and the overflow to infinity included.
    @Test func bfloat16RoundingInLanesMatchesStoreThenLoad() {
        let inputs = narrowingInputs { Float(bitPattern: UInt32($0) << 16) }
            + [Float.nan, -Float.nan, Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0xFFC1_2345),
               Float.greatestFiniteMagnitude, -Float.leastNonzeroMagnitude, Float(bitPattern: 0x3F80_8000)]
        var chunk = [Float](repeating: 0, count: 8)
        for start in stride(from: 0, to: inputs.count, by: 8) {
            for lane in 0..<8 { chunk[lane] = inputs[min(start + lane, inputs.count - 1)] }
            var stored = [BFloat16](repeating: 0, count: 8)
            BFloat16.store8(SIMD8<Float>(chunk), &stored)
            let reloaded = stored.withUnsafeBufferPointer { BFloat16.load8($0.baseAddress!) }
            let inLanes = nk_bf16_round_widen8(SIMD8<Float>(chunk))
            let viaHelper = roundedThrough(BFloat16.self, SIMD8<Float>(chunk))
            for lane in 0..<8 {
                #expect(inLanes[lane].bitPattern == reloaded[lane].bitPattern,
                        "\(chunk[lane]) (\(chunk[lane].bitPattern)): \(inLanes[lane].bitPattern) vs \(reloaded[lane].bitPattern)")
                #expect(viaHelper[lane].bitPattern == reloaded[lane].bitPattern)
            }
        }
    }

    @Test func bfloat16FromDoubleRoundsOnce() {
        // 1 + 2⁻⁸ + 2⁻³⁰ lies just above a BFloat16 midpoint; through Float it would
        // land on the midpoint and tie down to 1.
        let cases: [Double] = [1 + 0x1p-8 + 0x1p-30, 1 + 0x1p-8, 1 + 0x1p-8 - 0x1p-30, -(1 + 0x1p-8 + 0x1p-40),
                               3.14159, 1e-45, 1e-41, 0x1p-134, 0x1p-134 * 1.0000001, 3.3961776e38, 3.4e38, 1e300,
                               -1e300, 0, -0.0, .infinity]
        var generator = SplitMix64(seed: 20)
        let random = (0..<20_000).map { _ in Double(bitPattern: generator.next()) }.filter { !$0.isNaN }
        for d in cases + random {
            let expected = Float(SmallFormat.bfloat.rounded(d))
            #expect(Float(BFloat16(d)).bitPattern == expected.bitPattern, "\(d)")
        }
        #expect(BFloat16(Double.nan).isNaN)
        let literal: BFloat16 = 3.14159
        #expect(Float(literal) == 3.140625)
        let integer: BFloat16 = 257
        #expect(Float(integer) == 256)
    }

    @Test func bfloat16ComparesAndHashesLikeFloat() {
        #expect(BFloat16(0 as Float) == BFloat16(-0.0 as Float))
        #expect(BFloat16(0 as Float).hashValue == BFloat16(-0.0 as Float).hashValue)
        #expect(BFloat16.nan != BFloat16.nan)
        #expect(BFloat16(1 as Float) < BFloat16(2 as Float))
        #expect(!(BFloat16.nan < BFloat16(1 as Float)))
        #expect(BFloat16(1.5 as Float).description == "1.5")
        #expect(Float(BFloat16.greatestFiniteMagnitude) == 3.3895314e38)
        #expect(BFloat16(Float.greatestFiniteMagnitude) == .infinity)
        #expect(Float(BFloat16.leastNonzeroMagnitude) == 0x1p-133)
        #expect(Float(BFloat16.leastNormalMagnitude) == 0x1p-126)
        #expect(BFloat16.infinity.isNaN == false)
    }

    // MARK: Eight lanes against one value at a time, at every alignment

    @Test func vectorAndScalarConversionsAgreeAtEveryAlignment() {
        var generator = SplitMix64(seed: 7)
        let count = 64
        // Mixed magnitudes: normal, tiny (16-bit subnormals), huge (overflow), ties.
        let source: [Float] = (0..<count).map { i in
            let u = Float(generator.next() >> 40) / Float(1 << 24) - 0.5
            switch i % 4 {
            case 0: return u * 100
            case 1: return u * 0x1p-15
            case 2: return u * 140_000
            default: return Float(Int(u * 64)) * 0x1p-10 + 0x1p-11
            }
        }
        checkLanes(Float.self, source)
        checkLanes(Float16.self, source)
        checkLanes(BFloat16.self, source)
    }

    func checkLanes<E: NormElement>(_: E.Type, _ source: [Float], sourceLocation: SourceLocation = #_sourceLocation) {
        let count = source.count
        withElementOffsets(count, of: E.self) { p in
            for i in stride(from: 0, to: count, by: 8) {
                E.store8(SIMD8<Float>(source[i..<i + 8]), p + i)
            }
            for i in 0..<count {
                let scalar = E.narrow(source[i])
                #expect(withUnsafeBytes(of: p[i]) { Array($0) } == withUnsafeBytes(of: scalar) { Array($0) },
                        "\(E.self) store8 lane \(i) of \(source[i])", sourceLocation: sourceLocation)
            }
            for i in stride(from: 0, to: count, by: 8) {
                let lanes = E.load8(p + i)
                for lane in 0..<8 {
                    #expect(lanes[lane].bitPattern == E.widen(p[i + lane]).bitPattern,
                            "\(E.self) load8 lane \(i + lane)", sourceLocation: sourceLocation)
                }
            }
        }
    }
}
