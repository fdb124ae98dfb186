import Benchmark
import NormKernels

// Suites for the main forward kernels: BatchNorm training (NCHW and NHWC),
// LayerNorm, GroupNorm (NCHW and NHWC). Each runs on a cache-resident shape
// and a DRAM-sized one, with the library's default threading.
//
// Inputs are allocated and filled before `startMeasurement()`, outputs go to
// `blackHole`. For GB/s against the machine's copy bandwidth, and for checked
// results, use `normbench sweep` (docs/HARNESS.md); these suites are for
// package-benchmark's regression tracking (baselines, thresholds, CI).

/// Shapes: 8×64×14×14 (0.4 MB, fits in L2) and 16×64×56×56 (12.8 MB per tensor).
let shapes: [(name: String, n: Int, c: Int, h: Int, w: Int)] = [
    ("8x64x14x14", 8, 64, 14, 14),
    ("16x64x56x56", 16, 64, 56, 56),
]

/// Deterministic input with per-channel offsets (any data works; this keeps
/// the statistics away from the trivial mean 0, variance 1).
func makeInput(_ count: Int) -> [Float] {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    return (0..<count).map { i in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float(state >> 40) * 0x1p-23 - 1 + Float(i % 7) * 0.25
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal],
        timeUnits: .microseconds,
        maxDuration: .seconds(2),
        maxIterations: 10_000
    )

    for s in shapes {
        for layout in [Layout.nchw, .nhwc] {
            let shape = TensorShape(n: s.n, c: s.c, h: s.h, w: s.w, layout: layout)

            Benchmark("BatchNorm training \(layout.rawValue) \(s.name)") { benchmark in
                let kernel = try BatchNormalization(shape: shape)
                let x = makeInput(shape.count), gamma = [Float](repeating: 1, count: s.c), beta = [Float](repeating: 0, count: s.c)
                var y = [Float](repeating: 0, count: shape.count)
                let running = try RunningStatistics(channels: s.c)
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    try x.withUnsafeBufferPointer { xp in
                        try y.withUnsafeMutableBufferPointer { yp in
                            try gamma.withUnsafeBufferPointer { g in
                                try beta.withUnsafeBufferPointer { b in
                                    blackHole(try kernel.forwardTraining(input: xp, output: yp, scale: g, bias: b, running: running))
                                }
                            }
                        }
                    }
                }
                benchmark.stopMeasurement()
                blackHole(y)
            }

            Benchmark("GroupNorm G32 \(layout.rawValue) \(s.name)") { benchmark in
                let kernel = try GroupNormalization(shape: shape, groups: 32)
                let x = makeInput(shape.count), gamma = [Float](repeating: 1, count: s.c), beta = [Float](repeating: 0, count: s.c)
                var y = [Float](repeating: 0, count: shape.count)
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    try x.withUnsafeBufferPointer { xp in
                        try y.withUnsafeMutableBufferPointer { yp in
                            try gamma.withUnsafeBufferPointer { g in
                                try beta.withUnsafeBufferPointer { b in
                                    blackHole(try kernel.forward(input: xp, output: yp, scale: g, bias: b))
                                }
                            }
                        }
                    }
                }
                benchmark.stopMeasurement()
                blackHole(y)
            }
        }

        // LayerNorm over C·H·W of each sample: the layout does not change the work.
        Benchmark("LayerNorm \(s.name)") { benchmark in
            let shape = TensorShape(n: s.n, c: s.c, h: s.h, w: s.w)
            let kernel = try LayerNormalization(shape: shape)
            let features = s.c * s.h * s.w
            let x = makeInput(shape.count), gamma = [Float](repeating: 1, count: features), beta = [Float](repeating: 0, count: features)
            var y = [Float](repeating: 0, count: shape.count)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                try x.withUnsafeBufferPointer { xp in
                    try y.withUnsafeMutableBufferPointer { yp in
                        try gamma.withUnsafeBufferPointer { g in
                            try beta.withUnsafeBufferPointer { b in
                                blackHole(try kernel.forward(input: xp, output: yp, scale: g, bias: b))
                            }
                        }
                    }
                }
            }
            benchmark.stopMeasurement()
            blackHole(y)
        }
    }
}
