import ArgumentParser
import NormKernels

/// `normbench`: performance sweeps of the NormKernels kernels, checked against a
/// Float64 reference and reported against the machine's own copy bandwidth.
/// See docs/HARNESS.md.
@main
struct NormBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "normbench",
        abstract: "Benchmark harness of NormKernels: sweeps, thread scaling, bandwidth, topology.",
        discussion: "Build with `swift build -c release --package-path Harness -Xcc -march=x86-64-v3` (tools/sweep.sh does). See docs/HARNESS.md.",
        subcommands: [SweepCommand.self, ScaleCommand.self, BandwidthCommand.self, TopologyCommand.self, SyncBNCommand.self]
    )
}

/// 1 and the core count (just 1 on a single-core machine).
func defaultThreadCounts() -> [Int] {
    let cores = max(1, Topology.current.cores)
    return cores == 1 ? [1] : [1, cores]
}
