/// A rank's partials when it sends several subtrees of single-process
/// BatchNorm's tree (`SynchronizedMergePlan`, an uneven split): the blocks'
/// partials exactly as `forwardTraining`/`backwardTraining` form them (same
/// block ranges, same block functions), then each subtree's tree merge over
/// its blocks. Used only when a rank sends more than one node; with one node the
/// rank's partial is BatchNorm's own per-channel result (`channelMoments`,
/// `channelPasses`), which is that node's merge.
///
/// Each node's values go to `out + k · (2C + 1)`: its value count, then C values
/// of the first quantity (means; Σg), then C of the second (M2s; Σg·x̂).
extension BatchNormalization {
    /// Forward: per-channel moments of each node's blocks (`nodes` in this
    /// rank's block indices).
    func nodeMoments<E: NormElement>(_ x: UnsafePointer<E>, nodes: [Range<Int>], workspace: Arena,
                     into out: UnsafeMutablePointer<Double>) {
        let c = shape.c, stride = 2 * c + 1
        if shape.isChannelsLast {
            let g = columns
            let partials = workspace.take(Moments.self, count: g.blocksPerMatrix * c)
            Parallel.forEach(count: g.blocksPerMatrix, elementsPerItem: g.rowBlock * c, threading: threading) { range in
                for b in range {
                    let first = b * g.rowBlock
                    BlockMoments.columns(x + first * c, rows: min(g.rowBlock, g.rows - first), columns: c, stride: c,
                                         into: partials + b * c)
                }
            }
            for (k, node) in nodes.enumerated() {
                let slots = out + k * stride
                for ch in 0..<c {
                    let m = Moments.treeMerge(count: node.count) { partials[(node.lowerBound + $0) * c + ch] }
                    slots[0] = m.count
                    slots[1 + ch] = m.mean
                    slots[1 + c + ch] = m.m2
                }
            }
        } else {
            let g = rows
            g.reduceThenApply(
                threading: threading, workspace: workspace,
                reduce: { b in
                    BlockMoments.segmented(x + b.offset, length: b.count, stride: g.segmentStride,
                                           segments: b.segmentCount, following: b.following)
                },
                finalize: { ch, parts in
                    for (k, node) in nodes.enumerated() {
                        let m = Moments.treeMerge(count: node.count) { parts[node.lowerBound + $0] }
                        let slots = out + k * stride
                        if ch == 0 { slots[0] = m.count }
                        slots[1 + ch] = m.mean
                        slots[1 + c + ch] = m.m2
                    }
                },
                writesOutput: false, apply: { _ in })
        }
    }

    /// Backward: per-channel (Σg, Σg·x̂) of each node's partials (`nodes` in
    /// this rank's partial indices; `counts` the values per channel of each).
    func nodeGradientSums<E: NormElement>(x: UnsafePointer<E>, dy: UnsafePointer<E>, mask: UnsafePointer<E>?,
                          xhat: CoefficientTable, nodes: [Range<Int>], counts: [Int], workspace: Arena,
                          into out: UnsafeMutablePointer<Double>) {
        let c = shape.c, stride = 2 * c + 1
        for k in nodes.indices { out[k * stride] = Double(counts[k]) }
        func write(_ partials: UnsafePointer<GradientSums>, leafStride: Int, channelStride: Int, channels: Range<Int>) {
            for (k, node) in nodes.enumerated() {
                let slots = out + k * stride
                for ch in channels {
                    let s = GradientSums.treeSum(count: node.count) {
                        partials[(node.lowerBound + $0) * leafStride + ch * channelStride]
                    }
                    slots[1 + ch] = s.dy
                    slots[1 + c + ch] = s.dyXhat
                }
            }
        }
        switch paths.path {
        case .columns(let g):
            let partials = workspace.take(GradientSums.self, count: g.blocksPerMatrix * c)
            Parallel.forEach(count: g.blocksPerMatrix, elementsPerItem: g.rowBlock * c, threading: threading) { range in
                for b in range {
                    let o = b * g.rowBlock * c
                    BlockGradients.columns(x + o, dy + o, mask: mask.map { $0 + o }, rows: min(g.rowBlock, g.rows - b * g.rowBlock),
                                           columns: c, stride: c, pivot: xhat.pivot, scale: xhat.scale, shift: xhat.shift,
                                           into: partials + b * c)
                }
            }
            write(partials, leafStride: c, channelStride: 1, channels: 0..<c)
        case .shortRuns:
            // One partial per (sample, channel) run, as the short-run backward.
            let n = shape.n, hw = shape.spatial
            let partials = workspace.take(GradientSums.self, count: n * c)
            Parallel.forEach(count: n, elementsPerItem: c * hw, threading: threading) { range in
                withScratch(of: F8.self, capacity: BlockGradients.runLanes) { lanes in
                    for sample in range {
                        let o = sample * c * hw
                        BlockGradients.shortRunSums(x + o, dy + o, mask: mask.map { $0 + o }, n: hw, channels: 0..<c,
                                                    xhat: xhat, lanes: lanes.baseAddress!, into: partials + sample * c)
                    }
                }
            }
            write(partials, leafStride: c, channelStride: 1, channels: 0..<c)
        case .channelRuns(let g):
            g.reduceThenApply(
                threading: threading, workspace: workspace,
                reduce: { b in
                    BlockGradients.segmented(x + b.offset, dy + b.offset, length: b.count, stride: g.segmentStride,
                                             segments: b.segmentCount, xhat[b.unit],
                                             mask: mask.map { $0 + b.offset }, gamma: nil, following: b.following)
                },
                finalize: { ch, parts in
                    write(parts.baseAddress!, leafStride: 1, channelStride: 0, channels: ch..<(ch + 1))
                },
                writesOutput: false, apply: { _ in })
        }
    }
}
