/// Every way a call can be rejected. Kernels validate all arguments before they
/// write anything: when one of these is thrown, no output, saved statistic or
/// running statistic has been touched.
public enum NormError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A dimension is zero or negative.
    case invalidDimension(argument: String, value: Int)
    /// The product of the dimensions does not fit in Int.
    case sizeOverflow(argument: String)
    /// A buffer's length differs from what the shape requires.
    case lengthMismatch(argument: String, expected: Int, actual: Int)
    /// Two tensors that must agree in a dimension do not.
    case shapeMismatch(argument: String, expected: String, actual: String)
    /// GroupNorm: the group count must divide the channel count.
    case groupsDoNotDivideChannels(groups: Int, channels: Int)
    /// Training statistics need more than one value per channel (or instance).
    case singleValuePerChannel(argument: String, valuesPerChannel: Int)
    /// ε must be finite and > 0.
    case invalidEpsilon(Double)
    /// Momentum must lie in [0, 1].
    case invalidMomentum(Double)
    /// An argument outside its documented range (e.g. a dimension index).
    case invalidArgument(argument: String, reason: String)
    /// Output and input overlap without being the same buffer.
    case partialOverlap(argument: String)
    /// Two buffers that must not share memory do (e.g. two gradient outputs, or a
    /// gradient output and an input it does not replace).
    case overlappingBuffers(argument: String, other: String)

    public var description: String {
        switch self {
        case let .invalidDimension(argument, value):
            return "\(argument) must be > 0, got \(value)"
        case let .sizeOverflow(argument):
            return "\(argument): the element count overflows Int"
        case let .lengthMismatch(argument, expected, actual):
            return "\(argument) has \(actual) elements, expected \(expected)"
        case let .shapeMismatch(argument, expected, actual):
            return "\(argument) has shape \(actual), expected \(expected)"
        case let .groupsDoNotDivideChannels(groups, channels):
            return "groups (\(groups)) must divide channels (\(channels))"
        case let .singleValuePerChannel(argument, count):
            return "\(argument): training needs more than 1 value per channel, got \(count)"
        case let .invalidEpsilon(value):
            return "epsilon must be finite and > 0, got \(value)"
        case let .invalidMomentum(value):
            return "momentum must be in [0, 1], got \(value)"
        case let .invalidArgument(argument, reason):
            return "\(argument): \(reason)"
        case let .partialOverlap(argument):
            return "\(argument) overlaps the input without being the same buffer (in-place needs identical buffers)"
        case let .overlappingBuffers(argument, other):
            return "\(argument) shares memory with \(other); it must be a separate buffer"
        }
    }
}

/// Argument checks shared by all kernels.
enum Check {
    static func positive(_ value: Int, _ argument: String) throws {
        guard value > 0 else { throw NormError.invalidDimension(argument: argument, value: value) }
    }

    static func product(_ dims: [Int], _ argument: String) throws -> Int {
        var total = 1
        for d in dims {
            let (p, overflow) = total.multipliedReportingOverflow(by: d)
            guard !overflow else { throw NormError.sizeOverflow(argument: argument) }
            total = p
        }
        return total
    }

    static func epsilon(_ epsilon: Float) throws {
        guard epsilon.isFinite, epsilon > 0 else { throw NormError.invalidEpsilon(Double(epsilon)) }
    }

    static func length(_ actual: Int, _ expected: Int, _ argument: String) throws {
        guard actual == expected else {
            throw NormError.lengthMismatch(argument: argument, expected: expected, actual: actual)
        }
    }

    static func length(_ buffer: UnsafeBufferPointer<Float>?, _ expected: Int, _ argument: String) throws {
        if let buffer { try length(buffer.count, expected, argument) }
    }

    /// Buffers must have a base address (an empty buffer has none; shapes are never empty).
    static func base(_ buffer: UnsafeBufferPointer<Float>, _ argument: String) throws -> UnsafePointer<Float> {
        guard let p = buffer.baseAddress else {
            throw NormError.lengthMismatch(argument: argument, expected: 1, actual: 0)
        }
        return p
    }

    static func base(_ buffer: UnsafeMutableBufferPointer<Float>, _ argument: String) throws -> UnsafeMutablePointer<Float> {
        guard let p = buffer.baseAddress else {
            throw NormError.lengthMismatch(argument: argument, expected: 1, actual: 0)
        }
        return p
    }

    /// In-place (`output` is `input`) is allowed; any other overlap is not.
    static func aliasing(_ input: UnsafeBufferPointer<Float>, _ output: UnsafeMutableBufferPointer<Float>,
                         _ argument: String) throws {
        guard let a = input.baseAddress, let b = output.baseAddress else { return }
        if UnsafePointer(b) == a && input.count == output.count { return }
        let aEnd = a + input.count, bEnd = UnsafePointer(b) + output.count
        if UnsafePointer(b) < aEnd && a < bEnd { throw NormError.partialOverlap(argument: argument) }
    }
}
