#if MPI
import NormKernels
import NormKernelsMPI

/// SplitMix64 values in [−1, 1): the same on every rank for the same seed.
struct CheckData {
    var state: UInt64
    mutating func next() -> Float {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Float(Double(z >> 11) * 0x1p-52 - 1)
    }
    mutating func values(_ count: Int, offset: Float = 0, scale: Float = 1) -> [Float] {
        (0..<count).map { _ in offset + scale * next() }
    }
}

extension SynchronizedBatchNormalization {
    /// `forwardTraining` on arrays (`output` must already hold the slice's length).
    func forward(_ x: [Float], _ output: inout [Float], scale: [Float]? = nil, bias: [Float]? = nil,
                 running: RunningStatistics? = nil) throws -> SavedStatistics {
        try x.withUnsafeBufferPointer { xb in
            try output.withUnsafeMutableBufferPointer { yb in
                try withOptional(scale) { g in
                    try withOptional(bias) { b in
                        try forwardTraining(input: xb, output: yb, scale: g, bias: b, running: running)
                    }
                }
            }
        }
    }

    /// `backwardTraining` on arrays, global dγ/dβ: (dx, dγ, dβ).
    func backward(_ x: [Float], _ dy: [Float], saved: SavedStatistics, scale: [Float], output: [Float])
        throws -> ([Float], [Float], [Float]) {
        var dx = [Float](repeating: 0, count: x.count)
        var dg = [Float](repeating: 0, count: shape.c), db = dg
        try x.withUnsafeBufferPointer { xb in
            try dy.withUnsafeBufferPointer { dyb in
                try scale.withUnsafeBufferPointer { g in
                    try output.withUnsafeBufferPointer { yb in
                        try dx.withUnsafeMutableBufferPointer { dxb in
                            try dg.withUnsafeMutableBufferPointer { dgb in
                                try db.withUnsafeMutableBufferPointer { dbb in
                                    try backwardTraining(input: xb, gradOutput: dyb, saved: saved, scale: g, output: yb,
                                                         gradInput: dxb, gradScale: dgb, gradBias: dbb,
                                                         parameterGradients: .global)
                                }
                            }
                        }
                    }
                }
            }
        }
        return (dx, dg, db)
    }
}

func withOptional<R>(_ values: [Float]?, _ body: (UnsafeBufferPointer<Float>?) throws -> R) rethrows -> R {
    guard let values else { return try body(nil) }
    return try values.withUnsafeBufferPointer { try body($0) }
}

enum MPICheck {
    nonisolated(unsafe) static var checks = 0
    nonisolated(unsafe) static var failures = 0
    nonisolated(unsafe) static var bitwiseChecks = 0
    nonisolated(unsafe) static var rank = 0

    static func expect(_ ok: Bool, _ what: @autoclosure () -> String) {
        checks += 1
        if !ok {
            failures += 1
            if failures <= 20 { print("rank \(rank) FAIL: \(what())") }
        }
    }

    static func run() -> Int32 {
        do {
            let exchange = try MPIExchange()
            rank = exchange.rank
            try checkAgainstSingleProcess(exchange)
            try checkFailures(exchange)
            print("rank \(rank) of \(exchange.size): \(checks) checks (\(bitwiseChecks) bitwise against single-process BatchNorm), \(failures) failures")
        } catch {
            print("rank \(rank) FAIL: unexpected error \(error)")
            return 1
        }
        return failures == 0 ? 0 : 1
    }

    /// Samples per rank: even, uneven, and (with ≥ 2 ranks) the last rank empty.
    static func splits(_ size: Int) -> [[Int]] {
        var splits = [Array(repeating: 2, count: size), (0..<size).map { $0 + 2 }]
        if size > 1 { splits.append((0..<size).map { $0 == size - 1 ? 0 : $0 + 2 }) }
        return splits
    }

    static func checkAgainstSingleProcess(_ exchange: MPIExchange) throws {
        let templates = [TensorShape(n: 0, c: 3, h: 70, w: 61), TensorShape(n: 0, c: 5, h: 7, w: 7),
                         TensorShape(n: 0, c: 33, h: 5, w: 3, layout: .nhwc), TensorShape.matrix(0, 40)]
        let updates: [RunningStatistics.Update] = [.exponential(momentum: 0.1), .cumulativeAverage, .population]
        for (t, template) in templates.enumerated() {
            for counts in splits(exchange.size) {
                for relu in [false, true] {
                    let context = "\(template) split \(counts) relu \(relu)"
                    let shapes = counts.map { n -> TensorShape in var s = template; s.n = n; return s }
                    var whole = template
                    whole.n = counts.reduce(0, +)
                    let perSample = template.c * template.spatial
                    let first = counts[..<exchange.rank].reduce(0, +) * perSample
                    let mine = first..<(first + shapes[exchange.rank].count)
                    var data = CheckData(state: UInt64(t * 1000 + counts.count * 10 + (relu ? 1 : 0)))
                    let x = data.values(whole.count, offset: 0.5, scale: 2), dy = data.values(whole.count)
                    let scale = data.values(whole.c, offset: 1, scale: 0.5), bias = data.values(whole.c)
                    let equivalence = SynchronizedBatchNormalization.singleProcessEquivalence(rankShapes: shapes)

                    let sync = try SynchronizedBatchNormalization(shape: shapes[exchange.rank], fusedReLU: relu,
                                                                  exchange: exchange)
                    let single = try BatchNormalization(shape: whole, fusedReLU: relu)
                    let xs = Array(x[mine]), dys = Array(dy[mine])
                    for update in updates {
                        let runSync = try RunningStatistics(channels: whole.c, update: update)
                        let runSingle = try RunningStatistics(channels: whole.c, update: update)
                        var ys = [Float](repeating: 0, count: xs.count), y: [Float] = []
                        var savedSync = SavedStatistics(mean: [], invStd: []), saved = savedSync
                        for _ in 0..<3 {
                            savedSync = try sync.forward(xs, &ys, scale: scale, bias: bias, running: runSync)
                            (y, saved) = try single.forwardTraining(x, scale: scale, bias: bias, running: runSingle)
                        }
                        let what = "\(context) \(update)"
                        compare(ys, Array(y[mine]), bitwise: equivalence.forward, tolerance: 1e-4, "y \(what)")
                        compare(savedSync.invStd.map(Float.init), saved.invStd.map(Float.init), bitwise: equivalence.forward,
                                tolerance: 1e-5, "invStd \(what)")
                        compare(runSync.mean + runSync.variance, runSingle.mean + runSingle.variance,
                                bitwise: equivalence.forward, tolerance: 1e-5, "running \(what)")
                        try expectSameOnAllRanks(savedSync.mean + savedSync.invStd, exchange, "saved \(what)")
                        try expectSameOnAllRanks((runSync.mean + runSync.variance).map(Double.init), exchange, "running \(what)")
                        guard case .population = update else { continue }
                        // Backward once, after the population steps.
                        let (dxs, dgs, dbs) = try sync.backward(xs, dys, saved: savedSync, scale: scale, output: ys)
                        let grads = try single.backwardTraining(x, gradOutput: dy, saved: saved, scale: scale, output: y)
                        let dx = grads.input ?? [], dg = grads.scale ?? [], db = grads.bias ?? []
                        let exact = equivalence.forward && equivalence.backward
                        compare(dxs, Array(dx[mine]), bitwise: exact, tolerance: 1e-4, "dx \(context)")
                        compare(dgs + dbs, dg + db, bitwise: exact, tolerance: 1e-5 * Float(whole.n * whole.spatial),
                                "dγ/dβ \(context)")
                    }
                }
            }
        }
    }

    /// A NaN on one rank, mismatched channel counts, a wrong buffer on rank 0.
    static func checkFailures(_ exchange: MPIExchange) throws {
        let shape = TensorShape(n: 2, c: 4, h: 3, w: 5)
        var gen = CheckData(state: 7)
        var x = gen.values(shape.count)
        if exchange.rank == exchange.size - 1 { x[17] = .nan }
        let running = try RunningStatistics(channels: 4)
        let bn = try SynchronizedBatchNormalization(shape: shape, exchange: exchange)
        var y = [Float](repeating: 0, count: shape.count)
        let saved = try bn.forward(x, &y, running: running)
        expect(!saved.runningStatisticsUpdated && running.skippedUpdates == 1 && running.batchesTracked == 0,
               "a NaN on the last rank must make every rank skip the running update")

        do {
            _ = try SynchronizedBatchNormalization(shape: TensorShape(n: 2, c: exchange.rank == 0 ? 5 : 4),
                                                   exchange: exchange)
            expect(exchange.size == 1, "mismatched channels must throw on every rank")
        } catch let error as SynchronizationError {
            if case .channelMismatch = error { expect(true, "") } else { expect(false, "wrong error \(error)") }
        }

        let sentinel: Float = -777
        var out = [Float](repeating: sentinel, count: shape.count + (exchange.rank == 0 ? 1 : 0))
        let clean = gen.values(shape.count)
        do {
            _ = try bn.forward(clean, &out)
            expect(false, "a wrong output length on rank 0 must throw on every rank")
        } catch let error as NormError {
            expect(exchange.rank == 0 && error.caseName == "lengthMismatch", "rank \(exchange.rank): \(error)")
        } catch let error as SynchronizationError {
            expect(exchange.rank != 0 && error == .peerRejectedArguments(ranks: [0]), "rank \(exchange.rank): \(error)")
        }
        expect(out.allSatisfy { $0 == sentinel }, "output written before a collective error")
    }

    static func compare(_ a: [Float], _ b: [Float], bitwise: Bool, tolerance: Float, _ what: String) {
        guard a.count == b.count else { return expect(false, "\(what): \(a.count) vs \(b.count) values") }
        if bitwise { bitwiseChecks += 1 }
        let bad = a.indices.first { i in
            bitwise ? a[i].bitPattern != b[i].bitPattern
                    : !(abs(a[i] - b[i]) <= tolerance * max(1, abs(b[i])) || (a[i].isNaN && b[i].isNaN))
        }
        expect(bad == nil, "\(what): element \(bad ?? -1): \(bad.map { a[$0] } ?? 0) vs \(bad.map { b[$0] } ?? 0)"
               + (bitwise ? " (promised bitwise)" : ""))
    }

    /// Gathers `values` from every rank and expects the same bits everywhere.
    static func expectSameOnAllRanks(_ values: [Double], _ exchange: MPIExchange, _ what: String) throws {
        var gathered = [Double](repeating: 0, count: values.count * exchange.size)
        try values.withUnsafeBufferPointer { send in
            try gathered.withUnsafeMutableBufferPointer { try exchange.allGather(send, into: $0) }
        }
        let mine = values.map(\.bitPattern)
        for r in 0..<exchange.size {
            let theirs = gathered[(r * values.count)..<((r + 1) * values.count)].map(\.bitPattern)
            expect(theirs == mine, "\(what): rank \(r) differs from rank \(rank)")
        }
    }
}
#endif
