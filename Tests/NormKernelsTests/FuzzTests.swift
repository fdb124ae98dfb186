// The fuzzer's seeded CI runs. A longer run: tools/fuzz.sh (NORMKERNELS_FUZZ_CALLS,
// NORMKERNELS_FUZZ_SEED, NORMKERNELS_FUZZ_SECONDS). The Float32 core ops keep
// their own stream (20 000 calls); the fused ops (4 000), the 16-bit entry points
// (3 000), the array conveniences (2 000), the Span overloads (1 000) and
// synchronized BatchNorm over in-process ranks (600) each run that fraction of
// NORMKERNELS_FUZZ_CALLS from the same seed.

import Foundation
import Testing
@testable import NormKernels

@Suite("Fuzzer over the public API")
struct FuzzTests {
    /// Runs batches of `body(fuzzer, calls)` from the environment's seed (one batch,
    /// or until NORMKERNELS_FUZZ_SECONDS), prints the totals and records failures.
    static func fuzz(_ name: String, fraction: Double, minimumChecked: Double = 0.2,
                     _ body: (inout Fuzzer, Int) -> Void) {
        let environment = ProcessInfo.processInfo.environment
        let calls = Int(Double(environment["NORMKERNELS_FUZZ_CALLS"].flatMap(Int.init) ?? 20_000) * fraction)
        let seconds = environment["NORMKERNELS_FUZZ_SECONDS"].flatMap(Double.init) ?? 0
        var seed = environment["NORMKERNELS_FUZZ_SEED"].flatMap(UInt64.init) ?? 20261205
        let start = Date()
        var total = Fuzzer.Report()
        repeat {
            var fuzzer = Fuzzer(seed: seed)
            body(&fuzzer, calls)
            let r = fuzzer.report
            total.calls += r.calls
            total.rejectedDescriptors += r.rejectedDescriptors
            total.rejectedCalls += r.rejectedCalls
            total.checkedAgainstReference += r.checkedAgainstReference
            total.hostileValues += r.hostileValues
            total.failures += r.failures.map { "seed \(seed): \($0)" }
            seed &+= 1
        } while Date().timeIntervalSince(start) < seconds && total.failures.isEmpty
        print("fuzz \(name): \(total.calls) calls, \(total.rejectedDescriptors) descriptors rejected, \(total.rejectedCalls) calls rejected, "
              + "\(total.checkedAgainstReference) outputs checked against the reference, \(total.hostileValues) with hostile values, "
              + "\(total.failures.count) failures, last seed \(seed - 1), \(Int(Date().timeIntervalSince(start) * 1000)) ms")
        for failure in total.failures.prefix(20) { print("fuzz failure: \(failure)"); Issue.record(Comment(rawValue: failure)) }
        // The run must exercise every verdict, or the oracle is not being tested.
        #expect(total.rejectedDescriptors > calls / 50 && total.rejectedCalls > calls / 50
                && Double(total.checkedAgainstReference) > Double(calls) * minimumChecked)
    }

    @Test("seeded random calls: each throws before writing or matches the Float64 reference")
    func seeded() {
        Self.fuzz("Float32 core ops", fraction: 1) { $0.run(calls: $1) }
    }

    @Test("seeded random calls of the fused ops on Float32, Float16 and BFloat16 tensors")
    func fused() {
        Self.fuzz("fused ops", fraction: 0.2, minimumChecked: 0.15) { $0.runFused(calls: $1) }
    }

    @Test("seeded random calls of every plain op's Float16 and BFloat16 entry points")
    func halfPrecision() {
        Self.fuzz("16-bit entry points", fraction: 0.15, minimumChecked: 0.15) { $0.runHalf(calls: $1) }
    }

    @Test("seeded random calls of the array conveniences on hostile descriptors and wrong lengths")
    func arrays() {
        Self.fuzz("array conveniences", fraction: 0.1, minimumChecked: 0.1) { $0.runArrays(calls: $1) }
    }

    @Test("seeded random collective calls of synchronized BatchNorm on 1–3 in-process ranks")
    func synchronized() {
        Self.fuzz("synchronized BatchNorm", fraction: 0.03, minimumChecked: 0.1) { $0.runSynchronized(calls: $1) }
    }

    @Test("seeded random calls of a sample of the Span overloads with wrong lengths")
    func spans() {
        Self.fuzz("span overloads", fraction: 0.05, minimumChecked: 0.1) { $0.runSpans(calls: $1) }
    }
}
