// The MPI world of a test binary registered with hyd_add_mpi_test (cmake/HydHelpers.cmake): its
// main (mpi_test_main.cpp) initializes MPI, silences gtest output on ranks other than 0 (except
// failures, printed with the rank), and fails the run when any rank fails.
#pragma once

#include "comm/mpi_comm.h"

namespace hydraulis::comm::testing {

// The world communicator (a duplicate of MPI_COMM_WORLD; timeout_s = 30 unless the environment
// sets HYD_COMM_TEST_TIMEOUT_S), valid from main until the tests end.
MpiComm& mpi_test_world();

}  // namespace hydraulis::comm::testing
