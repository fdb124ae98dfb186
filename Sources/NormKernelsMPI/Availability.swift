/// Whether this build of NormKernelsMPI contains `MPIExchange` (the package
/// trait `MPI` was enabled); without it the module holds only this constant.
#if MPI
public let mpiExchangeAvailable = true
#else
public let mpiExchangeAvailable = false
#endif
