// Open MPI (Debian: libopenmpi-dev; flags from `pkg-config ompi-c`), for the
// NormKernelsMPI target, which imports it only with the package trait `MPI`.
// MPI's handles are macros Swift cannot import (MPI_COMM_WORLD is the address of
// a global, cast); these inline functions hand them over.
#include <mpi.h>

static inline MPI_Comm nk_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm nk_mpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype nk_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Errhandler nk_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Op nk_mpi_sum(void) { return MPI_SUM; }
