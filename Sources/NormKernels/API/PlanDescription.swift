/// How a descriptor runs its forward pass: the path its plan chose at `init`
/// (geometry, strategy, block sizes, worker count for its threading), in words.
/// Every descriptor's `plan()` returns it; `normbench topology` prints it.
public struct PlanDescription: Sendable, CustomStringConvertible {
    public var geometry: String
    public var strategy: String
    public var blocks: Int
    public var blockElements: Int
    public var workers: Int
    public var description: String {
        "\(geometry)\n  strategy: \(strategy)\n  blocks: \(blocks) of ≤ \(blockElements) values, workers: \(workers)"
    }
}
