/// The bytes a case must move at least: every tensor the call reads counted
/// once, every tensor it writes counted once, nothing for cache misses,
/// write-allocate reads or second passes over `x`. A kernel that reads `x`
/// twice from DRAM therefore shows at most ~2/3 of copy bandwidth on a
/// DRAM-sized tensor; one that keeps its second pass in cache can reach ~1.
///
/// With T = N·C·H·W values (4 bytes each) and P the length of γ:
/// ```
/// forward-training    read x, write y                     2T
///   batchnorm           + γ, β read, running mean/var read and written   + 6C
///   instancenorm, groupnorm   + γ, β                      + 2C
///   layernorm           + γ, β (C·H·W each)               + 2·CHW
///   rmsnorm             + γ                               + CHW
///   adain               + read style (T)                  + T
///   weightnorm          + g (N)                           + N
/// forward-inference   read x, write y + γ, β, running mean, running var     2T + 4C
/// backward            read x, dy, write dx                3T
///   + γ read, dγ and dβ written (3P; rmsnorm 2P, adain 0, weightnorm: g read, dg written 2N)
/// ```
/// Saved statistics (a few values per channel or row) are not counted.
/// Copy bandwidth is counted the same way (read + write), so a case's GB/s
/// divided by copy GB/s compares like with like.
enum Traffic {
    static func bytes(_ key: CaseKey) -> Int {
        let s = key.shape, t = s.count, c = s.c, features = s.c * s.spatial
        var floats: Int
        switch key.direction {
        case .forwardTraining:
            floats = 2 * t
            switch key.op {
            case .batchnorm: floats += 6 * c
            case .instancenorm, .groupnorm: floats += 2 * c
            case .layernorm: floats += 2 * features
            case .rmsnorm: floats += features
            case .adain: floats += t
            case .weightnorm: floats += s.n
            }
        case .forwardInference:
            floats = 2 * t + 4 * c
        case .backward:
            floats = 3 * t
            switch key.op {
            case .batchnorm, .instancenorm, .groupnorm: floats += 3 * c
            case .layernorm: floats += 3 * features
            case .rmsnorm: floats += 2 * features
            case .adain: break
            case .weightnorm: floats += 2 * s.n
            }
        }
        return 4 * floats
    }
}
