import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Memory for one kernel call, carved by a bump allocator: tables of per-slot
/// coefficients, per-block partials, scratch. Nothing is freed piece by piece;
/// `release(to:)` drops everything carved after a mark.
///
/// Why: a warm kernel call must not touch the heap (issue 24; `AllocationTests`).
/// An arena learns its size: a carve that does not fit is served by a block of
/// its own (heap), and once the arena is released to empty it is regrown to the
/// largest total it was asked for, so the next call of the same shape carves
/// everything from one block. Only a descriptor's first call (per concurrent
/// caller) allocates.
///
/// Every carve is aligned to 64 bytes (a cache line, so tables written by
/// different workers never share a line); memory is uninitialized, as
/// `allocate(capacity:)`'s.
///
/// `@unchecked Sendable`: an arena is owned by one call at a time. A
/// `WorkspacePool` hands it out and takes it back under its mutex (which orders
/// one call's use before the next's), and a thread's scratch arena
/// (`withScratch`) is only ever used by that thread. The workers of a parallel
/// call write the carved memory at disjoint indices, like any buffer of the
/// call (`UncheckedSendable`), never the arena's own fields.
final class Arena: @unchecked Sendable {
    static let alignment = 64

    private var base: UnsafeMutableRawPointer?
    private var capacity = 0
    /// Bytes carved (including those served by overflow blocks), and the most at once.
    private var used = 0
    private var peak = 0
    /// Blocks of carves that did not fit, freed when the arena is empty again.
    private var overflow: [UnsafeMutableRawPointer] = []

    deinit {
        base?.deallocate()
        for block in overflow { block.deallocate() }
    }

    /// `count` uninitialized values of `T`, valid until the arena is released to
    /// a mark taken before this call.
    func take<T>(_: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        precondition(MemoryLayout<T>.alignment <= Arena.alignment)
        let bytes = (max(1, count) * MemoryLayout<T>.stride + Arena.alignment - 1) / Arena.alignment * Arena.alignment
        let start = used
        used += bytes
        peak = max(peak, used)
        let raw: UnsafeMutableRawPointer
        if let base, used <= capacity {
            raw = base + start
        } else {
            raw = .allocate(byteCount: bytes, alignment: Arena.alignment)
            overflow.append(raw)
        }
        return raw.bindMemory(to: T.self, capacity: max(1, count))
    }

    /// The position to come back to with `release(to:)`.
    var mark: Int { used }

    /// Drops every carve made after `mark`. At 0 the arena is empty: overflow
    /// blocks are freed and the arena grows to the most it held at once.
    func release(to mark: Int) {
        used = mark
        guard mark == 0, !overflow.isEmpty else { return }
        for block in overflow { block.deallocate() }
        overflow.removeAll(keepingCapacity: true)
        if peak > capacity {
            base?.deallocate()
            capacity = (peak + 4095) / 4096 * 4096
            base = .allocate(byteCount: capacity, alignment: Arena.alignment)
        }
    }
}

/// A descriptor's arenas (XNNPACK's workspace, owned by the plan): each call
/// takes one for its duration, so concurrent calls on one descriptor carve
/// from different arenas and a warm call reuses one (after `Arena`'s first
/// use has sized it). Freed with the plan.
final class WorkspacePool: Sendable {
    private let free = Mutex<[Arena]>([])

    init() {}

    /// An arena of this pool, empty, for one call; give it back with `recycle`
    /// (`let ws = pool.take(); defer { pool.recycle(ws) }`).
    func take() -> Arena {
        free.withLock { $0.popLast() } ?? Arena()
    }

    func recycle(_ arena: Arena) {
        arena.release(to: 0)
        free.withLock { $0.append(arena) }
    }
}

/// `body` with `capacity` uninitialized values of `T`: on the stack up to
/// 1 KiB (as `withUnsafeTemporaryAllocation`, which above that goes to the
/// heap on every call), else from the calling thread's scratch arena, carved
/// and dropped in stack order. Each thread's arena keeps the most it has
/// held at once (per-block scratch: tile accumulators, merge trees), so a warm
/// call allocates nothing; it is freed when the thread exits.
@inline(__always)
func withScratch<T, R>(of type: T.Type, capacity: Int,
                       _ body: (UnsafeMutableBufferPointer<T>) throws -> R) rethrows -> R {
    if capacity * MemoryLayout<T>.stride <= 1024 {
        return try withUnsafeTemporaryAllocation(of: type, capacity: capacity, body)
    }
    let arena = threadScratchArena()
    let mark = arena.mark
    defer { arena.release(to: mark) }
    return try body(UnsafeMutableBufferPointer(start: arena.take(type, count: capacity), count: capacity))
}

/// The calling thread's scratch arena (created on its first use, released by
/// the key's destructor when the thread exits).
private func threadScratchArena() -> Arena {
    let key = scratchKey
    if let stored = pthread_getspecific(key) {
        return Unmanaged<Arena>.fromOpaque(stored).takeUnretainedValue()
    }
    let arena = Arena()
    pthread_setspecific(key, Unmanaged.passRetained(arena).toOpaque())
    return arena
}

private let scratchKey: pthread_key_t = {
    var key = pthread_key_t()
    let status = pthread_key_create(&key) { stored in
        if let stored { Unmanaged<Arena>.fromOpaque(stored).release() }
    }
    precondition(status == 0, "pthread_key_create failed")
    return key
}()
