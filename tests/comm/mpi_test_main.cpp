// main() of every gtest binary run under mpirun (hyd_add_mpi_test): MPI start, rank 0 prints
// gtest's normal output, other ranks print only their failures (prefixed with the rank), and the
// exit code of every rank is the worst result over all ranks, so any failing rank fails the run.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "comm_test_util.h"
#include "mpi_test_world.h"

namespace hydraulis::comm::testing {
namespace {

std::shared_ptr<MpiComm> g_world;  // owned by main for the duration of RUN_ALL_TESTS

class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_,
                 result.file_name() ? result.file_name() : "?", result.line_number(),
                 result.message());
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed()) {
      std::fprintf(stderr, "[rank %d] FAILED %s.%s\n", rank_, info.test_suite_name(), info.name());
    }
  }

 private:
  int rank_;
};

}  // namespace

MpiComm& mpi_test_world() { return *g_world; }

}  // namespace hydraulis::comm::testing

int main(int argc, char** argv) {
  using namespace hydraulis;
  comm::CommOptions options;
  options.timeout_s = 30;
  if (const char* t = std::getenv("HYD_COMM_TEST_TIMEOUT_S")) options.timeout_s = std::atof(t);
  auto world = comm::mpi_init_world(&argc, &argv, options);
  if (!world.is_ok()) {
    std::fprintf(stderr, "mpi test main: %s\n", world.status().to_string().c_str());
    return 1;
  }
  comm::testing::g_world = std::move(world).value();
  comm::MpiComm& world_comm = *comm::testing::g_world;
  const int rank = world_comm.rank();
  ::testing::InitGoogleTest(&argc, argv);
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new comm::testing::FailurePrinter(rank));
  }
  int result = RUN_ALL_TESTS();
  // Every rank exits with the worst result, so mpirun fails when any rank failed.
  core::Tensor worst = core::Tensor::empty({1}, core::DType::kI32);
  worst.data<int32_t>()[0] = result;
  core::Status s = world_comm.all_reduce(worst, comm::ReduceOp::kMax);
  if (!s.is_ok()) {
    std::fprintf(stderr, "[rank %d] could not agree on the test result: %s\n", rank,
                 s.to_string().c_str());
    comm::abort_world(s);
  }
  if (worst.data<int32_t>()[0] != 0 && result == 0 && rank == 0) {
    std::fprintf(stderr, "[rank 0] tests failed on another rank (see [rank N] lines)\n");
  }
  comm::testing::g_world.reset();
  core::Status finalized = comm::mpi_finalize();
  if (!finalized.is_ok()) std::fprintf(stderr, "%s\n", finalized.to_string().c_str());
  return worst.data<int32_t>()[0] != 0 ? 1 : 0;
}
