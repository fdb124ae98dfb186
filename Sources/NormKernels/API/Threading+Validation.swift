/// Strict construction and checking of a `Threading`.
///
/// `Threading(threads:affinity:parallelThreshold:spinMicroseconds:)` clamps
/// (0 threads becomes 1, a negative threshold 0) so that a value computed at run
/// time, such as a core count minus one, always gives something usable. Callers
/// who would rather hear about such a value — a configuration file, a command-line
/// flag — use `init(validatingThreads:…)`, or `validate()` on a value whose
/// fields were set one by one. Kernels given a `Threading` with an out-of-range
/// field behave as the clamping initializer would have made it (fewer than 1
/// thread runs serially, a negative threshold parallelizes every call, spins
/// are capped at `maxSpinMicroseconds`); results never depend on it.
extension Threading {
    /// Like `init(threads:affinity:parallelThreshold:spinMicroseconds:)`, but
    /// throws `NormError.invalidArgument` instead of clamping: `threads` must be
    /// ≥ 1, `parallelThreshold` ≥ 0, `spinMicroseconds` ≥ 0 (values above
    /// `maxSpinMicroseconds` spin that long, as documented on the field).
    public init(validatingThreads threads: Int, affinity: Affinity = .none,
                parallelThreshold: Int? = nil,
                spinMicroseconds: Int = Threading.defaultSpinMicroseconds) throws(NormError) {
        try Threading.check(threads: threads, parallelThreshold: parallelThreshold ?? 0,
                            spinMicroseconds: spinMicroseconds)
        self.init(threads: threads, affinity: affinity, parallelThreshold: parallelThreshold,
                  spinMicroseconds: spinMicroseconds)
    }

    /// Throws `NormError.invalidArgument` naming the field when one was set out
    /// of range after construction (`threads` < 1, `parallelThreshold` < 0,
    /// `spinMicroseconds` < 0).
    public func validate() throws(NormError) {
        try Threading.check(threads: threads, parallelThreshold: parallelThreshold,
                            spinMicroseconds: spinMicroseconds)
    }

    private static func check(threads: Int, parallelThreshold: Int, spinMicroseconds: Int) throws(NormError) {
        guard threads >= 1 else {
            throw .invalidArgument(argument: "threading.threads", reason: "must be ≥ 1, got \(threads)")
        }
        guard parallelThreshold >= 0 else {
            throw .invalidArgument(argument: "threading.parallelThreshold",
                                   reason: "must be ≥ 0 elements, got \(parallelThreshold)")
        }
        guard spinMicroseconds >= 0 else {
            throw .invalidArgument(argument: "threading.spinMicroseconds",
                                   reason: "must be ≥ 0 µs, got \(spinMicroseconds)")
        }
    }
}
