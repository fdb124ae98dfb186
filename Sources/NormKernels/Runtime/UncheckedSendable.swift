/// The one `@unchecked Sendable` of NormKernels: a value handed to the worker
/// threads of one parallel call (`Parallel.forEach`, `WarmWorkers`) or shared
/// read-only by every call (the Welford weight table).
///
/// Invariant that makes it safe, kept by every use: the wrapped value is a
/// closure or pointer whose targets are either read-only for the lifetime of
/// the wrapper, or written by the workers at *disjoint* indices (each item of
/// a parallel call writes its own slots, see `Parallel`), and the caller
/// does not touch them until every worker has finished — the join of
/// `concurrentPerform` or the completion counter of `WarmWorkers` orders those
/// writes before the caller's next read. Nothing else in the library may be
/// `@unchecked Sendable`, except `Arena` (`Workspace.swift`: one call owns an
/// arena at a time, handed over through its pool's mutex).
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
