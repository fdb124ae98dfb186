// The cases of AllocationTests: every public kernel descriptor, forward and
// backward, on a shape per plan path. Each states what its warm call may
// allocate: the results the caller owns, and the Runtime's cost per parallel call.

@testable import NormKernels

/// Builds the cases of one threading.
struct AllocationKit {
    let label: String
    let threading: Threading

    /// A case named `name` (the threading's label appended) whose warm call
    /// allocates `results` arrays the caller owns, plus the Runtime's cost of
    /// each parallel call it makes (`AllocationBounds`).
    func add(_ name: String, results: Int = 0, _ prepare: @escaping () -> () -> Void) -> AllocationCase {
        AllocationCase(name: "\(name) \(label)", results: results,
                       perParallelCall: AllocationBounds.perParallelCall(threading), prepare: prepare)
    }

    static let saved = AllocationBounds.savedStatistics

    // MARK: LayerNorm, RMSNorm (the row engine)

    func rowCases() -> [AllocationCase] {
        var cases: [AllocationCase] = []
        // 8 rows per vector, one row at a time, and rows over 16 384 values (the rows geometry).
        for (rows, features) in [(16, 64), (256, 1024), (8, 20_000)] {
            cases += layerNorm(Float.self, "", rows: rows, features: features)
            cases += rmsNorm(rows: rows, features: features)
        }
        cases += layerNorm(Float16.self, " Float16", rows: 256, features: 1024)
        cases += layerNorm(BFloat16.self, " BFloat16", rows: 256, features: 1024)
        return cases
    }

    func layerNorm<E: NormElement>(_: E.Type, _ type: String, rows: Int, features: Int) -> [AllocationCase] {
        let threading = self.threading, elements = rows * features
        func prepare() -> (LayerNormalization, AllocationBuffers<E>, SavedStatistics) {
            let norm = try! LayerNormalization(rows: rows, features: features, threading: threading)
            let b = AllocationBuffers<E>(count: elements, parameters: features)
            return (norm, b, try! norm.forwardAnyElement(input: b.x, output: b.y, scale: b.gamma, bias: b.beta))
        }
        let shape = "LayerNorm\(type) [\(rows), \(features)]"
        return [
            add("\(shape) forward", results: Self.saved) {
                let (norm, b, _) = prepare()
                return { _ = try! norm.forwardAnyElement(input: b.x, output: b.y, scale: b.gamma, bias: b.beta) }
            },
            // Rows over 4096 values, in one row block: the row sums, then the tiles
            // (two parallel phases).
            add("\(shape) backward") {
                let (norm, b, saved) = prepare()
                return {
                    try! norm.backwardAnyElement(input: b.x, gradOutput: b.dy, saved: saved, scale: b.gamma,
                                                 gradInput: b.dx, gradScale: b.dgamma, gradBias: b.dbeta)
                }
            },
        ]
    }

    func rmsNorm(rows: Int, features: Int) -> [AllocationCase] {
        let threading = self.threading, elements = rows * features
        func prepare() -> (RMSNormalization, AllocationBuffers<Float>, SavedStatistics) {
            let norm = try! RMSNormalization(rows: rows, features: features, threading: threading)
            let b = AllocationBuffers<Float>(count: elements, parameters: features)
            return (norm, b, try! norm.forward(input: b.x, output: b.y, scale: b.gamma))
        }
        let shape = "RMSNorm [\(rows), \(features)]"
        return [
            add("\(shape) forward", results: Self.saved) {
                let (norm, b, _) = prepare()
                return { _ = try! norm.forward(input: b.x, output: b.y, scale: b.gamma) }
            },
            add("\(shape) backward") {
                let (norm, b, saved) = prepare()
                return {
                    try! norm.backward(input: b.x, gradOutput: b.dy, saved: saved, scale: b.gamma,
                                       gradInput: b.dx, gradScale: b.dgamma)
                }
            },
        ]
    }

    // MARK: GroupNorm

    func groupCases() -> [AllocationCase] {
        [
            (TensorShape(n: 1024, c: 256), 8),                             // feature vectors
            (TensorShape(n: 128, c: 64, h: 4, w: 4, layout: .nchw), 8),    // NCHW small maps: γ, β expanded
            (TensorShape(n: 128, c: 64, h: 4, w: 4, layout: .nhwc), 8),    // NHWC small maps: group segments
            (TensorShape(n: 8, c: 64, h: 16, w: 16, layout: .nchw), 8),   // channel groups, rows
            (TensorShape(n: 8, c: 64, h: 16, w: 16, layout: .nhwc), 8),   // channel groups, columns
        ].flatMap { groupNorm($0, groups: $1) }
    }

    func groupNorm(_ shape: TensorShape, groups: Int) -> [AllocationCase] {
        let threading = self.threading
        func prepare() -> (GroupNormalization, AllocationBuffers<Float>, SavedStatistics) {
            let norm = try! GroupNormalization(shape: shape, groups: groups, threading: threading)
            let b = AllocationBuffers<Float>(count: shape.count, parameters: shape.c)
            return (norm, b, try! norm.forward(input: b.x, output: b.y, scale: b.gamma, bias: b.beta))
        }
        let name = "GroupNorm \(Self.describe(shape)) G\(groups)"
        return [
            add("\(name) forward", results: Self.saved) {
                let (norm, b, _) = prepare()
                return { _ = try! norm.forward(input: b.x, output: b.y, scale: b.gamma, bias: b.beta) }
            },
            add("\(name) backward") {
                let (norm, b, saved) = prepare()
                return {
                    try! norm.backward(input: b.x, gradOutput: b.dy, saved: saved, scale: b.gamma,
                                       gradInput: b.dx, gradScale: b.dgamma, gradBias: b.dbeta)
                }
            },
        ]
    }

    // MARK: InstanceNorm, AdaIN

    func instanceCases() -> [AllocationCase] {
        [
            TensorShape(n: 64, c: 64, h: 4, w: 4, layout: .nchw),     // tiny instances
            TensorShape(n: 64, c: 64, h: 2, w: 2, layout: .nhwc),     // tiny channels (forward and backward)
            TensorShape(n: 8, c: 64, h: 16, w: 16, layout: .nchw),    // channel groups, rows
            TensorShape(n: 8, c: 64, h: 16, w: 16, layout: .nhwc),    // channel groups, columns
        ].flatMap { instanceNorm($0) } + adaIN(TensorShape(n: 8, c: 64, h: 16, w: 16, layout: .nchw))
    }

    func instanceNorm(_ shape: TensorShape) -> [AllocationCase] {
        let threading = self.threading
        func prepare() -> (InstanceNormalization, AllocationBuffers<Float>, SavedStatistics, RunningStatistics) {
            let norm = try! InstanceNormalization(shape: shape, threading: threading)
            let b = AllocationBuffers<Float>(count: shape.count, parameters: shape.c)
            let saved = try! norm.forwardTraining(input: b.x, output: b.y, scale: b.gamma, bias: b.beta)
            return (norm, b, saved, try! RunningStatistics(channels: shape.c))
        }
        let name = "InstanceNorm \(Self.describe(shape))"
        // Tiny instances (H·W = 16): inference's memory-order pass weighs each
        // sample as whole blocks of the rows geometry's nominal length, and the
        // backward's chunks weigh x and dy: both go parallel below the threshold.
        return [
            add("\(name) training", results: Self.saved) {
                let (norm, b, _, _) = prepare()
                return { _ = try! norm.forwardTraining(input: b.x, output: b.y, scale: b.gamma, bias: b.beta) }
            },
            add("\(name) training+running", results: Self.saved) {
                let (norm, b, _, running) = prepare()
                return {
                    _ = try! norm.forwardTraining(input: b.x, output: b.y, scale: b.gamma, bias: b.beta, running: running)
                }
            },
            add("\(name) inference") {
                let (norm, b, _, running) = prepare()
                return { try! norm.forwardInference(input: b.x, output: b.y, scale: b.gamma, bias: b.beta, running: running) }
            },
            add("\(name) backward") {
                let (norm, b, saved, _) = prepare()
                return {
                    try! norm.backwardTraining(input: b.x, gradOutput: b.dy, saved: saved, scale: b.gamma,
                                               gradInput: b.dx, gradScale: b.dgamma, gradBias: b.dbeta)
                }
            },
        ]
    }

    func adaIN(_ shape: TensorShape) -> [AllocationCase] {
        let threading = self.threading
        func prepare() -> (AdaptiveInstanceNormalization, AllocationBuffers<Float>, AdaptiveInstanceNormalization.Saved) {
            let norm = try! AdaptiveInstanceNormalization(content: shape, style: shape, threading: threading)
            let b = AllocationBuffers<Float>(count: shape.count, parameters: 1)
            return (norm, b, try! norm.forward(content: b.x, style: b.identity, output: b.y))
        }
        let name = "AdaIN \(Self.describe(shape))"
        return [
            // The four saved arrays (content mean, 1/σ, style mean, σ) are the caller's;
            // the style's statistics, then the content's: two parallel calls.
            add("\(name) forward", results: 4) {
                let (norm, b, _) = prepare()
                return { _ = try! norm.forward(content: b.x, style: b.identity, output: b.y) }
            },
            // The content's backward, then the style's dx pass, which weighs each
            // (n, c) unit as a nominal block (parallel with parked workers too).
            add("\(name) backward") {
                let (norm, b, saved) = prepare()
                return {
                    try! norm.backward(content: b.x, style: b.identity, gradOutput: b.dy, saved: saved,
                                       gradContent: b.dx, gradStyle: b.dIdentity)
                }
            },
        ]
    }

    // MARK: BatchNorm

    func batchNormCases() -> [AllocationCase] {
        [
            TensorShape(n: 8, c: 64, h: 32, w: 32, layout: .nchw),   // channel runs
            TensorShape(n: 32, c: 64, h: 7, w: 7, layout: .nchw),    // short runs, memory-order output
            TensorShape(n: 8, c: 64, h: 16, w: 16, layout: .nhwc),   // columns
            TensorShape.matrix(1024, 256),                           // [N, D]: columns
        ].flatMap { batchNorm($0) }
    }

    func batchNorm(_ shape: TensorShape) -> [AllocationCase] {
        let threading = self.threading, elements = shape.count
        func prepare() -> (BatchNormalization, AllocationBuffers<Float>, SavedStatistics, RunningStatistics) {
            let norm = try! BatchNormalization(shape: shape, threading: threading)
            let b = AllocationBuffers<Float>(count: elements, parameters: shape.c)
            let saved = try! norm.forwardTraining(input: b.x, output: b.y, scale: b.gamma, bias: b.beta)
            return (norm, b, saved, try! RunningStatistics(channels: shape.c))
        }
        let name = "BatchNorm \(Self.describe(shape))"
        // NCHW short runs (7×7): statistics by channel, then the output in memory
        // order, whose blocks the scheduler weighs at the nominal block length
        // (parallel below the threshold).
        return [
            add("\(name) training", results: Self.saved) {
                let (norm, b, _, _) = prepare()
                return { _ = try! norm.forwardTraining(input: b.x, output: b.y, scale: b.gamma, bias: b.beta) }
            },
            // RunningStatistics.fold updates the running arrays in place.
            add("\(name) training+running", results: Self.saved) {
                let (norm, b, _, running) = prepare()
                return {
                    _ = try! norm.forwardTraining(input: b.x, output: b.y, scale: b.gamma, bias: b.beta, running: running)
                }
            },
            add("\(name) inference") {
                let (norm, b, _, running) = prepare()
                return { try! norm.forwardInference(input: b.x, output: b.y, scale: b.gamma, bias: b.beta, running: running) }
            },
            add("\(name) backward") {
                let (norm, b, saved, _) = prepare()
                return {
                    try! norm.backwardTraining(input: b.x, gradOutput: b.dy, saved: saved, scale: b.gamma,
                                               gradInput: b.dx, gradScale: b.dgamma, gradBias: b.dbeta)
                }
            },
            add("\(name) inference backward") {
                let (norm, b, _, running) = prepare()
                return {
                    try! norm.backwardInference(input: b.x, gradOutput: b.dy, running: running, scale: b.gamma,
                                                gradInput: b.dx, gradScale: b.dgamma, gradBias: b.dbeta)
                }
            },
        ] + fusedBatchNorm(shape)
    }

    /// BatchNorm + add + ReLU (`identity:`), forward and backward.
    func fusedBatchNorm(_ shape: TensorShape) -> [AllocationCase] {
        let threading = self.threading, elements = shape.count
        func prepare() -> (BatchNormalization, AllocationBuffers<Float>, SavedStatistics) {
            let norm = try! BatchNormalization(shape: shape, fusedReLU: true, threading: threading)
            let b = AllocationBuffers<Float>(count: elements, parameters: shape.c)
            let saved = try! norm.forwardTraining(input: b.x, identity: b.identity, output: b.y,
                                                  scale: b.gamma, bias: b.beta)
            return (norm, b, saved)
        }
        let name = "BatchNorm+add+ReLU \(Self.describe(shape))"
        // The d identity pass, then the backward: two parallel calls (or more:
        // one per parallel phase with warm workers).
        return [
            add("\(name) training", results: Self.saved) {
                let (norm, b, _) = prepare()
                return {
                    _ = try! norm.forwardTraining(input: b.x, identity: b.identity, output: b.y, scale: b.gamma, bias: b.beta)
                }
            },
            add("\(name) backward") {
                let (norm, b, saved) = prepare()
                return {
                    try! norm.backwardTraining(input: b.x, gradOutput: b.dy, saved: saved, scale: b.gamma,
                                               output: UnsafeBufferPointer(b.y), gradInput: b.dx,
                                               gradIdentity: b.dIdentity, gradScale: b.dgamma, gradBias: b.dbeta)
                }
            },
        ]
    }

    // MARK: Weight normalization

    func otherCases() -> [AllocationCase] {
        let threading = self.threading, shape = [256, 1024], elements = 256 * 1024
        func prepare() -> (WeightNormalization, AllocationBuffers<Float>, [Double]) {
            let norm = try! WeightNormalization(shape: shape, dim: 0, threading: threading)
            let b = AllocationBuffers<Float>(count: elements, parameters: 256)
            return (norm, b, try! norm.forward(v: b.x, g: b.gamma, output: b.y))
        }
        return [
            // The norms it returns are the caller's.
            add("WeightNorm [256, 1024] forward", results: 1) {
                let (norm, b, _) = prepare()
                return { _ = try! norm.forward(v: b.x, g: b.gamma, output: b.y) }
            },
            add("WeightNorm [256, 1024] backward") {
                let (norm, b, norms) = prepare()
                return { try! norm.backward(v: b.x, g: b.gamma, gradWeight: b.dy, norms: norms, gradV: b.dx, gradG: b.dgamma) }
            },
        ]
    }

    static func describe(_ shape: TensorShape) -> String {
        shape.h == 1 && shape.w == 1 && shape.layout == .nchw
            ? "[\(shape.n), \(shape.c)]" : "\(shape.n)x\(shape.c)x\(shape.h)x\(shape.w) \(shape.layout)"
    }
}
