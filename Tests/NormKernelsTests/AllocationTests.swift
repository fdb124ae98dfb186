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
    /// Most allocations one warm call may make (`AllocationBounds.bound`).
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

/// The allocations a warm call may make, by where they come from:
///
///     bound = results + workspace + (parallel ? Runtime's cost of one parallel call : 0)
///
/// so that removing a source of allocations is one edit here.
enum AllocationBounds {
    /// API: a forward that returns `SavedStatistics` allocates its two arrays
    /// (mean, invStd), which the caller owns.
    static let savedStatistics = 2

    /// Runtime, per parallel call with warm workers: `withoutActuallyEscaping`
    /// boxes the body (the only way Swift lets another thread call a non-escaping
    /// closure). A helper that went back to Dispatch and is started again costs a
    /// few more; the counts here are those of calls that find it awake.
    static let warmParallelCall = 1
    /// Runtime, per parallel call with parked workers (`concurrentPerform`): the
    /// same box, plus what Dispatch allocates for `concurrentPerform` (the Swift
    /// overlay's block copy and context, a continuation when its cache is empty:
    /// 2–4, measured).
    static let parkedParallelCall = 1 + 4

    /// Kernels-level workspaces, allocated inside the call. Each case states its
    /// count where it is built (`workspace:`, sites in the comment there). When
    /// every descriptor owns its workspace (issue 24's plan), set this to false.
    static let kernelsAllocateWorkspaces = true

    static func bound(results: Int, workspace: Int, parallelWorkspace: Int? = nil,
                      threading: Threading, elements: Int) -> Int {
        // Parallel exactly when `Parallel.workers` gives 2 for these shapes.
        let parallel = threading.threads > 1 && elements >= threading.parallelThreshold
        let kernels = kernelsAllocateWorkspaces ? (parallel ? parallelWorkspace ?? workspace : workspace) : 0
        let runtime = !parallel ? 0 : threading.spinMicroseconds > 0 ? warmParallelCall : parkedParallelCall
        return results + kernels + runtime
    }
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
        let shape = "[\(rows), \(features)] \(label)", long = features >= 1024   // [16, 64] takes the short-row path
        func bound(results: Int, workspace: Int, parallelWorkspace: Int? = nil) -> Int {
            AllocationBounds.bound(results: results, workspace: workspace, parallelWorkspace: parallelWorkspace,
                                   threading: threading, elements: rows * features)
        }
        return [
            // Both shapes take per-row strategies (8 rows per vector; one row at a time up
            // to 16 384 values), which write straight into the returned statistics: no
            // workspace. (Rows over 16 384 values take the rows geometry: SlotBuffers,
            // a CoefficientTable and per-range partials, not counted here.)
            AllocationCase(name: "LayerNorm forward \(shape)",
                           bound: bound(results: AllocationBounds.savedStatistics, workspace: 0, parallelWorkspace: 0)) {
                let (norm, b, _) = prepare()
                return { _ = try! norm.forward(input: b.x, output: b.y, scale: b.gamma, bias: b.beta) }
            },
            // rowNormalizationBackward: CoefficientTable (3) and the `phases` array (1);
            // with long rows also GradientTable (4), withTileScratch's two temporaries
            // over 1 KiB, and one closure context (LayerNormalization+Backward.swift).
            // Plus 2: the overlap check's `writes`/`reads` array literals, which the
            // optimizer no longer promotes to the stack in `LayerNormalization.backward`
            // since the plan refactor (RMSNorm's identical call still does; to fix).
            AllocationCase(name: "LayerNorm backward \(shape)",
                           bound: bound(results: 0, workspace: long ? 13 : 6, parallelWorkspace: long ? 12 : 6)) {
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
        func bound(results: Int, workspace: Int) -> Int {
            AllocationBounds.bound(results: results, workspace: workspace, threading: threading, elements: shape.count)
        }
        return [
            // forwardTraining: SlotBuffer moments (1) and its `.array` (1), CoefficientTable
            // (3), withoutActuallyEscaping in RowsGeometry.reduceThenApply (1).
            AllocationCase(name: "BatchNorm training \(name)",
                           bound: bound(results: AllocationBounds.savedStatistics, workspace: 6)) {
                let (norm, b, _, _) = prepare()
                return { _ = try! norm.forwardTraining(input: b.x, output: b.y, scale: b.gamma, bias: b.beta) }
            },
            // The same, and RunningStatistics.fold: the batch means and variances as
            // arrays (2) and copies of the running mean and variance it updates (2).
            AllocationCase(name: "BatchNorm training+running \(name)",
                           bound: bound(results: AllocationBounds.savedStatistics, workspace: 10)) {
                let (norm, b, _, running) = prepare()
                return {
                    _ = try! norm.forwardTraining(input: b.x, output: b.y, scale: b.gamma, bias: b.beta, running: running)
                }
            },
            // forwardInference: CoefficientTable (3).
            AllocationCase(name: "BatchNorm inference \(name)", bound: bound(results: 0, workspace: 3)) {
                let (norm, b, _, running) = prepare()
                return { try! norm.forwardInference(input: b.x, output: b.y, scale: b.gamma, bias: b.beta, running: running) }
            },
            // backwardTraining: CoefficientTable x̂ (3), SlotBuffer sums (1), GradientTable
            // (4), and in channelPasses the closure contexts of `apply` (3).
            AllocationCase(name: "BatchNorm backward \(name)", bound: bound(results: 0, workspace: 11)) {
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
        func bound(results: Int, workspace: Int) -> Int {
            AllocationBounds.bound(results: results, workspace: workspace, threading: threading, elements: shape.count)
        }
        return [
            // forward: SlotBuffer mean, invStd (2), CoefficientTable (3),
            // withoutActuallyEscaping in RowsGeometry.reduceThenApply (1).
            AllocationCase(name: "GroupNorm forward \(name)",
                           bound: bound(results: AllocationBounds.savedStatistics, workspace: 6)) {
                let (norm, b, _) = prepare()
                return { _ = try! norm.forward(input: b.x, output: b.y, scale: b.gamma, bias: b.beta) }
            },
            // backward: CoefficientTable x̂ (3), SlotBuffer sums (1), GradientTable (4),
            // an array from `map` in groupedBackward (1), RowTree.forEachColumn's
            // temporary over 1 KiB in channelGradients (1).
            AllocationCase(name: "GroupNorm backward \(name)", bound: bound(results: 0, workspace: 10)) {
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
    nonisolated(unsafe) static var sink: [Int] = []
    nonisolated(unsafe) static var rawSink: UnsafeMutableRawPointer?

    /// Under a sanitizer, which owns malloc, the counter is compiled out.
    static let counting = nk_alloc_counter_available() == 1

    @Test(.enabled(if: counting, "allocation counter compiled out (sanitizer build)"))
    func counterSeesSwiftAndCAllocations() throws {
        // Counting is process-wide; other tests run beside this one, so only a
        // lower bound can be checked here.
        nk_alloc_counter_start()
        AllocationTests.sink = [Int](repeating: 7, count: 1000)   // swift_slowAlloc → malloc
        AllocationTests.rawSink = malloc(64)   // kept, or the optimizer drops the pair
        nk_alloc_counter_stop()
        free(AllocationTests.rawSink)
        AllocationTests.sink = []
        #expect(nk_alloc_counter_allocations() >= 2)
        #expect(nk_alloc_counter_bytes() >= 8000 + 64)
    }

    /// The bounds are those of the default store policy: `NORMKERNELS_STREAMING`
    /// (tools/test.sh's second pass) moves kernels onto their streaming variants,
    /// whose per-call buffers differ.
    static let defaultStorePolicy = ProcessInfo.processInfo.environment["NORMKERNELS_STREAMING"] == nil

    @Test(.enabled(if: counting, "allocation counter compiled out (sanitizer build)"),
          .enabled(if: defaultStorePolicy, "NORMKERNELS_STREAMING is set: the bounds are the default policy's"))
    func allocationsPerWarmCall() async throws {
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
        for c in AllocationCases.all() {
            guard let fewest = seen[c.name] else { Issue.record("\(c.name): not counted"); continue }
            // The bounds are those of optimized builds: unoptimized code keeps
            // temporaries on the heap that the optimizer puts on the stack.
            if _isDebugAssertConfiguration() { continue }
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
