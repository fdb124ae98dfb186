// Running statistics of BatchNorm and InstanceNorm: PyTorch's exponential
// momentum, the cumulative average (momentum=None), exact population
// statistics, their use at inference, and the refusal of non-finite batches.

import Testing
@testable import NormKernels

/// Per-channel (count, mean, M2) of a batch, by the reference.
func channelStatistics(_ x: [Float], _ shape: TensorShape) -> [Reference.Statistics] {
    Reference.batchNorm(x, shape).statistics
}

@Suite("RunningStatistics: BatchNorm update rules")
struct RunningStatisticsBatchNormTests {
    static let shapes = [TensorShape(n: 4, c: 33, h: 5, w: 7), TensorShape(n: 2, c: 3, h: 70, w: 61),
                         TensorShape.matrix(50, 8)]
    /// Batch statistics are accurate to ~1e-6 of σ (Float32 Welford lanes; the NHWC
    /// column tiles run up to a few thousand rows per lane), and the running values
    /// are rounded to Float32 after every update.
    static let tolerance = 5e-6

    @Test("defaults: mean 0, variance 1, exponential momentum 0.1, nothing tracked")
    func defaults() throws {
        let r = try RunningStatistics(channels: 5)
        #expect(r.channels == 5)
        #expect(r.update == .exponential(momentum: 0.1))
        #expect(r.mean == [0, 0, 0, 0, 0] && r.variance == [1, 1, 1, 1, 1])
        #expect(r.batchesTracked == 0 && r.skippedUpdates == 0)
        #expect(r.population == Array(repeating: Moments.empty, count: 5))
    }

    @Test("exponential: running = (1 − m)·running + m·batch, with the unbiased batch variance")
    func exponential() throws {
        let cases = product(Self.shapes, Layout.allCases, [0.1, 0.3, 0, 1], [false, true])
        sweep(cases) { item, context in
            let (base, layout, momentum, customStart) = item
            let shape = base.with(layout: layout)
            var rng = SplitMix64("ema \(context)")
            let start = customStart ? (rng.uniforms(shape.c, -1...1), rng.uniforms(shape.c, 0.5...3)) : nil
            let running = try RunningStatistics(channels: shape.c, update: .exponential(momentum: momentum),
                                                mean: start?.0, variance: start?.1)
            var mean = running.mean, variance = running.variance
            let bn = try BatchNormalization(shape: shape)
            for batch in 1...3 {
                let x = activations(shape, &rng)
                let (_, saved) = try bn.forwardTraining(x, running: running)
                #expect(saved.runningStatisticsUpdated, "batch \(batch) not folded in — \(context)")
                #expect(running.batchesTracked == batch && running.skippedUpdates == 0, "counters — \(context)")
                for (c, st) in channelStatistics(x, shape).enumerated() {
                    mean[c] = Float((1 - momentum) * Double(mean[c]) + momentum * st.mean)
                    variance[c] = Float((1 - momentum) * Double(variance[c]) + momentum * st.unbiasedVariance)
                }
                expectAllClose(running.mean, mean.map(Double.init), atol: Self.tolerance, rtol: Self.tolerance,
                               "running mean after \(batch)", context)
                expectAllClose(running.variance, variance.map(Double.init), atol: 0, rtol: Self.tolerance,
                               "running variance after \(batch)", context)
            }
            if momentum == 0 {
                #expect(running.mean == (start?.0 ?? Array(repeating: 0, count: shape.c)), "momentum 0 moved the mean — \(context)")
                #expect(running.variance == (start?.1 ?? Array(repeating: 1, count: shape.c)), "momentum 0 moved the variance — \(context)")
            }
        }
    }

    @Test("momentum 1 stores exactly the last batch's mean and unbiased variance (not the biased one)")
    func momentumOneIsUnbiasedBatch() throws {
        // Two values per channel: biased variance d²/4, unbiased d²/2.
        let shape = TensorShape.matrix(2, 3)
        let x: [Float] = [1, 10, -4, 3, 14, 4]
        let running = try RunningStatistics(channels: 3, update: .exponential(momentum: 1))
        let (_, saved) = try BatchNormalization(shape: shape).forwardTraining(x, running: running)
        #expect(running.mean == [2, 12, 0])
        #expect(running.variance == [2, 8, 32])
        #expect(saved.invStd == [1 / (1 + Double(Float(1e-5))).squareRoot(), 1 / (4 + Double(Float(1e-5))).squareRoot(),
                                 1 / (16 + Double(Float(1e-5))).squareRoot()], "normalization uses the biased variance")
    }

    @Test("cumulative average (momentum nil): after k batches, the plain average of batch means and unbiased variances")
    func cumulativeAverage() throws {
        sweep(product(Self.shapes, Layout.allCases)) { item, context in
            let shape = item.0.with(layout: item.1)
            var rng = SplitMix64("cma \(context)")
            let running = try RunningStatistics(channels: shape.c, update: .cumulativeAverage,
                                                mean: rng.uniforms(shape.c, 5...6), variance: rng.uniforms(shape.c, 5...6))
            var sumMean = [Double](repeating: 0, count: shape.c), sumVar = sumMean
            // Batches of different N weigh the same: 1/k each.
            for (k, n) in [3, 2, 7, 4].enumerated() {
                let batchShape = TensorShape(n: n, c: shape.c, h: shape.h, w: shape.w, layout: shape.layout)
                let x = activations(batchShape, &rng)
                let (_, saved) = try BatchNormalization(shape: batchShape).forwardTraining(x, running: running)
                #expect(saved.runningStatisticsUpdated && running.batchesTracked == k + 1, "batch \(k + 1) — \(context)")
                for (c, st) in channelStatistics(x, batchShape).enumerated() {
                    sumMean[c] += st.mean
                    sumVar[c] += st.unbiasedVariance
                }
                let count = Double(k + 1)
                let tol = Self.tolerance
                expectAllClose(running.mean, sumMean.map { $0 / count }, atol: tol, rtol: tol, "mean after \(k + 1)", context)
                expectAllClose(running.variance, sumVar.map { $0 / count }, atol: 0, rtol: tol, "variance after \(k + 1)", context)
            }
        }
    }

    @Test("population: after batches of different sizes and layouts, the exact mean and unbiased variance of all values")
    func population() throws {
        sweep(Self.shapes) { base, context in
            var rng = SplitMix64("population \(context)")
            let running = try RunningStatistics(channels: base.c, update: .population)
            var seen = [[Double]](repeating: [], count: base.c)
            for (k, n) in [5, 2, 9].enumerated() {
                let shape = TensorShape(n: n, c: base.c, h: base.h, w: base.w, layout: k == 1 ? .nhwc : base.layout)
                // Different offsets per batch, so a wrong merge shows.
                let x = activations(shape, &rng, center: Double(k) * 4 - 2...Double(k) * 4 + 2)
                let (_, saved) = try BatchNormalization(shape: shape).forwardTraining(x, running: running)
                #expect(saved.runningStatisticsUpdated && running.batchesTracked == k + 1, "batch \(k + 1) — \(context)")
                for n in 0..<shape.n { for c in 0..<shape.c { for s in 0..<shape.spatial {
                    seen[c].append(Double(x[shape.offset(n, c, s)]))
                } } }
                let all = seen.map(Reference.statistics)
                #expect(running.population.map(\.count) == all.map { Double($0.count) }, "population counts — \(context)")
                let tol = Self.tolerance
                expectAllClose(running.population.map(\.mean), all.map(\.mean), atol: tol, rtol: tol,
                               "population mean (Float64) after \(k + 1)", context)
                expectAllClose(running.mean, all.map(\.mean), atol: tol, rtol: tol, "running mean after \(k + 1)", context)
                expectAllClose(running.variance, all.map(\.unbiasedVariance), atol: 0, rtol: tol,
                            "running (unbiased) variance after \(k + 1)", context)
            }
        }
    }

    @Test("inference after training normalizes with the running statistics")
    func inferenceAfterTraining() throws {
        let updates: [RunningStatistics.Update] = [.exponential(momentum: 0.25), .cumulativeAverage, .population]
        sweep(product(Self.shapes, Layout.allCases, updates)) { item, context in
            let shape = item.0.with(layout: item.1)
            var rng = SplitMix64("train-then-infer \(context)")
            let running = try RunningStatistics(channels: shape.c, update: item.2)
            let (scale, bias) = Affine.both.parameters(shape.c, &rng)
            let bn = try BatchNormalization(shape: shape)
            for _ in 0..<3 { _ = try bn.forwardTraining(activations(shape, &rng), scale: scale, bias: bias, running: running) }
            let tracked = RunningSnapshot(running)
            let x = activations(shape, &rng)
            let y = try bn.forwardInference(x, scale: scale, bias: bias, running: running)
            let ref = Reference.inference(x, shape, mean: running.mean, variance: running.variance, scale: scale, bias: bias)
            expectAllClose(y, ref, atol: 1e-6, rtol: 1e-6, "inference output", context)
            #expect(RunningSnapshot(running) == tracked, "inference changed the running statistics — \(context)")
            // And not with the batch's own statistics.
            let (yt, _) = try bn.forwardTraining(x, scale: scale, bias: bias)
            #expect(zip(y, yt).contains { abs($0 - $1) > 1e-3 }, "inference output equals the training output — \(context)")
        }
    }
}

@Suite("RunningStatistics: non-finite batches")
struct RunningStatisticsNonFiniteTests {
    @Test("a batch with NaN or ±∞: non-finite output in that channel, running statistics untouched, skippedUpdates + 1")
    func batchNorm() throws {
        let updates: [RunningStatistics.Update] = [.exponential(momentum: 0.1), .cumulativeAverage, .population]
        let poisons: [Float] = [.nan, .infinity, -.infinity]
        let shapes = [TensorShape(n: 3, c: 41, h: 5, w: 7), TensorShape(n: 2, c: 3, h: 70, w: 61)]
        sweep(product(shapes, Layout.allCases, updates, poisons)) { item, context in
            let (base, layout, update, poison) = item
            let shape = base.with(layout: layout)
            var rng = SplitMix64("nonfinite \(context)")
            let running = try RunningStatistics(channels: shape.c, update: update)
            let bn = try BatchNormalization(shape: shape)
            let first = activations(shape, &rng)
            #expect(try bn.forwardTraining(first, running: running).saved.runningStatisticsUpdated, "first batch — \(context)")

            let before = RunningSnapshot(running)
            var x = activations(shape, &rng)
            let bad = 2 % shape.c
            x[shape.offset(1, bad, shape.spatial / 2)] = poison
            let (y, saved) = try bn.forwardTraining(x, running: running)
            #expect(saved.runningStatisticsUpdated == false, "poisoned batch reported as folded in — \(context)")
            var after = RunningSnapshot(running)
            #expect(after.skippedUpdates == before.skippedUpdates + 1, "skippedUpdates — \(context)")
            after.skippedUpdates = before.skippedUpdates
            #expect(after == before, "running statistics changed by a poisoned batch — \(context)")
            #expect(!saved.mean[bad].isFinite || !saved.invStd[bad].isFinite, "saved statistics of the bad channel are finite — \(context)")

            // The bad channel's output is not finite (NaN for NaN input); other channels are normal.
            let ref = Reference.batchNorm(x, shape)
            var good: [Float] = [], goodRef: [Double] = []
            for n in 0..<shape.n { for c in 0..<shape.c { for s in 0..<shape.spatial {
                let i = shape.offset(n, c, s)
                if c == bad {
                    if poison.isNaN { #expect(y[i].isNaN, "output[\(i)] = \(y[i]) in the NaN channel — \(context)") }
                    else { #expect(!y[i].isFinite, "output[\(i)] = \(y[i]) in the ∞ channel — \(context)") }
                } else {
                    good.append(y[i]); goodRef.append(ref.output[i])
                }
            } } }
            let tol = reductionTolerance(shape.n * shape.spatial)
            expectAllClose(good, goodRef, atol: tol, rtol: tol, "output of the finite channels", context)

            // The next finite batch is folded in as if the poisoned one never happened.
            let third = activations(shape, &rng)
            #expect(try bn.forwardTraining(third, running: running).saved.runningStatisticsUpdated, "third batch — \(context)")
            #expect(running.batchesTracked == 2 && running.skippedUpdates == 1, "counters after recovery — \(context)")
            if update == .cumulativeAverage {
                let a = channelStatistics(first, shape), b = channelStatistics(third, shape)
                expectAllClose(running.mean, zip(a, b).map { ($0.mean + $1.mean) / 2 }, atol: RunningStatisticsBatchNormTests.tolerance, rtol: RunningStatisticsBatchNormTests.tolerance,
                            "cumulative mean skips the poisoned batch", context)
            }
            #expect(running.mean.allSatisfy { $0.isFinite } && running.variance.allSatisfy { $0.isFinite }, "running poisoned — \(context)")
        }
    }

    @Test("InstanceNorm: a NaN in one instance skips the update")
    func instanceNorm() throws {
        sweep(Layout.allCases) { layout, context in
            let shape = TensorShape(n: 3, c: 5, h: 6, w: 7, layout: layout)
            var rng = SplitMix64("in-nonfinite \(context)")
            let running = try RunningStatistics(channels: 5)
            let inorm = try InstanceNormalization(shape: shape)
            _ = try inorm.forwardTraining(activations(shape, &rng), running: running)
            let before = RunningSnapshot(running)
            var x = activations(shape, &rng)
            x[shape.offset(2, 4, 0)] = .nan
            let (y, saved) = try inorm.forwardTraining(x, running: running)
            #expect(!saved.runningStatisticsUpdated)
            #expect(running.skippedUpdates == 1 && running.batchesTracked == 1, "counters — \(context)")
            #expect(running.mean == before.mean && running.variance == before.variance, "running changed — \(context)")
            #expect((0..<shape.spatial).allSatisfy { y[shape.offset(2, 4, $0)].isNaN }, "NaN instance output — \(context)")
            #expect((0..<shape.spatial).allSatisfy { y[shape.offset(1, 4, $0)].isFinite }, "other instances stay finite — \(context)")
        }
    }
}

@Suite("RunningStatistics: InstanceNorm")
struct RunningStatisticsInstanceNormTests {
    @Test("exponential: batch averages of per-instance means and unbiased variances (PyTorch's rule)")
    func pyTorchRule() throws {
        sweep(product([TensorShape(n: 3, c: 5, h: 6, w: 7), TensorShape(n: 1, c: 33, h: 9, w: 9),
                       TensorShape(n: 4, c: 2, h: 70, w: 61)], Layout.allCases)) { item, context in
            let shape = item.0.with(layout: item.1)
            var rng = SplitMix64("in-running \(context)")
            let momentum = 0.2
            let running = try RunningStatistics(channels: shape.c, update: .exponential(momentum: momentum))
            var mean = running.mean, variance = running.variance
            let inorm = try InstanceNormalization(shape: shape)
            for batch in 1...2 {
                let x = activations(shape, &rng)
                let (_, saved) = try inorm.forwardTraining(x, running: running)
                #expect(saved.runningStatisticsUpdated && running.batchesTracked == batch, "batch \(batch) — \(context)")
                let stats = Reference.instanceNorm(x, shape).statistics
                for c in 0..<shape.c {
                    let instances = (0..<shape.n).map { stats[$0 * shape.c + c] }
                    let m = instances.map(\.mean).reduce(0, +) / Double(shape.n)
                    let v = instances.map(\.unbiasedVariance).reduce(0, +) / Double(shape.n)
                    mean[c] = Float((1 - momentum) * Double(mean[c]) + momentum * m)
                    variance[c] = Float((1 - momentum) * Double(variance[c]) + momentum * v)
                }
                let tol = RunningStatisticsBatchNormTests.tolerance
                expectAllClose(running.mean, mean.map(Double.init), atol: tol, rtol: tol, "running mean after \(batch)", context)
                expectAllClose(running.variance, variance.map(Double.init), atol: 0, rtol: tol,
                               "running variance after \(batch)", context)
            }
            // Inference then uses them, the same for every sample.
            let x = activations(shape, &rng)
            let y = try inorm.forwardInference(x, running: running)
            expectAllClose(y, Reference.inference(x, shape, mean: running.mean, variance: running.variance),
                        atol: 1e-6, rtol: 1e-6, "inference output", context)
        }
    }

    @Test("population: every instance's values merged into its channel")
    func population() throws {
        sweep(Layout.allCases) { layout, context in
            let shape = TensorShape(n: 3, c: 4, h: 5, w: 9, layout: layout)
            var rng = SplitMix64("in-population \(context)")
            let running = try RunningStatistics(channels: 4, update: .population)
            var seen = [[Double]](repeating: [], count: 4)
            for _ in 0..<2 {
                let x = activations(shape, &rng)
                _ = try InstanceNormalization(shape: shape).forwardTraining(x, running: running)
                for n in 0..<shape.n { for c in 0..<shape.c { for s in 0..<shape.spatial {
                    seen[c].append(Double(x[shape.offset(n, c, s)]))
                } } }
            }
            let all = seen.map(Reference.statistics)
            let tol = RunningStatisticsBatchNormTests.tolerance
            expectAllClose(running.mean, all.map(\.mean), atol: tol, rtol: tol, "running mean", context)
            expectAllClose(running.variance, all.map(\.unbiasedVariance), atol: 0, rtol: tol, "running variance", context)
        }
    }
}
