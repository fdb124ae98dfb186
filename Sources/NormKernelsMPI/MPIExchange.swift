// A StatisticsExchange over Open MPI, for SynchronizedBatchNormalization across
// processes and machines (docs/SYNCBN.md). Compiled only with the package trait
// `MPI` (`swift build --traits MPI`, or `traits: ["MPI"]` on the dependency);
// without it this module is empty and needs no MPI headers.
#if MPI
import CMPI
import NormKernels

/// Synchronized kernels' exchange over an MPI communicator: one `MPI_Allgather`
/// of Float64 values per step (an all-gather moves bytes, so every rank receives
/// the same bits in rank order; the merge happens afterwards, identically, on
/// every rank — `MPI_Allreduce` would leave the order of the additions to the
/// implementation).
///
/// The exchange works on a duplicate of the communicator (`MPI_Comm_dup`, made
/// in `init`, freed in `deinit`), so its messages never mix with the caller's
/// and its error handler is `MPI_ERRORS_RETURN`: an MPI error becomes a thrown
/// ``SynchronizationError/transport(code:message:)`` instead of aborting the job.
/// (A rank that dies can still leave the others blocked inside MPI; bound jobs
/// with a timeout, as tools/mpi-test.sh does.)
///
/// MPI must be initialized first (`MPIExchange.initialize()`, or your own
/// `MPI_Init_thread`); `init` and every exchange are collective over the
/// communicator. `@unchecked Sendable`: the handle is immutable, but MPI calls
/// on it must come from one thread at a time unless MPI runs with
/// `MPI_THREAD_MULTIPLE` (a kernel makes its exchange on the calling thread).
public final class MPIExchange: StatisticsExchange, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// The exchange's own duplicate of the communicator it was given.
    public let communicator: MPI_Comm

    /// Collective over `communicator` (default `MPI_COMM_WORLD`), which is
    /// duplicated; the caller's communicator and its error handler are untouched.
    public init(communicator: MPI_Comm? = nil) throws {
        try Self.requireInitialized()
        var duplicate: MPI_Comm? = nk_mpi_comm_null()
        try Self.check(MPI_Comm_dup(communicator ?? nk_mpi_comm_world(), &duplicate), "MPI_Comm_dup")
        guard let duplicate else { throw SynchronizationError.transport(code: -1, message: "MPI_Comm_dup returned no communicator") }
        try Self.check(MPI_Comm_set_errhandler(duplicate, nk_mpi_errors_return()), "MPI_Comm_set_errhandler")
        var r: Int32 = 0, s: Int32 = 0
        try Self.check(MPI_Comm_rank(duplicate, &r), "MPI_Comm_rank")
        try Self.check(MPI_Comm_size(duplicate, &s), "MPI_Comm_size")
        self.communicator = duplicate
        self.rank = Int(r)
        self.size = Int(s)
    }

    deinit {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized == 0 {
            var c: MPI_Comm? = communicator
            MPI_Comm_free(&c)
        }
    }

    public func allGather(_ contribution: UnsafeBufferPointer<Double>,
                          into gathered: UnsafeMutableBufferPointer<Double>) throws {
        guard contribution.count <= Int(Int32.max), gathered.count == size * contribution.count else {
            throw SynchronizationError.protocolMismatch(
                reason: "gathering \(contribution.count) values from \(size) ranks into \(gathered.count)")
        }
        try Self.check(MPI_Allgather(contribution.baseAddress, Int32(contribution.count), nk_mpi_double(),
                                     gathered.baseAddress, Int32(contribution.count), nk_mpi_double(), communicator),
                       "MPI_Allgather")
    }

    /// Initializes MPI if nobody has (thread level `MPI_THREAD_FUNNELED`: only
    /// the main thread calls MPI, as the kernels do from their caller).
    public static func initialize() throws {
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        guard initialized == 0 else { return }
        var provided: Int32 = 0
        try check(MPI_Init_thread(nil, nil, Int32(MPI_THREAD_FUNNELED), &provided), "MPI_Init_thread")
    }

    /// Finalizes MPI (after every `MPIExchange` is gone) if it is initialized and not yet finalized.
    public static func finalize() {
        var initialized: Int32 = 0, finalized: Int32 = 0
        MPI_Initialized(&initialized)
        MPI_Finalized(&finalized)
        if initialized != 0 && finalized == 0 { MPI_Finalize() }
    }

    static func requireInitialized() throws {
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        guard initialized != 0 else {
            throw SynchronizationError.transport(code: -1, message: "MPI is not initialized (call MPIExchange.initialize())")
        }
    }

    /// Throws MPI's own message for a failed call.
    static func check(_ code: Int32, _ call: String) throws {
        guard code != MPI_SUCCESS else { return }
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &buffer, &length)
        let text = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw SynchronizationError.transport(code: Int(code), message: "\(call): \(text)")
    }
}
#endif
