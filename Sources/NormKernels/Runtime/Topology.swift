import CNormSupport

/// The machine as hwloc sees it: packages, NUMA nodes, cores, hardware threads
/// and cache sizes. The runtime sizes blocks from the caches and picks the
/// default worker count from the cores available to the process.
///
/// When hwloc cannot load a topology, `isFromHwloc` is false, `message` says
/// why, and every field holds a serial-safe default (1 core, typical caches).
public struct Topology: Sendable, CustomStringConvertible {
    public let packages: Int
    public let numaNodes: Int
    /// Cores in the process's allowed cpuset.
    public let cores: Int
    /// Hardware threads (processing units) in the process's allowed cpuset.
    public let processingUnits: Int
    public let l1DataCacheBytes: Int
    public let l2CacheBytes: Int
    public let l3CacheBytes: Int
    public let l2CacheCount: Int
    public let l3CacheCount: Int
    public let isFromHwloc: Bool
    public let message: String
    /// For each core, the (package, L3) pair it belongs to; used by scatter affinity.
    public let coreLocality: [(package: Int, l3: Int)]

    /// The topology of this process, loaded once.
    public static let current = Topology.load()

    static func load() -> Topology {
        var info = nk_topology_info()
        nk_topology_query(&info)
        let message = withUnsafeBytes(of: info.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        guard info.ok != 0 else {
            return Topology(
                packages: 1, numaNodes: 1, cores: 1, processingUnits: 1,
                l1DataCacheBytes: 32 << 10, l2CacheBytes: 512 << 10, l3CacheBytes: 0,
                l2CacheCount: 1, l3CacheCount: 0, isFromHwloc: false,
                message: "hwloc gave no usable topology (\(message)); running serially with default cache sizes",
                coreLocality: [(0, -1)])
        }
        let cores = Int(info.cores)
        let locality: [(package: Int, l3: Int)] = (0..<cores).map { core in
            var package: Int32 = 0, l3: Int32 = -1
            _ = nk_core_locality(Int32(core), &package, &l3)
            return (Int(package), Int(l3))
        }
        func positive(_ value: Int64, _ fallback: Int) -> Int { value > 0 ? Int(value) : fallback }
        return Topology(
            packages: max(1, Int(info.packages)), numaNodes: max(1, Int(info.numa_nodes)),
            cores: cores, processingUnits: Int(info.pus),
            l1DataCacheBytes: positive(info.l1d_bytes, 32 << 10),
            l2CacheBytes: positive(info.l2_bytes, 512 << 10),
            l3CacheBytes: positive(info.l3_bytes, 0),
            l2CacheCount: Int(info.l2_count), l3CacheCount: Int(info.l3_count),
            isFromHwloc: true, message: message, coreLocality: locality)
    }

    /// The core that worker `index` is pinned to under `affinity`.
    ///
    /// compact: workers fill cores in hwloc's logical order (neighbours share caches).
    /// scatter: workers alternate between packages, then L3 domains, then cores,
    /// so consecutive workers share as little as possible.
    public func core(forWorker index: Int, affinity: Affinity) -> Int? {
        switch affinity {
        case .none: return nil
        // Any index, negative ones too, maps to a core (no trap on a hostile index).
        case .compact: return (index % cores + cores) % cores
        case .scatter: return scatterOrder[(index % cores + cores) % cores]
        }
    }

    private var scatterOrder: [Int] {
        // Group cores by (package, L3), then take one from each group in turn.
        var groups: [[Int]] = []
        var keys: [String] = []
        for (core, where_) in coreLocality.enumerated() {
            let key = "\(where_.package)/\(where_.l3)"
            if let i = keys.firstIndex(of: key) { groups[i].append(core) } else { keys.append(key); groups.append([core]) }
        }
        var order: [Int] = []
        var round = 0
        while order.count < coreLocality.count {
            for group in groups where round < group.count { order.append(group[round]) }
            round += 1
        }
        return order
    }

    public var description: String {
        func size(_ bytes: Int) -> String {
            bytes >= 1 << 20 ? "\(bytes >> 20) MiB" : bytes >= 1 << 10 ? "\(bytes >> 10) KiB" : "\(bytes) B"
        }
        return """
            source: \(isFromHwloc ? message : "fallback — " + message)
            packages: \(packages), NUMA nodes: \(numaNodes), cores: \(cores), PUs: \(processingUnits)
            L1d: \(size(l1DataCacheBytes)), L2: \(size(l2CacheBytes)) ×\(l2CacheCount), L3: \(l3CacheBytes > 0 ? size(l3CacheBytes) : "none") ×\(l3CacheCount)
            """
    }
}

extension Topology {
    /// PUs the calling thread may run on now (-1 when hwloc cannot tell); lets
    /// tests check that pinning is undone when a kernel returns.
    static func callingThreadBindingWeight() -> Int { Int(nk_thread_binding_weight()) }
}
