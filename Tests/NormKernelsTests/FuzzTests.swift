// The fuzzer's seeded CI run. A longer run: tools/fuzz.sh (NORMKERNELS_FUZZ_CALLS,
// NORMKERNELS_FUZZ_SEED, NORMKERNELS_FUZZ_SECONDS).

import Foundation
import Testing
@testable import NormKernels

@Suite("Fuzzer over the public API")
struct FuzzTests {
    @Test("seeded random calls: each throws before writing or matches the Float64 reference")
    func seeded() {
        let environment = ProcessInfo.processInfo.environment
        let calls = environment["NORMKERNELS_FUZZ_CALLS"].flatMap(Int.init) ?? 20_000
        let seconds = environment["NORMKERNELS_FUZZ_SECONDS"].flatMap(Double.init) ?? 0
        var seed = environment["NORMKERNELS_FUZZ_SEED"].flatMap(UInt64.init) ?? 20261205
        let start = Date()
        var total = Fuzzer.Report()
        repeat {
            var fuzzer = Fuzzer(seed: seed)
            fuzzer.run(calls: calls)
            let r = fuzzer.report
            total.calls += r.calls
            total.rejectedDescriptors += r.rejectedDescriptors
            total.rejectedCalls += r.rejectedCalls
            total.checkedAgainstReference += r.checkedAgainstReference
            total.hostileValues += r.hostileValues
            total.failures += r.failures.map { "seed \(seed): \($0)" }
            seed &+= 1
        } while Date().timeIntervalSince(start) < seconds && total.failures.isEmpty
        print("fuzz: \(total.calls) calls, \(total.rejectedDescriptors) descriptors rejected, \(total.rejectedCalls) calls rejected, "
              + "\(total.checkedAgainstReference) outputs checked against the reference, \(total.hostileValues) with hostile values, "
              + "\(total.failures.count) failures, last seed \(seed - 1)")
        for failure in total.failures.prefix(20) { print("fuzz failure: \(failure)"); Issue.record(Comment(rawValue: failure)) }
        // The run must exercise every verdict, or the oracle is not being tested.
        #expect(total.rejectedDescriptors > calls / 50 && total.rejectedCalls > calls / 50 && total.checkedAgainstReference > calls / 5)
    }
}
