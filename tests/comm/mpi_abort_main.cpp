// Abort propagation over MPI (ctest mpi_abort_test): rank 1 calls abort_world while rank 0
// waits in a recv with a 60 s timeout; MPI_Abort must end both promptly. ctest passes when the
// output names rank 1's fatal error and the run ends within the test's TIMEOUT (20 s).
#include <chrono>
#include <cstdio>
#include <thread>

#include "comm/mpi_comm.h"

int main(int argc, char** argv) {
  using namespace hydraulis;
  comm::CommOptions options;
  options.timeout_s = 60;
  auto world = comm::mpi_init_world(&argc, &argv, options);
  if (!world.is_ok()) comm::abort_world(world.status());
  if ((*world)->size() < 2) {
    std::fprintf(stderr, "mpi_abort_test needs 2 ranks\n");
    return 1;
  }
  if ((*world)->rank() == 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    comm::abort_world(core::internal_error("planned abort of rank {}", (*world)->rank()));
  }
  core::Tensor t = core::Tensor::zeros({4}, core::DType::kF32);
  core::Status s = (*world)->rank() == 0 ? (*world)->recv(t, 1) : (*world)->barrier();
  std::fprintf(stderr, "rank %d survived the abort: %s\n", (*world)->rank(), s.to_string().c_str());
  return 0;
}
