// swift-tools-version:6.1
import PackageDescription

// package-benchmark suites for the main NormKernels kernels. A nested package
// that depends on the root by path, so users of the library never fetch or
// build benchmark dependencies (the swift-collections layout).
//
//     cd Benchmarks
//     swift package benchmark                        # run all suites
//     swift package benchmark --filter "BatchNorm.*"  # some of them
//
// Build flags for wider vectors go on the command line as for the root
// package (e.g. `swift package -Xcc -march=x86-64-v3 benchmark`).
let package = Package(
    name: "NormKernelsBenchmarks",
    dependencies: [
        .package(name: "NormKernels", path: ".."),
        // The default trait pulls in a jemalloc package that is not available
        // here; MallocInterposer counts allocations without it.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "NormBenchmarks",
            dependencies: [
                .product(name: "NormKernels", package: "NormKernels"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "NormBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    // As the root package: raw pointers cross into the benchmark closures.
    swiftLanguageModes: [.v5]
)
