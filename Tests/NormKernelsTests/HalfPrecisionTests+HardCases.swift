// 16-bit LayerNorm and RMSNorm forward (HalfPrecisionTests): (d) the hard cases
// of issue 20, each checked for exactness against the Float32 kernel and
// against the Float64 reference, and (e) the validation layer on 16-bit
// buffers (lengths in elements, overlaps in bytes, nothing written on a throw).

import Testing
@testable import NormKernels

extension HalfPrecisionTests {
    @Test("(d) near the largest value, subnormals, mean 1e3 ± 0.1, constant rows, 2²⁰ values in a row")
    func hardCases() throws {
        func check<E: SixteenBitElement>(_: E.Type) throws {
            let greatest = E.format.greatestFinite
            // Below the least normal value of E: 2^minExponent.
            let subnormal = Double(sign: .plus, exponent: E.format.minExponent, significand: 1)
            for op in RowOp.allCases {
                let c = HalfCase(op: op, rows: 4, features: 1000, path: nil)
                let beta = op == .layerNorm ? halfParameters(1000, "hard β").beta : nil
                let gamma = halfParameters(1000, "hard γ").gamma
                func run(_ what: String, _ values: [Float], gamma: [Float]? = gamma, epsilon: Float? = nil) throws {
                    try expectExactAndNearReference(E.self, c, values: values, gamma: gamma, beta: beta,
                                                    epsilon: epsilon, label: what)
                }
                var rng = SplitMix64("hard \(E.typeName) \(op)")
                // Values of both signs up to the largest finite one. BFloat16's reaches
                // Float32's, where x − μ itself overflows the Float32 arithmetic (for
                // Float32 tensors too): there, half of it.
                let mixed = min(greatest, Double(Float.greatestFiniteMagnitude) / 2)
                try run("near max", (0..<4000).map { _ in Float(rng.uniform(-1...1) * mixed) })
                try run("near max, same sign", (0..<4000).map { _ in Float(rng.uniform(0.9...1) * greatest) })
                // Outputs past the largest value round to ±∞, as the reference does.
                let huge = [Float](repeating: Float(greatest / 2), count: 1000)
                try run("outputs overflowing", rowValues(4, 1000, "overflow"), gamma: huge)
                // Subnormal inputs, with an ε below their variance.
                try run("subnormals", (0..<4000).map { _ in Float(rng.uniform(-1...1) * subnormal) }, epsilon: 1e-30)
                // Mean 1e3, std 0.1: in Float16 the values fall on a grid of 0.5.
                try run("mean 1e3 std 0.1", rowValues(4, 1000, "offset", center: 1000...1000, spread: 0.1...0.1))
                // Constant rows: x̂ = 0, y = β exactly (RMSNorm: ±γ·|c|/√(c² + ε)).
                try run("constant rows", (0..<4000).map { i in Float(i / 1000) * 0.75 - 1 })
            }
            // A row of 2²⁰ values: a 16-bit running sum would have stopped growing
            // (Float16) or overflowed long before the end.
            for op in RowOp.allCases {
                let c = HalfCase(op: op, rows: 1, features: 1 << 20, path: nil)
                try expectExactAndNearReference(E.self, c, values: rowValues(1, 1 << 20, "long", center: 100...100,
                                                                             spread: 1...1),
                                                gamma: nil, beta: nil)
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }

    @Test("(e) wrong lengths and overlapping buffers throw, and nothing is written")
    func errors() throws {
        func check<E: SixteenBitElement>(_: E.Type) throws {
            let rows = 4, features = 40, total = 160   // the defaults of `rejected` below
            let ln = try LayerNormalization(rows: rows, features: features)
            let rms = try RMSNormalization(rows: rows, features: features)
            let mark = E(bits: 0x7E5A)
            let x = (0...total).map { E.narrow(Float($0 % 7) - 3) }
            let g = [Float](repeating: 1, count: features + 1)

            /// `call(input, output, γ, β)` with buffers of the given lengths must
            /// throw `expected`, and the output must keep its marks.
            func rejected(_ expected: NormError, _ what: String, input: Int = 160, output: Int = 160,
                          scale: Int = 40, bias: Int = 40,
                          _ call: (UnsafeBufferPointer<E>, UnsafeMutableBufferPointer<E>,
                                   UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>) throws -> Void) {
                var out = [E](repeating: mark, count: output)
                expectNormError(expected, mentions: [expected.argument], "\(E.typeName) \(what)") {
                    try x.withUnsafeBufferPointer { xp in
                        try g.withUnsafeBufferPointer { gp in
                            try out.withUnsafeMutableBufferPointer { yp in
                                try call(UnsafeBufferPointer(rebasing: xp[0..<input]), yp,
                                         UnsafeBufferPointer(rebasing: gp[0..<scale]),
                                         UnsafeBufferPointer(rebasing: gp[0..<bias]))
                            }
                        }
                    }
                }
                #expect(out.allSatisfy { $0.bits == mark.bits }, "\(E.typeName) \(what): output written before the error")
            }
            let layer = { (x: UnsafeBufferPointer<E>, y: UnsafeMutableBufferPointer<E>, g: UnsafeBufferPointer<Float>,
                           b: UnsafeBufferPointer<Float>) throws -> Void in
                _ = try ln.forwardAnyElement(input: x, output: y, scale: g, bias: b)
            }
            let root = { (x: UnsafeBufferPointer<E>, y: UnsafeMutableBufferPointer<E>, g: UnsafeBufferPointer<Float>,
                          _: UnsafeBufferPointer<Float>) throws -> Void in
                _ = try rms.forwardAnyElement(input: x, output: y, scale: g)
            }
            for (name, call) in [("LayerNorm", layer), ("RMSNorm", root)] {
                rejected(.lengthMismatch(argument: "input", expected: total, actual: total - 1), "\(name) short input",
                         input: total - 1, call)
                rejected(.lengthMismatch(argument: "output", expected: total, actual: total + 1), "\(name) long output",
                         output: total + 1, call)
                rejected(.lengthMismatch(argument: "scale (γ)", expected: features, actual: features - 1),
                         "\(name) short γ", scale: features - 1, call)
            }
            rejected(.lengthMismatch(argument: "bias (β)", expected: features, actual: features + 1), "LayerNorm long β",
                     bias: features + 1, layer)

            // Overlaps, decided on bytes: one allocation holds all the buffers.
            let bytes = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64)
            defer { bytes.deallocate() }
            func fill() { for i in 0..<2048 { bytes.storeBytes(of: mark.bits, toByteOffset: 2 * i, as: UInt16.self) } }
            func untouched() -> Bool { (0..<2048).allSatisfy { bytes.load(fromByteOffset: 2 * $0, as: UInt16.self) == mark.bits } }
            func elements(_ offset: Int, _ count: Int) -> UnsafeMutableBufferPointer<E> {
                UnsafeMutableBufferPointer(start: (bytes + offset).assumingMemoryBound(to: E.self), count: count)
            }
            func floats(_ offset: Int, _ count: Int) -> UnsafeBufferPointer<Float> {
                UnsafeBufferPointer(start: (bytes + offset).assumingMemoryBound(to: Float.self), count: count)
            }
            func overlap(_ expected: NormError, _ what: String, _ call: () throws -> Void) {
                fill()
                expectNormError(expected, mentions: [expected.argument], "\(E.typeName) \(what)", call)
                #expect(untouched(), "\(E.typeName) \(what): memory written before the error")
            }
            // The output one element past the input.
            overlap(.partialOverlap(argument: "output"), "LayerNorm output one element past the input") {
                _ = try ln.forwardAnyElement(input: UnsafeBufferPointer(elements(0, total)), output: elements(2, total),
                                             scale: nil, bias: nil)
            }
            overlap(.partialOverlap(argument: "output"), "RMSNorm output one element past the input") {
                _ = try rms.forwardAnyElement(input: UnsafeBufferPointer(elements(0, total)), output: elements(2, total),
                                              scale: nil)
            }
            // 16-bit outputs reaching into Float32 γ and β (bytes 1024..<1184, 2048..<2208).
            overlap(.overlappingBuffers(argument: "output", other: "scale (γ)"), "LayerNorm output over γ") {
                _ = try ln.forwardAnyElement(input: UnsafeBufferPointer(elements(3072, total)), output: elements(800, total),
                                             scale: floats(1024, features), bias: floats(2048, features))
            }
            overlap(.overlappingBuffers(argument: "output", other: "bias (β)"), "LayerNorm output over β") {
                _ = try ln.forwardAnyElement(input: UnsafeBufferPointer(elements(3072, total)), output: elements(2200, total),
                                             scale: floats(1024, features), bias: floats(2048, features))
            }
            overlap(.overlappingBuffers(argument: "output", other: "scale (γ)"), "RMSNorm output over γ") {
                _ = try rms.forwardAnyElement(input: UnsafeBufferPointer(elements(3072, total)), output: elements(1100, total),
                                              scale: floats(1024, features))
            }
        }
        try check(BFloat16.self)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self)
        #endif
    }
}
