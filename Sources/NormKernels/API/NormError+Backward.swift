/// Argument checks of the backward kernels. Like forward, every check runs
/// before anything is written: when one throws, no gradient buffer was touched.
extension Check {
    static func length(_ buffer: UnsafeMutableBufferPointer<Float>?, _ expected: Int, _ argument: String) throws {
        if let buffer { try length(buffer.count, expected, argument) }
    }

    /// Saved per-slot statistics (mean, invStd, norms, …) must have one value per slot.
    static func saved(_ values: [Double], _ expected: Int, _ argument: String) throws {
        try length(values.count, expected, argument)
    }

    /// A gradient output that may replace `input` (identical buffers: in place) but
    /// must not partially overlap it.
    static func inPlaceOrDisjoint(_ output: MemorySpan?, _ input: MemorySpan?, _ argument: String) throws {
        guard let output, let input, output.overlaps(input) else { return }
        if output == input { return }
        throw NormError.partialOverlap(argument: argument)
    }

    /// Buffers that must not share any memory.
    static func disjoint(_ a: MemorySpan?, _ b: MemorySpan?, _ argument: String, _ other: String) throws {
        guard let a, let b, a.overlaps(b) else { return }
        throw NormError.overlappingBuffers(argument: argument, other: other)
    }

    /// Checks every gradient output against every other buffer of the call:
    /// `replaceable` lists the inputs a gradient may replace in place (same length,
    /// read element by element before that element is written).
    static func gradientBuffers(
        outputs: [(String, MemorySpan?)], inputs: [(String, MemorySpan?)],
        replaceable: [String: Set<String>]
    ) throws {
        for (i, (name, span)) in outputs.enumerated() {
            guard let span else { continue }
            for (other, otherSpan) in inputs {
                if replaceable[name]?.contains(other) == true {
                    try inPlaceOrDisjoint(span, otherSpan, "\(name) (against \(other))")
                } else {
                    try disjoint(span, otherSpan, name, other)
                }
            }
            for (other, otherSpan) in outputs[(i + 1)...] { try disjoint(span, otherSpan, name, other) }
        }
    }
}

/// The bytes a buffer occupies (nil for an absent or empty buffer).
struct MemorySpan: Equatable {
    var start: UInt
    var end: UInt

    init?(_ buffer: UnsafeBufferPointer<Float>?) {
        guard let buffer, let base = buffer.baseAddress, buffer.count > 0 else { return nil }
        start = UInt(bitPattern: base)
        end = start + UInt(buffer.count * MemoryLayout<Float>.stride)
    }

    init?(_ buffer: UnsafeMutableBufferPointer<Float>?) {
        self.init(buffer.map { UnsafeBufferPointer($0) })
    }

    func overlaps(_ other: MemorySpan) -> Bool { start < other.end && other.start < end }
}
