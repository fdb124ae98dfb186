/// The last-level cache the store policy counts on when the one hwloc reports
/// cannot be this process's: docs/PERFORMANCE.md, "Store policy on a shared L3".
///
/// hwloc reads the cache sizes from CPUID, and a virtual machine's CPUID gives
/// the host's last-level cache and says that only the guest's vCPUs share it:
/// 260–300 MiB for 2 vCPUs on the Sapphire/Emerald Rapids VMs this package was
/// measured on. Other tenants' cores fill that cache all the time, so the size
/// rules never fired for 100 MB tensors there and cached stores cost 1.3–1.6×.
/// The rule: where the reported L3 exceeds `plausibleBytesPerCore` for each of
/// this process's cores under it, count `sharedBytesPerCore` per such core
/// instead (never more than reported). Elsewhere the reported size stands: the
/// AMD Zen 4 VM the size rules were tuned on (2 vCPUs, 32 MiB L3, 16 MiB per
/// core) keeps its decisions, as does any bare-metal CPU whose cores are all
/// the process's.
///
/// Not the hypervisor bit: the Zen 4 machine is a KVM guest too, and its
/// reported L3 held. Not a timed calibration at first use: timing both store
/// kinds costs a pass over a buffer of the call's size (tens of ms at 100 MB,
/// plus page faults), and on a shared machine the answer moves with the
/// neighbours' load (cached-store times on the VM jumped 5–20× from one
/// process to the next at 10–24 MiB), so one run's plans would differ from the
/// next's; a size rule keeps them the same.
extension StorePolicy {
    /// L3 per core above which the reported cache is not taken as the process's
    /// own: twice the 16 MiB per core of the Zen 4 VM whose rules held; 2 vCPUs
    /// under a 260 MiB L3 report 130 MiB per core. (Only 2-core-per-CCD EPYC
    /// X parts have more per core on bare metal; they would stream early.)
    static let plausibleBytesPerCore = 32 << 20

    /// L3 counted per core of this process where the cache is shared. Measured
    /// on the 2-vCPU VM (docs/PERFORMANCE.md, "Store policy on a shared L3";
    /// cached vs streaming stores on one binary, shapes alternating): cached
    /// stores level or ahead up to 6 MiB of output (BatchNorm NCHW training
    /// 0.73–1.0×; [64, 512, 7, 7] far ahead: its 49-value planes stream as
    /// partial lines), streaming ahead from 10 MiB (GroupNorm [2, 320, 64, 64]
    /// 1.4–5× in its faster rounds, 12–49 MiB tensors 1.1–1.8×). 12 MiB per core
    /// puts the two-pass threshold (3/8 of the cache) at 9 MiB of output on 2
    /// cores, between the two.
    static let sharedBytesPerCore = 12 << 20

    /// The last-level cache the size rules count on: hwloc's L3 (4× the L2 when
    /// there is none), capped at `sharedBytesPerCore` per core where it exceeds
    /// `plausibleBytesPerCore` per core. `coresPerL3`: this process's cores under
    /// one L3 (taken as at least 1).
    static func countedCacheBytes(l3: Int, l2: Int, coresPerL3: Int) -> Int {
        guard l3 > 0 else { return 4 * l2 }
        let cores = max(1, coresPerL3)
        return l3 / cores > plausibleBytesPerCore ? min(l3, cores * sharedBytesPerCore) : l3
    }
}
