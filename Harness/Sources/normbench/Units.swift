/// One unit of the reference check: the values that share one statistic (a
/// channel, an (n, c) plane, an (n, group) block, a row), as element offsets
/// into the case's tensor, and per element the index of its γ/β.
struct Unit {
    var offsets: [Int] = []
    var parameters: [Int] = []

    /// The H·W plane (n, c) of the case's tensor, in its memory layout; γ index c.
    mutating func addPlane(_ key: CaseKey, n: Int, c: Int) {
        let s = key.shape, nchw = key.memoryLayout == .nchw
        for h in 0..<s.h {
            for w in 0..<s.w {
                offsets.append(nchw ? ((n * s.c + c) * s.h + h) * s.w + w : ((n * s.h + h) * s.w + w) * s.c + c)
                parameters.append(c)
            }
        }
    }

    /// Planes (n, c) for every c in `channels`.
    static func planes(_ key: CaseKey, n: Int, channels: Range<Int>) -> Unit {
        var unit = Unit()
        for c in channels { unit.addPlane(key, n: n, c: c) }
        return unit
    }

    /// Row n of `[N, C·H·W]`: γ per feature, or (`parameterPerRow`) the row's
    /// own parameter n (weight normalization's g).
    static func row(_ key: CaseKey, _ n: Int, parameterPerRow: Bool = false) -> Unit {
        let features = key.shape.features
        return Unit(offsets: Array((n * features)..<((n + 1) * features)),
                    parameters: parameterPerRow ? Array(repeating: n, count: features) : Array(0..<features))
    }
}

/// The Float64 expected output of one unit, and the size of the terms each value
/// is a sum or difference of (empty where the values themselves set the scale;
/// see `Reference`).
struct Expected {
    var values: [Double]
    var terms: [Double] = []
}
