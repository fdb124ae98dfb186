// Heap allocations per kernel call, counted by the test-only allocator
// replacement in Tests/CAllocationCounter (it sees every malloc of the process,
// the Swift runtime's and Dispatch's included).
//
// The counter is process-wide and swift-testing runs tests in parallel, so the
// counting runs in an exit test: a child process that runs only these calls.
// It prints one line per case; this process checks the bounds.
//
// To see where a case allocates (call stacks on standard error):
//   NORMKERNELS_ALLOC_TRACE='LayerNorm forward [256, 1024] t2' \
//     swift test ... --filter allocationTrace 2>&1 | swift demangle

import CAllocationCounter
import Foundation
import Testing
@testable import NormKernels

/// One call to count. `prepare` builds the descriptor and buffers and returns
/// the call, which is made a few times to warm up (first-use tables, workers,
/// Dispatch's caches), then counted call by call.
struct AllocationCase {
    let name: String
    /// Most allocations one warm call may make.
    let bound: Int
    let prepare: () -> () -> Void
}

/// Buffers of one case, freed with it.
final class AllocationBuffers {
    let x, dy: UnsafeBufferPointer<Float>
    let y, dx: UnsafeMutableBufferPointer<Float>
    let gamma, beta: UnsafeBufferPointer<Float>
    let dgamma, dbeta: UnsafeMutableBufferPointer<Float>

    init(count: Int, parameters: Int) {
        func filled(_ count: Int, _ seed: String) -> UnsafeMutableBufferPointer<Float> {
            var generator = SplitMix64(seed)
            let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
            for i in 0..<count { buffer[i] = Float(generator.normal()) }
            return buffer
        }
        x = UnsafeBufferPointer(filled(count, "x")); dy = UnsafeBufferPointer(filled(count, "dy"))
        y = filled(count, "y"); dx = filled(count, "dx")
        gamma = UnsafeBufferPointer(filled(parameters, "g")); beta = UnsafeBufferPointer(filled(parameters, "b"))
        dgamma = filled(parameters, "dg"); dbeta = filled(parameters, "db")
    }

    deinit {
        for b in [x, dy, gamma, beta] { b.deallocate() }
        for b in [y, dx, dgamma, dbeta] { b.deallocate() }
    }
}

/// The allowed allocations per warm call, one number per kind of call so that
/// removing a source of allocations tightens a bound by one edit.
///
/// What the remaining allocations are (after Runtime/ allocates nothing per call):
/// - `SavedStatistics`: the two result arrays (mean, invStd) that forward returns.
/// - `Check.buffers` / `Check.forwardBuffers` (API/Validation.swift): array literals
///   of the buffers to check for overlap.
/// - Kernels-level workspaces (SlotBuffer, CoefficientTable, GradientTable,
///   per-call partial buffers): listed by kind below.
enum AllocationBounds {
    static let layerNormForward = 1_000
    static let layerNormBackward = 1_000
    static let batchNormTraining = 1_000
    static let batchNormInference = 1_000
    static let batchNormBackward = 1_000
    static let groupNormForward = 1_000
    static let groupNormBackward = 1_000
}

enum AllocationCases {
    /// Threadings counted: one thread; two with warm workers (the default,
    /// spinning long enough that helpers are still awake at the next call); two
    /// with parked workers (`concurrentPerform`).
    static let threadings: [(label: String, threading: Threading)] = [
        ("t1", Threading(threads: 1)),
        ("t2", Threading(threads: 2, spinMicroseconds: 200_000)),
        ("t2-parked", Threading(threads: 2, spinMicroseconds: 0)),
    ]

    static func all() -> [AllocationCase] {
        var cases: [AllocationCase] = []
        for (label, threading) in threadings {
            for (rows, features) in [(16, 64), (256, 1024)] {
                cases += layerNorm(rows: rows, features: features, threading: threading, label: label)
            }
            cases += batchNorm(TensorShape(n: 8, c: 64, h: 32, w: 32, layout: .nchw), threading: threading, label: label)
            cases += groupNorm(TensorShape(n: 8, c: 64, h: 16, w: 16, layout: .nchw), groups: 8,
                               threading: threading, label: label)
        }
        return cases
    }

    static func layerNorm(rows: Int, features: Int, threading: Threading, label: String) -> [AllocationCase] {
        func prepare() -> (LayerNormalization, AllocationBuffers, SavedStatistics) {
            let norm = try! LayerNormalization(rows: rows, features: features, threading: threading)
            let b = AllocationBuffers(count: rows * features, parameters: features)
            return (norm, b, try! norm.forward(input: b.x, output: b.y, scale: b.gamma, bias: b.beta))
        }
        let shape = "[\(rows), \(features)] \(label)"
        return [
            AllocationCase(name: "LayerNorm forward \(shape)", bound: AllocationBounds.layerNormForward) {
                let (norm, b, _) = prepare()
                return { _ = try! norm.forward(input: b.x, output: b.y, scale: b.gamma, bias: b.beta) }
            },
            AllocationCase(name: "LayerNorm backward \(shape)", bound: AllocationBounds.layerNormBackward) {
                let (norm, b, saved) = prepare()
                return {
                    try! norm.backward(input: b.x, gradOutput: b.dy, saved: saved, scale: b.gamma,
                                       gradInput: b.dx, gradScale: b.dgamma, gradBias: b.dbeta)
                }
            },
        ]
    }

    static func batchNorm(_ shape: TensorShape, threading: Threading, label: String) -> [AllocationCase] {
        func prepare() -> (BatchNormalization, AllocationBuffers, SavedStatistics, RunningStatistics) {
            let norm = try! BatchNormalization(shape: shape, threading: threading)
            let b = AllocationBuffers(count: shape.count, parameters: shape.c)
            let saved = try! norm.forwardTraining(input: b.x, output: b.y, scale: b.gamma, bias: b.beta)
            return (norm, b, saved, try! RunningStatistics(channels: shape.c))
        }
        let name = "\(shape.n)x\(shape.c)x\(shape.h)x\(shape.w) \(shape.layout) \(label)"
        return [
            AllocationCase(name: "BatchNorm training \(name)", bound: AllocationBounds.batchNormTraining) {
                let (norm, b, _, _) = prepare()
                return { _ = try! norm.forwardTraining(input: b.x, output: b.y, scale: b.gamma, bias: b.beta) }
            },
            AllocationCase(name: "BatchNorm training+running \(name)", bound: AllocationBounds.batchNormTraining) {
                let (norm, b, _, running) = prepare()
                return {
                    _ = try! norm.forwardTraining(input: b.x, output: b.y, scale: b.gamma, bias: b.beta, running: running)
                }
            },
            AllocationCase(name: "BatchNorm inference \(name)", bound: AllocationBounds.batchNormInference) {
                let (norm, b, _, running) = prepare()
                return { try! norm.forwardInference(input: b.x, output: b.y, scale: b.gamma, bias: b.beta, running: running) }
            },
            AllocationCase(name: "BatchNorm backward \(name)", bound: AllocationBounds.batchNormBackward) {
                let (norm, b, saved, _) = prepare()
                return {
                    try! norm.backwardTraining(input: b.x, gradOutput: b.dy, saved: saved, scale: b.gamma,
                                               gradInput: b.dx, gradScale: b.dgamma, gradBias: b.dbeta)
                }
            },
        ]
    }

    static func groupNorm(_ shape: TensorShape, groups: Int, threading: Threading, label: String) -> [AllocationCase] {
        func prepare() -> (GroupNormalization, AllocationBuffers, SavedStatistics) {
            let norm = try! GroupNormalization(shape: shape, groups: groups, threading: threading)
            let b = AllocationBuffers(count: shape.count, parameters: shape.c)
            return (norm, b, try! norm.forward(input: b.x, output: b.y, scale: b.gamma, bias: b.beta))
        }
        let name = "\(shape.n)x\(shape.c)x\(shape.h)x\(shape.w) \(shape.layout) G\(groups) \(label)"
        return [
            AllocationCase(name: "GroupNorm forward \(name)", bound: AllocationBounds.groupNormForward) {
                let (norm, b, _) = prepare()
                return { _ = try! norm.forward(input: b.x, output: b.y, scale: b.gamma, bias: b.beta) }
            },
            AllocationCase(name: "GroupNorm backward \(name)", bound: AllocationBounds.groupNormBackward) {
                let (norm, b, saved) = prepare()
                return {
                    try! norm.backward(input: b.x, gradOutput: b.dy, saved: saved, scale: b.gamma,
                                       gradInput: b.dx, gradScale: b.dgamma, gradBias: b.dbeta)
                }
            },
        ]
    }

    /// Fewest and most allocations of `counted` warm calls (the fewest is the
    /// call's own; an occasional extra one is a helper thread being started
    /// again after it went back to Dispatch, or the test runtime).
    static func count(_ c: AllocationCase, warmUp: Int = 3, counted: Int = 8) -> (fewest: Int, most: Int) {
        let run = c.prepare()
        for _ in 0..<warmUp { run() }
        var fewest = Int.max, most = 0
        for _ in 0..<counted {
            nk_alloc_counter_start()
            run()
            nk_alloc_counter_stop()
            let n = Int(nk_alloc_counter_allocations())
            fewest = min(fewest, n)
            most = max(most, n)
        }
        return (fewest, most)
    }
}

@Suite struct AllocationTests {
    @Test func counterSeesSwiftAndCAllocations() throws {
        try #require(nk_alloc_counter_available() == 1, "allocation counter not available (sanitizer build?)")
        // Counting is process-wide; other tests run beside this one, so only a
        // lower bound can be checked here.
        nk_alloc_counter_start()
        let array = [Int](repeating: 7, count: 1000 + Int(nk_alloc_counter_bytes() & 1))
        let pointer = malloc(64)
        nk_alloc_counter_stop()
        free(pointer)
        #expect(array.count >= 1000)
        #expect(nk_alloc_counter_allocations() >= 2)
    }

    @Test func allocationsPerWarmCall() async throws {
        try #require(nk_alloc_counter_available() == 1, "allocation counter not available (sanitizer build?)")
        let result = await #expect(processExitsWith: .success, observing: [\.standardOutputContent]) {
            for c in AllocationCases.all() {
                let (fewest, most) = AllocationCases.count(c)
                print("\(c.name)\t\(fewest)\t\(most)")
            }
        }
        guard let result else { return }
        let output = String(decoding: result.standardOutputContent, as: UTF8.self)
        var seen: [String: Int] = [:]
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: "\t")
            guard fields.count == 3, let fewest = Int(fields[1]) else { continue }
            seen[String(fields[0])] = fewest
        }
        let cases = AllocationCases.all()
        for c in cases {
            guard let fewest = seen[c.name] else { Issue.record("\(c.name): not counted"); continue }
            #expect(fewest <= c.bound, "\(c.name): \(fewest) allocations per call, bound \(c.bound)")
        }
        if ProcessInfo.processInfo.environment["NORMKERNELS_ALLOC_REPORT"] != nil { print(output) }
    }

    /// Call stacks of one case's allocations (NORMKERNELS_ALLOC_TRACE = its name),
    /// for finding where they come from; run alone (`--filter allocationTrace`).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["NORMKERNELS_ALLOC_TRACE"] != nil))
    func allocationTrace() throws {
        let name = ProcessInfo.processInfo.environment["NORMKERNELS_ALLOC_TRACE"]!
        let c = try #require(AllocationCases.all().first { $0.name == name }, "no case named \(name)")
        let run = c.prepare()
        for _ in 0..<3 { run() }
        nk_alloc_counter_set_trace(1)
        nk_alloc_counter_start()
        run()
        nk_alloc_counter_stop()
        nk_alloc_counter_set_trace(0)
        print("\(name): \(nk_alloc_counter_allocations()) allocations")
    }
}
