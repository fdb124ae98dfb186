import Foundation
import Testing
@testable import NormKernels

/// The store policy's decisions from injected cache sizes (no timing): the
/// shared-L3 rule (docs/PERFORMANCE.md, "Store policy on a shared L3"), the size
/// rules it feeds, and the `NORMKERNELS_STREAMING` override's parsing.
struct StorePolicyTests {
    static let mib = 1 << 20

    @Test("a plausible L3 per core: the reported size stands (the Zen 4 VM the rules were tuned on)")
    func plausibleCacheStands() {
        let mib = Self.mib
        // AMD Zen 4, 32 MiB per CCD: the 2-vCPU VM (16 MiB per core), 1 core, 8 cores.
        for cores in [1, 2, 8] {
            #expect(StorePolicy.countedCacheBytes(l3: 32 * mib, l2: mib, coresPerL3: cores) == 32 * mib)
        }
        // Exactly at the bound still stands.
        let bound = StorePolicy.plausibleBytesPerCore
        #expect(StorePolicy.countedCacheBytes(l3: 4 * bound, l2: mib, coresPerL3: 4) == 4 * bound)
        // No L3: four L2s, as before.
        #expect(StorePolicy.countedCacheBytes(l3: 0, l2: 2 * mib, coresPerL3: 4) == 8 * mib)
        #expect(StorePolicy.countedCacheBytes(l3: -1, l2: 2 * mib, coresPerL3: 4) == 8 * mib)
    }

    @Test("an L3 larger than any core's own counts sharedBytesPerCore per core of the process")
    func sharedCacheIsCapped() {
        let mib = Self.mib, share = StorePolicy.sharedBytesPerCore
        // The 2-vCPU Sapphire/Emerald Rapids VMs: 260 and 300 MiB reported.
        #expect(StorePolicy.countedCacheBytes(l3: 260 * mib, l2: 2 * mib, coresPerL3: 2) == 2 * share)
        #expect(StorePolicy.countedCacheBytes(l3: 300 * mib, l2: 2 * mib, coresPerL3: 2) == 2 * share)
        // Just past the bound per core: capped.
        let bound = StorePolicy.plausibleBytesPerCore
        #expect(StorePolicy.countedCacheBytes(l3: 4 * bound + 4 * 64, l2: mib, coresPerL3: 4) == 4 * share)
        // Zero or negative core counts never make the cache vanish.
        #expect(StorePolicy.countedCacheBytes(l3: 260 * mib, l2: 2 * mib, coresPerL3: 0) == share)
        #expect(StorePolicy.countedCacheBytes(l3: 260 * mib, l2: 2 * mib, coresPerL3: -3) == share)
        #expect(StorePolicy.countedCacheBytes(l3: 260 * mib, l2: 2 * mib, coresPerL3: Int.min) == share)
        // The cap never exceeds what is reported, and never grows the cache.
        for cores in 1...64 {
            let counted = StorePolicy.countedCacheBytes(l3: 260 * mib, l2: 2 * mib, coresPerL3: cores)
            #expect(counted <= 260 * mib && counted >= min(260 * mib, cores * share))
        }
    }

    @Test("the size rules against a counted cache: 3/8 of it of output, 1.5x of x + y inference on 2+ threads")
    func sizeRules() {
        let cache = 32 * Self.mib
        let threshold = (3 * cache + 31) / 32          // the fewest Float elements with 4·2·4·n ≥ 3·cache
        #expect(!StorePolicy.twoPassStreams(threshold - 1, cache: cache))
        #expect(StorePolicy.twoPassStreams(threshold, cache: cache))
        // On 2 threads a single pass keeps cached stores up to x + y = 1.5× the cache...
        let inference = (3 * cache + 15) / 16
        #expect(StorePolicy.singlePassStreams(threshold, threads: 1, wideRows: false, cache: cache))
        #expect(!StorePolicy.singlePassStreams(inference - 1, threads: 2, wideRows: false, cache: cache))
        #expect(StorePolicy.singlePassStreams(inference, threads: 2, wideRows: false, cache: cache))
        // ...except for wide rows, which follow the two-pass rule.
        #expect(StorePolicy.singlePassStreams(threshold, threads: 2, wideRows: true, cache: cache))
        #expect(!StorePolicy.singlePassStreams(threshold - 1, threads: 2, wideRows: true, cache: cache))
        // The DRAM set's BatchNorm [128, 64, 56, 56] (98 MiB per tensor) streams on the shared VM
        // whatever the thread count; it did not with 260 MiB counted on 2 threads (inference).
        let vm = StorePolicy.countedCacheBytes(l3: 260 * Self.mib, l2: 2 * Self.mib, coresPerL3: 2)
        let dram = 128 * 64 * 56 * 56
        #expect(StorePolicy.singlePassStreams(dram, threads: 2, wideRows: false, cache: vm))
        #expect(!StorePolicy.singlePassStreams(dram, threads: 2, wideRows: false, cache: 260 * Self.mib))
    }

    @Test("the size rules count bytes: 16-bit tensors stream from twice the Float32 element count")
    func narrowElementsCountBytes() {
        let cache = 32 * Self.mib
        let threshold = (3 * cache + 31) / 32          // Float: the fewest elements with 4·2·4·n ≥ 3·cache
        let narrow = (3 * cache + 15) / 16             // 2-byte: the fewest with 4·2·2·n ≥ 3·cache
        #expect(narrow == 2 * threshold)
        #expect(StorePolicy.twoPassStreams(threshold, cache: cache))
        #expect(!StorePolicy.twoPassStreams(narrow - 1, cache: cache, elementBytes: 2))
        #expect(StorePolicy.twoPassStreams(narrow, cache: cache, elementBytes: 2))
        #expect(!StorePolicy.singlePassStreams(narrow - 1, threads: 1, wideRows: false, cache: cache, elementBytes: 2))
        #expect(StorePolicy.singlePassStreams(narrow, threads: 1, wideRows: false, cache: cache, elementBytes: 2))
        // A plan's policy answers per element type: one that streams Float32 only
        // keeps 16-bit outputs cached, whatever the buffer.
        let policy = StorePolicy(streams: true, narrow: false)
        var f = [Float](repeating: 0, count: 16), h = [Float16](repeating: 0, count: 16)
        let x = [Float](repeating: 0, count: 16), xh = [Float16](repeating: 0, count: 16)
        f.withUnsafeMutableBufferPointer { y in
            x.withUnsafeBufferPointer { x in
                #expect(policy.streaming(output: y.baseAddress!, reading: x.baseAddress!))
            }
        }
        h.withUnsafeMutableBufferPointer { y in
            xh.withUnsafeBufferPointer { x in
                #expect(!policy.streaming(output: y.baseAddress!, reading: x.baseAddress!))
            }
        }
        let both = StorePolicy(streams: true)
        h.withUnsafeMutableBufferPointer { y in
            xh.withUnsafeBufferPointer { x in
                #expect(both.streaming(output: y.baseAddress!, reading: x.baseAddress!))
            }
        }
    }

    @Test("BatchNorm NCHW planes shorter than a few lines keep cached stores at any size (unless overridden)")
    func shortPlanesStayCached() {
        // A count past the two-pass threshold of the cache this process counts.
        let count = (3 * StorePolicy.lastLevelCacheBytes + 31) / 32 + 1
        let short = TensorShape(n: (count + 512 * 49 - 1) / (512 * 49), c: 512, h: 7, w: 7)
        let wide = TensorShape(n: (count + 1023) / 1024, c: 1024)             // H·W = 1: whole rows
        let long = TensorShape(n: (count + 64 * 3136 - 1) / (64 * 3136), c: 64, h: 56, w: 56)
        let threading = Threading(threads: 1)
        let s = BatchNormPlan(shape: short, threading: threading)
        let w = BatchNormPlan(shape: wide, threading: threading)
        let l = BatchNormPlan(shape: long, threading: threading)
        switch StorePolicy.parseOverride(ProcessInfo.processInfo.environment["NORMKERNELS_STREAMING"]) {
        case nil:
            #expect(!s.training.streams && !s.inference.streams && !s.training.streamsNarrow)
            #expect(w.training.streams && w.inference.streams)
            #expect(l.training.streams && l.inference.streams)
        case let forced?:
            #expect(s.training.streams == forced && s.inference.streams == forced)
        }
    }

    @Test("the backward rule counts x, dy and dx: it streams from 2/3 of the forward's element count")
    func backwardCountsThreeTensors() {
        let cache = 32 * Self.mib
        let forward = (3 * cache + 31) / 32             // Float: the fewest elements with 4·2·4·n ≥ 3·cache
        let backward = (3 * cache + 47) / 48            // Float: the fewest with 4·3·4·n ≥ 3·cache
        #expect(!StorePolicy.twoPassStreams(backward - 1, cache: cache, tensors: 3))
        #expect(StorePolicy.twoPassStreams(backward, cache: cache, tensors: 3))
        #expect(!StorePolicy.twoPassStreams(backward, cache: cache))           // the forward's rule: not yet
        #expect(backward < forward && 3 * backward >= 2 * forward - 2)
        // 16-bit: twice the element count, as for the forward.
        let narrow = (3 * cache + 23) / 24              // 4·3·2·n ≥ 3·cache
        #expect(!StorePolicy.twoPassStreams(narrow - 1, cache: cache, elementBytes: 2, tensors: 3))
        #expect(StorePolicy.twoPassStreams(narrow, cache: cache, elementBytes: 2, tensors: 3))
        // The cases measured on the Zen 4 VM (32 MiB): [2, 128, 96, 96] (x + dy + dx
        // = 0.84 of the L3) now streams its dx; [8, 64, 56, 56] (0.57) stays cached.
        #expect(StorePolicy.twoPassStreams(2 * 128 * 96 * 96, cache: cache, tensors: 3))
        #expect(!StorePolicy.twoPassStreams(2 * 128 * 96 * 96, cache: cache))
        #expect(!StorePolicy.twoPassStreams(8 * 64 * 56 * 56, cache: cache, tensors: 3))
    }

    @Test("on one thread the two-pass rules stream from half the cache, on two or more from 3/4")
    func oneThreadRule() {
        let cache = 32 * Self.mib
        let half = (cache + 15) / 16                   // Float: the fewest elements with 2·2·4·n ≥ cache
        let threeQuarters = (3 * cache + 31) / 32      // 4·2·4·n ≥ 3·cache
        #expect(!StorePolicy.twoPassStreams(half - 1, cache: cache, threads: 1))
        #expect(StorePolicy.twoPassStreams(half, cache: cache, threads: 1))
        #expect(!StorePolicy.twoPassStreams(threeQuarters - 1, cache: cache, threads: 2))
        #expect(!StorePolicy.twoPassStreams(threeQuarters - 1, cache: cache, threads: 16))
        #expect(StorePolicy.twoPassStreams(threeQuarters, cache: cache, threads: 2))
        // The backward counts x, dy and dx: 3·4·n against the same fractions.
        let backwardHalf = (cache + 23) / 24
        #expect(!StorePolicy.twoPassStreams(backwardHalf - 1, cache: cache, tensors: 3, threads: 1))
        #expect(StorePolicy.twoPassStreams(backwardHalf, cache: cache, tensors: 3, threads: 1))
        #expect(!StorePolicy.twoPassStreams(backwardHalf, cache: cache, tensors: 3, threads: 2))
        // 16-bit tensors: twice the elements.
        #expect(!StorePolicy.twoPassStreams(2 * half - 1, cache: cache, elementBytes: 2, threads: 1))
        #expect(StorePolicy.twoPassStreams(2 * half, cache: cache, elementBytes: 2, threads: 1))
        // A single pass keeps its 3/4 on one thread (measured there, not below).
        #expect(!StorePolicy.singlePassStreams(half, threads: 1, wideRows: false, cache: cache))
    }

    @Test("the plans take the thread count: between the two thresholds, one thread streams and two do not")
    func plansTakeTheThreadCount() {
        let cache = StorePolicy.lastLevelCacheBytes
        // x + y = 0.6 of the counted cache (forward), x + dy + dx = 0.6 of it (backward).
        let forward = 6 * cache / 80, backward = 6 * cache / 120
        let forced = StorePolicy.parseOverride(ProcessInfo.processInfo.environment["NORMKERNELS_STREAMING"])
        for threads in [1, 2] {
            let threading = Threading(threads: threads)
            let one = threads == 1
            for (count, isForward) in [(forward, true), (backward, false)] {
                let nchw = TensorShape(n: 1, c: 4, h: 1, w: (count + 3) / 4)
                let nhwc = TensorShape(n: 1, c: 64, h: 1, w: (count + 63) / 64, layout: .nhwc)
                for shape in [nchw, nhwc] {
                    let bn = BatchNormPlan(shape: shape, threading: threading)
                    let groups = ChannelGroupsPlan(shape: shape, groupSize: 2, threading: threading)
                    let policy = isForward ? [bn.training, groups.store] : [bn.backward, groups.backwardStore]
                    for p in policy { #expect(p.streams == (forced ?? one), "\(shape) \(threads) threads") }
                }
                let features = 1024, rows = (count + features - 1) / features
                if isForward {
                    let plan = RowPlan(rows: rows, features: features, .moments, threading: threading)
                    #expect(plan.store.streams == (forced ?? one), "rows forward \(threads) threads")
                } else {
                    let plan = RowBackwardPlan(rows: rows, features: features, centered: true, threading: threading)
                    #expect(plan.store.streams == (forced ?? one), "rows backward \(threads) threads")
                }
            }
        }
    }

    @Test("every backward plan takes the three-tensor rule; forward plans keep theirs")
    func backwardPlansUseTheirRule() {
        let cache = StorePolicy.lastLevelCacheBytes
        // An element count between the two thresholds of the cache this process counts.
        let count = (3 * cache + 47) / 48 + 64
        let threading = Threading(threads: 2)
        let forced = StorePolicy.parseOverride(ProcessInfo.processInfo.environment["NORMKERNELS_STREAMING"])
        let nchw = TensorShape(n: 1, c: 4, h: 1, w: (count + 3) / 4)
        let nhwc = TensorShape(n: 1, c: 64, h: 1, w: (count + 63) / 64, layout: .nhwc)
        for shape in [nchw, nhwc] {
            let bn = BatchNormPlan(shape: shape, threading: threading)
            let groups = ChannelGroupsPlan(shape: shape, groupSize: 2, threading: threading)
            #expect(bn.backward.streams == (forced ?? StorePolicy.twoPassStreams(shape.count, cache: cache, tensors: 3)))
            #expect(groups.backwardStore.streams == bn.backward.streams)
            #expect(bn.training.streams == (forced ?? StorePolicy.twoPassStreams(shape.count, cache: cache)))
            #expect(groups.store.streams == bn.training.streams)
            if forced == nil { #expect(bn.backward.streams && !bn.training.streams) }
        }
        let rows = RowBackwardPlan(rows: (count + 1023) / 1024, features: 1024, centered: true, threading: threading)
        #expect(rows.store.streams == (forced ?? StorePolicy.twoPassStreams(rows.rows * 1024, cache: cache, tensors: 3)))
        if forced == nil { #expect(rows.store.streams) }
    }

    @Test("NORMKERNELS_STREAMING: always and never override, anything else leaves the size rules")
    func overrideParsing() {
        #expect(StorePolicy.parseOverride("always") == true)
        #expect(StorePolicy.parseOverride("never") == false)
        for other in [nil, "", "Always", "NEVER", "1", "yes", "auto"] as [String?] {
            #expect(StorePolicy.parseOverride(other) == nil)
        }
    }

    @Test("the process's plans follow the override when it is set, and the size rules when not")
    func processOverride() {
        let big = StorePolicy.lastLevelCacheBytes, small = 1024
        switch StorePolicy.parseOverride(ProcessInfo.processInfo.environment["NORMKERNELS_STREAMING"]) {
        case true?:
            #expect(StorePolicy(twoPass: small, threads: 1).streams
                    && StorePolicy(singlePass: small, threads: 2, wideRows: false).streams)
        case false?:
            #expect(!StorePolicy(twoPass: big, threads: 2).streams
                    && !StorePolicy(singlePass: big, threads: 1, wideRows: false).streams)
        case nil:
            #expect(!StorePolicy(twoPass: small, threads: 1).streams && StorePolicy(twoPass: big, threads: 2).streams)
            #expect(StorePolicy(singlePass: big, threads: 2, wideRows: false).streams)
        }
    }
}
