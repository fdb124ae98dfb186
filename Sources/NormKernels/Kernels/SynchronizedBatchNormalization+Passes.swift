/// The dx pass of a synchronized backward: `channelPasses`' output pass (same
/// block functions, so the same bits), walked last blocks first. The sums pass
/// has just read x and dy; single-process BatchNorm writes dx block by block
/// while they are still in cache (the columns geometry last block first, NCHW
/// channel batches in L2), but a synchronized step must exchange the sums of the
/// whole slice first, and walking forward again would start with what was
/// evicted first (NHWC [8, 256, 14, 14], 2 blocks of 1.6 MB of x and dy: the
/// backward ran ≈ 20 % slower than BatchNorm's).
extension BatchNormalization {
    func gradientInputPass<E: NormElement>(x: UnsafePointer<E>, dy: UnsafePointer<E>, mask: UnsafePointer<E>?,
                           table: GradientTable, dx: UnsafeMutablePointer<E>) {
        let channels = shape.c
        let streaming = paths.backward.streaming(output: dx, reading: x, dy, mask)
        switch paths.path {
        case .columns(let g):
            g.apply(threading: threading, fromTheEnd: true) { _, first, rows in
                let o = first * channels
                BlockGradients.applyColumns(x: x + o, dy: dy + o, mask: mask.map { $0 + o }, dx + o,
                                            rows: rows, columns: channels, stride: channels, table: table, slot: 0,
                                            streaming: streaming)
            }
        case .shortRuns:
            // Memory order, sample by sample, as the short-run backward.
            let hw = shape.spatial
            Parallel.forEach(count: shape.n, elementsPerItem: channels * hw, threading: threading, fromTheEnd: true) { range in
                for sample in range {
                    let o = sample * channels * hw
                    BlockGradients.shortRunApply(x: x + o, dy: dy + o, mask: mask.map { $0 + o }, dx + o, n: hw,
                                                 channels: 0..<channels, table: table, streaming: streaming)
                }
            }
        case .channelRuns(let g):
            g.apply(threading: threading, fromTheEnd: true) { b in
                BlockGradients.apply(x: x + b.offset, dy: dy + b.offset, mask: mask.map { $0 + b.offset },
                                     gamma: nil, dx + b.offset, b.count, table[b.unit], streaming: streaming)
            }
        }
    }
}
