// Error checks of the test toolkit: a call that must be rejected throws the
// right NormError, names its argument and values, and writes nothing.

import Testing
@testable import NormKernels

// MARK: - Errors and sentinels

/// The value output buffers are filled with before a call that must not write.
let sentinel: Float = -777

/// A snapshot of everything a forward call may change in running statistics.
struct RunningSnapshot: Equatable {
    var mean: [Float], variance: [Float], batchesTracked: Int, skippedUpdates: Int, population: [Moments]

    init(_ r: RunningStatistics) {
        mean = r.mean
        variance = r.variance
        batchesTracked = r.batchesTracked
        skippedUpdates = r.skippedUpdates
        population = r.population
    }

    static func == (a: Self, b: Self) -> Bool {
        a.mean.map(\.bitPattern) == b.mean.map(\.bitPattern)
            && a.variance.map(\.bitPattern) == b.variance.map(\.bitPattern)
            && a.batchesTracked == b.batchesTracked && a.skippedUpdates == b.skippedUpdates
            && a.population == b.population
    }
}

/// Expects `body` to throw a `NormError` matching `matches`, whose description
/// contains every fragment (argument names, expected and actual values).
func expectNormError(
    _ what: String, mentions fragments: [String], sourceLocation: SourceLocation = #_sourceLocation,
    matches: (NormError) -> Bool, _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("\(what): expected a NormError, nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as NormError {
        #expect(matches(error), "\(what): wrong error \(error) (\(error.description))", sourceLocation: sourceLocation)
        for fragment in fragments {
            #expect(error.description.contains(fragment),
                    "\(what): message “\(error.description)” does not mention “\(fragment)”", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("\(what): expected a NormError, got \(error)", sourceLocation: sourceLocation)
    }
}

/// Same, for an exact expected error.
func expectNormError(
    _ expected: NormError, mentions fragments: [String], _ what: String = "",
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
    expectNormError(what.isEmpty ? "\(expected)" : what, mentions: fragments, sourceLocation: sourceLocation,
                    matches: { $0 == expected }, body)
}

/// A forward call that must be rejected: the output buffer (of `outputCount`
/// elements) is filled with the sentinel, the call must throw `expected`, and
/// afterwards the output and the running statistics must be untouched.
func expectRejected(
    _ expected: NormError, mentions fragments: [String], _ what: String,
    outputCount: Int, running: [RunningStatistics] = [],
    sourceLocation: SourceLocation = #_sourceLocation,
    _ call: (UnsafeMutableBufferPointer<Float>) throws -> Void
) {
    var output = [Float](repeating: sentinel, count: outputCount)
    let before = running.map(RunningSnapshot.init)
    expectNormError(expected, mentions: fragments, what, sourceLocation: sourceLocation) {
        try output.withUnsafeMutableBufferPointer { try call($0) }
    }
    let written = output.firstIndex { $0.bitPattern != sentinel.bitPattern }
    #expect(written == nil, "\(what): output[\(written ?? -1)] was written before the error", sourceLocation: sourceLocation)
    for (r, snapshot) in zip(running, before) {
        #expect(RunningSnapshot(r) == snapshot, "\(what): running statistics changed before the error",
                sourceLocation: sourceLocation)
    }
}

// MARK: - Gradient buffers

/// A recognisable NaN: gradient buffers are filled with it before a backward
/// call that must throw.
let gradientSentinel = Float(bitPattern: 0x7FC0_BEEF)

/// Whether `buffer` still holds nothing but `gradientSentinel`.
func untouched(_ buffer: UnsafeMutableBufferPointer<Float>) -> Bool {
    buffer.allSatisfy { $0.bitPattern == gradientSentinel.bitPattern }
}

/// A backward call that must be rejected: every buffer is filled with the
/// gradient sentinel, `body` must throw exactly `expected`, and afterwards every
/// buffer must still hold the sentinel.
func expectGradientsRejected(
    _ expected: NormError, _ buffers: [UnsafeMutableBufferPointer<Float>],
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
    for b in buffers { b.update(repeating: gradientSentinel) }
    do {
        try body()
        Issue.record("expected \(expected), nothing thrown", sourceLocation: sourceLocation)
    } catch let error as NormError {
        #expect(error == expected, sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
    for (i, b) in buffers.enumerated() where !untouched(b) {
        Issue.record("buffer \(i) was written although the call threw", sourceLocation: sourceLocation)
    }
}
