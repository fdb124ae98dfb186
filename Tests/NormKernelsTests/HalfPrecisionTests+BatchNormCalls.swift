// 16-bit BatchNorm (issue 20), support for HalfPrecisionTests+BatchNorm*.swift:
// every public pointer overload (Float, BFloat16, Float16; plain and fused
// residual; training and inference; forward and backward) behind one generic
// protocol, so the tests run the same code for each element type and compare
// the 16-bit results with E.narrow of the Float32 ones.

import Testing
@testable import NormKernels

/// The statistics a backward call uses: the training forward's, or the running ones.
enum BatchNormStatistics {
    case saved(SavedStatistics)
    case running(RunningStatistics)
}

/// The public BatchNorm overloads of one element type.
protocol BatchNormCalls: NormElement {
    static func bnTraining(_ bn: BatchNormalization, _ x: UnsafeBufferPointer<Self>, _ id: UnsafeBufferPointer<Self>?,
                           _ y: UnsafeMutableBufferPointer<Self>, _ g: UnsafeBufferPointer<Float>?,
                           _ b: UnsafeBufferPointer<Float>?, _ running: RunningStatistics?) throws -> SavedStatistics
    static func bnInference(_ bn: BatchNormalization, _ x: UnsafeBufferPointer<Self>, _ id: UnsafeBufferPointer<Self>?,
                            _ y: UnsafeMutableBufferPointer<Self>, _ g: UnsafeBufferPointer<Float>?,
                            _ b: UnsafeBufferPointer<Float>?, _ running: RunningStatistics) throws
    static func bnBackward(_ bn: BatchNormalization, _ stats: BatchNormStatistics, _ x: UnsafeBufferPointer<Self>,
                           _ dy: UnsafeBufferPointer<Self>, _ g: UnsafeBufferPointer<Float>?,
                           _ y: UnsafeBufferPointer<Self>?, _ dx: UnsafeMutableBufferPointer<Self>?,
                           _ dId: UnsafeMutableBufferPointer<Self>?, identity: Bool,
                           _ dg: UnsafeMutableBufferPointer<Float>?, _ db: UnsafeMutableBufferPointer<Float>?) throws
}

extension Float: BatchNormCalls {
    static func bnTraining(_ bn: BatchNormalization, _ x: UnsafeBufferPointer<Float>, _ id: UnsafeBufferPointer<Float>?,
                           _ y: UnsafeMutableBufferPointer<Float>, _ g: UnsafeBufferPointer<Float>?,
                           _ b: UnsafeBufferPointer<Float>?, _ running: RunningStatistics?) throws -> SavedStatistics {
        if let id { return try bn.forwardTraining(input: x, identity: id, output: y, scale: g, bias: b, running: running) }
        return try bn.forwardTraining(input: x, output: y, scale: g, bias: b, running: running)
    }
    static func bnInference(_ bn: BatchNormalization, _ x: UnsafeBufferPointer<Float>, _ id: UnsafeBufferPointer<Float>?,
                            _ y: UnsafeMutableBufferPointer<Float>, _ g: UnsafeBufferPointer<Float>?,
                            _ b: UnsafeBufferPointer<Float>?, _ running: RunningStatistics) throws {
        if let id { return try bn.forwardInference(input: x, identity: id, output: y, scale: g, bias: b, running: running) }
        try bn.forwardInference(input: x, output: y, scale: g, bias: b, running: running)
    }
    static func bnBackward(_ bn: BatchNormalization, _ stats: BatchNormStatistics, _ x: UnsafeBufferPointer<Float>,
                           _ dy: UnsafeBufferPointer<Float>, _ g: UnsafeBufferPointer<Float>?,
                           _ y: UnsafeBufferPointer<Float>?, _ dx: UnsafeMutableBufferPointer<Float>?,
                           _ dId: UnsafeMutableBufferPointer<Float>?, identity: Bool,
                           _ dg: UnsafeMutableBufferPointer<Float>?, _ db: UnsafeMutableBufferPointer<Float>?) throws {
        switch (stats, identity) {
        case let (.saved(s), false):
            try bn.backwardTraining(input: x, gradOutput: dy, saved: s, scale: g, output: y, gradInput: dx,
                                    gradScale: dg, gradBias: db)
        case let (.saved(s), true):
            try bn.backwardTraining(input: x, gradOutput: dy, saved: s, scale: g, output: y, gradInput: dx,
                                    gradIdentity: dId, gradScale: dg, gradBias: db)
        case let (.running(r), false):
            try bn.backwardInference(input: x, gradOutput: dy, running: r, scale: g, output: y, gradInput: dx,
                                     gradScale: dg, gradBias: db)
        case let (.running(r), true):
            try bn.backwardInference(input: x, gradOutput: dy, running: r, scale: g, output: y, gradInput: dx,
                                     gradIdentity: dId, gradScale: dg, gradBias: db)
        }
    }
}

extension BFloat16: BatchNormCalls {
    static func bnTraining(_ bn: BatchNormalization, _ x: UnsafeBufferPointer<BFloat16>, _ id: UnsafeBufferPointer<BFloat16>?,
                           _ y: UnsafeMutableBufferPointer<BFloat16>, _ g: UnsafeBufferPointer<Float>?,
                           _ b: UnsafeBufferPointer<Float>?, _ running: RunningStatistics?) throws -> SavedStatistics {
        if let id { return try bn.forwardTraining(input: x, identity: id, output: y, scale: g, bias: b, running: running) }
        return try bn.forwardTraining(input: x, output: y, scale: g, bias: b, running: running)
    }
    static func bnInference(_ bn: BatchNormalization, _ x: UnsafeBufferPointer<BFloat16>, _ id: UnsafeBufferPointer<BFloat16>?,
                            _ y: UnsafeMutableBufferPointer<BFloat16>, _ g: UnsafeBufferPointer<Float>?,
                            _ b: UnsafeBufferPointer<Float>?, _ running: RunningStatistics) throws {
        if let id { return try bn.forwardInference(input: x, identity: id, output: y, scale: g, bias: b, running: running) }
        try bn.forwardInference(input: x, output: y, scale: g, bias: b, running: running)
    }
    static func bnBackward(_ bn: BatchNormalization, _ stats: BatchNormStatistics, _ x: UnsafeBufferPointer<BFloat16>,
                           _ dy: UnsafeBufferPointer<BFloat16>, _ g: UnsafeBufferPointer<Float>?,
                           _ y: UnsafeBufferPointer<BFloat16>?, _ dx: UnsafeMutableBufferPointer<BFloat16>?,
                           _ dId: UnsafeMutableBufferPointer<BFloat16>?, identity: Bool,
                           _ dg: UnsafeMutableBufferPointer<Float>?, _ db: UnsafeMutableBufferPointer<Float>?) throws {
        switch (stats, identity) {
        case let (.saved(s), false):
            try bn.backwardTraining(input: x, gradOutput: dy, saved: s, scale: g, output: y, gradInput: dx,
                                    gradScale: dg, gradBias: db)
        case let (.saved(s), true):
            try bn.backwardTraining(input: x, gradOutput: dy, saved: s, scale: g, output: y, gradInput: dx,
                                    gradIdentity: dId, gradScale: dg, gradBias: db)
        case let (.running(r), false):
            try bn.backwardInference(input: x, gradOutput: dy, running: r, scale: g, output: y, gradInput: dx,
                                     gradScale: dg, gradBias: db)
        case let (.running(r), true):
            try bn.backwardInference(input: x, gradOutput: dy, running: r, scale: g, output: y, gradInput: dx,
                                     gradIdentity: dId, gradScale: dg, gradBias: db)
        }
    }
}

#if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
extension Float16: BatchNormCalls {
    static func bnTraining(_ bn: BatchNormalization, _ x: UnsafeBufferPointer<Float16>, _ id: UnsafeBufferPointer<Float16>?,
                           _ y: UnsafeMutableBufferPointer<Float16>, _ g: UnsafeBufferPointer<Float>?,
                           _ b: UnsafeBufferPointer<Float>?, _ running: RunningStatistics?) throws -> SavedStatistics {
        if let id { return try bn.forwardTraining(input: x, identity: id, output: y, scale: g, bias: b, running: running) }
        return try bn.forwardTraining(input: x, output: y, scale: g, bias: b, running: running)
    }
    static func bnInference(_ bn: BatchNormalization, _ x: UnsafeBufferPointer<Float16>, _ id: UnsafeBufferPointer<Float16>?,
                            _ y: UnsafeMutableBufferPointer<Float16>, _ g: UnsafeBufferPointer<Float>?,
                            _ b: UnsafeBufferPointer<Float>?, _ running: RunningStatistics) throws {
        if let id { return try bn.forwardInference(input: x, identity: id, output: y, scale: g, bias: b, running: running) }
        try bn.forwardInference(input: x, output: y, scale: g, bias: b, running: running)
    }
    static func bnBackward(_ bn: BatchNormalization, _ stats: BatchNormStatistics, _ x: UnsafeBufferPointer<Float16>,
                           _ dy: UnsafeBufferPointer<Float16>, _ g: UnsafeBufferPointer<Float>?,
                           _ y: UnsafeBufferPointer<Float16>?, _ dx: UnsafeMutableBufferPointer<Float16>?,
                           _ dId: UnsafeMutableBufferPointer<Float16>?, identity: Bool,
                           _ dg: UnsafeMutableBufferPointer<Float>?, _ db: UnsafeMutableBufferPointer<Float>?) throws {
        switch (stats, identity) {
        case let (.saved(s), false):
            try bn.backwardTraining(input: x, gradOutput: dy, saved: s, scale: g, output: y, gradInput: dx,
                                    gradScale: dg, gradBias: db)
        case let (.saved(s), true):
            try bn.backwardTraining(input: x, gradOutput: dy, saved: s, scale: g, output: y, gradInput: dx,
                                    gradIdentity: dId, gradScale: dg, gradBias: db)
        case let (.running(r), false):
            try bn.backwardInference(input: x, gradOutput: dy, running: r, scale: g, output: y, gradInput: dx,
                                     gradScale: dg, gradBias: db)
        case let (.running(r), true):
            try bn.backwardInference(input: x, gradOutput: dy, running: r, scale: g, output: y, gradInput: dx,
                                     gradIdentity: dId, gradScale: dg, gradBias: db)
        }
    }
}
#endif
