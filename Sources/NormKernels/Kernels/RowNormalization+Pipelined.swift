import CNormSupport

/// LayerNorm rows taken one at a time (`RowPlan.Strategy.rowByRow`, moments),
/// pipelined: one loop over the row length sums row u + 2 (`ShiftedRowSums`)
/// and writes the outputs of row u, whose coefficients came from an earlier
/// loop. Measured against the sequential order (statistics of a row, then its
/// outputs; docs/PERFORMANCE.md, "LayerNorm rows: shifted sums"): the
/// statistics' lane chains and the output's loads and stores share the
/// core's pipes instead of taking turns, and the latency of each row's
/// finalization (Float64 lane sums, √, division) overlaps the next loop.
///
/// Each chunk's first two rows are summed on their own; every other row's sums
/// come from the loop that writes the row two before it. Both run the same
/// `ShiftedRowSums.sweep` arithmetic, so a row's statistics, and its outputs
/// (`RowOutputPass`: `Apply.elementwise`'s expressions), are the same bits
/// wherever the chunk boundaries fall: for any thread count.
func normalizeMomentRowsPipelined<E: NormElement>(
    _ plan: RowPlan, _ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>, epsilon eps: Float,
    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, streaming: Bool
) -> SavedStatistics {
    // Rows of whole 8-value groups from an aligned output: every streamed vector
    // is aligned (the plan streams only such outputs; checked again here).
    let stream = streaming && plan.length % 8 == 0 && StreamingStore.isAligned(y)
    if Float16ItemRows.enabled(E.self) && plan.affinePeriod == 1 && plan.length >= 16 && plan.length % 16 == 0 {
        // Float16 rows of whole 16-value steps: each item's whole loop in one C call
        // (`nk_f16_hw_layernorm_rows`, the BFloat16 item loop with Float16 loads and
        // rounding: the same bits as `pipelinedRows` below).
        return pipelinedRowsInC(plan, UnsafeRawPointer(x), UnsafeMutableRawPointer(y), eps, gamma, beta, stream,
                                .float16)
    }
    if BFloat16Pairs.enabled(E.self) && plan.affinePeriod == 1 && plan.length >= 16 {
        return pipelinedBFloat16Rows(plan, UnsafeRawPointer(x).assumingMemoryBound(to: BFloat16.self),
                                     UnsafeMutableRawPointer(y).assumingMemoryBound(to: BFloat16.self), eps,
                                     gamma: gamma, beta: beta, stream)
    }
    switch (gamma, beta) {
    case let (g?, b?):
        return pipelinedRows(plan, x, y, eps, stream) { GammaBeta(gamma: g + $0, beta: b + $0) }
    case let (g?, nil):
        return pipelinedRows(plan, x, y, eps, stream) { GammaOnly(gamma: g + $0) }
    case let (nil, b?):
        return pipelinedRows(plan, x, y, eps, stream) { BetaOnly(beta: b + $0) }
    case (nil, nil):
        return pipelinedRows(plan, x, y, eps, stream) { _ in NoElementAffine() }
    }
}

private func pipelinedRows<E: NormElement, A: ElementAffine>(
    _ plan: RowPlan, _ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>, _ eps: Float, _ streaming: Bool,
    _ affine: (Int) -> A
) -> SavedStatistics {
    streaming
        ? pipelinedRows(plan, x, y, eps, affine, StreamingStore.self)
        : pipelinedRows(plan, x, y, eps, affine, CachedStore.self)
}

private func pipelinedRows<E: NormElement, A: ElementAffine, S: VectorStore>(
    _ plan: RowPlan, _ x: UnsafePointer<E>, _ y: UnsafeMutablePointer<E>, _ eps: Float,
    _ affine: (Int) -> A, _: S.Type
) -> SavedStatistics {
    let n = plan.length
    return pipelinedRows(plan, x, eps) { u, c in
        RowOutputPass(x + u * n, y + u * n, c, affine(plan.affineOffset(u)), S.self)
    }
}

/// BFloat16 rows of LayerNorm (γ and β shared by every row): the same loop
/// with its sums and outputs in pairs (BFloat16PairRows.swift, the same bits),
/// γ and β rearranged once per call for the outputs' sixteen-value steps.
private func pipelinedBFloat16Rows(
    _ plan: RowPlan, _ x: UnsafePointer<BFloat16>, _ y: UnsafeMutablePointer<BFloat16>, _ eps: Float,
    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, _ streaming: Bool
) -> SavedStatistics {
    let n = plan.length, whole = n / 16 * 16
    return withScratch(of: Float.self, capacity: 2 * whole) { scratch in
        let g2 = scratch.baseAddress!, b2 = g2 + whole
        if let gamma { BFloat16Pairs.deinterleave(gamma, into: g2, width: whole) }
        if let beta { BFloat16Pairs.deinterleave(beta, into: b2, width: whole) }
        switch (gamma, beta) {
        case let (g?, b?):
            return pipelinedBFloat16Rows(plan, x, y, eps, GammaBeta(gamma: g, beta: b),
                                         GammaBeta(gamma: g2, beta: b2), streaming)
        case let (g?, nil):
            return pipelinedBFloat16Rows(plan, x, y, eps, GammaOnly(gamma: g), GammaOnly(gamma: g2), streaming)
        case let (nil, b?):
            return pipelinedBFloat16Rows(plan, x, y, eps, BetaOnly(beta: b), BetaOnly(beta: b2), streaming)
        case (nil, nil):
            return pipelinedBFloat16Rows(plan, x, y, eps, NoElementAffine(), NoElementAffine(), streaming)
        }
    }
}

private func pipelinedBFloat16Rows<A: ElementAffine>(
    _ plan: RowPlan, _ x: UnsafePointer<BFloat16>, _ y: UnsafeMutablePointer<BFloat16>, _ eps: Float,
    _ natural: A, _ pairs: A, _ streaming: Bool
) -> SavedStatistics {
    let n = plan.length
    if BFloat16Hardware.available {
        if n % 16 == 0 {
            // Rows of whole 16-value steps: each item's whole loop in one C call.
            return pipelinedRowsInC(plan, UnsafeRawPointer(x), UnsafeMutableRawPointer(y), eps, natural.gammaOperand,
                                    natural.betaOperand, streaming, .bfloat16)
        }
        // AVX-512 BF16: each loop in C, rounded by `vcvtne2ps2bf16` (the same bits).
        if streaming {
            return pipelinedRows(plan, x, eps) { u, c in
                BFloat16HardwareOutput(pairs: BFloat16PairOutput(
                    natural: RowOutputPass(x + u * n, y + u * n, c, natural, StreamingStore.self), pairs: pairs))
            }
        }
        return pipelinedRows(plan, x, eps) { u, c in
            BFloat16HardwareOutput(pairs: BFloat16PairOutput(
                natural: RowOutputPass(x + u * n, y + u * n, c, natural, CachedStore.self), pairs: pairs))
        }
    }
    if streaming {
        return pipelinedRows(plan, x, eps) { u, c in
            BFloat16PairOutput(natural: RowOutputPass(x + u * n, y + u * n, c, natural, StreamingStore.self),
                               pairs: pairs)
        }
    }
    return pipelinedRows(plan, x, eps) { u, c in
        BFloat16PairOutput(natural: RowOutputPass(x + u * n, y + u * n, c, natural, CachedStore.self), pairs: pairs)
    }
}

/// The element types of the C item loops (`nk_bf16_hw_layernorm_rows`, `nk_f16_hw_layernorm_rows`).
enum ItemRowElement {
    case bfloat16, float16
}

/// Where Float16 LayerNorm rows may take the C item loop: this build fuses `muladd` and
/// converts Float16 with F16C (compile-time constants: the C loop's operations are the
/// Swift loop's only then) and the CPU has AVX-512 (`nk_cpu_f16_rows`;
/// `NORMKERNELS_F16_ROWS=never` turns it off).
enum Float16ItemRows {
    @inline(__always)
    static var available: Bool { nk_build_has_fma() != 0 && nk_build_has_f16c() != 0 && nk_cpu_f16_rows() != 0 }

    /// Whether `E` is Float16 and the C item loop may run now.
    @inline(__always)
    static func enabled<E: NormElement>(_: E.Type) -> Bool {
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        return E.self == Float16.self && available
        #else
        return false
        #endif
    }
}

/// What the C item loop needs to hand a row's moments back to Swift.
private struct RowMomentsContext {
    let x: UnsafeRawPointer
    let n: Int
    let eps: Float
    let element: ItemRowElement

    /// `finish` of `pipelinedRows` for row `row`, which the C loop leaves to Swift: mean and 1/σ.
    func moments(_ row: Int, _ pivot: Float, _ sums: ShiftedRowSums.Sums) -> (mean: Double, invStd: Double) {
        let m: (mean: Double, variance: Double)
        switch element {
        case .bfloat16:
            m = ShiftedRowSums.moments(x.assumingMemoryBound(to: BFloat16.self) + row * n, n, pivot: pivot, sums)
        case .float16:
            #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
            m = ShiftedRowSums.moments(x.assumingMemoryBound(to: Float16.self) + row * n, n, pivot: pivot, sums)
            #else
            fatalError("Float16 rows need Float16")
            #endif
        }
        return (m.mean, inverseStandardDeviation(m.variance, eps))
    }
}

/// 16-bit rows of whole 16-value steps (BFloat16 with AVX-512 BF16; Float16 with AVX-512
/// in an F16C + FMA build): `pipelinedRows` below with `BFloat16HardwareOutput` /
/// `RowOutputPass`, each item's whole loop in one C call (`nk_bf16_hw_layernorm_rows`,
/// `nk_f16_hw_layernorm_rows`: one loop, the element kind a constant; the same rows in
/// the same order, each row's pivot, sums, finish and outputs by the same operations,
/// so the same bits). Why: on rows of 768 values ~15 % of the samples sat in the Swift
/// between the per-row C loops (the call, the lane sums, the finish's Float64 chain);
/// in C each row's finish runs in short stages inside the next loop. A row that needs
/// recentring or the Float64 fallback gets its moments from `ShiftedRowSums.moments`
/// through the callback (rare: its first 32 values far from its mean, or sums that
/// overflow Float32).
private func pipelinedRowsInC(
    _ plan: RowPlan, _ x: UnsafeRawPointer, _ y: UnsafeMutableRawPointer, _ eps: Float,
    _ gamma: UnsafePointer<Float>?, _ beta: UnsafePointer<Float>?, _ streaming: Bool, _ element: ItemRowElement
) -> SavedStatistics {
    let rows = plan.units, n = plan.length
    let xw = x.assumingMemoryBound(to: UInt16.self)
    let yw = y.assumingMemoryBound(to: UInt16.self)
    let context = RowMomentsContext(x: x, n: n, eps: eps, element: element)
    let run = element == .float16 ? nk_f16_hw_layernorm_rows : nk_bf16_hw_layernorm_rows
    return withUnsafePointer(to: context) { ctx in
        SavedStatistics.filling(count: rows) { meanBase, invBase in
            let chunkRows = ChunkSchedule.pipelinedRowChunk(rows: rows, length: n)
            ChunkSchedule.forEachChunk(units: rows, valuesPerUnit: n, chunk: chunkRows,
                                       threading: plan.threading) { chunk in
                run(xw, yw, n, chunk.lowerBound, chunk.upperBound, eps, gamma, beta, meanBase, invBase,
                    streaming ? 1 : 0, { context, row, pivot, sum, squares, out in
                        let m = context!.assumingMemoryBound(to: RowMomentsContext.self).pointee
                            .moments(row, pivot, ShiftedRowSums.Sums(sum: sum, squares: squares))
                        out![0] = m.mean
                        out![1] = m.invStd
                    }, UnsafeRawPointer(ctx))
            }
        }
    }
}

/// The pipelined loop; `output(u, c)` writes row u with coefficients c.
@inline(__always)
private func pipelinedRows<E: NormElement, O: RowSweepOutput>(
    _ plan: RowPlan, _ x: UnsafePointer<E>, _ eps: Float, _ output: (Int, AffineCoefficients) -> O
) -> SavedStatistics {
    let rows = plan.units, n = plan.length
    return SavedStatistics.filling(count: rows) { meanBase, invBase in
        /// Mean and 1/σ of row u from its sums, saved, and its output coefficients.
        @inline(__always) func finish(_ u: Int, _ pivot: Float, _ sums: ShiftedRowSums.Sums) -> AffineCoefficients {
            let m = ShiftedRowSums.moments(x + u * n, n, pivot: pivot, sums)
            let r = inverseStandardDeviation(m.variance, eps)
            (meanBase + u).initialize(to: m.mean)
            (invBase + u).initialize(to: r)
            return AffineCoefficients(mean: m.mean, invStd: r)
        }
        // 16-bit rows: longer items (`pipelinedRowChunk`); Float32 rows as before.
        let chunkRows = MemoryLayout<E>.size == 2
            ? ChunkSchedule.pipelinedRowChunk(rows: rows, length: n) : ChunkSchedule.rowChunk(length: n)
        ChunkSchedule.forEachChunk(units: rows, valuesPerUnit: n, chunk: chunkRows,
                                   threading: plan.threading) { chunk in
            guard let first = chunk.first else { return }
            let last = chunk.upperBound - 1
            // Two rows ahead: the loop that writes row u sums row u + 2, and row
            // u + 1's coefficients (from the sums of the previous loop) are formed
            // before that loop, so their chain of Float64 operations (lane sums,
            // division, √) runs while the loop does, not between loops.
            var pivot = ShiftedRowSums.pivot(x + first * n, n)
            var current = finish(first, pivot, ShiftedRowSums.sweep(x + first * n, n, pivot: pivot, NoRowOutput()))
            var sums = ShiftedRowSums.Sums(sum: 0, squares: 0)
            if first < last {
                pivot = ShiftedRowSums.pivot(x + (first + 1) * n, n)
                sums = ShiftedRowSums.sweep(x + (first + 1) * n, n, pivot: pivot, NoRowOutput())
            }
            for u in chunk {
                // `current`: row u's coefficients; `pivot`, `sums`: row u + 1's.
                let next = u < last ? finish(u + 1, pivot, sums) : current
                if u + 2 <= last {
                    pivot = ShiftedRowSums.pivot(x + (u + 2) * n, n)
                    sums = ShiftedRowSums.sweep(x + (u + 2) * n, n, pivot: pivot, output(u, current))
                } else {
                    output(u, current).writeRow(n)
                }
                current = next
            }
        }
    }
}
