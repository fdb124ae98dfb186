#if MPI
import Dispatch
import NormKernels
import NormKernelsMPI

/// `syncbn-mpi-check --bench`: per channel count, the median time of one
/// training step (forward + backward, all gradients) of local BatchNorm on this
/// rank's slice, of the synchronized step on the same slice, and of the step's
/// two all-gathers alone (2C + 2 Float64 each). The target: sync ≤ local
/// + exchange (± 10 %). Ranks are aligned by an all-gather before every repetition;
/// each figure is the median over repetitions of the slowest rank. One thread
/// per rank (run at most one rank per core for meaningful figures).
enum MPIBench {
    static func run(_ exchange: MPIExchange, repetitions: Int = 30) throws {
        if exchange.rank == 0 {
            print("ranks \(exchange.size); median ms of the slowest rank, \(repetitions) repetitions")
            print("shape (per rank)                local    sync     exchange  sync − local − exchange")
        }
        for c in [64, 256, 1024, 2048] {
            for shape in [TensorShape(n: 8, c: c, h: 14, w: 14), TensorShape.matrix(256, c)] {
                try measure(shape, exchange, repetitions)
            }
        }
    }

    static func measure(_ shape: TensorShape, _ exchange: MPIExchange, _ repetitions: Int) throws {
        var data = CheckData(state: UInt64(shape.c))
        let x = data.values(shape.count, offset: 0.5, scale: 2), dy = data.values(shape.count)
        let gamma = data.values(shape.c, offset: 1, scale: 0.5), beta = data.values(shape.c)
        // One thread per rank: ranks share the machine's cores (with more threads
        // than cores, one rank's spinning workers stall the other's exchange).
        let threading = Threading(threads: 1)
        let local = try BatchNormalization(shape: shape, threading: threading)
        let sync = try SynchronizedBatchNormalization(shape: shape, threading: threading, exchange: exchange)
        var y = [Float](repeating: 0, count: shape.count)
        let send = [Double](repeating: 1, count: 2 * shape.c + 2)
        var receive = [Double](repeating: 0, count: send.count * exchange.size)

        // Both steps write into the same preallocated buffers (no allocation timed).
        var dx = [Float](repeating: 0, count: shape.count)
        var dg = [Float](repeating: 0, count: shape.c), db = dg
        func step(_ forward: (UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>, UnsafeBufferPointer<Float>,
                              UnsafeBufferPointer<Float>) throws -> SavedStatistics,
                  _ backward: (UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>, SavedStatistics, UnsafeBufferPointer<Float>,
                               UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>,
                               UnsafeMutableBufferPointer<Float>) throws -> Void) throws {
            try x.withUnsafeBufferPointer { xb in
                try dy.withUnsafeBufferPointer { dyb in
                    try gamma.withUnsafeBufferPointer { g in
                        try beta.withUnsafeBufferPointer { b in
                            try y.withUnsafeMutableBufferPointer { yb in
                                try dx.withUnsafeMutableBufferPointer { dxb in
                                    try dg.withUnsafeMutableBufferPointer { dgb in
                                        try db.withUnsafeMutableBufferPointer { dbb in
                                            let saved = try forward(xb, yb, g, b)
                                            try backward(xb, dyb, saved, g, UnsafeBufferPointer(yb), dxb, dgb, dbb)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let localMs = try timed(exchange, repetitions) {
            try step({ try local.forwardTraining(input: $0, output: $1, scale: $2, bias: $3) },
                     { try local.backwardTraining(input: $0, gradOutput: $1, saved: $2, scale: $3, output: $4,
                                                  gradInput: $5, gradScale: $6, gradBias: $7) })
        }
        let syncMs = try timed(exchange, repetitions) {
            try step({ try sync.forwardTraining(input: $0, output: $1, scale: $2, bias: $3) },
                     { try sync.backwardTraining(input: $0, gradOutput: $1, saved: $2, scale: $3, output: $4,
                                                 gradInput: $5, gradScale: $6, gradBias: $7, parameterGradients: .global) })
        }
        let exchangeMs = try timed(exchange, repetitions) {
            for _ in 0..<2 {
                try send.withUnsafeBufferPointer { s in
                    try receive.withUnsafeMutableBufferPointer { try exchange.allGather(s, into: $0) }
                }
            }
        }
        if exchange.rank == 0 {
            let excess = (syncMs - localMs - exchangeMs) / localMs * 100
            func f(_ v: Double) -> String { String(Int((v * 1000).rounded())).leftPadded(6) + " µs" }
            print("\(shape.description.padded(30)) \(f(localMs)) \(f(syncMs)) \(f(exchangeMs))  \(Int(excess.rounded())) % of local")
        }
    }

    /// Median over repetitions of the slowest rank's time, in ms.
    static func timed(_ exchange: MPIExchange, _ repetitions: Int, _ body: () throws -> Void) throws -> Double {
        try body()   // warm-up
        var times: [Double] = []
        var one = [0.0], all = [Double](repeating: 0, count: exchange.size)
        for _ in 0..<repetitions {
            try barrier(exchange)
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            one[0] = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            try one.withUnsafeBufferPointer { s in try all.withUnsafeMutableBufferPointer { try exchange.allGather(s, into: $0) } }
            times.append(all.max()!)
        }
        return times.sorted()[times.count / 2]
    }

    static func barrier(_ exchange: MPIExchange) throws {
        var all = [Double](repeating: 0, count: exchange.size)
        try [0.0].withUnsafeBufferPointer { s in try all.withUnsafeMutableBufferPointer { try exchange.allGather(s, into: $0) } }
    }
}

extension String {
    func padded(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
#endif
