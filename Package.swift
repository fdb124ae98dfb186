// swift-tools-version:6.1
import PackageDescription

// The library targets carry no unsafeFlags, so NormKernels can be a versioned
// dependency of other packages. Wider vectors (AVX2, AVX-512) come from build
// flags the consumer passes on the command line; see README "Building for speed".
let package = Package(
    name: "NormKernels",
    products: [
        .library(name: "NormKernels", targets: ["NormKernels"]),
        // The C shim, for the repository's own harness (Harness/, normbench):
        // not part of NormKernels' API.
        .library(name: "CNormSupport", targets: ["CNormSupport"]),
        // Synchronized BatchNorm over Open MPI (docs/SYNCBN.md). Without the trait
        // `MPI` it builds as an empty module and needs no MPI headers, so
        // `swift build` and the NormKernels product never need Open MPI.
        .library(name: "NormKernelsMPI", targets: ["NormKernelsMPI"]),
    ],
    traits: [
        .trait(name: "MPI", description: "Build NormKernelsMPI's MPIExchange against Open MPI (pkg-config ompi-c)."),
    ],
    // No dependencies: a package that uses NormKernels fetches nothing else.
    // normbench and its argument parser live in the nested package Harness/.
    targets: [
        // hwloc from the system (Debian: libhwloc-dev).
        .systemLibrary(
            name: "CHwloc",
            pkgConfig: "hwloc",
            providers: [.apt(["libhwloc-dev"])]
        ),
        // C shim: hwloc's macros and inline helpers, thread ids, non-temporal stores.
        .target(name: "CNormSupport", dependencies: ["CHwloc"]),
        .target(name: "NormKernels", dependencies: ["CNormSupport"]),
        // Open MPI from the system (Debian: libopenmpi-dev), only with the trait `MPI`.
        .systemLibrary(
            name: "CMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev"])]
        ),
        .target(name: "NormKernelsMPI",
                dependencies: ["NormKernels", .target(name: "CMPI", condition: .when(traits: ["MPI"]))]),
        // The mpirun check of tools/mpi-test.sh (a stub without the trait).
        .executableTarget(name: "syncbn-mpi-check", dependencies: ["NormKernels", "NormKernelsMPI"]),
        // Test-only: counts the process's heap allocations (replaces malloc and
        // friends in the test executable), for AllocationTests. No product
        // contains it.
        .target(name: "CAllocationCounter", path: "Tests/CAllocationCounter"),
        .testTarget(
            name: "NormKernelsTests",
            dependencies: ["NormKernels", "CAllocationCounter"],
            resources: [.copy("Fixtures")]
        ),
    ],
    // Swift 6 language mode, complete concurrency checking. The raw pointers that
    // parallel loops hand to their workers go through one wrapper,
    // `UncheckedSendable` (Runtime/UncheckedSendable.swift), which states why
    // that is safe.
    swiftLanguageModes: [.v6]
)
