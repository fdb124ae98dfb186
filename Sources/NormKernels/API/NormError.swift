/// Every way a call can be rejected. Kernels validate all arguments before they
/// write anything: when one of these is thrown, no output, saved statistic or
/// running statistic has been touched.
public enum NormError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A dimension is zero or negative.
    case invalidDimension(argument: String, value: Int)
    /// The product of the dimensions exceeds 2⁴⁸ elements (more than any process
    /// can address) or does not fit in Int.
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
    /// Two buffers that must not share memory do (e.g. two outputs, an output and
    /// a parameter such as γ, or an output and an input it does not replace).
    case overlappingBuffers(argument: String, other: String)

    /// The argument the error is about ("input", "scale (γ)", "shape.c",
    /// "epsilon", …), for callers that react per argument without matching
    /// every case.
    public var argument: String {
        switch self {
        case let .invalidDimension(argument, _), let .sizeOverflow(argument), let .lengthMismatch(argument, _, _),
             let .shapeMismatch(argument, _, _), let .singleValuePerChannel(argument, _),
             let .invalidArgument(argument, _), let .partialOverlap(argument), let .overlappingBuffers(argument, _):
            return argument
        case .groupsDoNotDivideChannels: return "groups"
        case .invalidEpsilon: return "epsilon"
        case .invalidMomentum: return "momentum"
        }
    }

    /// The case's name ("lengthMismatch", "partialOverlap", …), e.g. for logs and metrics.
    public var caseName: String {
        switch self {
        case .invalidDimension: "invalidDimension"
        case .sizeOverflow: "sizeOverflow"
        case .lengthMismatch: "lengthMismatch"
        case .shapeMismatch: "shapeMismatch"
        case .groupsDoNotDivideChannels: "groupsDoNotDivideChannels"
        case .singleValuePerChannel: "singleValuePerChannel"
        case .invalidEpsilon: "invalidEpsilon"
        case .invalidMomentum: "invalidMomentum"
        case .invalidArgument: "invalidArgument"
        case .partialOverlap: "partialOverlap"
        case .overlappingBuffers: "overlappingBuffers"
        }
    }

    public var description: String {
        switch self {
        case let .invalidDimension(argument, value):
            return "\(argument) must be > 0, got \(value)"
        case let .sizeOverflow(argument):
            return "\(argument): the element count exceeds 2^48 (or overflows Int)"
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
