// Parallel parity under mpirun (4 processes, OpenMPI, CPU tensors): the heterogeneous strategy
// [(1,2,1),(1,1,2)], a run switching between two heterogeneous strategies every step, and cp2 ×
// pp2 reproduce the single-device losses and gradients for 5 steps (parity_util.h). The same
// checks over threads: parity_test.cpp.
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

TEST(MpiParity, Heterogeneous) {
  expect_mpi_parity("[[(1, 2, 1), (1, 2, 1)], [(1, 2, 1), (1, 1, 2)]]", {1});
}
TEST(MpiParity, SwitchesBetweenHeterogeneousStrategiesEveryStep) {
  expect_mpi_parity("[[(1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1)], [(1, 2, 1), (1, 1, 2)], "
                    "[(2, 1, 1), (1, 1, 2)]]",
                    {1, 2, 1, 2, 1});
}
TEST(MpiParity, ContextTimesPipeline) { expect_mpi_parity("[[(2, 1, 2)]]", {}); }

}  // namespace
}  // namespace hydraulis::train
