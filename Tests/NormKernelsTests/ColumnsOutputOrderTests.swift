import Synchronization
import Testing
@testable import NormKernels

/// The columns geometry's output pass (`ColumnsGeometry.applyMatrix`): with whole
/// matrices per worker, the rows the reduction left in the L2 first, from the
/// end back in steps of `applyStep` rows, then the others last block first; on
/// the split path one call per block; every row once for any thread count. And
/// the kernels that take it (InstanceNorm and GroupNorm NHWC backward with a
/// sample over three row blocks) match the Float64 reference, bit for bit on
/// 1 to 8 threads. Sizes come from the geometry on this machine's
/// L2 (`columnsRowBlock`), so every case spans the blocks it needs on any cache.
@Suite("Columns geometry: the output pass, cached tail first")
struct ColumnsOutputOrderTests {
    /// The (matrix, first row, rows) calls of one `reduceThenApply`, in call order
    /// (concurrent calls: in the order they took the lock).
    static func outputCalls(_ g: ColumnsGeometry, threading: Threading, inputs: Int = 1) -> [[Int]] {
        let calls = Mutex<[[Int]]>([])
        let workspace = Arena()
        g.reduceThenApply(
            threading: threading, workspace: workspace,
            reduce: { _, _, _, out in out.initialize(repeating: .zero, count: g.columns) },
            finalize: { (_: Int, _: Range<Int>, _: UnsafePointer<GradientSums>) in },
            inputs: inputs, apply: { m, first, rows in calls.withLock { $0.append([m, first, rows]) } })
        return calls.withLock { $0 }
    }

    @Test("whole matrices per worker: the cached tail from the end back in steps of applyStep rows, then the other rows last block first; every row once on 1 to 8 threads",
          arguments: [64, 320, 13])
    func tailFirst(columns: Int) throws {
        let rowBlock = columnsRowBlock(columns)
        // Two full blocks and a short one per matrix; 40 matrices (whole matrices
        // per worker on 1–8 threads) and 3 (split across workers from 2 threads).
        for matrices in [40, 3] {
            let g = ColumnsGeometry(matrices: matrices, rows: 2 * rowBlock + 37, columns: columns)
            let step = g.applyStep
            for inputs in [1, 2] {
                let tail = g.cachedTailRows(inputs: inputs)
                #expect(step < tail && tail < g.rows, "\(columns) columns: a tail of \(tail) rows in steps of \(step), \(g.rows) rows")
                let serial = Self.outputCalls(g, threading: .serial, inputs: inputs)
                for m in 0..<matrices {
                    let calls = serial.filter { $0[0] == m }.map { ($0[1], $0[2]) }
                    // The tail: consecutive steps of ≤ step rows from the last row back.
                    var end = g.rows, k = 0
                    while end > g.rows - tail, k < calls.count {
                        let (first, rows) = calls[k]
                        #expect(first + rows == end && rows <= step, "matrix \(m) step \(k): rows \(first)..<\(first + rows), expected to end at \(end)")
                        end = first; k += 1
                    }
                    #expect(end == g.rows - tail, "matrix \(m): the tail ends at \(end), not \(g.rows - tail)")
                    // Then each block's part before the tail, last block first, one call each.
                    let rest = calls[k...].map { $0 }
                    let expected = (0..<g.blocksPerMatrix).reversed().compactMap { b -> (Int, Int)? in
                        let first = b * rowBlock
                        return first < end ? (first, min(rowBlock, end - first)) : nil
                    }
                    #expect(rest.map { [$0.0, $0.1] } == expected.map { [$0.0, $0.1] },
                            "matrix \(m): after the tail \(rest.prefix(4)), expected \(expected.prefix(4))")
                }
                // Every row of every matrix exactly once, on any thread count.
                for threads in [1, 2, 3, 8] {
                    let threading = Threading(threads: threads, parallelThreshold: 1, spinMicroseconds: 0)
                    let calls = threads == 1 ? serial : Self.outputCalls(g, threading: threading, inputs: inputs)
                    var seen = [Int](repeating: 0, count: matrices * g.rows)
                    for call in calls { for r in call[1]..<(call[1] + call[2]) { seen[call[0] * g.rows + r] += 1 } }
                    #expect(seen.allSatisfy { $0 == 1 }, "\(threads) threads, \(matrices) matrices, \(columns) columns: rows written \(Set(seen)) times")
                    if g.splitsMatrices(threading: threading) {
                        #expect(calls.allSatisfy { $0[1] % rowBlock == 0 }, "split path: one call per block")
                    }
                }
            }
        }
    }

    @Test("fewer than 8 columns: one output call per block (the folded-row loops see whole blocks)")
    func narrowBlocksWhole() {
        let rowBlock = columnsRowBlock(3)
        let g = ColumnsGeometry(matrices: 2, rows: 2 * rowBlock + 5, columns: 3)
        let calls = Self.outputCalls(g, threading: .serial)
        #expect(calls.count == 2 * 3, "\(calls.count) calls for 2 matrices of 3 blocks")
        #expect(calls.allSatisfy { $0[1] % rowBlock == 0 }, "a call starts inside a block: \(calls)")
    }

    @Test("InstanceNorm and GroupNorm NHWC backward, a sample over two row blocks and many steps: dx against Float64, same bits on 1 to 8 threads")
    func backwardAcrossSteps() throws {
        // H·W = 2 row blocks + 1 row per sample, 64 channels.
        let rows = 2 * columnsRowBlock(64) + 1
        let side = Int(Double(rows).squareRoot().rounded(.up))
        let shape = TensorShape(n: 2, c: 64, h: side, w: side, layout: .nhwc)
        let g = ColumnsGeometry(matrices: shape.n, rows: shape.spatial, columns: shape.c)
        #expect(g.blocksPerMatrix >= 3 && g.applyStep < g.rowBlock, "\(g) takes several blocks and steps")
        var rng = SplitMix64(seed: 1811)
        let x = activations(shape, &rng)
        let dy = (0..<shape.count).map { _ in Float(rng.uniform(-1...1)) }
        let gamma = (0..<shape.c).map { _ in Float(rng.uniform(0.5...1.5)) }
        let norm = try InstanceNormalization(shape: shape, threading: .serial)
        let (_, saved) = try norm.forwardTraining(x, scale: gamma)
        let grads = try norm.backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma)
        let slots = (0..<shape.n).flatMap { n in (0..<shape.c).map { c in (0..<shape.spatial).map { shape.offset(n, c, $0) } } }
        let reference = Reference.centeredBackward(x, dy, slots, eps: Double(Float(1e-5))) { Double(gamma[$0 % shape.c]) }
        let error = normwiseRelativeError(try #require(grads.input), reference)
        #expect(error < 1e-5, "IN \(shape) dx: relative error \(error)")
        try expectGradientsDeterministic("IN \(shape)") { threading in
            let g = try InstanceNormalization(shape: shape, threading: threading)
                .backwardTraining(x, gradOutput: dy, saved: saved, scale: gamma)
            return [g.input, g.scale, g.bias]
        }
        let (_, gnSaved) = try GroupNormalization(shape: shape, groups: 16, threading: .serial).forward(x, scale: gamma)
        try expectGradientsDeterministic("GN \(shape)") { threading in
            let g = try GroupNormalization(shape: shape, groups: 16, threading: threading)
                .backward(x, gradOutput: dy, saved: gnSaved, scale: gamma)
            return [g.input, g.scale, g.bias]
        }
    }
}
