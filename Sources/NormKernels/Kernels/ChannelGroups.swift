/// The channel-groups engine of InstanceNorm, GroupNorm and AdaIN on image
/// tensors: statistics per (sample n, group g of `groupSize` consecutive
/// channels), normalization with one coefficient per (n, c).
///
/// - NCHW: a group's channels are one contiguous run of groupSize·H·W values
///   (rows geometry, unit = n·G + g); the output pass walks its H·W-long channel runs.
/// - NHWC: each sample is an H·W × C matrix (columns geometry); each row
///   block's channel moments become its groups' moments at once
///   (`Moments.equalCounts`), which are merged down the row blocks in a fixed tree.
///
/// `ChannelGroupsPlan` fixes the geometries at the descriptor's `init`. The
/// backward is in `ChannelGroups+Backward.swift`.
struct ChannelGroupsPlan: Sendable {
    enum Geometry: Sendable {
        case rows(RowsGeometry)
        case columns(ColumnsGeometry)
    }

    let shape: TensorShape
    let groupSize: Int
    /// The forward's geometry. With H·W = 1 both layouts are the same memory and
    /// every (n, g) group is one contiguous run of C/G values: the rows geometry
    /// then takes it (the columns geometry would see N matrices of a single row;
    /// GroupNorm on [4096, 1024] ran 60× slower that way).
    let forward: Geometry
    /// The backward's geometry: NHWC always on columns (also H·W = 1: the rows
    /// path would cut every channel into one-value segments; GroupNorm sends
    /// H·W = 1 to the row engine, and InstanceNorm and AdaIN cannot train on one
    /// value per channel); NCHW on rows with one segment per channel, so no
    /// block straddles two channels and each block's partial belongs to one (n, c).
    let backward: Geometry
    /// NCHW backward: channels of one block each and whole units per worker, so
    /// a plain loop over the units replaces the geometry's batches (unless the
    /// output streams; see `channelGroupsBackward`).
    let backwardLoopsOverUnits: Bool
    /// The forward's output pass (x + y) and the backward's dx pass (x + dy + dx).
    let store: StorePolicy
    let backwardStore: StorePolicy
    let threading: Threading
    /// Where a call's workspace comes from.
    let workspace = WorkspacePool()

    init(shape: TensorShape, groupSize: Int, threading: Threading) {
        self.shape = shape
        self.groupSize = groupSize
        self.threading = threading
        let groups = shape.c / groupSize
        if shape.layout == .nhwc && shape.spatial > 1 {
            forward = .columns(ColumnsGeometry(matrices: shape.n, rows: shape.spatial, columns: shape.c))
        } else {
            let length = groupSize * shape.spatial
            forward = .rows(RowsGeometry(units: shape.n * groups, segmentLength: length, unitStride: length))
        }
        if shape.isChannelsLast {
            backward = .columns(ColumnsGeometry(matrices: shape.n, rows: shape.spatial, columns: shape.c))
            backwardLoopsOverUnits = false
        } else {
            let g = RowsGeometry(units: shape.n * groups, segments: groupSize, segmentLength: shape.spatial,
                                 unitStride: groupSize * shape.spatial, segmentStride: shape.spatial)
            backward = .rows(g)
            backwardLoopsOverUnits = g.blocksPerSegment == 1 && !g.splitsUnits(threading: threading)
        }
        store = StorePolicy(twoPass: shape.count, threads: threading.threads)
        backwardStore = StorePolicy(backward: shape.count, threads: threading.threads)
    }

    var description: PlanDescription {
        switch forward {
        case .rows(let g): return g.plan(threading: threading)
        case .columns(let g): return g.plan(threading: threading)
        }
    }
}

/// The forward of a channel-groups plan. `finalize(groupSlot, moments)` runs once
/// per (n, g) (slot n·G + g) and must fill `table` for slots
/// n·C + g·groupSize ..< n·C + (g + 1)·groupSize before that group is applied.
/// With `output` nil only statistics are computed. The geometries' partials
/// come from `workspace`.
func normalizeChannelGroups<E: NormElement>(
    _ plan: ChannelGroupsPlan, input x: UnsafePointer<E>, output y: UnsafeMutablePointer<E>?,
    table: CoefficientTable?, workspace: Arena, finalize: (Int, Moments) -> Void
) {
    let shape = plan.shape, groupSize = plan.groupSize, groups = shape.c / groupSize
    switch plan.forward {
    case .columns(let g):
        g.reduceThenApply(x, groupSize: groupSize, threading: plan.threading, workspace: workspace,
            finalize: { n, range, moments in for group in range { finalize(n * groups + group, moments[group]) } },
            apply: { n, first, rows in
                if let y, let table { table.applyColumns(x, y, matrix: n, geometry: g, first: first, rows: rows, relu: false) }
            })
    case .rows(let g):
        g.reduceThenApply(x, statistic: .moments, threading: plan.threading, workspace: workspace,
            finalize: finalize,
            apply: { block in
                if let y, let table { table.applyRuns(x, y, block, run: shape.spatial, runsPerSegment: groupSize, relu: false) }
            })
    }
}
