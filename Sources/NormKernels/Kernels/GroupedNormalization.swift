/// The shared engine of InstanceNorm, GroupNorm and AdaIN: statistics per
/// (sample n, group g of `groupSize` consecutive channels), normalization with
/// one coefficient per (n, c).
///
/// - NCHW: a group's channels are one contiguous run of groupSize·H·W values
///   (rows geometry, unit = n·G + g); the output pass walks its H·W-long channel runs.
/// - NHWC: each sample is an H·W × C matrix (columns geometry); each row
///   block's channel moments become its groups' moments at once
///   (`Moments.equalCounts`), which are merged down the row blocks in a fixed tree.
///
/// `finalize(groupSlot, moments)` runs once per (n, g) (slot n·G + g) and must
/// fill `table` for slots n·C + g·groupSize ..< n·C + (g + 1)·groupSize before
/// that group is applied. With `output` nil only statistics are computed.
func groupedNormalize(
    shape: TensorShape, groupSize: Int, input x: UnsafePointer<Float>, output y: UnsafeMutablePointer<Float>?,
    table: CoefficientTable?, threading: Threading, finalize: (Int, Moments) -> Void
) {
    let groups = shape.c / groupSize
    if groupsUseColumns(shape) {
        let g = ColumnsGeometry(matrices: shape.n, rows: shape.spatial, columns: shape.c)
        g.reduceThenApply(x, groupSize: groupSize, threading: threading,
            finalize: { n, range, moments in for group in range { finalize(n * groups + group, moments[group]) } },
            apply: { n, first, rows in
                if let y, let table { table.applyColumns(x, y, matrix: n, geometry: g, first: first, rows: rows, relu: false) }
            })
    } else {
        let length = groupSize * shape.spatial
        let g = RowsGeometry(units: shape.n * groups, segmentLength: length, unitStride: length)
        g.reduceThenApply(x, statistic: .moments, threading: threading,
            finalize: finalize,
            apply: { block in
                if let y, let table { table.applyRuns(x, y, block, run: shape.spatial, runsPerSegment: groupSize, relu: false) }
            })
    }
}

func groupedPlan(shape: TensorShape, groupSize: Int, threading: Threading) -> PlanDescription {
    if groupsUseColumns(shape) {
        return ColumnsGeometry(matrices: shape.n, rows: shape.spatial, columns: shape.c).plan(threading: threading)
    }
    let length = groupSize * shape.spatial
    return RowsGeometry(units: shape.n * (shape.c / groupSize), segmentLength: length, unitStride: length)
        .plan(threading: threading)
}

/// Whether the grouped kernels reduce NHWC samples down their columns. With
/// H·W = 1 both layouts are the same memory and every (n, g) group is one
/// contiguous run of C/G values: the rows geometry then takes it (the columns
/// geometry would see N matrices of a single row; GroupNorm on [4096, 1024]
/// ran 60× slower that way).
func groupsUseColumns(_ shape: TensorShape) -> Bool {
    shape.layout == .nhwc && shape.spatial > 1
}
