// The pipelined whole-matrices engine of the InstanceNorm/GroupNorm NHWC
// backward (ColumnsGeometry+Pipelined.swift, ColumnGradientPieces.swift)
// against the engine it replaces (`ColumnsGeometry.reduceThenApply` with
// `BlockGradients.columns`): the same per-column sums (the merged partials that
// `finalize` sees) and the same dx, bit for bit, for steps of 1 row up to more
// than a block, with two row blocks per matrix and a last flush of fewer than
// `flushRows` rows, on the columns the AVX-512 C loops take (64), a width the
// Swift row loop takes (24) and one the Swift strips take (200), with Float32
// overflow in one block (the Float64 repair after the block's last piece), on 1
// and 2 threads. The kernel-level tests (DeterminismTests, AccuracyTests) reach
// this path for InstanceNorm/GroupNorm NHWC with N > 1 when the tensor streams
// (NORMKERNELS_STREAMING=always).

import CNormSupport
import Foundation
import Testing
@testable import NormKernels

@Suite(.serialized) struct ColumnsPipelineTests {
    /// The merged sums per (matrix, column) and dx of one engine run, as raw bits.
    private struct Result: Equatable {
        var sums: [UInt64]
        var dx: [UInt32]
    }

    private func run(_ g: ColumnsGeometry, _ x: [Float], _ dy: [Float], threads: Int, step: Int?,
                     streaming: Bool) -> Result {
        let columns = g.columns, slots = g.matrices * columns
        let threading = Threading(threads: threads, parallelThreshold: 1024, spinMicroseconds: 0)
        let arena = Arena()
        let expanded = CoefficientTable(count: slots, in: arena)
        for s in 0..<slots {
            // Per-column x̂ coefficients (pivot near the data's offset), as channelGroupsBackward expands them.
            expanded[s] = AffineCoefficients(mean: 3 + Double(s % 5) * 0.25, invStd: 0.5 + Double(s % 3) * 0.125)
        }
        let table = GradientTable(count: slots, in: arena)
        for s in 0..<slots { table[s] = GradientCoefficients(pivot: .nan, a: .nan, b: .nan, c: .nan) }
        var merged = [GradientSums](repeating: GradientSums(dy: .nan, dyXhat: .nan), count: slots)
        var dx = [Float](repeating: .nan, count: x.count)
        let count = Double(g.rows)
        x.withUnsafeBufferPointer { xb in
            dy.withUnsafeBufferPointer { db in
                merged.withUnsafeMutableBufferPointer { mb in
                    dx.withUnsafeMutableBufferPointer { ob in
                        let xp = xb.baseAddress!, dyp = db.baseAddress!, mp = mb.baseAddress!, op = ob.baseAddress!
                        func finalize(_ m: Int, _ range: Range<Int>, _ sums: UnsafePointer<GradientSums>) {
                            for c in range {
                                let s = m * columns + c
                                mp[s] = sums[c]
                                table[s] = GradientCoefficients(mean: 3, invStd: 0.5, a: 0.5 * 1.25,
                                                                m1: 1.25 * sums[c].dy / count,
                                                                m2: 1.25 * sums[c].dyXhat / count)
                            }
                        }
                        func apply(_ m: Int, _ first: Int, _ rows: Int) {
                            let o = m * g.matrixElements + first * columns
                            BlockGradients.applyColumns(x: xp + o, dy: dyp + o, mask: nil, op + o, rows: rows,
                                                        columns: columns, stride: columns, table: table,
                                                        slot: m * columns, streaming: streaming)
                        }
                        if let step {
                            g.reduceThenApplyPipelined(
                                threading: threading, workspace: arena, scratchFloats: 2 * columns, rowsPerStep: step,
                                reduce: { m, blockFirst, blockRows, first, count, accumulators, out in
                                    let o = m * g.matrixElements + blockFirst * columns, s = m * columns
                                    BlockGradients.columnsPiece(
                                        xp + o, dyp + o, blockRows: blockRows, first: first, count: count,
                                        columns: columns, stride: columns, pivot: expanded.pivot + s,
                                        scale: expanded.scale + s, shift: expanded.shift + s,
                                        accumulators: accumulators, into: out)
                                },
                                finalize: finalize, apply: apply)
                        } else {
                            g.reduceThenApply(
                                threading: threading, workspace: arena,
                                reduce: { m, first, rows, out in
                                    let o = m * g.matrixElements + first * columns, s = m * columns
                                    BlockGradients.columns(
                                        xp + o, dyp + o, mask: nil, rows: rows, columns: columns, stride: columns,
                                        pivot: expanded.pivot + s, scale: expanded.scale + s,
                                        shift: expanded.shift + s, into: out)
                                },
                                finalize: finalize, apply: apply)
                        }
                    }
                }
            }
        }
        return Result(sums: merged.flatMap { [$0.dy.bitPattern, $0.dyXhat.bitPattern] },
                      dx: dx.map(\.bitPattern))
    }

    @Test("pipelined columns engine == reduceThenApply bit for bit: sums and dx, steps 1...3000 rows, 24/64/200 columns, overflow, 1 and 2 threads")
    func pipelinedMatchesSequential() throws {
        // (columns, matrices, threads): 17 matrices on 2 threads is whole matrices
        // per worker (≥ 4 per worker), in ranges of 2–3 matrices.
        let cases = [(64, 3, 1), (24, 3, 1), (200, 3, 1), (64, 17, 2)]
        for (columns, matrices, threads) in cases {
            // Two row blocks, the second 237 rows (a last flush of 109 rows).
            let block = ColumnsGeometry(matrices: matrices, rows: 1 << 20, columns: columns).rowBlock
            let g = ColumnsGeometry(matrices: matrices, rows: block + 237, columns: columns)
            #expect(g.blocksPerMatrix == 2)
            let threading = Threading(threads: threads, parallelThreshold: 1024, spinMicroseconds: 0)
            #expect(g.pipelines(threading: threading, rowsPerStep: 16), "\(g) should pipeline on \(threads) threads")
            var rng = SplitMix64("columns pipeline \(columns) \(matrices)")
            let x = rng.normals(matrices * g.matrixElements, mean: 3, std: 2)
            var dy = rng.normals(x.count)
            // Matrix 1, column 3: two values whose Float32 sum overflows in the first
            // block's second flush (the block's Float64 repair must run after its last piece).
            dy[g.matrixElements + 130 * columns + 3] = 3e38
            dy[g.matrixElements + 131 * columns + 3] = 3e38
            let expected = run(g, x, dy, threads: 1, step: nil, streaming: false)
            #expect(expected.sums.allSatisfy { !Double(bitPattern: $0).isNaN }, "every slot finalized")
            #expect(expected.dx.allSatisfy { !Float(bitPattern: $0).isNaN }, "every dx written")
            #expect(Double(bitPattern: expected.sums[2 * (columns + 3)]).isFinite, "overflowed column repaired in Float64")
            for step in [1, 16, 48, 128, 3000] {
                for streaming in [false, true] {
                    let context = "\(g) threads \(threads) step \(step) streaming \(streaming)"
                    let c0 = nk_col512_thread_calls()
                    let got = run(g, x, dy, threads: threads, step: step, streaming: streaming)
                    let calls = nk_col512_thread_calls() - c0
                    #expect(got.sums == expected.sums, "sums differ: \(context)")
                    #expect(got.dx == expected.dx, "dx differs: \(context)")
                    if threads == 1 && columns == 64 && ColumnGradientsWide.runs(Float.self, Float.self, columns: 64) {
                        #expect(calls > 0, "the AVX-512 column loops did not run: \(context)")
                    }
                }
            }
            // The sequential engine on 2 threads (row blocks or matrices per worker) agrees too.
            #expect(run(g, x, dy, threads: 2, step: nil, streaming: true) == expected, "\(g) sequential 2 threads")
        }
    }

    @Test("pipelined columns engine: a step that would differ is caught (the test can fail)")
    func differentFlushesDiffer() throws {
        // Summing a block in pieces that each flush on their own (what the pieces
        // must not do) changes the bits of these sums: proof that the comparison
        // above can see a wrong flush.
        let columns = 64, rows = 300
        var rng = SplitMix64("columns pipeline flush")
        let x = rng.normals(rows * columns, mean: 3, std: 2), dy = rng.normals(rows * columns)
        let p = [Float](repeating: 3, count: columns), s = [Float](repeating: 0.5, count: columns)
        let t = [Float](repeating: 0, count: columns)
        var whole = [GradientSums](repeating: .zero, count: columns), split = whole
        var acc = [Float](repeating: 0, count: 2 * columns)
        x.withUnsafeBufferPointer { xb in
            dy.withUnsafeBufferPointer { db in
                let xp = xb.baseAddress!, dp = db.baseAddress!
                BlockGradients.columns(xp, dp, mask: nil, rows: rows, columns: columns, stride: columns,
                                       pivot: p, scale: s, shift: t, into: &whole)
                // Pieces of the right flushes: the same bits.
                var pieces = [GradientSums](repeating: .zero, count: columns)
                var first = 0
                for count in [7, 121, 1, 100, 71] {
                    BlockGradients.columnsPiece(xp, dp, blockRows: rows, first: first, count: count, columns: columns,
                                                stride: columns, pivot: p, scale: s, shift: t,
                                                accumulators: &acc, into: &pieces)
                    first += count
                }
                #expect(pieces == whole)
                // Each 100 rows as a block of its own (flushes at 100, 200): other bits.
                for k in 0..<3 {
                    var part = [GradientSums](repeating: .zero, count: columns)
                    BlockGradients.columns(xp + k * 100 * columns, dp + k * 100 * columns, mask: nil, rows: 100,
                                           columns: columns, stride: columns, pivot: p, scale: s, shift: t,
                                           into: &part)
                    for j in 0..<columns { split[j] = split[j] + part[j] }
                }
            }
        }
        #expect(split != whole, "re-flushed sums happened to match: the comparison would not see a wrong flush")
    }

    @Test("NORMKERNELS_PIPELINE_ROWS: non-negative integers, else the default")
    func pipelineRowsFromEnvironment() {
        #expect(ColumnsGeometry.pipelineRows(fromEnvironment: nil) == ColumnsGeometry.defaultPipelineRows)
        #expect(ColumnsGeometry.pipelineRows(fromEnvironment: "0") == 0)
        #expect(ColumnsGeometry.pipelineRows(fromEnvironment: " 32 ") == 32)
        #expect(ColumnsGeometry.pipelineRows(fromEnvironment: "-1") == ColumnsGeometry.defaultPipelineRows)
        #expect(ColumnsGeometry.pipelineRows(fromEnvironment: "lots") == ColumnsGeometry.defaultPipelineRows)
        let g = ColumnsGeometry(matrices: 3, rows: 4000, columns: 64)
        #expect(!g.pipelines(threading: .serial, rowsPerStep: 0))
        #expect(g.pipelines(threading: .serial, rowsPerStep: 16))
        #expect(!ColumnsGeometry(matrices: 1, rows: 4000, columns: 64).pipelines(threading: .serial, rowsPerStep: 16))
    }
}
