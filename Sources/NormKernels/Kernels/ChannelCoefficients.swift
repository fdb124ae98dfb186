/// Per-slot `(pivot, scale, shift)` in three Float32 arrays (struct of arrays, so
/// the NHWC pass loads 8 channels' coefficients with one vector load each).
/// A slot is a channel (BatchNorm) or a (sample, channel) pair (InstanceNorm,
/// GroupNorm, AdaIN: slot n·C + c). Workers write disjoint slots.
struct CoefficientTable {
    let pivot: UnsafeMutablePointer<Float>
    let scale: UnsafeMutablePointer<Float>
    let shift: UnsafeMutablePointer<Float>
    let count: Int
    /// Write outputs with non-temporal stores (the plan's `StorePolicy`, checked per call).
    let streaming: Bool

    /// Carved from the call's workspace (valid until the call returns it).
    init(count: Int, streaming: Bool = false, in workspace: Arena) {
        self.count = count
        self.streaming = streaming
        pivot = workspace.take(Float.self, count: count)
        scale = workspace.take(Float.self, count: count)
        shift = workspace.take(Float.self, count: count)
    }

    @inline(__always)
    subscript(slot: Int) -> AffineCoefficients {
        get { AffineCoefficients(pivot: pivot[slot], scale: scale[slot], shift: shift[slot]) }
        nonmutating set {
            pivot[slot] = newValue.pivot
            scale[slot] = newValue.scale
            shift[slot] = newValue.shift
        }
    }

    /// NCHW: applies a rows-geometry block whose segment holds `runsPerSegment`
    /// channel runs of `run` values each; run r of unit u uses slot u·runsPerSegment + r.
    ///
    /// `slotsPerUnit` (default `runsPerSegment`) is 0 when every unit uses the same
    /// slots: BatchNorm inference walks NCHW in memory order, one unit per sample,
    /// with run r of any sample using channel r's coefficients.
    ///
    /// `identity` (same layout as `x`): added to the normalized value before the
    /// ReLU (BatchNorm + add + ReLU).
    func applyRuns<E: NormElement>(_ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>, _ block: RowBlock,
                                   run: Int, runsPerSegment: Int, slotsPerUnit: Int? = nil, relu: Bool,
                                   identity: UnsafePointer<E>? = nil) {
        let slotBase = block.unit * (slotsPerUnit ?? runsPerSegment)
        if run == 1 {
            // One value per channel (H·W = 1): every element has its own slot and
            // the slots are contiguous, so the block is one row of per-column
            // coefficients instead of `count` one-element calls.
            let s = slotBase + block.start
            Apply.columns(x + block.offset, y + block.offset, rows: 1, columns: block.count, stride: block.count,
                          pivot: pivot + s, scale: scale + s, shift: shift + s, relu: relu, streaming: streaming,
                          residual: identity.map { $0 + block.offset })
            return
        }
        let end = block.start + block.count
        /// Positions [from, to) of the block's segment, one `Apply.affine` call per run.
        func runByRun(from: Int, to: Int) {
            var position = from
            var offset = block.offset + (from - block.start)
            while position < to {
                let r = position / run
                let n = min((r + 1) * run, to) - position
                Apply.affine(x + offset, y + offset, n, self[slotBase + r], relu: relu, streaming: streaming,
                             residual: identity.map { $0 + offset })
                position += n
                offset += n
            }
        }
        // Short runs with cached stores: the whole runs of the block in one call
        // (`Apply.shortRuns`, the same bits); a partial run at either end of the
        // block (a thread's share may start or end inside a run) run by run.
        let first = (block.start + run - 1) / run, last = end / run
        if !streaming && run >= Apply.shortRunsMinimum && run < Apply.shortRunsLimit(E.self)
            && first < last {
            runByRun(from: block.start, to: first * run)
            let o = block.offset + (first * run - block.start), s = slotBase + first
            Apply.shortRuns(x + o, y + o, n: run, runs: last - first, pivot: pivot + s, scale: scale + s,
                            shift: shift + s, relu: relu, residual: identity.map { $0 + o })
            runByRun(from: last * run, to: end)
            return
        }
        runByRun(from: block.start, to: end)
    }

    /// NHWC: rows [first, first + rows) of matrix m (C columns), slots m·C ..< m·C + C.
    func applyColumns<E: NormElement>(_ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>,
                                      matrix m: Int, geometry g: ColumnsGeometry, first: Int, rows: Int, relu: Bool,
                                      identity: UnsafePointer<E>? = nil) {
        let offset = m * g.matrixElements + first * g.columns
        let slot = m * g.columns
        Apply.columns(x + offset, y + offset, rows: rows, columns: g.columns, stride: g.columns,
                      pivot: pivot + slot, scale: scale + slot, shift: shift + slot, relu: relu, streaming: streaming,
                      residual: identity.map { $0 + offset })
    }
}

/// 1/√(var + ε) in Float64; ε inside the square root, as PyTorch and ONNX.
@inline(__always)
func inverseStandardDeviation(_ variance: Double, _ epsilon: Float) -> Double {
    1 / (variance + Double(epsilon)).squareRoot()
}

/// Slots of per-unit Float64 results written by workers (each slot by one worker).
struct SlotBuffer<T> {
    let base: UnsafeMutablePointer<T>
    let count: Int
    /// Carved from the call's workspace (valid until the call returns it).
    init(count: Int, initial: T, in workspace: Arena) {
        self.count = count
        base = workspace.take(T.self, count: max(1, count))
        base.initialize(repeating: initial, count: max(1, count))
    }
    @inline(__always) subscript(i: Int) -> T {
        get { base[i] }
        nonmutating set { base[i] = newValue }
    }
    var buffer: UnsafeBufferPointer<T> { UnsafeBufferPointer(start: base, count: count) }
    var array: [T] { Array(buffer) }
}
