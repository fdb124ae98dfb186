import CNormSupport
import Dispatch
import NormKernels

/// The machine's memory roofline, measured in-process over one buffer set
/// (256 MiB by default, far beyond the 32 MiB L3 here).
///
/// Every kernel moves the whole buffer set once per repetition, and the bytes
/// counted are what the program reads plus what it writes — the same
/// convention as `Traffic` — so "copy" is 2 × 128 MiB:
/// ```
/// read     sum of one 256 MiB array                     read S
/// copy     dst = src + 0, SIMD loop, regular stores     read S/2, write S/2
/// memcpy   UnsafeMutableRawPointer.copyMemory (glibc memcpy; uses
///          non-temporal stores itself above a size threshold)
/// nt-copy  nk_stream_copy_f32 (C, _mm_stream_ps)        read S/2, write S/2
/// triad    a = b + s·c, three S/3 arrays                read 2S/3, write S/3
/// nt-triad the same with non-temporal stores (nk_stream_triad_f32, C)
/// ```
/// nt-copy and nt-triad have the traffic of a forward and a backward output
/// pass that streams its output (read x, write y; read x and dy, write dx);
/// with `read` they give the measured ceiling of kernels that must read their
/// input twice (`tools/targets_median.py`, BatchNorm NHWC).
/// "copy" is the reference for `fraction_of_copy`: its stores go through the
/// cache (write-allocate) exactly as the kernels' stores do. The `+ 0` (with a
/// zero LLVM cannot see) keeps LLVM from turning the loop into a memcpy call.
final class BandwidthProbe {
    enum Kernel: String, CaseIterable {
        case read, copy, memcpy, ntCopy = "nt-copy", triad, ntTriad = "nt-triad"
    }

    let bytes: Int
    private let base: UnsafeMutableRawPointer
    private var floats: Int { bytes / 4 }
    /// Zero that the optimizer cannot prove is zero.
    private let opaqueZero: Float

    init(mebibytes: Int = 256) {
        bytes = max(1, mebibytes) << 20
        base = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 4096)
        let p = base.bindMemory(to: Float.self, capacity: bytes / 4)
        // Touch every page (first-touch faults are not bandwidth).
        for i in 0..<(bytes / 4) { p[i] = Float(i & 1023) * 0.001 }
        opaqueZero = p[0] * 0  // p[0] is 0 …
        nk_black_hole(base)    // … but only after the optimizer has lost track.
    }

    /// Array lengths in floats, multiples of 32 so every array is 128-byte aligned
    /// and every range is whole SIMD8 × 4 steps.
    private var half: Int { floats / 2 / 32 * 32 }
    private var third: Int { floats / 3 / 32 * 32 }

    /// Bytes read plus bytes written by one pass of `kernel` (≈ the buffer set).
    func movedBytes(_ kernel: Kernel) -> Int {
        switch kernel {
        case .read: return floats / 32 * 32 * 4
        case .copy, .memcpy, .ntCopy: return 2 * half * 4
        case .triad, .ntTriad: return 3 * third * 4
        }
    }

    deinit { base.deallocate() }

    /// GB/s (10⁹ bytes per second) of each timed repetition.
    func measure(_ kernel: Kernel, threads: Int, affinity: Affinity, policy: MeasurementPolicy) -> Timing {
        let body = { self.run(kernel, threads: threads, affinity: affinity) }
        body()  // warm-up
        var samples: [Double] = []
        let start = now()
        while samples.count < policy.minReps || now() - start < policy.budget {
            let t0 = now()
            body()
            samples.append(now() - t0)
        }
        return Timing(samples: samples, reps: samples.count)
    }

    static func gigabytesPerSecond(bytes: Int, seconds: Double) -> Double { Double(bytes) / seconds / 1e9 }

    /// One pass of `kernel` over the buffer set, split across `threads` workers.
    func run(_ kernel: Kernel, threads: Int, affinity: Affinity) {
        let p = base.assumingMemoryBound(to: Float.self)
        let n = floats / 32 * 32, half = self.half, third = self.third, zero = opaqueZero
        // Ranges in units of 32 floats (one SIMD8 × 4 step).
        func range(_ chunk: Int, _ chunks: Int, _ length: Int) -> Range<Int> {
            let steps = length / 32
            return (chunk * steps / chunks * 32)..<((chunk + 1) * steps / chunks * 32)
        }
        func work(_ chunk: Int, _ chunks: Int) {
            switch kernel {
            case .read:
                let r = range(chunk, chunks, n)
                var sink = Self.sum(p + r.lowerBound, r.count)
                nk_black_hole(&sink)
            case .copy:
                let r = range(chunk, chunks, half)
                Self.copy(p + half + r.lowerBound, p + r.lowerBound, r.count, zero: zero)
            case .memcpy:
                let r = range(chunk, chunks, half)
                UnsafeMutableRawPointer(p + half + r.lowerBound)
                    .copyMemory(from: p + r.lowerBound, byteCount: r.count * 4)
            case .ntCopy:
                let r = range(chunk, chunks, half)
                nk_stream_copy_f32(p + half + r.lowerBound, p + r.lowerBound, r.count)
            case .triad:
                let r = range(chunk, chunks, third)
                Self.triad(p + r.lowerBound, p + third + r.lowerBound, p + 2 * third + r.lowerBound, r.count,
                           scalar: 0.5 + zero)
            case .ntTriad:
                let r = range(chunk, chunks, third)
                nk_stream_triad_f32(p + r.lowerBound, p + third + r.lowerBound, p + 2 * third + r.lowerBound,
                                    0.5 + zero, r.count)
            }
        }
        // The workers write disjoint ranges of the probe's buffers; the join orders them.
        nonisolated(unsafe) let work = work
        if threads <= 1 {
            work(0, 1)
        } else if affinity == .none {
            // Several chunks per thread: a pool thread that joins late still gets work.
            let chunks = threads * 8
            DispatchQueue.concurrentPerform(iterations: chunks) { work($0, chunks) }
        } else {
            // One chunk per worker, pinned for the chunk and restored afterwards
            // (as the library's Parallel.forEach does).
            DispatchQueue.concurrentPerform(iterations: threads) { i in
                var saved: UnsafeMutableRawPointer?
                let core = Topology.current.core(forWorker: i, affinity: affinity)
                let bound = core.map { nk_bind_thread_to_core(Int32($0), &saved) == 0 } ?? false
                work(i, threads)
                if bound { _ = nk_restore_thread_binding(saved) }
            }
        }
        nk_black_hole(base)
    }

    // MARK: Loops (count is a multiple of 32, pointers 64-byte aligned)

    /// scalar math: Σ x[i]
    static func sum(_ x: UnsafePointer<Float>, _ count: Int) -> Float {
        x.withMemoryRebound(to: SIMD8<Float>.self, capacity: count / 8) { v in
            var a = SIMD8<Float>(), b = a, c = a, d = a
            var i = 0
            while i < count / 8 {
                a += v[i]; b += v[i + 1]; c += v[i + 2]; d += v[i + 3]
                i += 4
            }
            return ((a + b) + (c + d)).sum()
        }
    }

    /// scalar math: y[i] = x[i] + 0
    static func copy(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ count: Int, zero: Float) {
        let z = SIMD8<Float>(repeating: zero)
        x.withMemoryRebound(to: SIMD8<Float>.self, capacity: count / 8) { src in
            y.withMemoryRebound(to: SIMD8<Float>.self, capacity: count / 8) { dst in
                var i = 0
                while i < count / 8 {
                    dst[i] = src[i] + z; dst[i + 1] = src[i + 1] + z
                    dst[i + 2] = src[i + 2] + z; dst[i + 3] = src[i + 3] + z
                    i += 4
                }
            }
        }
    }

    /// scalar math: a[i] = b[i] + s·c[i]
    static func triad(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>,
                      _ count: Int, scalar: Float) {
        let s = SIMD8<Float>(repeating: scalar)
        a.withMemoryRebound(to: SIMD8<Float>.self, capacity: count / 8) { va in
            b.withMemoryRebound(to: SIMD8<Float>.self, capacity: count / 8) { vb in
                c.withMemoryRebound(to: SIMD8<Float>.self, capacity: count / 8) { vc in
                    for i in 0..<(count / 8) { va[i] = vb[i] + s * vc[i] }
                }
            }
        }
    }
}

/// Copy bandwidth per thread count, measured at the start and the end of a
/// sweep; cases divide their GB/s by the better of the two at their thread count.
struct CopyReference: Codable {
    var start: [Int: Double] = [:]
    var end: [Int: Double] = [:]

    func gbps(threads: Int) -> Double? {
        switch (start[threads], end[threads]) {
        case let (a?, b?): return max(a, b)
        case let (a?, nil): return a
        case let (nil, b?): return b
        default: return nil
        }
    }

    /// Copy GB/s (median of ≥ 5 passes) for each thread count; allocates and
    /// frees a probe so the sweep's cases do not share memory with it.
    static func measure(threads: [Int], affinity: Affinity, mebibytes: Int = 256) -> [Int: Double] {
        let probe = BandwidthProbe(mebibytes: mebibytes)
        var result: [Int: Double] = [:]
        for t in Set(threads).sorted() {
            let timing = probe.measure(.copy, threads: t, affinity: affinity,
                                       policy: MeasurementPolicy(budget: 0.1, minReps: 5))
            result[t] = BandwidthProbe.gigabytesPerSecond(bytes: probe.movedBytes(.copy), seconds: timing.median)
        }
        return result
    }
}
