// Concurrency of the runtime: callers sharing a descriptor, nested parallel
// loops, warm (spinning) workers and pinning, each against the serial bits.
import Dispatch
import Testing
@testable import NormKernels

/// Seeds of the forward determinism streams (state = seed).
private let streams = SeededStreams.plain

@Suite struct ConcurrencyTests {
    /// Eight callers at once on one shared descriptor, each with its own buffers,
    /// must each get exactly the serial result (kernels keep no shared mutable state).
    @Test func eightCallersShareADescriptor() throws {
        let shape = TensorShape(n: 8, c: 16, h: 40, w: 40, layout: .nhwc)
        let bn = try BatchNormalization(shape: shape, threading: Threading(threads: 2, parallelThreshold: 4096))
        let gn = try GroupNormalization(shape: shape, groups: 4, threading: Threading(threads: 2, parallelThreshold: 4096))
        let inputs = (0..<8).map { streams.uniforms(shape.count, seed: UInt64(100 + $0), -2...2) }
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
            let phases = InlineArray<6, Parallel.Phase> {
                Parallel.Phase(count: counts[$0], elementsPerItem: 1 << 10, fromTheEnd: $0 % 2 == 1)
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
        let x = streams.uniforms(256 * 1000, seed: 21, -2...2)
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
        let x = streams.uniforms(shape.count, seed: 77, -2...2)
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
        let x = streams.uniforms(256 * 1000, seed: 21, -2...2)
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
