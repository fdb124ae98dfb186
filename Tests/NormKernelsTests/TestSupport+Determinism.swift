// Determinism checks of the test toolkit: results must be bitwise identical for
// any thread count and affinity (blocks depend only on the shape and cache
// sizes, partials merge in a fixed tree), so a kernel runs under a list of
// threadings and every result is compared bit for bit with a reference run.

import Testing
@testable import NormKernels

enum Threadings {
    /// Forward suites, against `.serial`: parked workers (`concurrentPerform`,
    /// phases as tickets) at 1–16 threads, warm workers (`WarmWorkers`, one call
    /// per phase) at 2, 3 and 8, and both pinnings.
    static let forward: [Threading] =
        [1, 2, 3, 4, 5, 8, 16].map { Threading(threads: $0, parallelThreshold: 4096, spinMicroseconds: 0) }
        + [2, 3, 8].map { Threading(threads: $0, parallelThreshold: 4096, spinMicroseconds: 200) }
        + [Threading(threads: 2, affinity: .compact, parallelThreshold: 4096),
           Threading(threads: 2, affinity: .scatter, parallelThreshold: 4096)]

    /// Backward suites, against one thread with the same threshold: parked
    /// workers at every count, warm workers at two.
    static let backwardReference = Threading(threads: 1, parallelThreshold: 4096)
    static let backward: [Threading] =
        [2, 3, 5, 8].map { Threading(threads: $0, parallelThreshold: 4096, spinMicroseconds: 0) }
        + [2, 3].map { Threading(threads: $0, parallelThreshold: 4096, spinMicroseconds: 200) }
}

/// Runs `body` under `reference` and under each of `threadings`; every result
/// array must be present and bitwise equal to the reference's (one expectation
/// per threading and array, naming how many values differ).
func expectSameBits(
    _ what: String, reference: Threading, across threadings: [Threading],
    sourceLocation: SourceLocation = #_sourceLocation, _ body: (Threading) throws -> [[Float]?]
) throws {
    let expected = try body(reference).map(bitPatterns)
    #expect(expected.allSatisfy { $0 != nil }, "\(what): a result is missing", sourceLocation: sourceLocation)
    for threading in threadings {
        let got = try body(threading).map(bitPatterns)
        #expect(got.count == expected.count, "\(what): \(got.count) results with \(threading)", sourceLocation: sourceLocation)
        for i in 0..<min(got.count, expected.count) {
            let differing = zip(got[i] ?? [], expected[i] ?? []).filter { $0 != $1 }.count
            #expect(got[i] == expected[i], "\(what): result \(i) differs with \(threading) (\(differing) values)",
                    sourceLocation: sourceLocation)
        }
    }
}

/// Forward kernels: one concatenated result (outputs, statistics as `doubleBits`,
/// running statistics) against `.serial`, across `Threadings.forward`.
func expectSameBitsForAnyThreading(_ what: String, sourceLocation: SourceLocation = #_sourceLocation,
                                   _ body: (Threading) throws -> [Float]) throws {
    try expectSameBits(what, reference: .serial, across: Threadings.forward, sourceLocation: sourceLocation) {
        [try body($0)]
    }
}

/// Backward kernels (and forward ones checked beside them): every gradient
/// against one thread, across `Threadings.backward`.
func expectGradientsDeterministic(_ what: String, sourceLocation: SourceLocation = #_sourceLocation,
                                  _ body: (Threading) throws -> [[Float]?]) throws {
    try expectSameBits(what, reference: Threadings.backwardReference, across: Threadings.backward,
                       sourceLocation: sourceLocation, body)
}
