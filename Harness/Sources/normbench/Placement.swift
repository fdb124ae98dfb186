#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where normbench puts a case's tensors (`--placement`).
///
/// Why it matters: a kernel that reads x and dy and writes dx at the same
/// offset within a 4 KiB page can run slower (the core's store-to-load check
/// compares the low 12 address bits: "4K aliasing"), and which offsets the
/// tensors get used to depend on the allocator's state. glibc serves a large
/// `malloc` from its own page-aligned `mmap` until the first such block is
/// freed, then raises its threshold and serves later ones from the heap at
/// arbitrary offsets, so the first case of a normbench process had page-aligned
/// tensors and every later case did not (found on branch `ln16c`: a C row loop
/// 1.24–1.28× slower on the first placement only, `docs/data/2026-12-07-ln16c/`).
/// Every placement but `heap` gives each buffer its own anonymous mapping, so
/// a case's placement no longer depends on the cases before it.
enum Placement: String, CaseIterable {
    /// Each buffer its own mapping; the k-th buffer of a case starts
    /// (k mod 8)·576 bytes (nine cache lines) into its first page, so no two of
    /// a case's first eight tensors share a page offset. The default.
    case staggered
    /// Each buffer its own mapping, page-aligned: every tensor of a case at the
    /// same page offset (what a fresh process's large `malloc` blocks get):
    /// the 4K-aliasing worst case.
    case pages
    /// The Swift allocator (`malloc`): the placement before `--placement`
    /// existed, which depends on the cases run before.
    case heap

    /// The placement of every `Buffer` made from now on. Set once by the
    /// command before the first case; read while cases build their buffers on
    /// the main thread.
    nonisolated(unsafe) static var current: Placement = .staggered
    /// Buffers made since the current case began (`beginCase`).
    nonisolated(unsafe) private static var made = 0

    /// Called as a case builds its workload: its buffers count from 0 again, so
    /// the offsets of a case's tensors are the same whatever ran before it.
    static func beginCase() { made = 0 }

    static let page = 4096
    static let stride = 576

    /// Memory for `byteCount` bytes, 64-byte aligned, and how to free it.
    static func allocate(byteCount: Int) -> (pointer: UnsafeMutableRawPointer, free: () -> Void) {
        let bytes = max(1, byteCount)
        let placement = current
        if placement == .heap {
            let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            return (p, { p.deallocate() })
        }
        let offset = placement == .staggered ? (made % 8) * stride : 0
        made += 1
        let length = (offset + bytes + page - 1) / page * page
        guard let base = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              base != MAP_FAILED else {
            fatalError("normbench: mmap of \(length) bytes failed (errno \(errno))")
        }
        return (base + offset, { munmap(base, length) })
    }
}
