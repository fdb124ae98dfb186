// swift-tools-version:6.1
import PackageDescription

// normbench, the measurement harness (docs/HARNESS.md): a nested package that
// depends on the root by path, so that a package depending on the NormKernels
// product resolves and fetches nothing else (swift-argument-parser is only
// this harness's). Built by tools/sweep.sh and tools/perf-sets.sh:
//
//     swift build -c release --package-path Harness --scratch-path .build-release -Xcc -march=x86-64-v3
//     .build-release/release/normbench sweep
//
// The trait `MPI` enables the root's trait `MPI` (NormKernelsMPI's MPIExchange,
// Open MPI headers needed) for `normbench syncbn`, run under mpirun by
// tools/syncbn-bench.sh; without it normbench needs no MPI and `syncbn` says so.
let package = Package(
    name: "NormKernelsHarness",
    traits: [
        .trait(name: "MPI", description: "normbench syncbn: synchronized BatchNorm over Open MPI (enables NormKernels' trait MPI)."),
    ],
    dependencies: [
        .package(name: "NormKernels", path: "..",
                 traits: [.trait(name: "MPI", condition: .when(traits: ["MPI"]))]),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .executableTarget(
            name: "normbench",
            dependencies: [
                .product(name: "NormKernels", package: "NormKernels"),
                // Non-temporal copy, thread pinning and the black hole of the bandwidth probe.
                .product(name: "CNormSupport", package: "NormKernels"),
                // An empty module unless the trait MPI is enabled.
                .product(name: "NormKernelsMPI", package: "NormKernels"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
