// Measures how long a parked Dispatch pool thread takes to join a concurrentPerform
// (docs/PERFORMANCE.md § "Dispatch wake-up"). Run: swiftc -O tools/dispatch_wakeup.swift -o /tmp/wakeup && /tmp/wakeup
import Dispatch
import Foundation
func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
@inline(never) func spin(_ ns: UInt64) { let t = now(); while now() - t < ns {} }
for work in [20_000, 50_000, 100_000, 200_000, 500_000] as [UInt64] {
    var serial: [Double] = [], par: [Double] = []
    for _ in 0..<200 {
        var t = now(); spin(work); spin(work); serial.append(Double(now() - t) / 1000)
        t = now(); DispatchQueue.concurrentPerform(iterations: 2) { _ in spin(work) }; par.append(Double(now() - t) / 1000)
        usleep(200)
    }
    serial.sort(); par.sort()
    print("body \(work/1000) µs ×2: serial median \(Int(serial[100])) µs; parallel p10 \(Int(par[20])) median \(Int(par[100])) p90 \(Int(par[180])) µs")
}
