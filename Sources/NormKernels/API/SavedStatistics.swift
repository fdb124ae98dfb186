/// Per-slot statistics a training forward pass saves for the backward pass.
public struct SavedStatistics: Sendable, Hashable {
    /// Mean per slot (channel for BatchNorm, row for LayerNorm/RMSNorm, (n, c) for
    /// InstanceNorm, (n, g) for GroupNorm), Float64 so backward can form x̂
    /// exactly even for data with a large offset. For RMSNorm, all zero.
    public var mean: [Double]
    /// 1/√(var + ε) per slot (PyTorch's `save_invstd` / `rstd`); for RMSNorm 1/√(mean(x²) + ε).
    public var invStd: [Double]
    /// Whether running statistics were updated by this call (false when none were
    /// given, or when the batch was not finite; see `RunningStatistics`).
    public var runningStatisticsUpdated: Bool

    public init(mean: [Double], invStd: [Double], runningStatisticsUpdated: Bool = false) {
        self.mean = mean
        self.invStd = invStd
        self.runningStatisticsUpdated = runningStatisticsUpdated
    }
}

extension SavedStatistics {
    /// Statistics of `count` slots (≥ 1) that `fill(mean, invStd)` writes straight
    /// into the returned arrays — initializing every slot, from any workers — with
    /// no side buffer and no copy (on units of a few values those cost as much as
    /// the kernel).
    static func filling(count: Int,
                        _ fill: (_ mean: UnsafeMutablePointer<Double>, _ invStd: UnsafeMutablePointer<Double>) -> Void)
        -> SavedStatistics {
        var invStd: [Double] = []
        let mean = [Double](unsafeUninitializedCapacity: count) { meanOut, meanCount in
            invStd = [Double](unsafeUninitializedCapacity: count) { invOut, invCount in
                fill(meanOut.baseAddress!, invOut.baseAddress!)
                invCount = count
            }
            meanCount = count
        }
        return SavedStatistics(mean: mean, invStd: invStd)
    }
}
