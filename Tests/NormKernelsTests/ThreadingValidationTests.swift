import Testing
@testable import NormKernels

/// `Threading(validatingThreads:…)` and `validate()` reject what the clamping
/// initializer silently fixes, naming the field and the value.
struct ThreadingValidationTests {
    @Test func strictInitializerRejectsEachFieldByName() throws {
        let cases: [(threads: Int, threshold: Int?, spin: Int, field: String?)] = [
            (2, nil, 50, nil), (1, 0, 0, nil), (3, 1 << 20, Threading.maxSpinMicroseconds + 1, nil),
            (0, nil, 50, "threading.threads"), (-3, nil, 50, "threading.threads"), (Int.min, nil, 0, "threading.threads"),
            (2, -1, 50, "threading.parallelThreshold"), (2, Int.min, 50, "threading.parallelThreshold"),
            (2, nil, -1, "threading.spinMicroseconds"), (2, 64, Int.min, "threading.spinMicroseconds"),
        ]
        for c in cases {
            do {
                let t = try Threading(validatingThreads: c.threads, parallelThreshold: c.threshold, spinMicroseconds: c.spin)
                #expect(c.field == nil, "accepted \(c)")
                #expect(t == Threading(threads: c.threads, parallelThreshold: c.threshold, spinMicroseconds: c.spin))
                try t.validate()
            } catch {
                #expect(error.argument == c.field, "\(c): \(error)")
                #expect(error.caseName == "invalidArgument")
                #expect(error.description.contains("\(c.field == "threading.threads" ? c.threads : c.field == "threading.parallelThreshold" ? c.threshold! : c.spin)"))
            }
        }
    }

    @Test func validateSeesFieldsSetAfterConstruction() {
        var t = Threading(threads: 2)
        #expect(throws: Never.self) { try t.validate() }
        t.threads = 0
        #expect(throws: NormError.invalidArgument(argument: "threading.threads", reason: "must be ≥ 1, got 0")) { try t.validate() }
        t.threads = 2
        t.parallelThreshold = -5
        #expect(throws: NormError.self) { try t.validate() }
        t.parallelThreshold = 0
        t.spinMicroseconds = -1
        #expect(throws: NormError.self) { try t.validate() }
    }

    /// A kernel given such a value still runs, as the clamped value would.
    @Test func kernelsTreatOutOfRangeFieldsAsClamped() throws {
        var hostile = Threading(threads: 2, parallelThreshold: 0)
        hostile.threads = -7
        hostile.parallelThreshold = -1
        let x = (0..<96).map { Float($0 % 13) - 6 }
        let a = try LayerNormalization(rows: 6, features: 16, threading: hostile).forward(x)
        let b = try LayerNormalization(rows: 6, features: 16, threading: .serial).forward(x)
        #expect(a.output == b.output)
    }
}
