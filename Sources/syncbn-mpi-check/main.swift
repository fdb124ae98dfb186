// The mpirun check of SynchronizedBatchNormalization over MPIExchange
// (tools/mpi-test.sh): every rank builds the same global batch, takes its slice,
// runs synchronized steps, and compares with single-process BatchNorm on the
// whole batch (bitwise where `singleProcessEquivalence` promises it, within
// Float32-block rounding otherwise), that all ranks hold identical statistics,
// and that errors are collective. Exit status 1 on any failure.
//
//     swift build -c release --traits MPI --product syncbn-mpi-check
//     mpirun -np 4 .build/release/syncbn-mpi-check
// (Step times: `normbench syncbn`, tools/syncbn-bench.sh.)
import Foundation
import NormKernels
import NormKernelsMPI
#if MPI
try MPIExchange.initialize()
let exitCode = MPICheck.run()
MPIExchange.finalize()
exit(exitCode)
#else
print("syncbn-mpi-check: built without the package trait MPI (swift build --traits MPI)")
exit(2)
#endif
