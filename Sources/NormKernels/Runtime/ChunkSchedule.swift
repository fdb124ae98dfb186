/// How the many-small-units kernels split their work: `TinyUnits` (8 units per
/// vector), short rows one at a time, InstanceNorm NHWC tiny channels. Units go
/// to workers in chunks of `chunk` units, a fixed partition: which units share a
/// chunk does not depend on the thread count, and every unit's result depends only
/// on its own values, so results are the same for any thread count.
enum ChunkSchedule {
    /// Units per parallel work item: a fixed partition, independent of the thread count.
    static let chunk = 512

    static func chunks(_ units: Int) -> Int { (units + chunk - 1) / chunk }

    /// Parallel-threshold cost of a chunk: its values plus ~8 values' worth of
    /// fixed work per unit (coefficients, the scalar ends of each unit's loops).
    static func chunkCost(valuesPerUnit: Int) -> Int { chunk * (valuesPerUnit + 8) }

    /// The plan `normbench topology` prints for `units` tiny units (`TinyUnits`) of
    /// `length` values.
    static func plan(units: Int, length: Int, naming unitName: String, lanes: String = "8 per vector",
                     threading: Threading) -> PlanDescription {
        let chunks = chunks(units)
        return PlanDescription(
            geometry: "tiny units: \(units) \(unitName) of \(length) values, \(lanes)",
            strategy: "chunks of \(chunk) \(unitName) per worker (statistics then normalize)",
            blocks: chunks, blockElements: chunk * length,
            workers: Parallel.workers(count: chunks, elementsPerItem: chunkCost(valuesPerUnit: length), threading: threading))
    }

    /// `body(units)` for every chunk of `units` units, chunks spread over the workers.
    static func forEachChunk(units: Int, valuesPerUnit: Int, threading: Threading, _ body: (Range<Int>) -> Void) {
        Parallel.forEach(count: chunks(units), elementsPerItem: chunkCost(valuesPerUnit: valuesPerUnit),
                         threading: threading) { range in
            for i in range { body((i * chunk)..<min(units, (i + 1) * chunk)) }
        }
    }
}
