// The row engine's forward with a fused prologue and epilogue (issue 21):
//
//     residual LayerNorm / RMSNorm:  s = (x + residual) + bias,  y = norm(s)·γ (+ β)
//     RMSNorm × gate:                 y = (rms(x)·γ) ⊙ gate
//
// The plan is the plain kernel's `RowPlan`, and each strategy below is its plain
// twin (`RowNormalization.swift`) with two type parameters resolved once at the
// strategy's entry, never per element: a `FusedRowSource`, which yields the
// values a unit normalizes in the element type (x in place, or the sum formed
// as x and the residual are loaded), and a `FusedRowEpilogue` (the gate's
// multiply, the SiLU, or nothing).
//
// The sum of a unit, or of one block of it, is formed in an L1/L2 scratch of
// the element type (or straight into the `sum` output, which the caller wants
// anyway) as the unit is read for its statistics; the output pass reads it
// back from cache, or — in the rows geometry, whose output pass comes after a
// whole batch — re-forms it from x and the residual (or reads the written
// sum). No pass over memory is added: x and the residual are read where the
// plain kernel reads x.
//
// The values normalized are s rounded once to the element type (Float32: s
// itself), exactly what the `sum` output holds, and they go through the plain
// kernel's own microkernels (`TinyUnits`, `BlockMoments`, the same
// `AffineCoefficients` and output arithmetic). So the fused forward equals our
// unfused sequence — s = x + r (+ b) in the element type, then the plain
// forward on s, then `y ⊙ gate` — bit for bit, for any thread count.

import CNormSupport

/// Where a fused strategy gets the values of a unit, in the element type
/// `Value` its microkernels read (widened exactly on load, as the plain
/// 16-bit kernels read x): x itself, or the sum as stored.
protocol FusedRowSource {
    associatedtype Value: NormElement
    /// The values of positions `o ..< o + n` of the normalized tensor, which are
    /// positions `c ..< c + n` of their row (for the per-feature bias): in
    /// memory, or formed into `scratch` (room for `n` values). `statistics`: the
    /// unit's first read (the one that writes the `sum` output).
    func values(_ o: Int, _ n: Int, column c: Int, scratch: UnsafeMutablePointer<Value>, statistics: Bool)
        -> UnsafePointer<Value>
}

/// x itself (the gate's forward, GroupNorm + SiLU's feature vectors), read in
/// place in its own type. (Widening 16-bit rows into a Float32 scratch first
/// cost a store and a load per value: the 16-bit gate ran 2.8–3.5× the plain
/// 16-bit RMSNorm and slower than our unfused sequence;
/// docs/data/2026-12-07-fused16-rows/summary.md.)
struct PlainRows<E: NormElement>: FusedRowSource {
    typealias Value = E
    let x: UnsafePointer<E>

    @inline(__always)
    func values(_ o: Int, _ n: Int, column c: Int, scratch: UnsafeMutablePointer<E>, statistics: Bool)
        -> UnsafePointer<E> {
        x + o
    }
}

/// The bias of the residual add, as a type so that sums without one compile
/// without the load and add.
protocol AddedBias {
    func add(_ v: F8, _ c: Int) -> F8
    func add(_ v: Float, _ c: Int) -> Float
    /// The bias from column `c` on, for a C loop (nil: none).
    func pointer(_ c: Int) -> UnsafePointer<Float>?
}

struct NoAddedBias: AddedBias {
    @inline(__always) func add(_ v: F8, _ c: Int) -> F8 { v }
    @inline(__always) func add(_ v: Float, _ c: Int) -> Float { v }
    @inline(__always) func pointer(_ c: Int) -> UnsafePointer<Float>? { nil }
}

struct FeatureBias: AddedBias {
    let base: UnsafePointer<Float>
    @inline(__always) func add(_ v: F8, _ c: Int) -> F8 { v + load8(base + c) }
    @inline(__always) func add(_ v: Float, _ c: Int) -> Float { v + base[c] }
    @inline(__always) func pointer(_ c: Int) -> UnsafePointer<Float>? { base + c }
}

/// s = (x + r) + b in Float32, rounded once to `E`; written to `sum` when given
/// (else to the scratch), and read from there in `E` like any x.
struct ResidualRows<E: NormElement, B: AddedBias>: FusedRowSource {
    typealias Value = E
    let x: UnsafePointer<E>
    let residual: UnsafePointer<E>
    let bias: B
    let sum: UnsafeMutablePointer<E>?

    @inline(__always)
    func values(_ o: Int, _ n: Int, column c: Int, scratch: UnsafeMutablePointer<E>, statistics: Bool)
        -> UnsafePointer<E> {
        // The output pass of the rows geometry: the sum is written (and x or
        // the residual may already be overwritten by it).
        if !statistics, let sum { return UnsafePointer(sum + o) }
        let x = self.x + o, r = residual + o
        let dst = sum.map { $0 + o } ?? scratch
        var i = 0
        if E.self == BFloat16.self && n >= 16 && BFloat16Hardware.available {
            // BFloat16 rounded by AVX-512 BF16 (`nk_bf16_hw_residual_sum`: the
            // loop below, prefetches included, in C; same bits), as the output
            // loop rounds (`fusedRowOutput`).
            let whole = n & ~15
            nk_bf16_hw_residual_sum(UnsafeRawPointer(x).assumingMemoryBound(to: UInt16.self),
                                    UnsafeRawPointer(r).assumingMemoryBound(to: UInt16.self), bias.pointer(c),
                                    UnsafeMutableRawPointer(dst).assumingMemoryBound(to: UInt16.self), whole)
            i = whole
        }
        // One prefetch of x and of the residual per cache line, a DRAM latency
        // ahead (`ShiftedRowSums.prefetchBytes`, as the plain BFloat16 row
        // loop): with ~19 operations per 8 values of a 16-bit type the
        // out-of-order window held only a few lines of each stream, and the
        // 16-bit sum ran slower than Float32's twice the bytes
        // (docs/PERFORMANCE.md, "Fused residual rows: a prefetch ahead").
        let line = 64 / MemoryLayout<E>.stride, ahead = ShiftedRowSums.prefetchBytes / MemoryLayout<E>.stride
        // scalar math: s = E((x + r) + b). Each vector is read before it is
        // written, so the sum may be x or the residual (in place).
        while i + 8 <= n {
            if i & (line - 1) == 0 { nk_prefetch(x + i + ahead); nk_prefetch(r + i + ahead) }
            E.store8(bias.add(E.load8(x + i) + E.load8(r + i), c + i), dst + i)
            i += 8
        }
        while i < n { dst[i] = E.narrow(bias.add(E.widen(x[i]) + E.widen(r[i]), c + i)); i += 1 }
        return UnsafePointer(dst)
    }
}

/// What a fused output loop does after the affine: the gate's multiply, or nothing.
/// `o` is the value's offset in the tensor.
protocol FusedRowEpilogue {
    func apply(_ v: F8, _ o: Int) -> F8
    func apply(_ v: Float, _ o: Int) -> Float
    /// BFloat16 outputs rounded by AVX-512 BF16 (`fusedRowOutput`): what the
    /// Swift loop leaves in the Float32 block for `roundBFloat16` (default:
    /// `apply` whole).
    func beforeHardwareRounding(_ v: F8, _ o: Int) -> F8
    /// The rest of `apply` and the rounding of `count` values (a multiple of
    /// 16) from the block `z` to BFloat16 at `dst`, in C (default:
    /// `nk_bf16_hw_narrow`). Only where `BFloat16Hardware.available`.
    func roundBFloat16(_ z: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt16>, _ count: Int, at o: Int,
                       streaming: Bool)
}

extension FusedRowEpilogue {
    @inline(__always) func beforeHardwareRounding(_ v: F8, _ o: Int) -> F8 { apply(v, o) }
    @inline(__always)
    func roundBFloat16(_ z: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt16>, _ count: Int, at o: Int,
                       streaming: Bool) {
        nk_bf16_hw_narrow(z, dst, count, streaming ? 1 : 0)
    }
}

struct NoEpilogue: FusedRowEpilogue {
    @inline(__always) func apply(_ v: F8, _ o: Int) -> F8 { v }
    @inline(__always) func apply(_ v: Float, _ o: Int) -> Float { v }
}

/// z · gate[o]: one Float32 multiply of the RMSNorm output z as the plain
/// kernel stores it (16-bit: z rounded once to `E` first, as our unfused
/// sequence and PyTorch's `rms_norm(x) * gate` hold it; Float32: z itself).
struct GateEpilogue<E: NormElement>: FusedRowEpilogue {
    let gate: UnsafePointer<E>
    @inline(__always) func apply(_ v: F8, _ o: Int) -> F8 { roundedThrough(E.self, v) * E.load8(gate + o) }
    @inline(__always) func apply(_ v: Float, _ o: Int) -> Float { E.widen(E.narrow(v)) * E.widen(gate[o]) }

    /// BFloat16: z's rounding, the multiply and the output's rounding all in
    /// `nk_bf16_hw_gate` (the same operations).
    @inline(__always) func beforeHardwareRounding(_ v: F8, _ o: Int) -> F8 {
        E.self == BFloat16.self ? v : apply(v, o)
    }

    @inline(__always)
    func roundBFloat16(_ z: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt16>, _ count: Int, at o: Int,
                       streaming: Bool) {
        if E.self == BFloat16.self {
            nk_bf16_hw_gate(z, UnsafeRawPointer(gate + o).assumingMemoryBound(to: UInt16.self), dst, count,
                            streaming ? 1 : 0)
        } else {
            nk_bf16_hw_narrow(z, dst, count, streaming ? 1 : 0)
        }
    }
}

/// `v` rounded to `E` and widened back (Float32: `v`), in registers
/// (BFloat16: in the 32-bit lanes, `nk_bf16_round_widen8`, the same bits).
@inline(__always)
func roundedThrough<E: NormElement>(_: E.Type, _ v: F8) -> F8 {
    if E.self == Float.self { return v }
    if E.self == BFloat16.self { return nk_bf16_round_widen8(v) }
    var eight = (E.narrow(0), E.narrow(0), E.narrow(0), E.narrow(0), E.narrow(0), E.narrow(0), E.narrow(0),
                 E.narrow(0))
    return withUnsafeMutableBytes(of: &eight) { raw in
        let p = raw.baseAddress!.assumingMemoryBound(to: E.self)
        E.store8(v, p)
        return E.load8(p)
    }
}

/// No γ and no β: the affine is the identity (`Apply.elementwise`'s `(nil, nil)` case).
struct NoElementAffine: ElementAffine {
    var gammaOperand: UnsafePointer<Float>? { nil }
    var betaOperand: UnsafePointer<Float>? { nil }
    @inline(__always) func apply(_ v: F8, _ i: Int) -> F8 { v }
    @inline(__always) func apply(_ v: Float, _ i: Int) -> Float { v }
}

/// `dst[i] = E(epi(((src[i] − p)·r + t)·γ[i] + β[i], o + i))`: `Apply.elementwise`'s
/// arithmetic on values of the source's type (widened exactly on load), then the epilogue.
@inline(__always)
func fusedRowOutput<V: NormElement, E: NormElement, G: FusedRowEpilogue>(
    _ src: UnsafePointer<V>, _ dst: UnsafeMutablePointer<E>, _ n: Int, _ k: AffineCoefficients,
    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, _ epilogue: G, at o: Int, streaming: Bool
) {
    @inline(__always) func run<A: ElementAffine>(_ a: A) {
        if streaming {
            fusedRowOutput(src, dst, n, k, a, epilogue, o, StreamingStore.self)
        } else {
            fusedRowOutput(src, dst, n, k, a, epilogue, o, CachedStore.self)
        }
    }
    switch (gamma, beta) {
    case (nil, nil): run(NoElementAffine())
    case let (g?, b?): run(GammaBeta(gamma: g, beta: b))
    case let (g?, nil): run(GammaOnly(gamma: g))
    case let (nil, b?): run(BetaOnly(beta: b))
    }
}

@inline(__always)
private func fusedRowOutput<V: NormElement, E: NormElement, A: ElementAffine, G: FusedRowEpilogue, S: VectorStore>(
    _ src: UnsafePointer<V>, _ dst: UnsafeMutablePointer<E>, _ n: Int, _ k: AffineCoefficients,
    _ a: A, _ g: G, _ o: Int, _: S.Type
) {
    let p = F8(repeating: k.pivot), s = F8(repeating: k.scale), t = F8(repeating: k.shift)
    @inline(__always) func scalar(_ i: Int) {
        dst[i] = E.narrow(g.apply(a.apply(muladd(V.widen(src[i]) - k.pivot, k.scale, k.shift), i), o + i))
    }
    var i = 0
    let head = S.prologue(dst, n)
    while i < head { scalar(i); i += 1 }
    if E.self == BFloat16.self && n - i >= fusedRoundingMinimum && BFloat16Hardware.available {
        // BFloat16 rounded by AVX-512 BF16, as the plain row kernels round
        // (`nk_bf16_hw_elementwise`): blocks of Float32 results in an L1 buffer,
        // then one C call per block. The integer rounding of `S.store` was
        // about a third of the loop's vector operations. Same bits.
        let out = UnsafeMutableRawPointer(dst).assumingMemoryBound(to: UInt16.self)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: fusedRoundingBlock) { buffer in
            let z = buffer.baseAddress!
            while n - i >= 16 {
                let m = min(fusedRoundingBlock, (n - i) & ~15)
                var j = 0
                while j < m {
                    store8(g.beforeHardwareRounding(a.apply(muladd(V.load8(src + i + j) - p, s, t), i + j),
                                                    o + i + j), z + j)
                    j += 8
                }
                g.roundBFloat16(z, out + i, m, at: o + i, streaming: S.streams)
                i += m
            }
        }
    }
    while i + 8 <= n {
        // scalar math: y = (((s − p)·r + t)·γ + β) ⊙ gate
        S.store(g.apply(a.apply(muladd(V.load8(src + i) - p, s, t), i), o + i), dst + i)
        i += 8
    }
    while i < n { scalar(i); i += 1 }
}

/// Values per C call of the BFloat16 hardware rounding in `fusedRowOutput`:
/// 2 KiB of Float32 results, written and read back in L1.
private let fusedRoundingBlock = 512

/// Shortest row (values) that `fusedRowOutput` rounds in C: on GroupNorm +
/// SiLU's feature vectors (rows of 16 values, one call each) the buffer and
/// the call took 2.5–3× the row's time (docs/data/2026-12-07-fusedhw-zen5/).
private let fusedRoundingMinimum = 128

/// The forward of a row plan with a fused source and epilogue (see the top of
/// this file); returns per-unit mean and 1/σ of the normalized values (the sum).
/// `streaming`: the caller's store decision for y (`StreamingStore` writes
/// eight values per store: 32 bytes of Float, 16 of a 16-bit type).
func normalizeRowsFused<E: NormElement, L: FusedRowSource, G: FusedRowEpilogue>(
    _ plan: RowPlan, _ source: L, _ y: UnsafeMutablePointer<E>, epsilon: Float,
    gamma: UnsafePointer<Float>?, beta: UnsafePointer<Float>?, _ epilogue: G, streaming: Bool
) -> SavedStatistics {
    switch plan.strategy {
    case .eightPerVector:
        return fusedEightRowsPerVector(plan, source, y, epsilon, gamma, beta, epilogue, streaming)
    case .rowByRow:
        return fusedRowByRow(plan, source, y, epsilon, gamma, beta, epilogue, streaming)
    case .geometry(let geometry):
        return fusedRowsGeometry(plan, geometry, source, y, epsilon, gamma, beta, epilogue, streaming)
    }
}

/// `normalizeEightRowsPerVector` fused: 8 rows' values (formed in an L1 scratch
/// unless they are x itself), their statistics in the lanes of a vector, then
/// each row's outputs.
private func fusedEightRowsPerVector<E: NormElement, L: FusedRowSource, G: FusedRowEpilogue>(
    _ plan: RowPlan, _ source: L, _ y: UnsafeMutablePointer<E>, _ eps: Float,
    _ gamma: UnsafePointer<Float>?, _ beta: UnsafePointer<Float>?, _ epilogue: G, _ streaming: Bool
) -> SavedStatistics {
    let rows = plan.units, features = plan.length
    let centered = plan.statistic == .moments
    /// Groups of eight rows of `chunk`: their values (formed in `formed` unless
    /// they are x itself), Float32 rows for `TinyUnits` (16-bit ones widened
    /// into `wide`), the statistics in the lanes of a vector, each row's outputs.
    @inline(__always)
    func eightRows(_ formed: UnsafeMutablePointer<L.Value>, _ wide: UnsafeMutablePointer<Float>,
                   m8: UnsafeMutablePointer<Moments>, _ chunk: Range<Int>,
                   _ meanBase: UnsafeMutablePointer<Double>, _ invBase: UnsafeMutablePointer<Double>) {
        for first in stride(from: chunk.lowerBound, to: chunk.upperBound, by: 8) {
            let count = min(8, chunk.upperBound - first)
            // Row k's values are at rows + k·features (in x, the sum or a scratch).
            var rows = UnsafePointer(wide)
            for k in 0..<count {
                let p = source.values((first + k) * features, features, column: 0,
                                      scratch: formed + k * features, statistics: true)
                if L.Value.self != Float.self {
                    widen(p, into: wide + k * features, features)
                } else if k == 0 {
                    rows = UnsafeRawPointer(p).assumingMemoryBound(to: Float.self)
                }
            }
            if centered {
                TinyUnits.moments8(rows, first: 0, last: count - 1, length: features, into: m8)
            } else {
                TinyUnits.meanSquare8(rows, first: 0, last: count - 1, length: features, into: m8)
            }
            for u in first..<(first + count) {
                let k = rowCoefficients(m8[u - first], centered: centered, eps, mean: meanBase + u,
                                        invStd: invBase + u)
                let o = u * features, a = plan.affineOffset(u)
                fusedRowOutput(rows + (u - first) * features, y + o, features, k,
                               gamma: gamma.map { $0 + a }, beta: beta.map { $0 + a }, epilogue, at: o,
                               streaming: streaming)
            }
        }
    }
    return SavedStatistics.filling(count: rows) { meanBase, invBase in
        ChunkSchedule.forEachChunk(units: rows, valuesPerUnit: features, threading: plan.threading) { chunk in
            withScratch(of: Moments.self, capacity: 8) { eight in
                // Eight short rows are read across (position by position) by
                // `TinyUnits`, so 16-bit rows are widened into a Float32 scratch
                // first: a scalar widening per value there cost more (GroupNorm +
                // SiLU on 16-bit feature vectors, 0.71–0.94× when read in place).
                withScratch(of: L.Value.self, capacity: 8 * features) { formed in
                    withScratch(of: Float.self, capacity: 8 * features) { wide in
                        eightRows(formed.baseAddress!, wide.baseAddress!, m8: eight.baseAddress!, chunk, meanBase, invBase)
                    }
                }
            }
        }
    }
}

/// `normalizeRowByRow` fused: each row's values formed once (scratch or the sum
/// output), its statistics, then its outputs while the row is in L1/L2.
private func fusedRowByRow<E: NormElement, L: FusedRowSource, G: FusedRowEpilogue>(
    _ plan: RowPlan, _ source: L, _ y: UnsafeMutablePointer<E>, _ eps: Float,
    _ gamma: UnsafePointer<Float>?, _ beta: UnsafePointer<Float>?, _ epilogue: G, _ streaming: Bool
) -> SavedStatistics {
    let rows = plan.units, n = plan.length
    return SavedStatistics.filling(count: rows) { meanBase, invBase in
        @inline(__always) func sweep(_ chunk: Range<Int>, _ scratch: UnsafeMutablePointer<L.Value>, centered: Bool) {
            for u in chunk {
                let row = source.values(u * n, n, column: 0, scratch: scratch, statistics: true)
                let k = rowCoefficients(row, n, centered: centered, eps, mean: meanBase + u, invStd: invBase + u)
                let a = plan.affineOffset(u)
                fusedRowOutput(row, y + u * n, n, k, gamma: gamma.map { $0 + a }, beta: beta.map { $0 + a },
                               epilogue, at: u * n, streaming: streaming)
            }
        }
        ChunkSchedule.forEachChunk(units: rows, valuesPerUnit: n, chunk: ChunkSchedule.rowChunk(length: n),
                                   threading: plan.threading) { chunk in
            // A row of up to 64 KiB: from the thread's scratch arena, which keeps it
            // from one call to the next (a warm call does not touch the heap).
            withScratch(of: L.Value.self, capacity: n) { buffer in
                let scratch = buffer.baseAddress!
                if plan.statistic == .moments { sweep(chunk, scratch, centered: true) } else { sweep(chunk, scratch, centered: false) }
            }
        }
    }
}

/// `normalizeRowsGeometry` fused: each block's values formed in an L1 scratch
/// for its partial, and again (or read from the written sum) for its outputs.
private func fusedRowsGeometry<E: NormElement, L: FusedRowSource, G: FusedRowEpilogue>(
    _ plan: RowPlan, _ geometry: RowsGeometry, _ source: L, _ y: UnsafeMutablePointer<E>, _ eps: Float,
    _ gamma: UnsafePointer<Float>?, _ beta: UnsafePointer<Float>?, _ epilogue: G, _ streaming: Bool
) -> SavedStatistics {
    let units = geometry.units
    let centered = plan.statistic == .moments
    let workspace = plan.workspace.take()
    defer { plan.workspace.recycle(workspace) }
    let mean = SlotBuffer(count: units, initial: 0.0, in: workspace)
    let invStd = SlotBuffer(count: units, initial: 0.0, in: workspace)
    let table = CoefficientTable(count: units, in: workspace)
    let blockLength = geometry.blockLength
    geometry.reduceThenApply(
        threading: plan.threading, workspace: workspace,
        reduce: { b in
            withScratch(of: L.Value.self, capacity: blockLength) { scratch in
                // The rows geometry's own block reduction (one segment per block).
                let p = source.values(b.offset, b.count, column: b.start, scratch: scratch.baseAddress!, statistics: true)
                return centered
                    ? BlockMoments.segmented(p, length: b.count, stride: geometry.segmentStride, segments: 1)
                    : Moments.empty.merged(with: BlockMoments.meanSquare(p, b.count))
            }
        },
        finalize: { unit, partials in
            let m = Moments.treeMerge(partials)
            if centered {
                mean[unit] = m.mean
                invStd[unit] = inverseStandardDeviation(m.biasedVariance, eps)
                table[unit] = AffineCoefficients(mean: m.mean, invStd: invStd[unit])
            } else {
                invStd[unit] = inverseStandardDeviation(m.mean, eps)
                table[unit] = AffineCoefficients(pivot: 0, scale: Float(invStd[unit]), shift: 0)
            }
        },
        apply: { b in
            withScratch(of: L.Value.self, capacity: blockLength) { scratch in
                let p = source.values(b.offset, b.count, column: b.start, scratch: scratch.baseAddress!,
                                      statistics: false)
                let first = plan.affineOffset(b.unit) + b.start
                fusedRowOutput(p, y + b.offset, b.count, table[b.unit], gamma: gamma.map { $0 + first },
                               beta: beta.map { $0 + first }, epilogue, at: b.offset, streaming: streaming)
            }
        },
        batchBytes: RowsGeometry.forwardBatchBytes(elements: units * geometry.unitElements,
                                                  threads: plan.threading.threads))
    return SavedStatistics(mean: mean.array, invStd: invStd.array)
}
