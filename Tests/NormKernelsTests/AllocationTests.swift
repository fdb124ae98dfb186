// Heap allocations per kernel call, counted by the test-only allocator
// replacement in Tests/CAllocationCounter (it sees every malloc of the process,
// the Swift runtime's and Dispatch's included).
//
// The counter is process-wide and swift-testing runs tests in parallel, so the
// counting runs in an exit test: a child process that runs only these calls.
// It prints one line per case; this process checks the bounds
// (NORMKERNELS_ALLOC_REPORT=1 prints the table: case, fewest, most, parallel calls).
//
// To see where a case allocates (call stacks on standard error):
//   NORMKERNELS_ALLOC_TRACE='LayerNorm [256, 1024] forward t2' \
//     swift test ... --filter allocationTrace 2>&1 | swift demangle

import CAllocationCounter
import Foundation
import Testing
@testable import NormKernels

/// One call to count. `prepare` builds the descriptor and buffers and returns
/// the call, which is made a few times to warm up (first-use tables, workers,
/// Dispatch's caches, the descriptor's workspace arena), then counted call by call.
struct AllocationCase {
    let name: String
    /// Arrays a warm call returns to the caller.
    let results: Int
    /// The Runtime's allocations per parallel call (`AllocationBounds`).
    let perParallelCall: Int
    let prepare: () -> () -> Void

    /// Most allocations a warm call that made `parallelCalls` parallel calls may make.
    func bound(parallelCalls: Int) -> Int { results + parallelCalls * perParallelCall }
}

/// Buffers of one case, freed with it: tensors of element type `E`, parameters
/// and their gradients in Float32.
final class AllocationBuffers<E: NormElement> {
    let x, dy, identity: UnsafeBufferPointer<E>
    let y, dx, dIdentity: UnsafeMutableBufferPointer<E>
    let gamma, beta: UnsafeBufferPointer<Float>
    let dgamma, dbeta: UnsafeMutableBufferPointer<Float>

    init(count: Int, parameters: Int) {
        func filled<T>(_ count: Int, _ seed: String, _ make: (Float) -> T) -> UnsafeMutableBufferPointer<T> {
            var generator = SplitMix64(seed)
            let buffer = UnsafeMutableBufferPointer<T>.allocate(capacity: count)
            for i in 0..<count { buffer[i] = make(Float(generator.normal())) }
            return buffer
        }
        x = UnsafeBufferPointer(filled(count, "x", E.narrow)); dy = UnsafeBufferPointer(filled(count, "dy", E.narrow))
        identity = UnsafeBufferPointer(filled(count, "id", E.narrow))
        y = filled(count, "y", E.narrow); dx = filled(count, "dx", E.narrow); dIdentity = filled(count, "did", E.narrow)
        gamma = UnsafeBufferPointer(filled(parameters, "g") { $0 }); beta = UnsafeBufferPointer(filled(parameters, "b") { $0 })
        dgamma = filled(parameters, "dg") { $0 }; dbeta = filled(parameters, "db") { $0 }
    }

    deinit {
        for b in [x, dy, identity] { b.deallocate() }
        for b in [y, dx, dIdentity] { b.deallocate() }
        for b in [gamma, beta] { b.deallocate() }
        for b in [dgamma, dbeta] { b.deallocate() }
    }
}

/// The allocations a warm call may make, by where they come from:
///
///     bound = results + parallel calls × Runtime's cost of one parallel call
///
/// where the parallel calls are counted during the call itself
/// (`Parallel.countingCalls`): how many a kernel makes depends on partitions
/// sized from the caches (row blocks of L2/2, blocks of L1d), so it differs
/// between machines (BatchNorm NHWC [1024, 256] backward: one row block on the
/// Xeon of docs/PERFORMANCE.md, several on Zen 4's 1 MiB L2, where a multi-phase
/// call with warm workers is one call per parallel phase), and a count written
/// into each case held on one machine only. What the test holds every kernel
/// to: nothing allocated beyond its results and the Runtime's parallel calls.
///
/// Kernels allocate nothing else once their descriptor exists: tables,
/// partials and side buffers come from the descriptor's workspace pool, per-block
/// scratch from the thread's scratch arena (`Runtime/Workspace.swift`), and
/// both keep their memory from one call to the next.
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

    /// The cost of one parallel call under `threading` (a multi-phase
    /// `Parallel.forEach(phases:)` is one call with parked workers and one per
    /// parallel phase with warm ones; either way each is counted).
    static func perParallelCall(_ threading: Threading) -> Int {
        threading.spinMicroseconds > 0 ? warmParallelCall : parkedParallelCall
    }

    /// Most parallel calls one kernel call makes on any machine seen (a
    /// residual backward's d-residual pass, then three phases with warm workers):
    /// more would be a kernel going parallel where it should not.
    static let mostParallelCalls = 4
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

    /// Every public descriptor, every direction, every plan path
    /// (`AllocationTests+Cases.swift`).
    static func all() -> [AllocationCase] {
        var cases: [AllocationCase] = []
        for (label, threading) in threadings {
            let kit = AllocationKit(label: label, threading: threading)
            cases += kit.rowCases()
            cases += kit.groupCases()
            cases += kit.instanceCases()
            cases += kit.batchNormCases()
            cases += kit.otherCases()
            cases += kit.fusedCases()
        }
        return cases
    }

    /// Fewest and most allocations of `counted` warm calls (the fewest is the
    /// call's own; an occasional extra one is a helper thread being started
    /// again after it went back to Dispatch, or the test runtime).
    /// Also the parallel calls of the call with the fewest allocations.
    static func count(_ c: AllocationCase, warmUp: Int = 3, counted: Int = 8) -> (fewest: Int, most: Int, calls: Int) {
        let run = c.prepare()
        for _ in 0..<warmUp { run() }
        var fewest = Int.max, most = 0, calls = 0
        for _ in 0..<counted {
            Parallel.callsCounted.store(0, ordering: .relaxed)
            Parallel.countingCalls.store(true, ordering: .relaxed)
            nk_alloc_counter_start()
            run()
            nk_alloc_counter_stop()
            Parallel.countingCalls.store(false, ordering: .relaxed)
            let n = Int(nk_alloc_counter_allocations())
            if n < fewest { calls = Parallel.callsCounted.load(ordering: .relaxed) }
            fewest = min(fewest, n)
            most = max(most, n)
        }
        return (fewest, most, calls)
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
                let (fewest, most, calls) = AllocationCases.count(c)
                print("\(c.name)\t\(fewest)\t\(most)\t\(calls)")
            }
        }
        guard let result else { return }
        let output = String(decoding: result.standardOutputContent, as: UTF8.self)
        var seen: [String: (fewest: Int, calls: Int)] = [:]
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: "\t")
            guard fields.count == 4, let fewest = Int(fields[1]), let calls = Int(fields[3]) else { continue }
            seen[String(fields[0])] = (fewest, calls)
        }
        for c in AllocationCases.all() {
            guard let (fewest, calls) = seen[c.name] else { Issue.record("\(c.name): not counted"); continue }
            #expect(calls <= AllocationBounds.mostParallelCalls, "\(c.name): \(calls) parallel calls")
            // The bounds are those of optimized builds: unoptimized code keeps
            // temporaries on the heap that the optimizer puts on the stack.
            if _isDebugAssertConfiguration() { continue }
            let bound = c.bound(parallelCalls: calls)
            #expect(fewest <= bound, "\(c.name): \(fewest) allocations per call, \(calls) parallel calls, bound \(bound)")
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
