// Parallel parity on the CPU: from one seed, every layout — dp2, tp2, pp2, pp4 with uneven
// layers, cp2, tp2×pp2, the heterogeneous strategy [(1,2,1),(1,1,2)], and a run that switches
// between two heterogeneous strategies every step — reproduces the single-device trainer's
// losses and every parameter gradient for 5 steps within fp32 tolerance. Ranks are threads over
// ThreadComm (the same runtime runs under mpirun in mpi_parity_test.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <mutex>

#include "comm/thread_comm.h"
#include "model/tensor_ops.h"
#include "planner/strategy.h"
#include "train/distributed_trainer.h"
#include "train/trainer.h"
#include "parity_util.h"
#include "train_test_util.h"

namespace hydraulis::train {
namespace {

using testing::check_rank;
using testing::parity_config;
using testing::Reference;
using testing::single_device_reference;

// Runs `strategies` on `world` thread ranks (strategy forced[step % n] each step, or the
// planner's choice when empty) and checks every step against the single-device run.
void expect_parity(const std::string& strategies, int world, std::vector<int> forced = {}) {
  SCOPED_TRACE(strategies);
  const std::string prefix = testing::real_dataset(60);
  ASSERT_FALSE(prefix.empty()) << "demo data missing: run scripts/setup.sh";
  auto dataset = data::IndexedDataset::open(prefix).value();
  const Reference& ref = single_device_reference(dataset);
  DistributedConfig config;
  config.trainer = parity_config();
  config.strategies = planner::parse_strategy_list(strategies).value();
  config.forced_strategies = std::move(forced);
  std::mutex mutex;
  std::vector<std::string> failures;
  auto fail = [&](std::string what) {
    std::lock_guard<std::mutex> lock(mutex);
    failures.push_back(std::move(what));
  };
  core::Status status = comm::run_on_threads(world, [&](comm::Communicator& comm) -> core::Status {
    return check_rank(comm, config, dataset, ref, fail);
  });
  ASSERT_TRUE(status.is_ok()) << status.message();
  for (size_t i = 0; i < std::min<size_t>(failures.size(), 10); ++i) ADD_FAILURE() << failures[i];
}

TEST(Parity, SingleRank) { expect_parity("[[(1, 1, 1)]]", 1); }
TEST(Parity, DataParallel2) { expect_parity("[[(1, 1, 1), (1, 1, 1)]]", 2); }
TEST(Parity, TensorParallel2) { expect_parity("[[(1, 2, 1)]]", 2); }
TEST(Parity, PipelineParallel2) { expect_parity("[[(1, 1, 2)]]", 2); }
TEST(Parity, PipelineParallel4UnevenLayers) { expect_parity("[[(1, 1, 4)]]", 4); }
TEST(Parity, ContextParallel2) { expect_parity("[[(2, 1, 1)]]", 2); }
TEST(Parity, TensorTimesPipeline) { expect_parity("[[(1, 2, 2)]]", 4); }
TEST(Parity, Heterogeneous) {
  expect_parity("[[(1, 2, 1), (1, 2, 1)], [(1, 2, 1), (1, 1, 2)]]", 4, {1});
}
TEST(Parity, SwitchesBetweenHeterogeneousStrategiesEveryStep) {
  expect_parity("[[(1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1)], [(1, 2, 1), (1, 1, 2)], "
                "[(2, 1, 1), (1, 1, 1), (1, 1, 1)]]",
                4, {1, 2, 1, 2, 1});
}
// The overlapped reshard (the default over threads and MPI) and the serial one (NCCL's) give the
// same bits: every loss and every parameter after 5 steps switching between strategies whose
// gradients are sums over 2–4 copies (so a different summation order would show).
TEST(Parity, OverlappedReshardEqualsSerialBitForBit) {
  const std::string prefix = testing::real_dataset(60);
  ASSERT_FALSE(prefix.empty());
  auto dataset = data::IndexedDataset::open(prefix).value();
  using Schedule = DistributedConfig::ReshardSchedule;
  auto run = [&](Schedule schedule, std::vector<double>& losses,
                 std::map<std::string, std::vector<double>>& params) {
    DistributedConfig config;
    config.trainer = parity_config();
    config.strategies = planner::parse_strategy_list(
                            "[[(1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1)], [(1, 2, 1), (1, 1, 2)], "
                            "[(2, 1, 1), (1, 1, 2)]]")
                            .value();
    config.forced_strategies = {1, 2, 0, 2, 1};
    config.reshard = schedule;
    std::mutex mutex;
    core::Status status = comm::run_on_threads(4, [&](comm::Communicator& comm) -> core::Status {
      std::shared_ptr<comm::Communicator> self(&comm, [](comm::Communicator*) {});
      HYD_ASSIGN_OR_RETURN(auto trainer, DistributedTrainer::create(config, dataset, self));
      HYD_RETURN_IF_ERROR(trainer->run());
      for (const auto& spec : model::parameter_specs(config.trainer.model)) {
        HYD_ASSIGN_OR_RETURN(core::Tensor value, trainer->gather_parameter(spec.name, false));
        if (comm.rank() != 0) continue;
        std::lock_guard<std::mutex> lock(mutex);
        params[spec.name].assign(value.data<double>(), value.data<double>() + value.numel());
      }
      if (comm.rank() == 0) {
        std::lock_guard<std::mutex> lock(mutex);
        for (const StepMetrics& m : trainer->history()) losses.push_back(m.loss);
      }
      return core::Status::ok();
    });
    ASSERT_TRUE(status.is_ok()) << status.message();
  };
  std::vector<double> overlapped_losses, serial_losses;
  std::map<std::string, std::vector<double>> overlapped, serial;
  run(Schedule::kOverlap, overlapped_losses, overlapped);
  run(Schedule::kSerial, serial_losses, serial);
  ASSERT_EQ(overlapped_losses.size(), 5u);
  EXPECT_EQ(overlapped_losses, serial_losses);
  ASSERT_FALSE(overlapped.empty());
  for (const auto& [name, values] : overlapped) EXPECT_EQ(values, serial[name]) << name;
}

TEST(Parity, PlannerChoosesAmongStrategies) {
  expect_parity("[[(1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1)], [(1, 2, 1), (1, 1, 2)]]", 4);
}

// A rank started with other options is refused at start-up, naming the rank and the setting.
TEST(Parity, RanksWithDifferentOptionsAreRefused) {
  const std::string prefix = testing::real_dataset(60);
  ASSERT_FALSE(prefix.empty());
  auto dataset = data::IndexedDataset::open(prefix).value();
  std::mutex mutex;
  std::vector<std::string> errors;
  core::Status status = comm::run_on_threads(2, [&](comm::Communicator& comm) -> core::Status {
    DistributedConfig config;
    config.trainer = parity_config();
    if (comm.rank() == 1) config.trainer.seed += 1;
    config.strategies = planner::parse_strategy_list("[[(1, 1, 1), (1, 1, 1)]]").value();
    std::shared_ptr<comm::Communicator> self(&comm, [](comm::Communicator*) {});
    auto trainer = DistributedTrainer::create(config, dataset, self);
    std::lock_guard<std::mutex> lock(mutex);
    errors.push_back(trainer.is_ok() ? "" : trainer.status().message());
    return core::Status::ok();
  });
  ASSERT_TRUE(status.is_ok()) << status.message();
  ASSERT_EQ(errors.size(), 2u);
  for (const std::string& e : errors) {
    EXPECT_NE(e.find("rank 1 differs from rank 0 in its schedule"), std::string::npos) << e;
  }
}

// Real text cut into 2-token documents: every sequence has one training position, so under cp 2
// rank 1 owns no token of any micro-batch. It must still join every key/value exchange, and the
// run must equal the single-device one.
TEST(Parity, ContextParallelRankWithoutTokens) {
  const std::string words = testing::real_dataset(60);
  ASSERT_FALSE(words.empty());
  auto source = data::IndexedDataset::open(words).value();
  const std::string path = ::testing::TempDir() + "/parity_pairs";
  auto writer = data::IndexedDatasetWriter::create(path, data::TokenDType::kU16).value();
  std::vector<int32_t> document;
  for (uint64_t d = 0; d < 20; ++d) {
    source.tokens(d, document);
    for (size_t i = 0; i + 1 < document.size(); i += 2) {
      const std::vector<int32_t> pair = {document[i], document[i + 1]};
      ASSERT_TRUE(writer.add_document(pair).is_ok());
    }
  }
  ASSERT_TRUE(writer.finish().is_ok());
  auto pairs = data::IndexedDataset::open(path).value();
  DistributedConfig config;
  config.trainer = parity_config();
  config.trainer.steps = 3;
  config.trainer.global_token_num = 32;
  config.strategies = planner::parse_strategy_list("[[(2, 1, 1)]]").value();
  const Reference ref = testing::make_reference(config.trainer, pairs);
  std::mutex mutex;
  std::vector<std::string> failures;
  core::Status status = comm::run_on_threads(2, [&](comm::Communicator& comm) -> core::Status {
    return check_rank(comm, config, pairs, ref, [&](std::string what) {
      std::lock_guard<std::mutex> lock(mutex);
      failures.push_back(std::move(what));
    });
  });
  ASSERT_TRUE(status.is_ok()) << status.message();
  for (size_t i = 0; i < std::min<size_t>(failures.size(), 10); ++i) ADD_FAILURE() << failures[i];
}

}  // namespace
}  // namespace hydraulis::train
