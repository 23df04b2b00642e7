// Parallel parity under mpirun (1, 2 and 4 processes, OpenMPI, CPU tensors): single rank, dp2,
// tp2, pp2, cp2, pp4 with uneven layers, tp2×pp2, cp2×pp2, the heterogeneous strategy
// [(1,2,1),(1,1,2)] and a run switching between two heterogeneous strategies every step reproduce
// the single-device losses and gradients for 5 steps (parity_util.h). The same checks over
// threads: parity_test.cpp.
#include <gtest/gtest.h>

#include "comm/mpi_test_world.h"
#include "parity_util.h"
#include "planner/strategy.h"
#include "train_test_util.h"

namespace hydraulis::train {
namespace {

void expect_mpi_parity(const std::string& strategies, std::vector<int> forced) {
  SCOPED_TRACE(strategies);
  const std::string prefix = testing::real_dataset(60);
  ASSERT_FALSE(prefix.empty()) << "demo data missing: run scripts/setup.sh";
  auto dataset = data::IndexedDataset::open(prefix).value();
  const testing::Reference& ref = testing::single_device_reference(dataset);
  DistributedConfig config;
  config.trainer = testing::parity_config();
  config.strategies = planner::parse_strategy_list(strategies).value();
  config.forced_strategies = std::move(forced);
  std::vector<std::string> failures;
  comm::MpiComm& world = comm::testing::mpi_test_world();
  core::Status status = testing::check_rank(world, config, dataset, ref,
                                            [&](std::string what) { failures.push_back(what); });
  ASSERT_TRUE(status.is_ok()) << status.message();
  for (size_t i = 0; i < std::min<size_t>(failures.size(), 10); ++i) {
    ADD_FAILURE() << "rank " << world.rank() << ": " << failures[i];
  }
}

// Each layout needs its rank count; ctest runs this binary with 1, 2 and 4 ranks.
void on_ranks(int ranks, const std::string& strategies, std::vector<int> forced = {}) {
  if (comm::testing::mpi_test_world().size() != ranks) {
    GTEST_SKIP() << "needs " << ranks << " ranks";
  }
  expect_mpi_parity(strategies, std::move(forced));
}

TEST(MpiParity, SingleRank) { on_ranks(1, "[[(1, 1, 1)]]"); }
TEST(MpiParity, DataParallel2) { on_ranks(2, "[[(1, 1, 1), (1, 1, 1)]]"); }
TEST(MpiParity, TensorParallel2) { on_ranks(2, "[[(1, 2, 1)]]"); }
TEST(MpiParity, PipelineParallel2) { on_ranks(2, "[[(1, 1, 2)]]"); }
TEST(MpiParity, ContextParallel2) { on_ranks(2, "[[(2, 1, 1)]]"); }
TEST(MpiParity, PipelineParallel4UnevenLayers) { on_ranks(4, "[[(1, 1, 4)]]"); }
TEST(MpiParity, TensorTimesPipeline) { on_ranks(4, "[[(1, 2, 2)]]"); }
TEST(MpiParity, ContextTimesPipeline) { on_ranks(4, "[[(2, 1, 2)]]"); }
TEST(MpiParity, Heterogeneous) {
  on_ranks(4, "[[(1, 2, 1), (1, 2, 1)], [(1, 2, 1), (1, 1, 2)]]", {1});
}
TEST(MpiParity, SwitchesBetweenHeterogeneousStrategiesEveryStep) {
  on_ranks(4,
           "[[(1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1)], [(1, 2, 1), (1, 1, 2)], "
           "[(2, 1, 1), (1, 1, 2)]]",
           {1, 2, 1, 2, 1});
}

}  // namespace
}  // namespace hydraulis::train
