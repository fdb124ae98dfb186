import Foundation

/// The one validation layer every public entry point goes through, before it
/// writes anything: dimensions and size products (descriptor initializers),
/// buffer lengths, and the overlaps between a call's buffers (`Check.buffers`).
/// Kernels below the API assume what these checks establish and do not check again.
enum Check {
    /// The largest element count a descriptor may describe: 2⁴⁸ values (1 PiB of
    /// Float32), past any buffer an x86-64 or AArch64 process can address. Keeping
    /// counts this far below `Int.max` lets every later size computation (bytes,
    /// blocks × threads, padded strides) run without overflow checks of its own.
    static let maxElements = 1 << 48

    static func positive(_ value: Int, _ argument: String) throws {
        guard value > 0 else { throw NormError.invalidDimension(argument: argument, value: value) }
    }

    /// The product of positive dimensions, if it is at most `maxElements`.
    static func product(_ dims: [Int], _ argument: String) throws -> Int {
        var total = 1
        for d in dims {
            let (p, overflow) = total.multipliedReportingOverflow(by: d)
            guard !overflow, p <= maxElements else { throw NormError.sizeOverflow(argument: argument) }
            total = p
        }
        return total
    }

    /// Refuses an object whose own memory (not the caller's tensors) would not fit
    /// in this machine: Swift traps when an allocation fails, and a descriptor may
    /// legally describe far more than the machine holds (2⁴⁰ channels of an empty
    /// synchronized rank, running statistics of 2⁴⁰ channels). `bytes` is a
    /// Double so that the estimate itself cannot overflow.
    static func ownMemory(_ bytes: Double, _ argument: String, _ what: String,
                          physicalMemory: UInt64 = ProcessInfo.processInfo.physicalMemory) throws {
        guard bytes <= Double(physicalMemory) else {
            throw NormError.invalidArgument(
                argument: argument,
                reason: "\(what) would take \(bytes) bytes, more than this machine's \(physicalMemory) bytes of memory")
        }
    }

    static func epsilon(_ epsilon: Float) throws {
        guard epsilon.isFinite, epsilon > 0 else { throw NormError.invalidEpsilon(Double(epsilon)) }
    }

    static func length(_ actual: Int, _ expected: Int, _ argument: String) throws {
        guard actual == expected else {
            throw NormError.lengthMismatch(argument: argument, expected: expected, actual: actual)
        }
    }

    /// The first check of an array convenience that allocates outputs sized by
    /// the descriptor (the backward ones): the caller's first array against the
    /// descriptor, with the error the pointer API would throw. So a descriptor of
    /// up to 2⁴⁸ values passed a short array throws before anything is allocated,
    /// instead of asking for (and zero-filling) the descriptor's size: a trap on
    /// allocation failure, or gigabytes touched for nothing. Once the first array
    /// has the descriptor's length, every size the convenience allocates (C, the
    /// features, N·C, the norms) is at most that length.
    static func arrayInput(_ actual: Int, _ expected: Int, _ argument: String) throws {
        try length(actual, expected, argument)
    }

    /// A buffer of any element type (`Float`, `Float16`, `BFloat16`): lengths count elements.
    static func length<E>(_ buffer: UnsafeBufferPointer<E>?, _ expected: Int, _ argument: String) throws {
        if let buffer { try length(buffer.count, expected, argument) }
    }

    static func length<E>(_ buffer: UnsafeMutableBufferPointer<E>?, _ expected: Int, _ argument: String) throws {
        if let buffer { try length(buffer.count, expected, argument) }
    }

    /// Saved per-slot statistics (mean, invStd, norms, …) must have one value per slot.
    static func saved(_ values: [Double], _ expected: Int, _ argument: String) throws {
        try length(values.count, expected, argument)
    }

    /// Buffers must have a base address (an empty buffer has none; shapes are never empty).
    static func base<E>(_ buffer: UnsafeBufferPointer<E>, _ argument: String) throws -> UnsafePointer<E> {
        guard let p = buffer.baseAddress else {
            throw NormError.lengthMismatch(argument: argument, expected: 1, actual: 0)
        }
        return p
    }

    static func base<E>(_ buffer: UnsafeMutableBufferPointer<E>, _ argument: String) throws -> UnsafeMutablePointer<E> {
        guard let p = buffer.baseAddress else {
            throw NormError.lengthMismatch(argument: argument, expected: 1, actual: 0)
        }
        return p
    }

    /// The overlap rule of every call, forward or backward. Each buffer the call
    /// writes (`writes`) must not share memory with any other buffer of the call —
    /// another output, an input, a parameter (γ, β, g, the style) — with one
    /// exception: an output may *be* an input named in `inPlace[output]` (the
    /// same address and length, read element by element before that element is
    /// written). A partial overlap with such an input throws `.partialOverlap`
    /// ("output (against other)", or the output's name alone against
    /// `bareNameAgainst`, a forward call's one input); any other sharing
    /// throws `.overlappingBuffers(output, other)`. Inputs may share memory with
    /// each other: they are only read.
    ///
    /// Called on every kernel call, so it allocates nothing: the lists are
    /// `InlineArray`s (array literals at the call, stored in place; an `Array`
    /// literal stays off the heap only when the optimizer promotes it to the
    /// stack, which `LayerNormalization.backward` lost once), and `inPlace`
    /// lists (output, input) pairs rather than a dictionary of sets (which cost
    /// ~1 µs per call on a 2 µs LayerNorm).
    @inline(__always)
    static func buffers<let w: Int, let r: Int, let p: Int>(
        writes: InlineArray<w, (String, MemorySpan?)>, reads: InlineArray<r, (String, MemorySpan?)>,
        inPlace: InlineArray<p, (String, String)>, bareNameAgainst primary: String? = nil
    ) throws {
        for i in writes.indices {
            guard let span = writes[i].1 else { continue }
            let name = writes[i].0
            for j in reads.indices {
                let (other, otherSpan) = reads[j]
                guard let otherSpan, span.overlaps(otherSpan) else { continue }
                if inPlace.indices.contains(where: { inPlace[$0].0 == name && inPlace[$0].1 == other }) {
                    if span == otherSpan { continue }
                    throw NormError.partialOverlap(argument: other == primary ? name : "\(name) (against \(other))")
                }
                throw NormError.overlappingBuffers(argument: name, other: other)
            }
            for j in (i + 1)..<writes.count {
                let (other, otherSpan) = writes[j]
                guard let otherSpan, span.overlaps(otherSpan) else { continue }
                throw NormError.overlappingBuffers(argument: name, other: other)
            }
        }
    }

    /// `buffers` of a call whose outputs are never in place.
    @inline(__always)
    static func buffers<let w: Int, let r: Int>(
        writes: InlineArray<w, (String, MemorySpan?)>, reads: InlineArray<r, (String, MemorySpan?)>
    ) throws {
        let none: InlineArray<0, (String, String)> = []
        try buffers(writes: writes, reads: reads, inPlace: none)
    }

    /// The forward rule: `output` may be `input` (in place) and must not touch
    /// any parameter. Input and output are tensors of one element type `E`
    /// (`Float`, `Float16`, `BFloat16`); the parameters are Float32. Overlaps
    /// are decided on bytes, so a 16-bit output that shares memory with a
    /// Float32 γ is caught like any other.
    @inline(__always)
    static func forwardBuffers<E>(
        input: (String, UnsafeBufferPointer<E>), output: (String, UnsafeMutableBufferPointer<E>),
        parameters first: (String, UnsafeBufferPointer<Float>?), _ second: (String, UnsafeBufferPointer<Float>?) = ("", nil)
    ) throws {
        let out = MemorySpan(output.1)
        let inputSpan = MemorySpan(input.1), firstSpan = MemorySpan(first.1), secondSpan = MemorySpan(second.1)
        // The common cases, no sharing or exactly in place, decided without building any list.
        if let out, (inputSpan.map { out.overlaps($0) && $0 != out } ?? false)
            || (firstSpan.map(out.overlaps) ?? false) || (secondSpan.map(out.overlaps) ?? false) {
            try buffers(writes: [(output.0, out)],
                        reads: [(input.0, inputSpan), (first.0, firstSpan), (second.0, secondSpan)],
                        inPlace: [(output.0, input.0)], bareNameAgainst: input.0)
        }
    }
}

/// The bytes a buffer occupies (nil for an absent or empty buffer), for a buffer
/// of any element type: `count · MemoryLayout<E>.stride` bytes from its base.
struct MemorySpan: Equatable {
    var start: UInt
    var end: UInt

    init?<E>(_ buffer: UnsafeBufferPointer<E>?) {
        guard let buffer, let base = buffer.baseAddress, buffer.count > 0 else { return nil }
        start = UInt(bitPattern: base)
        // A hostile count could overflow the byte length: saturate (lengths are
        // checked against the descriptor first, so this only guards the arithmetic).
        let (bytes, overflow) = UInt(buffer.count).multipliedReportingOverflow(by: UInt(MemoryLayout<E>.stride))
        let (sum, overflow2) = start.addingReportingOverflow(bytes)
        end = overflow || overflow2 ? UInt.max : sum
    }

    init?<E>(_ buffer: UnsafeMutableBufferPointer<E>?) {
        self.init(buffer.map { UnsafeBufferPointer($0) })
    }

    func overlaps(_ other: MemorySpan) -> Bool { start < other.end && other.start < end }
}
