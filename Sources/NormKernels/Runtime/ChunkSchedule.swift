/// How the many-small-units kernels split their work: `TinyUnits` (8 units per
/// vector), short rows one at a time, InstanceNorm NHWC tiny channels. Units go
/// to workers in chunks of `chunk` units, a fixed partition: which units share a
/// chunk does not depend on the thread count, and every unit's result depends only
/// on its own values, so results are the same for any thread count.
enum ChunkSchedule {
    /// Units per parallel work item: a fixed partition, independent of the thread count.
    static let chunk = 512

    /// The plan `normbench topology` prints for `units` tiny units (`TinyUnits`) of
    /// `length` values.
    static func plan(units: Int, length: Int, naming unitName: String, lanes: String = "8 per vector",
                     chunk: Int = ChunkSchedule.chunk, threading: Threading) -> PlanDescription {
        let chunks = (units + chunk - 1) / chunk
        return PlanDescription(
            geometry: "tiny units: \(units) \(unitName) of \(length) values, \(lanes)",
            strategy: "chunks of \(chunk) \(unitName) per worker (statistics then normalize)",
            blocks: chunks, blockElements: chunk * length,
            workers: Parallel.workers(count: chunks, elementsPerItem: chunk * (length + 8), threading: threading))
    }

    /// `body(units)` for every chunk of `units` units, chunks spread over the workers.
    /// `chunk` (default `ChunkSchedule.chunk`) is the units per work item: a
    /// function of the shape only, never of the thread count. A chunk costs, for
    /// the parallel threshold, its values plus ~8 values' worth of fixed work per
    /// unit (coefficients, the scalar ends of each unit's loops).
    static func forEachChunk(units: Int, valuesPerUnit: Int, chunk: Int = ChunkSchedule.chunk, threading: Threading,
                             _ body: (Range<Int>) -> Void) {
        Parallel.forEach(count: (units + chunk - 1) / chunk, elementsPerItem: chunk * (valuesPerUnit + 8),
                         threading: threading) { range in
            for i in range { body((i * chunk)..<min(units, (i + 1) * chunk)) }
        }
    }

    /// Rows per work item for rows taken one at a time: about 32 768 values (at
    /// most `chunk` rows), so that a few hundred rows of 1024 values still give
    /// every worker several items (`[256, 1024]` LayerNorm: 8 items, 2 threads
    /// 1.7× faster than one; with 512-row chunks it was one item, serial).
    static func rowChunk(length: Int) -> Int { max(1, min(chunk, 32_768 / max(1, length))) }

    /// Rows per work item of the pipelined 16-bit LayerNorm rows
    /// (`normalizeMomentRowsPipelined`): up to 4 × `rowChunk`, while the call
    /// still has ≥ 16 items. Why: each item starts its pipeline with two rows
    /// summed alone and ends it with two rows written alone (no sums and outputs
    /// sharing a loop), 4 of 42 rows of 768 values per `rowChunk` item. A row's
    /// statistics and outputs do not depend on where items begin (the same
    /// `ShiftedRowSums.sweep` arithmetic), so the bits stay those of any chunking.
    static func pipelinedRowChunk(rows: Int, length: Int) -> Int {
        let base = rowChunk(length: length)
        return max(base, min(4 * base, rows / 16))
    }
}
