#if MPI
import CMPI
import Dispatch
import Foundation
import NormKernels
import NormKernelsMPI

/// An MPIExchange that adds the time spent inside its all-gathers to `nanoseconds`:
/// the exchange's share of a synchronized step, as this rank saw it.
final class TimedExchange: StatisticsExchange, @unchecked Sendable {
    let base: MPIExchange
    var nanoseconds: UInt64 = 0
    init(_ base: MPIExchange) { self.base = base }
    var rank: Int { base.rank }
    var size: Int { base.size }
    func allGather(_ contribution: UnsafeBufferPointer<Double>, into gathered: UnsafeMutableBufferPointer<Double>) throws {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { nanoseconds += DispatchTime.now().uptimeNanoseconds - start }
        try base.allGather(contribution, into: gathered)
    }
}

/// The measurement of `normbench syncbn`, on every rank.
enum SyncBNRun {
    static func main(shapes: [TensorShape], repetitions: Int, threads: Int?, csv: String?, markdown: String?) throws {
        try MPIExchange.initialize()
        defer { MPIExchange.finalize() }
        let loadBefore = SyncBNReport.loadAverage()
        let mpi = try MPIExchange()
        let perRank = threads ?? max(1, Topology.current.cores / mpi.size)
        var results: [SyncBNResult] = []
        for shape in shapes {
            let r = try measure(shape, TimedExchange(mpi), threads: perRank, repetitions: repetitions)
            if mpi.rank == 0 {
                results.append(r)
                FileHandle.standardError.write(Data((r.markdownRow + "\n").utf8))
            }
        }
        if mpi.rank == 0 {
            let header = SyncBNReport.header(ranks: mpi.size, threads: perRank, repetitions: repetitions, loadBefore: loadBefore)
            try SyncBNReport.write(results, header: header, csv: csv, markdown: markdown)
        }
    }

    /// Values in [−1, 1) from a fixed seed (SplitMix64).
    static func fill(_ buffer: UnsafeMutableBufferPointer<Float>, seed: UInt64, offset: Float = 0, scale: Float = 1) {
        var state = seed
        for i in buffer.indices {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            buffer[i] = offset + scale * Float(Double(z >> 11) * 0x1p-52 - 1)
        }
    }

    static func measure(_ shape: TensorShape, _ exchange: TimedExchange, threads: Int, repetitions: Int) throws -> SyncBNResult {
        let comm = exchange.base.communicator
        let threading = Threading(threads: threads)
        let local = try BatchNormalization(shape: shape, threading: threading)
        let sync = try SynchronizedBatchNormalization(shape: shape, threading: threading, exchange: exchange)
        func buffer(_ count: Int) -> UnsafeMutableBufferPointer<Float> {
            let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
            b.initialize(repeating: 0)
            return b
        }
        let x = buffer(shape.count), dy = buffer(shape.count), y = buffer(shape.count), dx = buffer(shape.count)
        let gamma = buffer(shape.c), beta = buffer(shape.c), dg = buffer(shape.c), db = buffer(shape.c)
        defer { for b in [x, dy, y, dx, gamma, beta, dg, db] { b.deallocate() } }
        fill(x, seed: UInt64(shape.c) &* 31 &+ UInt64(exchange.rank), offset: 0.5, scale: 2)
        fill(dy, seed: UInt64(shape.c) &* 37 &+ UInt64(exchange.rank))
        fill(gamma, seed: 5, offset: 1, scale: 0.5)
        fill(beta, seed: 6)
        let c = shape.c
        var reduceSend = [Double](repeating: 1, count: 4 * c + 2), reduceReceive = reduceSend
        let gatherSend = [Double](repeating: 1, count: 2 * c + 2)
        var gatherReceive = [Double](repeating: 0, count: gatherSend.count * exchange.size)

        func localForward() throws {
            try local.forwardTraining(input: UnsafeBufferPointer(x), output: y, scale: UnsafeBufferPointer(gamma),
                                      bias: UnsafeBufferPointer(beta))
        }
        func syncForward() throws {
            try sync.forwardTraining(input: UnsafeBufferPointer(x), output: y, scale: UnsafeBufferPointer(gamma),
                                     bias: UnsafeBufferPointer(beta))
        }
        func localStep() throws {
            let saved = try local.forwardTraining(input: UnsafeBufferPointer(x), output: y, scale: UnsafeBufferPointer(gamma),
                                                  bias: UnsafeBufferPointer(beta))
            try local.backwardTraining(input: UnsafeBufferPointer(x), gradOutput: UnsafeBufferPointer(dy), saved: saved,
                                       scale: UnsafeBufferPointer(gamma), output: UnsafeBufferPointer(y),
                                       gradInput: dx, gradScale: dg, gradBias: db)
        }
        func syncStep() throws {
            let saved = try sync.forwardTraining(input: UnsafeBufferPointer(x), output: y, scale: UnsafeBufferPointer(gamma),
                                                 bias: UnsafeBufferPointer(beta))
            try sync.backwardTraining(input: UnsafeBufferPointer(x), gradOutput: UnsafeBufferPointer(dy), saved: saved,
                                      scale: UnsafeBufferPointer(gamma), output: UnsafeBufferPointer(y),
                                      gradInput: dx, gradScale: dg, gradBias: db, parameterGradients: .global)
        }
        func allReduce() throws {
            let code = reduceSend.withUnsafeMutableBufferPointer { s in
                reduceReceive.withUnsafeMutableBufferPointer { r in
                    MPI_Allreduce(s.baseAddress, r.baseAddress, Int32(s.count), nk_mpi_double(), nk_mpi_sum(), comm)
                }
            }
            guard code == MPI_SUCCESS else { throw SynchronizationError.transport(code: Int(code), message: "MPI_Allreduce") }
        }
        func allGather() throws {
            try gatherSend.withUnsafeBufferPointer { s in
                try gatherReceive.withUnsafeMutableBufferPointer { try exchange.base.allGather(s, into: $0) }
            }
        }
        func barrier() throws {
            let code = MPI_Barrier(comm)
            guard code == MPI_SUCCESS else { throw SynchronizationError.transport(code: Int(code), message: "MPI_Barrier") }
        }
        func timed(_ body: () throws -> Void) throws -> Double {
            try barrier()
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3
        }

        // Warm-up: every piece twice (pages touched, workers started, MPI connections made).
        for _ in 0..<2 {
            try localStep(); try syncStep(); try allReduce(); try allGather()
        }
        // Columns per repetition: local, sync, exchange inside sync, allreduce,
        // allgather, local forward alone, sync forward alone.
        let k = 7
        var columns = [[Double]](repeating: [], count: k)
        var mine = [Double](repeating: 0, count: k)
        var everyone = [Double](repeating: 0, count: k * exchange.size)
        for _ in 0..<repetitions {
            mine[0] = try timed(localStep)
            exchange.nanoseconds = 0
            mine[1] = try timed(syncStep)
            mine[2] = Double(exchange.nanoseconds) / 1e3
            mine[3] = try timed(allReduce)
            mine[4] = try timed(allGather)
            mine[5] = try timed(localForward)
            mine[6] = try timed(syncForward)
            try mine.withUnsafeBufferPointer { s in
                try everyone.withUnsafeMutableBufferPointer { try exchange.base.allGather(s, into: $0) }
            }
            // The slowest rank's figures; the exchange is that of the rank slowest in the step.
            let ranks = 0..<exchange.size
            for j in [0, 1, 3, 4, 5, 6] { columns[j].append(ranks.map { everyone[$0 * k + j] }.max()!) }
            let slowest = ranks.max { everyone[$0 * k + 1] < everyone[$1 * k + 1] }!
            columns[2].append(everyone[slowest * k + 2])
        }
        let medians = columns.map { $0.sorted()[$0.count / 2] }
        return SyncBNResult(shape: shape, ranks: exchange.size, threads: threads, local: medians[0], sync: medians[1],
                            exchange: medians[2], allReduce: medians[3], allGather: medians[4],
                            localForward: medians[5], syncForward: medians[6])
    }
}
#endif
