/// Whether a synchronized step gives the same bits as single-process BatchNorm
/// on the concatenated batch (docs/SYNCBN.md, "When results are bitwise identical").
public struct SingleProcessEquivalence: Sendable, Hashable {
    /// Forward output, saved statistics and running statistics are bitwise identical.
    public var forward: Bool
    /// dx, and dγ/dβ with ``ParameterGradients/global``, are bitwise identical.
    public var backward: Bool
}

extension SynchronizedBatchNormalization {
    /// Whether ranks holding slices of these shapes (in rank order) compute
    /// exactly what single-process ``BatchNormalization`` computes on the batch
    /// they form together (samples concatenated in rank order).
    ///
    /// BatchNorm reduces each channel in blocks (their ranges depend on the
    /// shape and the cache sizes, never on the thread count) and merges the
    /// blocks' partials in a fixed pairwise tree (split at lo + (hi − lo)/2). A
    /// synchronized step forms each rank's partial with the rank's own blocks and
    /// tree, then merges the ranks in the same kind of tree. The two agree bit for
    /// bit exactly when
    /// 1. all ranks have the same C, H, W and layout, and N ≥ 1;
    /// 2. the ranks' blocks, placed one after the other, are the blocks of the
    ///    concatenated batch (a rank boundary never falls inside a block, and no
    ///    rank cuts its blocks differently); and
    /// 3. every node of the tree over the ranks splits where the tree over the
    ///    blocks splits: e.g. all ranks hold the same number of blocks and the
    ///    rank count is a power of two, or every rank holds one block.
    ///
    /// The output, dx and dγ/dβ are element-wise functions of the statistics, so
    /// equal statistics give equal outputs. Otherwise the statistics differ from
    /// the single-process ones by rounding only (a different order of the same
    /// exact Float64 merges); see docs/SYNCBN.md for the bound.
    public static func singleProcessEquivalence(rankShapes: [TensorShape]) -> SingleProcessEquivalence {
        guard let first = rankShapes.first,
              rankShapes.allSatisfy({ $0.n >= 1 && $0.c == first.c && $0.h == first.h && $0.w == first.w
                                      && $0.layout == first.layout }),
              let locals = try? rankShapes.map({ try BatchNormalization(shape: $0) }),
              let whole = try? BatchNormalization(shape: TensorShape(
                  n: rankShapes.reduce(0) { $0 + $1.n }, c: first.c, h: first.h, w: first.w, layout: first.layout))
        else { return SingleProcessEquivalence(forward: false, backward: false) }
        func agrees(backward: Bool) -> Bool {
            var concatenated: [Range<Int>] = [], leafStarts = [0], offset = 0
            for bn in locals {
                let ranges = bn.partialRanges(backward: backward)
                concatenated += ranges.map { ($0.lowerBound + offset)..<($0.upperBound + offset) }
                offset += bn.shape.n * bn.shape.spatial
                leafStarts.append(concatenated.count)
            }
            return concatenated == whole.partialRanges(backward: backward)
                && treesAgree(leafStarts, 0, locals.count)
        }
        return SingleProcessEquivalence(forward: agrees(backward: false), backward: agrees(backward: true))
    }

    /// Whether the tree over ranks lo..<hi (rank r's blocks are leaves
    /// `starts[r] ..< starts[r + 1]`) splits, at every node, where the tree over
    /// those blocks splits.
    private static func treesAgree(_ starts: [Int], _ lo: Int, _ hi: Int) -> Bool {
        guard hi - lo > 1 else { return true }
        let mid = lo + (hi - lo) / 2
        let blockLo = starts[lo], blockHi = starts[hi]
        return starts[mid] == blockLo + (blockHi - blockLo) / 2
            && treesAgree(starts, lo, mid) && treesAgree(starts, mid, hi)
    }
}
