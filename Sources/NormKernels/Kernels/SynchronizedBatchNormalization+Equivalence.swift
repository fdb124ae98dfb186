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
    /// synchronized step computes the same block partials on the ranks and, when
    /// it can, evaluates the same tree: each rank sends the largest subtrees lying
    /// wholly in its blocks and every rank evaluates the rest of the tree
    /// (docs/SYNCBN.md, "The merge"). The two agree bit for bit exactly when
    /// 1. all ranks have the same C, H, W and layout, and together at least one sample
    ///    (ranks with N = 0 are allowed anywhere); and
    /// 2. the ranks' blocks, placed one after the other, are the blocks of the
    ///    concatenated batch: no block of the whole batch spans a rank boundary,
    ///    and no rank cuts its blocks differently (NCHW with long runs: any split
    ///    at sample boundaries; NHWC and [N, D]: every non-empty rank before the
    ///    last non-empty one holds a multiple of the whole batch's row block).
    ///
    /// The output, dx and dγ/dβ are element-wise functions of the statistics, so
    /// equal statistics give equal outputs. Otherwise the ranks' own merged
    /// partials are merged in a tree over rank order, and the statistics differ
    /// from the single-process ones by the rounding of the blocks' Float32 lanes
    /// (docs/SYNCBN.md, "When results are bitwise identical").
    public static func singleProcessEquivalence(rankShapes: [TensorShape]) -> SingleProcessEquivalence {
        guard !rankShapes.isEmpty else { return SingleProcessEquivalence(forward: false, backward: false) }
        return SingleProcessEquivalence(
            forward: SynchronizedMergePlan(shapes: rankShapes, backward: false).matchesSingleProcess,
            backward: SynchronizedMergePlan(shapes: rankShapes, backward: true).matchesSingleProcess)
    }
}
