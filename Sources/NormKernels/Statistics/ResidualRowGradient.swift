// The residual step of the residual LayerNorm/RMSNorm backward
// (`RowNormalization+Residual.swift`):
//
//     dx[r, i] += ds[r, i]                 (the upstream gradient of s, when given)
//     d bias[i] = Σ_r dx[r, i]             (when wanted)
//
// Column sums go in Float64 per row block of the backward plan (rows in
// order), and the blocks merge in `RowTree`'s fixed tree: the same bits for any
// thread count, and whether a block is finished right after the engine wrote
// its dx (`BlockwiseRowBackward`) or in a pass of its own (`wholeTensor`).

extension Double: TreeMergeable {
    static var identity: Double { 0 }
    @inline(__always) static func combine(_ earlier: Double, _ later: Double) -> Double { earlier + later }
}

//
// 16-bit tensors: dx is the engine's dx as stored (rounded once to the element
// type), ds is added in Float32 and the total rounded once more — the two
// roundings of our unfused sequence and of PyTorch's autograd, which adds the
// two 16-bit gradients of s — and d bias sums the stored dx, widened.

enum ResidualRowGradient {
    /// `rows` rows of a block: dx += ds (when given), and, with `sums`, their
    /// column sums of dx added into `sums[0 ..< D]` (zeroed by the caller at the
    /// block's start; a block may come in pieces of rows, in order: the same sums).
    static func block<E: NormElement>(_ dx: UnsafeMutablePointer<E>, _ ds: UnsafePointer<E>?, rows: Int,
                                      features D: Int, sums: UnsafeMutablePointer<Double>?) {
        guard let sums else {
            if let ds { addGradient(dx, ds, rows * D) }
            return
        }
        for r in 0..<rows {
            if let ds {
                accumulate(dx + r * D, ds + r * D, sums, D, AddsGradient.self)
            } else {
                accumulate(dx + r * D, nil, sums, D, KeepsGradient.self)
            }
        }
    }

    /// `block` with the engine's dx in a scratch: `dx = src (+ ds)` written with
    /// non-temporal stores, and the same column sums (of dx as stored; `sums`
    /// zeroed by the caller, as for `block`).
    static func streamBlock<E: NormElement>(_ src: UnsafePointer<E>, _ ds: UnsafePointer<E>?,
                                            into dx: UnsafeMutablePointer<E>, rows: Int, features D: Int,
                                            sums: UnsafeMutablePointer<Double>?) {
        for r in 0..<rows {
            let o = r * D
            switch (ds, sums) {
            case let (ds?, sums?): streamRow(src + o, ds + o, dx + o, D, sums, AddsGradient.self)
            case let (nil, sums?): streamRow(src + o, nil, dx + o, D, sums, KeepsGradient.self)
            case let (ds?, nil): streamRow(src + o, ds + o, dx + o, D, nil, AddsGradient.self)
            case (nil, nil): streamRow(src + o, nil, dx + o, D, nil, KeepsGradient.self)
            }
        }
    }

    /// One row of `streamBlock`.
    @inline(__always)
    private static func streamRow<E: NormElement, U: GradientUpdate>(
        _ src: UnsafePointer<E>, _ ds: UnsafePointer<E>?, _ dx: UnsafeMutablePointer<E>,
        _ n: Int, _ sums: UnsafeMutablePointer<Double>?, _: U.Type
    ) {
        @inline(__always) func scalar(_ i: Int) {
            dx[i] = U.adds ? E.narrow(E.widen(src[i]) + E.widen(ds![i])) : src[i]
            sums?[i] += Double(E.widen(dx[i]))
        }
        var i = 0
        let head = StreamingStore.prologue(dx, n)
        while i < head { scalar(i); i += 1 }
        while i + 8 <= n {
            var v = E.load8(src + i)
            if U.adds { v = roundedThrough(E.self, v + E.load8(ds! + i)) }
            StreamingStore.store(v, dx + i)
            if let sums { store8(load8(sums + i) + widened(v), sums + i) }
            i += 8
        }
        while i < n { scalar(i); i += 1 }
    }

    /// d bias[c] for c in `columns`: the tree merge of the blocks' sums.
    static func merge(_ partials: UnsafePointer<Double>, blocks: Int, features D: Int, columns: Range<Int>,
                      into gradBias: UnsafeMutablePointer<Float>) {
        RowTree.forEachColumn(partials, stride: D, rows: blocks, columns: columns) { c, sum in gradBias[c] = Float(sum) }
    }

    /// The step as a pass of its own over the whole tensor, in the plan's row
    /// blocks; the blocks' column sums in `workspace`.
    static func wholeTensor<E: NormElement>(dx: UnsafeMutablePointer<E>, ds: UnsafePointer<E>?, plan: RowBackwardPlan,
                            gradBias: UnsafeMutablePointer<Float>?, workspace: Arena) {
        guard ds != nil || gradBias != nil else { return }
        let D = plan.features, perBlock = plan.rowBlock, blocks = plan.rowBlocks
        let partials: UnsafeMutablePointer<Double>? = gradBias != nil ? workspace.take(Double.self, count: blocks * D) : nil
        let chunk = RowTree.columnChunk
        let phases: InlineArray<2, Parallel.Phase> = [
            Parallel.Phase(count: blocks, elementsPerItem: perBlock * D),
            Parallel.Phase(count: gradBias != nil ? (D + chunk - 1) / chunk : 0, elementsPerItem: blocks * chunk)]
        Parallel.forEach(phases: phases, threading: plan.threading) { phase, range in
            if phase == 0 {
                for k in range {
                    let o = k * perBlock * D
                    partials?.advanced(by: k * D).initialize(repeating: 0, count: D)
                    block(dx + o, ds.map { $0 + o }, rows: min(perBlock, plan.rows - k * perBlock), features: D,
                          sums: partials.map { $0 + k * D })
                }
            } else {
                merge(partials!, blocks: blocks, features: D,
                      columns: (range.lowerBound * chunk)..<min(D, range.upperBound * chunk), into: gradBias!)
            }
        }
    }

    /// `dx[i] += ds[i]` for i < n.
    private static func addGradient<E: NormElement>(_ dx: UnsafeMutablePointer<E>, _ ds: UnsafePointer<E>, _ n: Int) {
        var i = 0
        while i + 8 <= n { E.store8(E.load8(dx + i) + E.load8(ds + i), dx + i); i += 8 }
        while i < n { dx[i] = E.narrow(E.widen(dx[i]) + E.widen(ds[i])); i += 1 }
    }

    /// One row: dx (+= ds), then `sums[i] += Double(dx[i])`.
    @inline(__always)
    private static func accumulate<E: NormElement, U: GradientUpdate>(
        _ dx: UnsafeMutablePointer<E>, _ ds: UnsafePointer<E>?, _ sums: UnsafeMutablePointer<Double>,
        _ n: Int, _: U.Type
    ) {
        var i = 0
        while i + 8 <= n {
            var v = E.load8(dx + i)
            // The sum of the value as stored (16-bit: rounded, read back from L1).
            if U.adds {
                v += E.load8(ds! + i)
                E.store8(v, dx + i)
                if E.self != Float.self { v = E.load8(dx + i) }
            }
            store8(load8(sums + i) + widened(v), sums + i)
            i += 8
        }
        while i < n {
            if U.adds { dx[i] = E.narrow(E.widen(dx[i]) + E.widen(ds![i])) }
            sums[i] += Double(E.widen(dx[i]))
            i += 1
        }
    }
}

/// Whether a row of the residual step adds ds into dx, as a type (decided once per block).
private protocol GradientUpdate { static var adds: Bool { get } }
private enum AddsGradient: GradientUpdate { static var adds: Bool { true } }
private enum KeepsGradient: GradientUpdate { static var adds: Bool { false } }
