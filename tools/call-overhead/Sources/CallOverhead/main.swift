import NormKernels
import Foundation
// Per-call cost on small problems: best of 7 runs of 20 000 calls each, one thread.
func time(_ label: String, _ body: () throws -> Void) rethrows {
    var best = Double.infinity
    for _ in 0..<7 {
        let t0 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<20_000 { try body() }
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 20_000)
    }
    print(label, String(format: "%.0f ns/call", best))
}
let ln = try LayerNormalization(rows: 16, features: 64, threading: .serial)
let bn = try BatchNormalization(shape: TensorShape(n: 8, c: 32, h: 2, w: 2), threading: .serial)
let running = try RunningStatistics(channels: 32)
let x = (0..<1024).map { Float($0 % 13) }, dy = (0..<2048).map { Float($0 % 5) }
var y = [Float](repeating: 0, count: 2048), dx = y
let g = [Float](repeating: 1, count: 64), b = [Float](repeating: 0, count: 64)
var dg = g, db = g
try x.withUnsafeBufferPointer { xp in try y.withUnsafeMutableBufferPointer { yp in
  try g.withUnsafeBufferPointer { gp in try b.withUnsafeBufferPointer { bp in
    let y1 = UnsafeMutableBufferPointer(rebasing: yp[0..<1024])
    try time("LayerNorm [16, 64] forward") { _ = try ln.forward(input: xp, output: y1, scale: gp, bias: bp) }
    let x2 = UnsafeBufferPointer(start: xp.baseAddress, count: 1024)
    try time("BatchNorm [8,32,2,2] training") { _ = try bn.forwardTraining(input: x2, output: y1, running: running) }
    try time("BatchNorm [8,32,2,2] inference") { try bn.forwardInference(input: x2, output: y1, running: running) }
    try dy.withUnsafeBufferPointer { dyp in try dx.withUnsafeMutableBufferPointer { dxp in
      try dg.withUnsafeMutableBufferPointer { dgp in try db.withUnsafeMutableBufferPointer { dbp in
        let saved = try ln.forward(input: xp, output: y1, scale: gp, bias: bp)
        try time("LayerNorm [16, 64] backward") {
          try ln.backward(input: xp, gradOutput: UnsafeBufferPointer(rebasing: dyp[0..<1024]), saved: saved, scale: gp,
                          gradInput: UnsafeMutableBufferPointer(rebasing: dxp[0..<1024]), gradScale: dgp, gradBias: dbp)
        }
      } }
    } }
  } }
} }
