// 16-bit LayerNorm/RMSNorm backward on rows of 768–4096 values: the short-row
// sweep (`ShortRowsBackward`), whose sweep 1 prefetches x and dy into L2 8 KiB
// ahead for 16-bit types only (issue 20). The prefetch must change no bit: dx
// is E.narrow of the Float32 kernel's dx on the widened tensors (the Float32
// kernel takes no prefetch), dγ and dβ its very bits, on 1–16 threads, with
// row lengths that are not a multiple of 16 or of 32 (the prefetch's step),
// and rows holding NaN, ±∞, subnormals and ±60000. Every dx is written: dx
// starts as a signaling NaN (Float16 0x7D01, BFloat16 0x7F81), which no
// arithmetic result equals (a NaN result is quiet).

import Testing
@testable import NormKernels

extension HalfPrecisionTests {
    /// Rows of `rowValues` with hard values in rows 1–4 (of x or dy): NaN, ±∞,
    /// subnormals of E, ±60000.
    private func hardRows<E: SixteenBitElement>(_: E.Type, _ rows: Int, _ features: Int, _ label: String,
                                                dy: Bool) -> [E] {
        var v = rowValues(rows, features, label, center: dy ? -0.5...0.5 : -3...3)
        let subnormal: Float = E.self == BFloat16.self ? 0x1p-130 : 0x1p-20
        for j in stride(from: 0, to: features, by: 7) {
            if rows > 1 && !dy { v[features + j] = j % 2 == 0 ? .nan : v[features + j] }
            if rows > 2 && dy { v[2 * features + j] = j % 14 == 0 ? .infinity : -.infinity }
            if rows > 3 { v[3 * features + j] = (j % 2 == 0 ? 3 : -5) * subnormal }
            if rows > 4 && !dy { v[4 * features + j] = j % 2 == 0 ? 60000 : -60000 }
        }
        return v.map { E.narrow($0) }
    }

    /// The backward with dx starting as `sentinel` (bits).
    private func sentinelBackward<E: SixteenBitElement>(
        _ op: RowOp, rows: Int, features: Int, x: [E], dy: [E], saved: SavedStatistics, gamma: [Float],
        threading: Threading, sentinel: UInt16
    ) throws -> (dx: [E], dgamma: [Float], dbeta: [Float]) {
        var dx = [E](repeating: E(bits: sentinel), count: x.count)
        var dg = [Float](repeating: gradientSentinel, count: features), db = dg
        try x.withUnsafeBufferPointer { xp in
            try dy.withUnsafeBufferPointer { dyp in
                try gamma.withUnsafeBufferPointer { g in
                    try dx.withUnsafeMutableBufferPointer { dxp in
                        try dg.withUnsafeMutableBufferPointer { dgp in
                            try db.withUnsafeMutableBufferPointer { dbp in
                                switch op {
                                case .layerNorm:
                                    try LayerNormalization(rows: rows, features: features, threading: threading)
                                        .backwardAnyElement(input: xp, gradOutput: dyp, saved: saved, scale: g,
                                                            gradInput: dxp, gradScale: dgp, gradBias: dbp)
                                case .rmsNorm:
                                    try RMSNormalization(rows: rows, features: features, threading: threading)
                                        .backwardAnyElement(input: xp, gradOutput: dyp, saved: saved, scale: g,
                                                            gradInput: dxp, gradScale: dgp)
                                }
                            }
                        }
                    }
                }
            }
        }
        return (dx, dg, db)
    }

    @Test("backward, rows of 768–4096 (sweep 1 prefetches): the Float32 kernel's bits on 1–16 threads, hard values")
    func backwardPrefetchedRows() throws {
        /// NaNs of either kind compare equal (which NaN a multiply-add of two NaNs
        /// returns depends on the instruction form); every other value by its bits.
        func same16(_ a: UInt16, _ b: UInt16, _ nanMask: UInt16, _ exponent: UInt16) -> Bool {
            let aNaN = a & exponent == exponent && a & nanMask != 0, bNaN = b & exponent == exponent && b & nanMask != 0
            return aNaN && bNaN || a == b
        }
        func same32(_ a: [Float], _ b: [Float]) -> Int {
            zip(a, b).filter { !($0.isNaN && $1.isNaN) && $0.bitPattern != $1.bitPattern }.count
        }
        func check<E: SixteenBitElement>(_: E.Type, sentinel: UInt16, exponent: UInt16) throws {
            let nanMask = ~exponent & 0x7FFF
            for (op, rows, features) in [(RowOp.layerNorm, 40, 1000), (.layerNorm, 24, 1030), (.layerNorm, 48, 768),
                                         (.layerNorm, 9, 4096), (.layerNorm, 17, 4095), (.rmsNorm, 40, 1000),
                                         (.rmsNorm, 9, 4096), (.rmsNorm, 21, 771)] {
                let context = "\(E.typeName) \(op) backward [\(rows), \(features)]"
                let x16 = hardRows(E.self, rows, features, "pf x \(context)", dy: false)
                let dy16 = hardRows(E.self, rows, features, "pf dy \(context)", dy: true)
                let gamma = halfParameters(features, "pf γ \(context)").gamma
                let saved = try runRows(op, rows: rows, features: features, x16, gamma: gamma, beta: nil).saved
                let (x32, dy32) = (x16.map { E.widen($0) }, dy16.map { E.widen($0) })
                let single = try backwardRows(op, rows: rows, features: features, x: x32, dy: dy32, saved: saved,
                                              gamma: gamma)
                let expected = single.input!.map { E.narrow($0).bits }
                for t in [1, 2, 3, 4, 8, 16] {
                    let threading = Threading(threads: t, parallelThreshold: 1024, spinMicroseconds: 0)
                    let half = try sentinelBackward(op, rows: rows, features: features, x: x16, dy: dy16, saved: saved,
                                                    gamma: gamma, threading: threading, sentinel: sentinel)
                    let what = "\(context), \(t) threads"
                    let got = half.dx.map(\.bits)
                    #expect(got.allSatisfy { $0 != sentinel }, "\(what): dx not written")
                    let first = got.indices.first { !same16(got[$0], expected[$0], nanMask, exponent) }
                    let message = first.map { "\(what): dx[\($0)] bits \(got[$0]), narrowed Float32 \(expected[$0])" }
                    #expect(first == nil, Comment(rawValue: message ?? ""))
                    #expect(same32(half.dgamma, single.scale!) == 0, "\(what): dγ")
                    if op == .layerNorm { #expect(same32(half.dbeta, single.bias!) == 0, "\(what): dβ") }
                }
                // The hard rows took the hard values: NaN in row 1's dx (LayerNorm: its x has NaN).
                #expect(expected[features..<(2 * features)].contains { E.widen(E(bits: $0)).isNaN }, "\(context): no NaN row")
            }
        }
        try check(BFloat16.self, sentinel: 0x7F81, exponent: 0x7F80)
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        try check(Float16.self, sentinel: 0x7D01, exponent: 0x7C00)
        #endif
    }
}
