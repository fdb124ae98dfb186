import Testing
@testable import NormKernels

// The columns geometry's choice between whole matrices per worker and row
// blocks split across workers (`ColumnsGeometry.splitsMatrices`). The bits are
// the same either way: DeterminismTests run N = 2 NHWC shapes at 1–16 threads,
// where 2 threads take whole matrices and 3, 4, 5, 8 and 16 split them. These
// tests pin which strategy a count of matrices gets, so that a change of the
// rule shows up here and not only in a benchmark.
@Suite struct ColumnsGeometryTests {
    private static func threading(_ threads: Int) -> Threading {
        Threading(threads: threads, parallelThreshold: 4096, spinMicroseconds: 0)
    }

    @Test("matrices that divide evenly among the workers go whole, fewer than 4 per worker otherwise split")
    func wholeMatricesWhenTheyDivide() {
        let columns = 320
        // Several row blocks per matrix on any L2: 4 row blocks and one row.
        let rows = 4 * ColumnsGeometry(matrices: 1, rows: 1 << 20, columns: columns).rowBlock + 1
        let cases: [(matrices: Int, threads: Int, splits: Bool)] = [
            (2, 2, false), (4, 2, false), (6, 2, false), (8, 2, false), (9, 2, false), (3, 3, false),
            (1, 2, true), (3, 2, true), (5, 2, true), (2, 3, true), (2, 4, true), (4, 3, true),
        ]
        for c in cases {
            let g = ColumnsGeometry(matrices: c.matrices, rows: rows, columns: columns)
            #expect(g.blocksPerMatrix > 1, "\(g)")
            #expect(g.splitsMatrices(threading: Self.threading(c.threads)) == c.splits,
                    "\(c.matrices) matrices on \(c.threads) threads")
        }
        // One thread never splits.
        #expect(!ColumnsGeometry(matrices: 1, rows: rows, columns: columns).splitsMatrices(threading: Self.threading(1)))
    }

    @Test("GroupNorm NHWC [2, 320, 64, 64] G = 32 on 2 threads: one sample per worker; on 3: split row blocks")
    func groupNormTwoSamples() throws {
        let shape = TensorShape(n: 2, c: 320, h: 64, w: 64, layout: .nhwc)
        let two = try GroupNormalization(shape: shape, groups: 32, threading: Self.threading(2)).plan()
        #expect(two.strategy.hasPrefix("whole matrices"), "\(two)")
        #expect(two.workers == 2, "\(two)")
        let three = try GroupNormalization(shape: shape, groups: 32, threading: Self.threading(3)).plan()
        #expect(three.strategy.hasPrefix("split"), "\(three)")
    }
}
