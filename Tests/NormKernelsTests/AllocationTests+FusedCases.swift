// The fused kernels' cases of AllocationTests (issue 21's GroupNorm + SiLU,
// residual LayerNorm/RMSNorm, RMSNorm × gate) and SynchronizedBatchNorm on one
// rank: forward and backward, on a shape per path. As in
// `AllocationTests+Cases.swift`, each states what its warm call may allocate.

@testable import NormKernels

extension AllocationKit {
    func fusedCases() -> [AllocationCase] {
        var cases: [AllocationCase] = []
        for (shape, groups) in [
            (TensorShape(n: 1024, c: 256), 8),                             // feature vectors (row engine)
            (TensorShape(n: 128, c: 64, h: 4, w: 4, layout: .nhwc), 8),    // NHWC small maps (row engine)
            (TensorShape(n: 8, c: 64, h: 16, w: 16, layout: .nchw), 8),   // channel groups, rows
            (TensorShape(n: 8, c: 64, h: 16, w: 16, layout: .nhwc), 8),   // channel groups, columns
        ] {
            cases += groupNormSiLU(shape, groups: groups)
        }
        // One row block (the residual step a pass of its own), and many short rows
        // (blockwise: each row block finished while in cache).
        for (rows, features) in [(256, 1024), (8192, 128)] {
            cases += residualNorm(rows: rows, features: features)
            cases += gatedRMSNorm(rows: rows, features: features)
        }
        return cases + synchronizedBatchNorm(TensorShape(n: 8, c: 64, h: 16, w: 16, layout: .nchw))
    }

    // MARK: GroupNorm + SiLU

    func groupNormSiLU(_ shape: TensorShape, groups: Int) -> [AllocationCase] {
        let threading = self.threading, perSample = shape.n * shape.c
        func prepare() -> (GroupNormalization, AllocationBuffers<Float>, AllocationBuffers<Float>, SavedStatistics) {
            let norm = try! GroupNormalization(shape: shape, groups: groups, threading: threading)
            let b = AllocationBuffers<Float>(count: shape.count, parameters: shape.c)
            // The modulation (scale, shift) and its gradients: N·C values each.
            let m = AllocationBuffers<Float>(count: 1, parameters: perSample)
            let saved = try! norm.forwardSiLU(input: b.x, output: b.y, scale: b.gamma, bias: b.beta,
                                              modulationScale: m.gamma, modulationShift: m.beta)
            return (norm, b, m, saved)
        }
        let name = "GroupNorm+SiLU \(Self.describe(shape)) G\(groups)"
        // The row-engine paths: GroupNorm's forward, then the SiLU sweep over y
        // (two parallel calls); the channel-groups path folds SiLU into its one.
        return [
            add("\(name) forward", results: Self.saved) {
                let (norm, b, m, _) = prepare()
                return {
                    _ = try! norm.forwardSiLU(input: b.x, output: b.y, scale: b.gamma, bias: b.beta,
                                              modulationScale: m.gamma, modulationShift: m.beta)
                }
            },
            // The g pass, then GroupNorm's backward on g: two parallel calls.
            add("\(name) backward") {
                let (norm, b, m, saved) = prepare()
                return {
                    try! norm.backwardSiLU(input: b.x, gradOutput: b.dy, saved: saved, scale: b.gamma, bias: b.beta,
                                           modulationScale: m.gamma, modulationShift: m.beta, gradInput: b.dx,
                                           gradScale: b.dgamma, gradBias: b.dbeta,
                                           gradModulationScale: m.dgamma, gradModulationShift: m.dbeta)
                }
            },
        ]
    }

    // MARK: Residual LayerNorm / RMSNorm, RMSNorm × gate

    func residualNorm(rows: Int, features: Int) -> [AllocationCase] {
        let threading = self.threading, elements = rows * features
        typealias Prepared = (layer: LayerNormalization, rms: RMSNormalization, b: AllocationBuffers<Float>,
                              p: AllocationBuffers<Float>, layerSaved: SavedStatistics, rmsSaved: SavedStatistics)
        func prepare() -> Prepared {
            let layer = try! LayerNormalization(rows: rows, features: features, threading: threading)
            let rms = try! RMSNormalization(rows: rows, features: features, threading: threading)
            let b = AllocationBuffers<Float>(count: elements, parameters: features)
            let p = AllocationBuffers<Float>(count: 1, parameters: features)   // d inputBias: p.dgamma
            // s goes to dIdentity (the sum output); x + residual from x and identity.
            let layerSaved = try! layer.forward(input: b.x, residual: b.identity, output: b.y, sum: b.dIdentity,
                                                scale: b.gamma, bias: b.beta, inputBias: b.beta)
            let rmsSaved = try! rms.forward(input: b.x, residual: b.identity, output: b.y, sum: b.dIdentity,
                                            scale: b.gamma, inputBias: b.beta)
            return (layer, rms, b, p, layerSaved, rmsSaved)
        }
        let shape = "[\(rows), \(features)]"
        // Backward: the plain engine on s (one parallel call), then the residual
        // step (dx += ds, d bias column sums): a pass of its own — two phases, so
        // one call with parked workers, two with warm ones — or, blockwise, the
        // engine and the step in one two-phase call. At most: with a single row
        // block (here [256, 1024], as LayerNorm's own backward) neither the
        // engine nor the step's pass has two items to spread: no parallel call.
        return [
            add("Residual LayerNorm \(shape) forward", results: Self.saved) {
                let (layer, _, b, _, _, _) = prepare()
                return {
                    _ = try! layer.forward(input: b.x, residual: b.identity, output: b.y, sum: b.dIdentity,
                                           scale: b.gamma, bias: b.beta, inputBias: b.beta)
                }
            },
            add("Residual LayerNorm \(shape) backward") {
                let (layer, _, b, p, saved, _) = prepare()
                return {
                    try! layer.backward(sum: UnsafeBufferPointer(b.dIdentity), gradOutput: b.dy, gradSum: b.x,
                                        saved: saved, scale: b.gamma, gradInput: b.dx, gradScale: b.dgamma,
                                        gradBias: b.dbeta, gradInputBias: p.dgamma)
                }
            },
            add("Residual RMSNorm \(shape) forward", results: Self.saved) {
                let (_, rms, b, _, _, _) = prepare()
                return {
                    _ = try! rms.forward(input: b.x, residual: b.identity, output: b.y, sum: b.dIdentity,
                                         scale: b.gamma, inputBias: b.beta)
                }
            },
            add("Residual RMSNorm \(shape) backward") {
                let (_, rms, b, p, _, saved) = prepare()
                return {
                    try! rms.backward(sum: UnsafeBufferPointer(b.dIdentity), gradOutput: b.dy, gradSum: b.x,
                                      saved: saved, scale: b.gamma, gradInput: b.dx, gradScale: b.dgamma,
                                      gradInputBias: p.dgamma)
                }
            },
        ]
    }

    func gatedRMSNorm(rows: Int, features: Int) -> [AllocationCase] {
        let threading = self.threading, elements = rows * features
        func prepare() -> (RMSNormalization, AllocationBuffers<Float>, SavedStatistics) {
            let norm = try! RMSNormalization(rows: rows, features: features, threading: threading)
            let b = AllocationBuffers<Float>(count: elements, parameters: features)
            return (norm, b, try! norm.forward(input: b.x, gate: b.identity, output: b.y, scale: b.gamma))
        }
        let shape = "[\(rows), \(features)]"
        // Backward: the gate pass, then the plain engine (two parallel calls), or,
        // blockwise, both in one two-phase call. At most: a single row block makes
        // the engine's call serial (here [256, 1024]: the gate pass alone).
        return [
            add("RMSNorm×gate \(shape) forward", results: Self.saved) {
                let (norm, b, _) = prepare()
                return { _ = try! norm.forward(input: b.x, gate: b.identity, output: b.y, scale: b.gamma) }
            },
            add("RMSNorm×gate \(shape) backward") {
                let (norm, b, saved) = prepare()
                return {
                    try! norm.backward(input: b.x, gate: b.identity, gradOutput: b.dy, saved: saved, scale: b.gamma,
                                       gradInput: b.dx, gradGate: b.dIdentity, gradScale: b.dgamma)
                }
            },
        ]
    }

    // MARK: SynchronizedBatchNorm, one rank

    func synchronizedBatchNorm(_ shape: TensorShape) -> [AllocationCase] {
        let threading = self.threading, elements = shape.count
        func prepare() -> (SynchronizedBatchNormalization, AllocationBuffers<Float>, SavedStatistics) {
            let exchange = try! InProcessExchange.group(size: 1)[0]
            let norm = try! SynchronizedBatchNormalization(shape: shape, threading: threading, exchange: exchange)
            let b = AllocationBuffers<Float>(count: elements, parameters: shape.c)
            return (norm, b, try! norm.forwardTraining(input: b.x, output: b.y, scale: b.gamma, bias: b.beta))
        }
        let name = "SyncBatchNorm \(Self.describe(shape)) 1 rank"
        // Each step's payload (`[Double]` of the step's length) is allocated per
        // call: it is what `StatisticsExchange.allGather` is handed and what comes
        // back gathered (with more ranks, the gathered array too), arrays that the
        // transport may keep or resize, so they are the call's own values rather
        // than workspace. Then the local BatchNorm's statistics pass and its output
        // (or dx) pass: two parallel calls. Nothing else: the merge's stack and
        // result come from the descriptor's workspace pool.
        let payload = 1
        return [
            add("\(name) forward", results: Self.saved + payload) {
                let (norm, b, _) = prepare()
                return { _ = try! norm.forwardTraining(input: b.x, output: b.y, scale: b.gamma, bias: b.beta) }
            },
            // Global parameter gradients: the rank's own sums (`.local`) would be one
            // more array of C sums.
            add("\(name) backward", results: payload) {
                let (norm, b, saved) = prepare()
                return {
                    try! norm.backwardTraining(input: b.x, gradOutput: b.dy, saved: saved, scale: b.gamma,
                                               gradInput: b.dx, gradScale: b.dgamma, gradBias: b.dbeta,
                                               parameterGradients: .global)
                }
            },
        ]
    }
}
