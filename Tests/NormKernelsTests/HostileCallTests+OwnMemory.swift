// Public initializers that allocate memory of their own, or threads, from a
// count the caller gives: a count no machine can hold must throw, not trap on
// the allocation (Swift traps when an allocation fails) or start a million
// threads. And an in-process exchange used wrongly (one rank's exchange by two
// threads) must throw, not complete a round that lacks a rank.

import Dispatch
import Foundation
import Synchronization
import Testing
@testable import NormKernels

@Suite("Hostile calls: counts that size our own memory and threads")
struct HostileOwnMemoryTests {
    @Test("RunningStatistics with more channels than this machine's memory holds throws invalidArgument")
    func runningStatisticsPastMemory() {
        // 2⁴⁰ channels are under the 2⁴⁸ element limit but need 32 TiB here.
        expectNormError("2⁴⁰ channels", mentions: ["channels", "bytes"],
                        matches: { $0.argument == "channels" && $0.caseName == "invalidArgument" }) {
            _ = try RunningStatistics(channels: 1 << 40)
        }
        // The limit itself, with a machine of 1 MiB: 32 768 channels fit, one more does not.
        let oneMiB: UInt64 = 1 << 20
        #expect(throws: Never.self) {
            try RunningStatistics.checkFits(channels: Int(oneMiB) / RunningStatistics.bytesPerChannel, physicalMemory: oneMiB)
        }
        expectNormError("one channel past 1 MiB", mentions: ["channels", "1048576"],
                        matches: { $0.argument == "channels" }) {
            try RunningStatistics.checkFits(channels: Int(oneMiB) / RunningStatistics.bytesPerChannel + 1,
                                            physicalMemory: oneMiB)
        }
        #expect(RunningStatistics.bytesPerChannel == 32)
        // A large but reasonable layer still works.
        #expect((try? RunningStatistics(channels: 1 << 16))?.mean.count == 1 << 16)
    }

    @Test("InProcessExchange: ranks outside 1...maxRanks and non-finite or non-positive timeouts throw before any thread starts")
    func exchangeArguments() {
        let started = Atomic<Int>(0)
        for ranks in [0, -1, InProcessExchange.maxRanks + 1, Int.max, Int.min] {
            expectNormError("ranks \(ranks)", mentions: ["ranks", "\(ranks)"], matches: { $0.argument == "ranks" }) {
                _ = try InProcessExchange.group(size: ranks)
            }
            expectNormError("run ranks \(ranks)", mentions: ["ranks"], matches: { $0.argument == "ranks" }) {
                _ = try InProcessExchange.run(ranks: ranks) { _ in started.add(1, ordering: .relaxed) }
            }
        }
        for timeout in [0, -1, .nan, .infinity, -.infinity] as [Double] {
            expectNormError("timeout \(timeout)", mentions: ["timeout"], matches: { $0.argument == "timeout" }) {
                _ = try InProcessExchange.run(ranks: 2, timeout: timeout) { _ in started.add(1, ordering: .relaxed) }
            }
        }
        #expect(started.load(ordering: .relaxed) == 0)
        #expect((try? InProcessExchange.group(size: InProcessExchange.maxRanks))?.count == InProcessExchange.maxRanks)
    }

    @Test("one rank's exchange used by two threads at once throws protocolMismatch instead of trapping")
    func rankUsedTwice() throws {
        // Group of 2: rank 0's exchange enters from two threads, rank 1 never does.
        // Before the check, the second entry completed the round with rank 1's
        // slot empty and force-unwrapped it. Now whichever entry comes second
        // throws protocolMismatch at once, and the first times out (rank 1 never came).
        let exchanges = try InProcessExchange.group(size: 2, timeout: 0.5)
        let errors = Mutex<[String]>([])
        let done = DispatchGroup()
        for _ in 0..<2 {
            done.enter()
            Thread {
                var out = [Double](repeating: 0, count: 2)
                let one: [Double] = [1]
                do {
                    try one.withUnsafeBufferPointer { c in
                        try out.withUnsafeMutableBufferPointer { try exchanges[0].allGather(c, into: $0) }
                    }
                    errors.withLock { $0.append("completed") }
                } catch let e as SynchronizationError {
                    let name = switch e { case .protocolMismatch: "protocolMismatch"; case .timedOut: "timedOut"; default: "\(e)" }
                    errors.withLock { $0.append(name) }
                } catch {
                    errors.withLock { $0.append("\(error)") }
                }
                done.leave()
            }.start()
        }
        done.wait()
        #expect(errors.withLock { $0.sorted() } == ["protocolMismatch", "timedOut"])
    }
}
