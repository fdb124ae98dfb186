import Dispatch
import Testing
@testable import NormKernels

// Results must be bitwise identical for any thread count and affinity: blocks
// depend only on the shape and cache sizes, and partials merge in a fixed tree.
// Shapes are chosen to exercise both strategies of each geometry (whole units
// per worker, and units split across workers) above the serial threshold.

fileprivate func rtData(_ count: Int, seed: UInt64, offset: Float = 0) -> [Float] {
    var state = seed
    return (0..<count).map { _ in
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return offset + Float(Double(z >> 11) / Double(1 << 53) * 4 - 2)
    }
}

/// Parked workers (`concurrentPerform`, phases as tickets), warm workers (the
/// default since the seventh pass: `WarmWorkers`, one call per phase) and pinning.
fileprivate let rtThreadings: [Threading] =
    [1, 2, 3, 4, 5, 8, 16].map { Threading(threads: $0, parallelThreshold: 4096, spinMicroseconds: 0) }
    + [2, 3, 8].map { Threading(threads: $0, parallelThreshold: 4096, spinMicroseconds: 200) }
    + [Threading(threads: 2, affinity: .compact, parallelThreshold: 4096), Threading(threads: 2, affinity: .scatter, parallelThreshold: 4096)]

/// Runs `body` for every threading and expects the same bits as with one thread.
fileprivate func expectSameBits(_ label: String, _ body: (Threading) throws -> [Float]) throws {
    let serial = try body(.serial)
    for t in rtThreadings {
        let result = try body(t)
        #expect(result.elementsEqual(serial) { $0.bitPattern == $1.bitPattern }, "\(label) differs with \(t)")
    }
}

fileprivate func bits(_ values: [Double]) -> [Float] { values.flatMap { [Float(bitPattern: UInt32(truncatingIfNeeded: $0.bitPattern)), Float(bitPattern: UInt32(truncatingIfNeeded: $0.bitPattern >> 32))] } }

@Suite struct DeterminismTests {
    static let imageShapes: [TensorShape] = [
        TensorShape(n: 2, c: 3, h: 160, w: 160),   // few channels: units split
        TensorShape(n: 4, c: 64, h: 28, w: 28),    // many channels: whole units
        TensorShape(n: 1, c: 2, h: 300, w: 301),   // N·C = 2, odd sizes
        TensorShape(n: 64, c: 64, h: 7, w: 7),     // short runs: grouped blocks, memory-order output
        nhwcShape(n: 2, c: 3, spanning: 2),        // NHWC few channels: ≥ 2 column row blocks on any L2, split
    ]

    @Test("the shapes split blocks across workers in both geometries on this machine's caches")
    func shapesSplit() throws {
        let threading = Threading(threads: 2, parallelThreshold: 4096)
        // ([2, 160, 160, 3] NHWC alone is one row block on a 2 MiB L2: nothing to split.)
        for layout in Layout.allCases {
            let plans = try Self.imageShapes.map { try BatchNormalization(shape: $0.with(layout: layout), threading: threading).plan() }
            #expect(plans.contains { $0.blocks > 1 && $0.strategy.hasPrefix("split") },
                    "no \(layout) BatchNorm shape splits its blocks: \(plans.map(\.description))")
        }
    }

    static func allLayouts(_ s: TensorShape) -> [TensorShape] {
        [s.with(layout: .nchw), s.with(layout: .nhwc)]
    }

    @Test(arguments: imageShapes.flatMap(allLayouts))
    func batchNorm(shape: TensorShape) throws {
        let x = rtData(shape.count, seed: 1, offset: 3)
        let gamma = rtData(shape.c, seed: 2), beta = rtData(shape.c, seed: 3)
        try expectSameBits("BatchNorm training \(shape)") { t in
            let running = try RunningStatistics(channels: shape.c)
            let bn = try BatchNormalization(shape: shape, fusedReLU: true, threading: t)
            let (y, saved) = try bn.forwardTraining(x, scale: gamma, bias: beta, running: running)
            return y + bits(saved.mean) + bits(saved.invStd) + running.mean + running.variance
        }
        let running = try RunningStatistics(channels: shape.c, mean: gamma, variance: gamma.map { $0 * $0 + 0.5 })
        try expectSameBits("BatchNorm inference \(shape)") { t in
            try BatchNormalization(shape: shape, threading: t).forwardInference(x, scale: gamma, bias: beta, running: running)
        }
    }

    /// The columns geometry merges partials whole rows at a time (`RowTree`); each
    /// column must come out with the bits of the per-column tree.
    @Test func rowTreeMatchesPerColumnTree() {
        let width = 5
        for rows in 0...37 {
            let values = rtData(3 * rows * width, seed: UInt64(rows) + 40)
            let moments = (0..<(rows * width)).map { i in
                Moments(count: Double(1 + i % 3), mean: Double(values[3 * i]) * 100, m2: Double(abs(values[3 * i + 1])))
            }
            let sums = (0..<(rows * width)).map { GradientSums(dy: Double(values[3 * $0]), dyXhat: Double(values[3 * $0 + 2]) * 1e3) }
            var mergedMoments = [Moments](repeating: .empty, count: width)
            var mergedSums = [GradientSums](repeating: .zero, count: width)
            let scratch = RowTree.scratchCount(rows: rows, width: width)
            moments.withUnsafeBufferPointer { m in
                withUnsafeTemporaryAllocation(of: Moments.self, capacity: scratch) { s in
                    RowTree.merge(m.baseAddress ?? UnsafePointer(s.baseAddress!), stride: width, rows: 0, rows,
                                  width: width, into: &mergedMoments, scratch: s.baseAddress!)
                }
            }
            sums.withUnsafeBufferPointer { g in
                withUnsafeTemporaryAllocation(of: GradientSums.self, capacity: scratch) { s in
                    RowTree.merge(g.baseAddress ?? UnsafePointer(s.baseAddress!), stride: width, rows: 0, rows,
                                  width: width, into: &mergedSums, scratch: s.baseAddress!)
                }
            }
            for j in 0..<width {
                let tree = Moments.treeMerge(count: rows) { moments[$0 * width + j] }
                #expect(mergedMoments[j] == tree, "moments: \(rows) rows, column \(j)")
                #expect(mergedSums[j] == GradientSums.treeSum(count: rows) { sums[$0 * width + j] }, "sums: \(rows) rows, column \(j)")
            }
        }
    }

    @Test func batchNormMatrix() throws {
        for shape in [TensorShape.matrix(4096, 64), TensorShape.matrix(300, 1024), TensorShape.matrix(70000, 3)] {
            let x = rtData(shape.count, seed: 4)
            try expectSameBits("BatchNorm1d \(shape)") { t in
                let (y, saved) = try BatchNormalization(shape: shape, threading: t).forwardTraining(x)
                return y + bits(saved.mean) + bits(saved.invStd)
            }
        }
    }

    @Test(arguments: imageShapes.flatMap(allLayouts))
    func instanceAndGroupNorm(shape: TensorShape) throws {
        let x = rtData(shape.count, seed: 5, offset: -1)
        let gamma = rtData(shape.c, seed: 6), beta = rtData(shape.c, seed: 7)
        try expectSameBits("InstanceNorm \(shape)") { t in
            let running = try RunningStatistics(channels: shape.c)
            let (y, saved) = try InstanceNormalization(shape: shape, threading: t)
                .forwardTraining(x, scale: gamma, bias: beta, running: running)
            return y + bits(saved.mean) + bits(saved.invStd) + running.mean + running.variance
        }
        for groups in [1, shape.c] + (shape.c % 2 == 0 ? [2] : []) {
            try expectSameBits("GroupNorm G=\(groups) \(shape)") { t in
                let (y, saved) = try GroupNormalization(shape: shape, groups: groups, threading: t)
                    .forward(x, scale: gamma, bias: beta)
                return y + bits(saved.mean) + bits(saved.invStd)
            }
        }
        let styleShape = TensorShape(n: shape.n, c: shape.c, h: 37, w: 41, layout: shape.layout)
        let style = rtData(styleShape.count, seed: 8, offset: 2)
        try expectSameBits("AdaIN \(shape)") { t in
            let (y, saved) = try AdaptiveInstanceNormalization(content: shape, style: styleShape, threading: t)
                .forward(content: x, style: style)
            return y + bits(saved.contentMean) + bits(saved.contentInvStd) + bits(saved.styleMean) + bits(saved.styleStd)
        }
    }

    @Test func rowKernels() throws {
        for (rows, features) in [(512, 1024), (2, 100_003), (3000, 77), (4100, 13), (1037, 128), (1100, 201)] {
            let x = rtData(rows * features, seed: 9, offset: 0.5)
            let gamma = rtData(features, seed: 10), beta = rtData(features, seed: 11)
            try expectSameBits("LayerNorm \(rows)×\(features)") { t in
                let (y, saved) = try LayerNormalization(rows: rows, features: features, threading: t)
                    .forward(x, scale: gamma, bias: beta)
                return y + bits(saved.mean) + bits(saved.invStd)
            }
            try expectSameBits("RMSNorm \(rows)×\(features)") { t in
                let (y, saved) = try RMSNormalization(rows: rows, features: features, threading: t).forward(x, scale: gamma)
                return y + bits(saved.invStd)
            }
        }
    }

    @Test func weightNorm() throws {
        for (shape, dim) in [([512, 1024], 0 as Int?), ([64, 128, 3, 3], 1), ([300, 700], nil), ([1000, 300], 1)] {
            let v = rtData(shape.reduce(1, *), seed: 12)
            let count = dim.map { shape[$0] } ?? 1
            let g = rtData(count, seed: 13)
            try expectSameBits("WeightNorm \(shape) dim \(String(describing: dim))") { t in
                let (w, norms) = try WeightNormalization(shape: shape, dim: dim, threading: t).forward(v: v, g: g)
                return w + bits(norms)
            }
        }
    }
}

@Suite struct ConcurrencyTests {
    /// Eight callers at once on one shared descriptor, each with its own buffers,
    /// must each get exactly the serial result (kernels keep no shared mutable state).
    @Test func eightCallersShareADescriptor() throws {
        let shape = TensorShape(n: 8, c: 16, h: 40, w: 40, layout: .nhwc)
        let bn = try BatchNormalization(shape: shape, threading: Threading(threads: 2, parallelThreshold: 4096))
        let gn = try GroupNormalization(shape: shape, groups: 4, threading: Threading(threads: 2, parallelThreshold: 4096))
        let inputs = (0..<8).map { rtData(shape.count, seed: UInt64(100 + $0)) }
        let expectedBN = try inputs.map { try BatchNormalization(shape: shape, threading: .serial).forwardTraining($0).output }
        let expectedGN = try inputs.map { try GroupNormalization(shape: shape, groups: 4, threading: .serial).forward($0).output }
        let results = UnsafeMutableBufferPointer<([Float], [Float])>.allocate(capacity: 8)
        defer { results.deallocate() }
        nonisolated(unsafe) let slots = results  // each caller writes its own slot
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            let a = (try? bn.forwardTraining(inputs[i]).output) ?? []
            let b = (try? gn.forward(inputs[i]).output) ?? []
            (slots.baseAddress! + i).initialize(to: (a, b))
        }
        for i in 0..<8 {
            #expect(results[i].0 == expectedBN[i], "BatchNorm caller \(i)")
            #expect(results[i].1 == expectedGN[i], "GroupNorm caller \(i)")
        }
    }

    /// `Parallel.forEach(phases:)`: every item of every phase runs exactly once, and
    /// no item of a phase starts before every item of the earlier phases is done,
    /// also when called from inside another concurrentPerform (nested).
    @Test func phasesRunInOrderAndOnce() {
        let counts = [1000, 1, 0, 37, 5000, 2]
        let offsets = counts.indices.map { counts[..<$0].reduce(0, +) }
        let total = counts.reduce(0, +)
        @Sendable func check(_ threading: Threading, _ label: String) -> Bool {
            let hits = UnsafeMutableBufferPointer<Int>.allocate(capacity: total)
            let early = UnsafeMutableBufferPointer<Bool>.allocate(capacity: total)
            defer { hits.deallocate(); early.deallocate() }
            hits.initialize(repeating: 0)
            early.initialize(repeating: false)
            let phases = counts.enumerated().map {
                Parallel.Phase(count: $0.element, elementsPerItem: 1 << 10, fromTheEnd: $0.offset % 2 == 1)
            }
            Parallel.forEach(phases: phases, threading: threading) { p, range in
                // Every earlier item must already be done when this range starts.
                let unfinished = hits[..<offsets[p]].contains { $0 != 1 }
                for i in range {
                    hits[offsets[p] + i] += 1
                    early[offsets[p] + i] = unfinished
                }
            }
            let ok = hits.allSatisfy { $0 == 1 } && !early.contains(true)
            #expect(ok, "\(label)")
            return ok
        }
        for threads in [1, 2, 3, 8] {
            for round in 0..<50 {
                _ = check(Threading(threads: threads, parallelThreshold: 4096, spinMicroseconds: 0), "\(threads) threads, round \(round)")
                _ = check(Threading(threads: threads, parallelThreshold: 4096, spinMicroseconds: 200), "\(threads) warm threads, round \(round)")
            }
        }
        let nested = UnsafeMutableBufferPointer<Bool>.allocate(capacity: 8)
        defer { nested.deallocate() }
        nonisolated(unsafe) let nestedSlots = nested  // each caller writes its own slot
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            nestedSlots[i] = check(Threading(threads: 4, parallelThreshold: 4096), "nested \(i)")
        }
        #expect(nested.allSatisfy { $0 })
    }

    /// A kernel called from inside another concurrentPerform (nested parallelism)
    /// finishes (no deadlock) and matches the serial result.
    @Test func nestedInsideConcurrentPerform() throws {
        let ln = try LayerNormalization(rows: 256, features: 1000, threading: Threading(threads: 4, parallelThreshold: 4096))
        let x = rtData(256 * 1000, seed: 21)
        let expected = try LayerNormalization(rows: 256, features: 1000, threading: .serial).forward(x).output
        let ok = UnsafeMutableBufferPointer<Bool>.allocate(capacity: 16)
        defer { ok.deallocate() }
        nonisolated(unsafe) let okSlots = ok  // each caller writes its own slot
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            okSlots[i] = (try? ln.forward(x).output) == expected
        }
        #expect(ok.allSatisfy { $0 })
    }
}

/// Warm workers (`Threading.spinMicroseconds`): Dispatch threads that spin between
/// calls must give the serial bits, under concurrent and nested callers, and
/// every range must run exactly once.
@Suite struct WarmWorkerTests {
    static func warm(_ threads: Int) -> Threading {
        Threading(threads: threads, parallelThreshold: 4096, spinMicroseconds: 2000)
    }

    @Test func everyRangeRunsOnceBackToBack() {
        let items = 1000
        let hits = UnsafeMutableBufferPointer<Int>.allocate(capacity: items)
        defer { hits.deallocate() }
        for round in 0..<200 {
            hits.initialize(repeating: 0)
            Parallel.forEach(count: items, elementsPerItem: 1 << 12, threading: Self.warm(2 + round % 3),
                             fromTheEnd: round % 2 == 0) { range in
                for i in range { hits[i] += 1 }
            }
            #expect(hits.allSatisfy { $0 == 1 }, "round \(round)")
        }
    }

    @Test func kernelsMatchSerialBits() throws {
        let shape = TensorShape(n: 4, c: 24, h: 33, w: 31, layout: .nhwc)
        let x = rtData(shape.count, seed: 77)
        for threads in [2, 3, 8] {
            for layout in Layout.allCases {
                let s = shape.with(layout: layout)
                let bn = try BatchNormalization(shape: s, threading: Self.warm(threads)).forwardTraining(x)
                let bnSerial = try BatchNormalization(shape: s, threading: .serial).forwardTraining(x)
                #expect(bn.output == bnSerial.output, "BatchNorm \(layout) \(threads)")
                let gn = try GroupNormalization(shape: s, groups: 6, threading: Self.warm(threads)).forward(x)
                let gnSerial = try GroupNormalization(shape: s, groups: 6, threading: .serial).forward(x)
                #expect(gn.output == gnSerial.output, "GroupNorm \(layout) \(threads)")
            }
            let ln = try LayerNormalization(rows: 96, features: 1023, threading: Self.warm(threads)).forward(x)
            let lnSerial = try LayerNormalization(rows: 96, features: 1023, threading: .serial).forward(x)
            #expect(ln.output == lnSerial.output, "LayerNorm \(threads)")
        }
    }

    @Test func concurrentAndNestedCallers() throws {
        let ln = try LayerNormalization(rows: 256, features: 1000, threading: Self.warm(4))
        let x = rtData(256 * 1000, seed: 21)
        let expected = try LayerNormalization(rows: 256, features: 1000, threading: .serial).forward(x).output
        let ok = UnsafeMutableBufferPointer<Bool>.allocate(capacity: 16)
        defer { ok.deallocate() }
        nonisolated(unsafe) let okSlots = ok  // each caller writes its own slot
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            // Each caller also nests warm calls inside a warm call's ranges.
            let inner = UnsafeMutableBufferPointer<Bool>.allocate(capacity: 4)
            defer { inner.deallocate() }
            inner.initialize(repeating: false)
            Parallel.forEach(count: 4, elementsPerItem: 1 << 20, threading: Self.warm(2)) { range in
                for j in range { inner[j] = (try? ln.forward(x).output) == expected }
            }
            okSlots[i] = inner.allSatisfy { $0 } && (try? ln.forward(x).output) == expected
        }
        #expect(ok.allSatisfy { $0 })
    }
}

@Suite struct AffinityTests {
    /// Pinned workers really are pinned while they run, and no binding survives
    /// the call: Dispatch pool threads used afterwards run unbound.
    @Test(arguments: [Affinity.compact, .scatter])
    func pinningDoesNotLeak(affinity: Affinity) throws {
        let topology = Topology.current
        try #require(topology.isFromHwloc, "needs hwloc")
        let unbound = Topology.callingThreadBindingWeight()
        try #require(unbound > 0)
        let weights = UnsafeMutableBufferPointer<Int>.allocate(capacity: 64)
        defer { weights.deallocate() }
        weights.initialize(repeating: -2)
        let items = 64
        Parallel.forEach(count: items, elementsPerItem: 1 << 20, threading: Threading(threads: 2, affinity: affinity, parallelThreshold: 4096)) { range in
            for i in range { weights[i] = Topology.callingThreadBindingWeight() }
        }
        let puPerCore = max(1, topology.processingUnits / topology.cores)
        #expect(weights.allSatisfy { $0 == puPerCore || topology.cores == 1 }, "inside: \(Array(weights.prefix(8)))")
        #expect(Topology.callingThreadBindingWeight() == unbound, "caller still bound")
        // Plain Dispatch work afterwards must see the unbound pool.
        let after = UnsafeMutableBufferPointer<Int>.allocate(capacity: 32)
        defer { after.deallocate() }
        nonisolated(unsafe) let afterSlots = after  // each caller writes its own slot
        DispatchQueue.concurrentPerform(iterations: 32) { i in
            var spin = 0.0
            for k in 0..<20_000 { spin += Double(k) }
            afterSlots[i] = Topology.callingThreadBindingWeight() + (spin < 0 ? 1 : 0)
        }
        #expect(after.allSatisfy { $0 == unbound }, "leaked binding: \(Array(after))")
    }

    @Test func scatterOrderCoversEveryCore() {
        let topology = Topology.current
        let cores = (0..<topology.cores).compactMap { topology.core(forWorker: $0, affinity: .scatter) }
        #expect(Set(cores) == Set(0..<topology.cores))
        #expect(topology.core(forWorker: 0, affinity: .none) == nil)
    }

    @Test func defaultThreadsComeFromTopology() {
        #expect(Threading.default.threads >= 1)
        #expect(Topology.current.cores >= 1)
        #expect(Topology.current.l1DataCacheBytes > 0 && Topology.current.l2CacheBytes > 0)
    }
}
