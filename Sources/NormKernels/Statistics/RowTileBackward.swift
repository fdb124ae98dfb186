// The LayerNorm/RMSNorm backward tile (also GroupNorm on feature vectors):
// one sweep over a block of rows that writes dx and adds each column's Σdy and
// Σdy·x̂ (dβ, dγ). Short rows have their own one-sweep kernel
// (ShortRowsBackward.swift).

extension BlockGradients {
    /// The LayerNorm/RMSNorm tile: `rows` rows × `columns` columns (row stride
    /// `stride`) of rows `firstRow ..< firstRow + rows`, each row with its own
    /// x̂ coefficients (`xhat`) and dx coefficients (`dxTable`), γ per column.
    /// With `segmentWidth` < `columns` (GroupNorm on feature vectors) each row is
    /// cut into segments of that many columns, segment s of row r using slot
    /// `r·slotsPerRow + firstSlot + s` of both tables; with `rowsPerSlot` = R,
    /// `(r / R)·slotsPerRow + firstSlot + s` (R rows share statistics).
    /// One sweep, rows outer, that
    /// - writes `dx = a·(dy·γ) + (b·(x − pivot) + c)` when `dx` is given, and
    /// - adds each column's Σdy and Σdy·x̂ (dy not scaled by γ: these are dβ and dγ)
    ///   into `columnSums` when given, from Float32 accumulators (`scratch`, 2·columns
    ///   values) flushed into Float64 every `flushRows` rows; a column whose Float32
    ///   partial of those rows is not finite gets their Float64 sums instead
    ///   (`rowsColumnFloat64`: one test per column and flush, and the rows of a flush
    ///   depend only on the tile, so the bits do not depend on the thread count).
    ///   When `dx` is `x` or `dy` (in place), each flush's rows are summed before
    ///   their dx is written, so the redo still reads the inputs.
    /// A column's sums use the same Float32 operations whether it is in a vector or
    /// in the remainder, so they do not depend on how columns are cut into tiles.
    static func rowTile<E: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<E>, dx: UnsafeMutablePointer<E>?,
        gamma: UnsafePointer<Float>?, rows: Int, columns: Int, stride: Int, firstRow: Int,
        xhat: CoefficientTable, dxTable: GradientTable?,
        columnSums: UnsafeMutablePointer<GradientSums>?, scratch: UnsafeMutablePointer<Float>,
        streaming: Bool = false, segmentWidth: Int? = nil, slotsPerRow: Int = 1, firstSlot: Int = 0,
        rowsPerSlot: Int = 1
    ) {
        let slots = RowSlots(width: segmentWidth ?? columns, perRow: slotsPerRow, first: firstSlot, rowsPerSlot: rowsPerSlot)
        // Stream dx only when every row (and segment) starts aligned to 8 values (32
        // bytes, 16 for 16-bit types; see `Apply.columns`).
        if streaming, let dx, stride % 8 == 0, slots.width % 8 == 0 || slots.width >= columns,
           StreamingStore.isAligned(dx) {
            rowTile(x, dy, dx: dx, gamma: gamma, rows: rows, columns: columns, stride: stride, firstRow: firstRow,
                    xhat: xhat, dxTable: dxTable, columnSums: columnSums, scratch: scratch, slots: slots,
                    StreamingStore.self)
        } else {
            rowTile(x, dy, dx: dx, gamma: gamma, rows: rows, columns: columns, stride: stride, firstRow: firstRow,
                    xhat: xhat, dxTable: dxTable, columnSums: columnSums, scratch: scratch, slots: slots,
                    CachedStore.self)
        }
    }

    /// Which table slot each `width`-column segment of a tile row uses.
    struct RowSlots {
        var width: Int
        var perRow: Int
        var first: Int
        var rowsPerSlot: Int
    }

    @inline(__always)
    private static func rowTile<E: NormElement, S: VectorStore>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<E>, dx: UnsafeMutablePointer<E>?,
        gamma: UnsafePointer<Float>?, rows: Int, columns: Int, stride: Int, firstRow: Int,
        xhat: CoefficientTable, dxTable: GradientTable?,
        columnSums: UnsafeMutablePointer<GradientSums>?, scratch: UnsafeMutablePointer<Float>,
        slots: RowSlots, _: S.Type
    ) {
        let accG = scratch, accH = scratch + columns
        /// Slot of the first segment of tile row `row`.
        @inline(__always) func firstSlot(_ row: Int) -> Int {
            let slotRow = slots.rowsPerSlot == 1 ? firstRow + row : (firstRow + row) / slots.rowsPerSlot
            return slotRow * slots.perRow + slots.first
        }
        /// Rows `rows` of the tile: the column sums (`sums`) and/or dx (`write`).
        @inline(__always) func sweep(_ rows: Range<Int>, sums: Bool, write: Bool) {
            for row in rows {
                var j = 0
                var slot = firstSlot(row)
                while j < columns {
                    let w = min(slots.width, columns - j)
                    let o = row * stride + j
                    let h = xhat[slot]
                    let ag = accG + j, ah = accH + j, gj = gamma.map { $0 + j }
                    switch (dx, dxTable, write) {
                    case let (dx?, table?, true):
                        let k = table[slot]
                        if let gj {
                            if sums {
                                tileRow(x + o, dy + o, dx + o, gj, w, h, k, ag, ah, sums: true, write: true, S.self)
                            } else {
                                tileRow(x + o, dy + o, dx + o, gj, w, h, k, ag, ah, sums: false, write: true, S.self)
                            }
                        } else if sums {
                            tileRow(x + o, dy + o, dx + o, nil, w, h, k, ag, ah, sums: true, write: true, S.self)
                        } else {
                            tileRow(x + o, dy + o, dx + o, nil, w, h, k, ag, ah, sums: false, write: true, S.self)
                        }
                    default:
                        let k = GradientCoefficients(pivot: 0, a: 0, b: 0, c: 0)
                        tileRow(x + o, dy + o, nil, nil, w, h, k, ag, ah, sums: true, write: false, S.self)
                    }
                    j += w
                    slot += 1
                }
            }
        }
        // dx over x or dy (in place) with column sums: a chunk's sums first, so that
        // a Float64 redo still reads the inputs, then its dx (same sums, same bits).
        let writes = dx != nil && dxTable != nil
        let split = writes && columnSums != nil
            && (UnsafeRawPointer(dx!) == UnsafeRawPointer(x) || UnsafeRawPointer(dx!) == UnsafeRawPointer(dy))
        var row = 0
        while row < rows {
            let end = min(rows, row + flushRows)
            guard let columnSums else {
                sweep(row..<end, sums: false, write: true)
                row = end
                continue
            }
            accG.update(repeating: 0, count: columns)
            accH.update(repeating: 0, count: columns)
            if split {
                sweep(row..<end, sums: true, write: false)
            } else {
                sweep(row..<end, sums: true, write: writes)
            }
            for j in 0..<columns {
                var part = GradientSums(dy: Double(accG[j]), dyXhat: Double(accH[j]))
                if !part.isFinite {
                    // Float32 overflow (or non-finite inputs): this chunk of the column in Float64.
                    part = rowsColumnFloat64(x + j, dy + j, rows: row..<end, stride: stride) { r in
                        xhat[firstSlot(r) + j / slots.width]
                    }
                }
                columnSums[j] = columnSums[j] + part
            }
            if split { sweep(row..<end, sums: false, write: true) }
            row = end
        }
    }

    /// Σdy and Σdy·x̂ of one column down rows `rows` (row stride `stride`) in
    /// Float64, x̂ = (x − p)·s + t with row r's coefficients `xhat(r)`: the redo of
    /// a Float32 column partial of the row tiles that overflowed.
    @inline(never)
    static func rowsColumnFloat64<E: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<E>, rows: Range<Int>, stride: Int,
        xhat: (Int) -> AffineCoefficients
    ) -> GradientSums {
        var sums = GradientSums.zero
        for r in rows {
            let c = xhat(r), d = Double(E.widen(dy[r * stride]))
            sums.dy += d
            sums.dyXhat += d * ((Double(E.widen(x[r * stride])) - Double(c.pivot)) * Double(c.scale) + Double(c.shift))
        }
        return sums
    }

    @inline(__always)
    private static func tileRow<E: NormElement, S: VectorStore>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<E>, _ dx: UnsafeMutablePointer<E>?,
        _ gamma: UnsafePointer<Float>?, _ columns: Int, _ h: AffineCoefficients, _ k: GradientCoefficients,
        _ accG: UnsafeMutablePointer<Float>, _ accH: UnsafeMutablePointer<Float>, sums: Bool, write: Bool,
        _: S.Type
    ) {
        let p = F8(repeating: h.pivot), s = F8(repeating: h.scale), t = F8(repeating: h.shift)
        let a = F8(repeating: k.a), b = F8(repeating: k.b), c = F8(repeating: k.c), q = F8(repeating: k.pivot)
        @inline(__always) func scalar(_ j: Int) {
            let xv = E.widen(x[j]), d = E.widen(dy[j])
            if sums {
                accG[j] += d
                accH[j] = muladd(d, muladd(xv - h.pivot, h.scale, h.shift), accH[j])
            }
            if write {
                let g = gamma.map { d * $0[j] } ?? d
                dx![j] = E.narrow(muladd(k.a, g, muladd(k.b, xv - k.pivot, k.c)))
            }
        }
        var j = 0
        let head = write ? S.prologue(dx!, columns) : 0
        while j < head { scalar(j); j += 1 }
        // scalar math: x̂ = (x − p)·s + t;  ΣG[j] += dy;  ΣH[j] += dy·x̂;  dx = a·(dy·γ[j]) + (b·(x − p) + c)
        while j + 8 <= columns {
            let xv = E.load8(x + j), d = E.load8(dy + j)
            if sums {
                store8(load8(accG + j) + d, accG + j)
                store8(muladd(d, muladd(xv - p, s, t), load8(accH + j)), accH + j)
            }
            if write {
                let g = gamma.map { d * load8($0 + j) } ?? d
                S.store(muladd(a, g, muladd(b, xv - q, c)), dx! + j)
            }
            j += 8
        }
        while j < columns { scalar(j); j += 1 }
    }
}
