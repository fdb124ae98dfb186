// swift-tools-version:6.1
import PackageDescription

// Per-call cost of small kernels (validation, statistics snapshots, dispatch),
// where the work itself takes 1–10 µs. Compare two commits by pointing the path
// at a worktree of the other one:
//
//     swift run -c release --package-path tools/call-overhead
//     git worktree add /tmp/base <commit>; sed 's|"../.."|"/tmp/base"|' …  (or edit the path below)
let package = Package(
    name: "CallOverhead",
    dependencies: [.package(name: "NormKernels", path: "../..")],
    targets: [.executableTarget(name: "CallOverhead",
                                dependencies: [.product(name: "NormKernels", package: "NormKernels")])],
    swiftLanguageModes: [.v5]
)
