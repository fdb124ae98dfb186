// swift-tools-version:6.1
import PackageDescription

// The library targets carry no unsafeFlags, so NormKernels can be a versioned
// dependency of other packages. Wider vectors (AVX2, AVX-512) come from build
// flags the consumer passes on the command line; see README "Building for speed".
let package = Package(
    name: "NormKernels",
    products: [
        .library(name: "NormKernels", targets: ["NormKernels"]),
        .executable(name: "normbench", targets: ["normbench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
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
        .executableTarget(
            name: "normbench",
            dependencies: [
                "NormKernels",
                // Non-temporal copy and the black hole for the bandwidth probe.
                "CNormSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "NormKernelsTests",
            dependencies: ["NormKernels"],
            resources: [.copy("Fixtures")]
        ),
    ],
    // Swift 6 language mode, complete concurrency checking. The raw pointers that
    // parallel loops hand to their workers go through one wrapper,
    // `UncheckedSendable` (Runtime/UncheckedSendable.swift), which states why
    // that is safe.
    swiftLanguageModes: [.v6]
)
