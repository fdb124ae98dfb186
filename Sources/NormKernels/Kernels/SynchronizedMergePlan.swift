/// How a synchronized BatchNorm step cuts its partials and merges them across
/// ranks, for one direction (forward moments or backward sums); fixed at `init`
/// from every rank's shape (docs/SYNCBN.md, "The merge").
///
/// The merge is a tree over **leaves**, split at lo + (hi − lo)/2, pairs at the
/// bottom (the tree of `Moments.treeMerge` and `GradientSums.treeSum`):
/// - when the ranks' blocks, one after the other, are the blocks of the
///   concatenated batch (`matchesSingleProcess`), the leaves are those blocks and
///   the tree is single-process BatchNorm's own tree over them. Each rank sends
///   the partials of the largest subtrees lying wholly in its blocks (one when its
///   blocks form a subtree — e.g. equal splits on 2 or 4 ranks — at most about
///   2·log₂(blocks) otherwise), and every rank evaluates the rest of the tree on
///   them: bitwise the single-process result for any such split;
/// - otherwise the leaves are the ranks (each rank sends its own merged partial)
///   and the tree runs over rank order.
struct SynchronizedMergePlan: Sendable, Hashable {
    /// Whether the leaves are single-process BatchNorm's blocks of the whole batch.
    let matchesSingleProcess: Bool
    /// Per rank, in rank order: the leaf ranges of the subtrees it sends, in order.
    let nodes: [[Range<Int>]]
    /// Per rank: the values per channel in each of its nodes.
    let nodeCounts: [[Int]]
    /// The tree over all leaves as a post-order program over the ranks' nodes.
    let program: [Step]
    /// Index of each rank's first leaf (its blocks are leaves `leafStart[r] ..< leafStart[r] + its blocks`).
    let leafStart: [Int]

    enum Step: Sendable, Hashable {
        /// Push node `slot` of rank `rank`.
        case node(rank: Int, slot: Int)
        /// Pop the later, then the earlier part; push their merge.
        case combine
    }

    /// Most nodes any rank sends (each rank's contribution has room for this many).
    /// (Lazily: every step reads it, and a warm call must not touch the heap.)
    var nodesPerRank: Int { nodes.lazy.map(\.count).max() ?? 1 }

    /// The most blocks whose tree the plan spells out leaf by leaf (16 bytes of
    /// range each, per direction). Past it (2²⁰ short-plane samples on one
    /// process's batch) the leaves are the ranks: the result is still the same on
    /// every rank and thread count, but no longer bitwise single-process BatchNorm's.
    static let maxLeaves = 1 << 20

    init(shapes: [TensorShape], backward: Bool) {
        let compatible = shapes.allSatisfy {
            $0.c == shapes[0].c && $0.h == shapes[0].h && $0.w == shapes[0].w && $0.layout == shapes[0].layout
        }
        // The sum of n over the ranks, nil past Int.max (each rank's n is valid on
        // its own; thousands of them need not be together).
        let total = shapes.reduce(Optional(0)) { sum, s in
            sum.flatMap { let (t, overflow) = $0.addingReportingOverflow(s.n); return overflow ? nil : t }
        }
        var blocks: [Range<Int>]?
        var perRank: [[Range<Int>]] = []
        if compatible, let total, total >= 1,
           let whole = try? BatchNormalization(shape: TensorShape(n: total, c: shapes[0].c, h: shapes[0].h,
                                                                  w: shapes[0].w, layout: shapes[0].layout)),
           whole.partialRangeCount(backward: backward) <= Self.maxLeaves {
            var concatenated: [Range<Int>] = [], offset = 0
            for s in shapes {
                let ranges = s.n == 0 ? [] : ((try? BatchNormalization(shape: s))?.partialRanges(backward: backward) ?? [])
                perRank.append(ranges)
                concatenated += ranges.map { ($0.lowerBound + offset)..<($0.upperBound + offset) }
                offset += s.n * s.spatial
            }
            let wholeRanges = whole.partialRanges(backward: backward)
            if concatenated == wholeRanges { blocks = wholeRanges }
        }
        if let blocks {
            var start = 0, starts: [Int] = [], nodes: [[Range<Int>]] = [], counts: [[Int]] = []
            for ranges in perRank {
                starts.append(start)
                let mine = Self.subtrees(start..<(start + ranges.count), in: 0..<blocks.count)
                nodes.append(mine)
                counts.append(mine.map { node in blocks[node].reduce(0) { $0 + $1.count } })
                start += ranges.count
            }
            matchesSingleProcess = true
            self.nodes = nodes
            nodeCounts = counts
            leafStart = starts
            program = Self.program(leaves: blocks.count, nodes: nodes)
        } else {
            matchesSingleProcess = false
            nodes = shapes.indices.map { [$0..<($0 + 1)] }
            nodeCounts = shapes.map { [$0.n * $0.spatial] }
            leafStart = Array(shapes.indices)
            program = Self.program(leaves: shapes.count, nodes: nodes)
        }
    }

    /// The largest subtrees of the tree over `tree` that lie wholly in `mine`, left to right.
    static func subtrees(_ mine: Range<Int>, in tree: Range<Int>) -> [Range<Int>] {
        guard !mine.isEmpty, tree.overlaps(mine) else { return [] }
        if mine.lowerBound <= tree.lowerBound && tree.upperBound <= mine.upperBound { return [tree] }
        let mid = tree.lowerBound + tree.count / 2
        return subtrees(mine, in: tree.lowerBound..<mid) + subtrees(mine, in: mid..<tree.upperBound)
    }

    /// Post-order evaluation of the tree over `0 ..< leaves`, each subtree that
    /// some rank sends taken as one value.
    static func program(leaves: Int, nodes: [[Range<Int>]]) -> [Step] {
        var owner: [Range<Int>: Step] = [:]
        for (r, list) in nodes.enumerated() {
            for (k, node) in list.enumerated() { owner[node] = .node(rank: r, slot: k) }
        }
        var steps: [Step] = []
        func visit(_ range: Range<Int>) {
            if let step = owner[range] { steps.append(step); return }
            // Every leaf belongs to one rank's subtrees, so a range nobody sends has ≥ 2 leaves.
            let mid = range.lowerBound + range.count / 2
            visit(range.lowerBound..<mid)
            visit(mid..<range.upperBound)
            steps.append(.combine)
        }
        visit(0..<leaves)
        return steps
    }
}
