// 16-bit InstanceNorm and AdaIN (issue 20), every InstanceNorm path (tiny units,
// tiny channels, channel groups on rows and columns; inference and its
// backward) and AdaIN on both layouts:
// (a) y16 == E.narrow(y32), dx16 == E.narrow(dx32), saved and running
// statistics, dγ, dβ identical (Float32 kernel on the widened tensors);
// (b) within 1 ulp (y) and 2 ulps (dx) of the Float64 reference of the 16-bit
// inputs; (c) the same bits on 1–4 threads; array conveniences.

import Testing
@testable import NormKernels

/// The public InstanceNorm and AdaIN overloads of one element type.
protocol InstanceNormCalls: NormElement {
    static func inTraining(_ n: InstanceNormalization, _ x: UnsafeBufferPointer<Self>, _ y: UnsafeMutableBufferPointer<Self>,
                           _ g: UnsafeBufferPointer<Float>?, _ b: UnsafeBufferPointer<Float>?,
                           _ running: RunningStatistics?) throws -> SavedStatistics
    static func inInference(_ n: InstanceNormalization, _ x: UnsafeBufferPointer<Self>, _ y: UnsafeMutableBufferPointer<Self>,
                            _ g: UnsafeBufferPointer<Float>?, _ b: UnsafeBufferPointer<Float>?,
                            _ running: RunningStatistics) throws
    static func inBackward(_ n: InstanceNormalization, _ stats: BatchNormStatistics, _ x: UnsafeBufferPointer<Self>,
                           _ dy: UnsafeBufferPointer<Self>, _ g: UnsafeBufferPointer<Float>?,
                           _ dx: UnsafeMutableBufferPointer<Self>?, _ dg: UnsafeMutableBufferPointer<Float>?,
                           _ db: UnsafeMutableBufferPointer<Float>?) throws
    static func adaForward(_ a: AdaptiveInstanceNormalization, _ x: UnsafeBufferPointer<Self>,
                           _ s: UnsafeBufferPointer<Self>, _ y: UnsafeMutableBufferPointer<Self>) throws
        -> AdaptiveInstanceNormalization.Saved
    static func adaBackward(_ a: AdaptiveInstanceNormalization, _ x: UnsafeBufferPointer<Self>,
                            _ s: UnsafeBufferPointer<Self>, _ dy: UnsafeBufferPointer<Self>,
                            _ saved: AdaptiveInstanceNormalization.Saved, _ dx: UnsafeMutableBufferPointer<Self>?,
                            _ ds: UnsafeMutableBufferPointer<Self>?) throws
}

extension Float: InstanceNormCalls {
    static func inTraining(_ n: InstanceNormalization, _ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableBufferPointer<Float>,
                           _ g: UnsafeBufferPointer<Float>?, _ b: UnsafeBufferPointer<Float>?,
                           _ running: RunningStatistics?) throws -> SavedStatistics {
        try n.forwardTraining(input: x, output: y, scale: g, bias: b, running: running)
    }
    static func inInference(_ n: InstanceNormalization, _ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableBufferPointer<Float>,
                            _ g: UnsafeBufferPointer<Float>?, _ b: UnsafeBufferPointer<Float>?,
                            _ running: RunningStatistics) throws {
        try n.forwardInference(input: x, output: y, scale: g, bias: b, running: running)
    }
    static func inBackward(_ n: InstanceNormalization, _ stats: BatchNormStatistics, _ x: UnsafeBufferPointer<Float>,
                           _ dy: UnsafeBufferPointer<Float>, _ g: UnsafeBufferPointer<Float>?,
                           _ dx: UnsafeMutableBufferPointer<Float>?, _ dg: UnsafeMutableBufferPointer<Float>?,
                           _ db: UnsafeMutableBufferPointer<Float>?) throws {
        switch stats {
        case .saved(let s):
            try n.backwardTraining(input: x, gradOutput: dy, saved: s, scale: g, gradInput: dx, gradScale: dg, gradBias: db)
        case .running(let r):
            try n.backwardInference(input: x, gradOutput: dy, running: r, scale: g, gradInput: dx, gradScale: dg,
                                    gradBias: db)
        }
    }
    static func adaForward(_ a: AdaptiveInstanceNormalization, _ x: UnsafeBufferPointer<Float>,
                           _ s: UnsafeBufferPointer<Float>, _ y: UnsafeMutableBufferPointer<Float>) throws
        -> AdaptiveInstanceNormalization.Saved {
        try a.forward(content: x, style: s, output: y)
    }
    static func adaBackward(_ a: AdaptiveInstanceNormalization, _ x: UnsafeBufferPointer<Float>,
                            _ s: UnsafeBufferPointer<Float>, _ dy: UnsafeBufferPointer<Float>,
                            _ saved: AdaptiveInstanceNormalization.Saved, _ dx: UnsafeMutableBufferPointer<Float>?,
                            _ ds: UnsafeMutableBufferPointer<Float>?) throws {
        try a.backward(content: x, style: s, gradOutput: dy, saved: saved, gradContent: dx, gradStyle: ds)
    }
}

extension BFloat16: InstanceNormCalls {
    static func inTraining(_ n: InstanceNormalization, _ x: UnsafeBufferPointer<BFloat16>, _ y: UnsafeMutableBufferPointer<BFloat16>,
                           _ g: UnsafeBufferPointer<Float>?, _ b: UnsafeBufferPointer<Float>?,
                           _ running: RunningStatistics?) throws -> SavedStatistics {
        try n.forwardTraining(input: x, output: y, scale: g, bias: b, running: running)
    }
    static func inInference(_ n: InstanceNormalization, _ x: UnsafeBufferPointer<BFloat16>, _ y: UnsafeMutableBufferPointer<BFloat16>,
                            _ g: UnsafeBufferPointer<Float>?, _ b: UnsafeBufferPointer<Float>?,
                            _ running: RunningStatistics) throws {
        try n.forwardInference(input: x, output: y, scale: g, bias: b, running: running)
    }
    static func inBackward(_ n: InstanceNormalization, _ stats: BatchNormStatistics, _ x: UnsafeBufferPointer<BFloat16>,
                           _ dy: UnsafeBufferPointer<BFloat16>, _ g: UnsafeBufferPointer<Float>?,
                           _ dx: UnsafeMutableBufferPointer<BFloat16>?, _ dg: UnsafeMutableBufferPointer<Float>?,
                           _ db: UnsafeMutableBufferPointer<Float>?) throws {
        switch stats {
        case .saved(let s):
            try n.backwardTraining(input: x, gradOutput: dy, saved: s, scale: g, gradInput: dx, gradScale: dg, gradBias: db)
        case .running(let r):
            try n.backwardInference(input: x, gradOutput: dy, running: r, scale: g, gradInput: dx, gradScale: dg,
                                    gradBias: db)
        }
    }
    static func adaForward(_ a: AdaptiveInstanceNormalization, _ x: UnsafeBufferPointer<BFloat16>,
                           _ s: UnsafeBufferPointer<BFloat16>, _ y: UnsafeMutableBufferPointer<BFloat16>) throws
        -> AdaptiveInstanceNormalization.Saved {
        try a.forward(content: x, style: s, output: y)
    }
    static func adaBackward(_ a: AdaptiveInstanceNormalization, _ x: UnsafeBufferPointer<BFloat16>,
                            _ s: UnsafeBufferPointer<BFloat16>, _ dy: UnsafeBufferPointer<BFloat16>,
                            _ saved: AdaptiveInstanceNormalization.Saved, _ dx: UnsafeMutableBufferPointer<BFloat16>?,
                            _ ds: UnsafeMutableBufferPointer<BFloat16>?) throws {
        try a.backward(content: x, style: s, gradOutput: dy, saved: saved, gradContent: dx, gradStyle: ds)
    }
}

#if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
extension Float16: InstanceNormCalls {
    static func inTraining(_ n: InstanceNormalization, _ x: UnsafeBufferPointer<Float16>, _ y: UnsafeMutableBufferPointer<Float16>,
                           _ g: UnsafeBufferPointer<Float>?, _ b: UnsafeBufferPointer<Float>?,
                           _ running: RunningStatistics?) throws -> SavedStatistics {
        try n.forwardTraining(input: x, output: y, scale: g, bias: b, running: running)
    }
    static func inInference(_ n: InstanceNormalization, _ x: UnsafeBufferPointer<Float16>, _ y: UnsafeMutableBufferPointer<Float16>,
                            _ g: UnsafeBufferPointer<Float>?, _ b: UnsafeBufferPointer<Float>?,
                            _ running: RunningStatistics) throws {
        try n.forwardInference(input: x, output: y, scale: g, bias: b, running: running)
    }
    static func inBackward(_ n: InstanceNormalization, _ stats: BatchNormStatistics, _ x: UnsafeBufferPointer<Float16>,
                           _ dy: UnsafeBufferPointer<Float16>, _ g: UnsafeBufferPointer<Float>?,
                           _ dx: UnsafeMutableBufferPointer<Float16>?, _ dg: UnsafeMutableBufferPointer<Float>?,
                           _ db: UnsafeMutableBufferPointer<Float>?) throws {
        switch stats {
        case .saved(let s):
            try n.backwardTraining(input: x, gradOutput: dy, saved: s, scale: g, gradInput: dx, gradScale: dg, gradBias: db)
        case .running(let r):
            try n.backwardInference(input: x, gradOutput: dy, running: r, scale: g, gradInput: dx, gradScale: dg,
                                    gradBias: db)
        }
    }
    static func adaForward(_ a: AdaptiveInstanceNormalization, _ x: UnsafeBufferPointer<Float16>,
                           _ s: UnsafeBufferPointer<Float16>, _ y: UnsafeMutableBufferPointer<Float16>) throws
        -> AdaptiveInstanceNormalization.Saved {
        try a.forward(content: x, style: s, output: y)
    }
    static func adaBackward(_ a: AdaptiveInstanceNormalization, _ x: UnsafeBufferPointer<Float16>,
                            _ s: UnsafeBufferPointer<Float16>, _ dy: UnsafeBufferPointer<Float16>,
                            _ saved: AdaptiveInstanceNormalization.Saved, _ dx: UnsafeMutableBufferPointer<Float16>?,
                            _ ds: UnsafeMutableBufferPointer<Float16>?) throws {
        try a.backward(content: x, style: s, gradOutput: dy, saved: saved, gradContent: dx, gradStyle: ds)
    }
}
#endif
