// Array conveniences under hostile descriptors (found by the fuzzer,
// `Fuzzer+Arrays.swift`): a backward array convenience allocates its gradients
// from the descriptor's sizes, and did so before the pointer API checked the
// caller's arrays. A descriptor of 2⁴⁰ values (valid: under the 2⁴⁸ limit) with a
// 3-value array asked for 4 TiB of zeros, a trap on allocation failure. Each
// call must now throw the pointer API's length error on its first tensor
// (`Check.arrayInput`) before allocating anything.

import Testing
@testable import NormKernels

@Suite("Hostile descriptors through the array conveniences")
struct HostileArrayTests {
    /// 2⁴⁰ values: a legal descriptor no test machine could allocate.
    static let huge = TensorShape(n: 1 << 20, c: 1 << 20)

    @Test("[Float] backward conveniences with a 2⁴⁰-value descriptor and 3-value arrays throw instead of allocating")
    func floatArrays() throws {
        let x: [Float] = [1, 2, 3], s = SavedStatistics(mean: [0], invStd: [1]), r = try RunningStatistics(channels: 1)
        let bn = try BatchNormalization(shape: Self.huge, fusedReLU: false), inorm = try InstanceNormalization(shape: Self.huge)
        let gn = try GroupNormalization(shape: Self.huge, groups: 1)
        let ln = try LayerNormalization(rows: 1, features: 1 << 40), rn = try RMSNormalization(rows: 1, features: 1 << 40)
        let ada = try AdaptiveInstanceNormalization(content: Self.huge, style: Self.huge)
        let wn = try WeightNormalization(shape: [1 << 20, 1 << 20])
        let cases: [(String, String, () throws -> Void)] = [
            ("BatchNorm backwardTraining", "input", { _ = try bn.backwardTraining(x, gradOutput: x, saved: s) }),
            ("BatchNorm backwardInference", "input", { _ = try bn.backwardInference(x, gradOutput: x, running: r) }),
            ("BatchNorm + add backwardTraining", "input", { _ = try bn.backwardTraining(x, gradOutput: x, saved: s, gradIdentity: true) }),
            ("BatchNorm + add backwardInference", "input", { _ = try bn.backwardInference(x, gradOutput: x, running: r, gradIdentity: true) }),
            ("InstanceNorm backwardTraining", "input", { _ = try inorm.backwardTraining(x, gradOutput: x, saved: s) }),
            ("InstanceNorm backwardInference", "input", { _ = try inorm.backwardInference(x, gradOutput: x, running: r) }),
            ("GroupNorm backward", "input", { _ = try gn.backward(x, gradOutput: x, saved: s) }),
            ("GroupNorm + SiLU backward", "input", { _ = try gn.backwardSiLU(x, gradOutput: x, saved: s, modulationScale: [1], modulationShift: [1]) }),
            ("LayerNorm backward", "input", { _ = try ln.backward(x, gradOutput: x, saved: s) }),
            ("RMSNorm backward", "input", { _ = try rn.backward(x, gradOutput: x, saved: s) }),
            ("residual LayerNorm backward", "sum", { _ = try ln.backward(sum: x, gradOutput: x, saved: s) }),
            ("residual RMSNorm backward", "sum", { _ = try rn.backward(sum: x, gradOutput: x, saved: s) }),
            ("RMSNorm × gate backward", "input", { _ = try rn.backward(x, gate: x, gradOutput: x, saved: s, scale: [1]) }),
            ("AdaIN backward", "content", { _ = try ada.backward(content: x, style: x, gradOutput: x, saved: .init(contentMean: [0], contentInvStd: [1], styleMean: [0], styleStd: [1])) }),
            ("weight norm backward", "v", { _ = try wn.backward(v: x, g: [1], gradWeight: x, norms: [1]) }),
        ]
        for (what, argument, call) in cases {
            expectNormError("[Float] \(what)", mentions: [argument], matches: { $0 == .lengthMismatch(argument: argument, expected: 1 << 40, actual: 3) }, call)
        }
    }

    @Test("[BFloat16] backward conveniences with a 2⁴⁰-value descriptor and 3-value arrays throw instead of allocating")
    func elementArrays() throws {
        let x: [BFloat16] = ([1, 2, 3] as [Float]).map { BFloat16($0) }, s = SavedStatistics(mean: [0], invStd: [1]), r = try RunningStatistics(channels: 1)
        let bn = try BatchNormalization(shape: Self.huge, fusedReLU: false), inorm = try InstanceNormalization(shape: Self.huge)
        let gn = try GroupNormalization(shape: Self.huge, groups: 1)
        let ln = try LayerNormalization(rows: 1, features: 1 << 40), rn = try RMSNormalization(rows: 1, features: 1 << 40)
        let ada = try AdaptiveInstanceNormalization(content: Self.huge, style: Self.huge)
        let wn = try WeightNormalization(shape: [1 << 20, 1 << 20])
        let cases: [(String, String, () throws -> Void)] = [
            ("BatchNorm backwardTraining", "input", { _ = try bn.backwardTraining(x, gradOutput: x, saved: s) }),
            ("BatchNorm backwardInference", "input", { _ = try bn.backwardInference(x, gradOutput: x, running: r) }),
            ("BatchNorm + add backwardTraining", "input", { _ = try bn.backwardTraining(x, gradOutput: x, saved: s, gradIdentity: true) }),
            ("BatchNorm + add backwardInference", "input", { _ = try bn.backwardInference(x, gradOutput: x, running: r, gradIdentity: true) }),
            ("InstanceNorm backwardTraining", "input", { _ = try inorm.backwardTraining(x, gradOutput: x, saved: s) }),
            ("InstanceNorm backwardInference", "input", { _ = try inorm.backwardInference(x, gradOutput: x, running: r) }),
            ("GroupNorm backward", "input", { _ = try gn.backward(x, gradOutput: x, saved: s) }),
            ("GroupNorm + SiLU backward", "input", { _ = try gn.backwardSiLU(x, gradOutput: x, saved: s, modulationScale: [1], modulationShift: [1]) }),
            ("LayerNorm backward", "input", { _ = try ln.backward(x, gradOutput: x, saved: s) }),
            ("RMSNorm backward", "input", { _ = try rn.backward(x, gradOutput: x, saved: s) }),
            ("residual LayerNorm backward", "sum", { _ = try ln.backward(sum: x, gradOutput: x, saved: s) }),
            ("residual RMSNorm backward", "sum", { _ = try rn.backward(sum: x, gradOutput: x, saved: s) }),
            ("RMSNorm × gate backward", "input", { _ = try rn.backward(x, gate: x, gradOutput: x, saved: s, scale: [1]) }),
            ("AdaIN backward", "content", { _ = try ada.backward(content: x, style: x, gradOutput: x, saved: .init(contentMean: [0], contentInvStd: [1], styleMean: [0], styleStd: [1])) }),
            ("weight norm backward", "v", { _ = try wn.backward(v: x, g: [1], gradWeight: x, norms: [1]) }),
        ]
        for (what, argument, call) in cases {
            expectNormError("[BFloat16] \(what)", mentions: [argument], matches: { $0 == .lengthMismatch(argument: argument, expected: 1 << 40, actual: 3) }, call)
        }
    }
}
