import Synchronization
import Testing
@testable import NormKernels

/// The columns geometry's output pass (`ColumnsGeometry.applyDescending`): each
/// row block from its end back in steps of `applyStep` rows, steps that never
/// cross a block, the same steps whatever the thread count; and the kernels that
/// take it (InstanceNorm NHWC backward with a sample over two row blocks) still
/// match the Float64 reference. Sizes come from the geometry on this machine's
/// L2 (`columnsRowBlock`), so every case spans the blocks it needs on any cache.
@Suite("Columns geometry: the output pass from each block's end back")
struct ColumnsOutputOrderTests {
    /// The (matrix, first row, rows) calls of one `reduceThenApply`, in call order
    /// (concurrent calls: in the order they took the lock).
    static func outputCalls(_ g: ColumnsGeometry, threading: Threading) -> [[Int]] {
        let calls = Mutex<[[Int]]>([])
        let workspace = Arena()
        g.reduceThenApply(
            threading: threading, workspace: workspace,
            reduce: { _, _, _, out in out.initialize(repeating: .zero, count: g.columns) },
            finalize: { (_: Int, _: Range<Int>, _: UnsafePointer<GradientSums>) in },
            apply: { m, first, rows in calls.withLock { $0.append([m, first, rows]) } })
        return calls.withLock { $0 }
    }

    @Test("steps of applyStep rows cover each block once, last step first, the same steps on 1 to 8 threads",
          arguments: [64, 320, 13])
    func stepsPerBlock(columns: Int) throws {
        let rowBlock = columnsRowBlock(columns)
        // Two full blocks and a short one per matrix; 3 matrices (split across
        // workers at 2+ threads) and 40 (whole matrices per worker).
        for matrices in [3, 40] {
            let g = ColumnsGeometry(matrices: matrices, rows: 2 * rowBlock + 37, columns: columns)
            let step = g.applyStep
            #expect(step < rowBlock, "\(columns) columns: a block (\(rowBlock) rows) takes several steps of \(step)")
            let serial = Self.outputCalls(g, threading: .serial)
            for call in serial {
                let (first, rows) = (call[1], call[2])
                let block = first / rowBlock, end = min(g.rows, (block + 1) * rowBlock)
                #expect(rows >= 1 && rows <= step && first + rows <= end, "step \(call) crosses block \(block) or exceeds \(step) rows")
            }
            // Every row of every matrix exactly once.
            var seen = [Int](repeating: 0, count: matrices * g.rows)
            for call in serial { for r in call[1]..<(call[1] + call[2]) { seen[call[0] * g.rows + r] += 1 } }
            #expect(seen.allSatisfy { $0 == 1 }, "\(columns) columns, \(matrices) matrices: rows written \(Set(seen)) times")
            // One thread: each matrix's steps go from its last row back to its first.
            for m in 0..<matrices {
                let starts = serial.filter { $0[0] == m }.map { $0[1] }
                #expect(starts == starts.sorted(by: >), "matrix \(m): steps not from the end back: \(starts.prefix(8))")
                #expect(serial.filter { $0[0] == m }.first.map { $0[1] + $0[2] } == g.rows, "matrix \(m) starts at its last row")
            }
            // The same set of steps on any thread count (so the same rows per output call).
            let expected = Set(serial)
            for threads in [2, 3, 8] {
                let threading = Threading(threads: threads, parallelThreshold: 1, spinMicroseconds: 0)
                let got = Self.outputCalls(g, threading: threading)
                #expect(got.count == serial.count && Set(got) == expected,
                        "\(threads) threads, \(matrices) matrices, \(columns) columns: other steps than on one thread")
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
