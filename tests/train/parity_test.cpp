// Parallel parity on the CPU: from one seed, every layout — dp2, tp2, pp2, pp4 with uneven
// layers, cp2, tp2×pp2, the heterogeneous strategy [(1,2,1),(1,1,2)], and a run that switches
// between two heterogeneous strategies every step — reproduces the single-device trainer's
// losses and every parameter gradient for 5 steps within fp32 tolerance. Ranks are threads over
// ThreadComm (the same runtime runs under mpirun in mpi_parity_test.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <mutex>

#include "comm/thread_comm.h"
#include "model/tensor_ops.h"
#include "planner/strategy.h"
#include "train/distributed_trainer.h"
#include "train/trainer.h"
#include "train_test_util.h"

namespace hydraulis::train {
namespace {

// 5 layers (pp4 splits them 2/1/1/1), 4 heads on 2 kv heads, GPT-2's padded vocabulary.
TrainerConfig parity_config() {
  TrainerConfig c;
  c.model = model::LlamaConfig{"parity", 5, 32, 4, 2, 64, 50304, 128, 10000.0, 1e-5,
                               model::LmHead::kUntied};
  c.steps = 5;
  c.global_token_num = 384;
  c.max_seq_len = 96;
  c.seed = 11;
  c.lr = {3e-3, 3e-4, 1, 5};
  c.progress = false;
  return c;
}

struct Reference {
  std::vector<double> losses;
  std::vector<std::vector<std::pair<std::string, core::Tensor>>> grads;  // [step][param]
};

const Reference& single_device_reference(const data::IndexedDataset& dataset) {
  static Reference ref;
  static std::once_flag once;
  std::call_once(once, [&] {
    auto trainer = Trainer::create(parity_config(), dataset).value();
    for (int s = 0; s < 5; ++s) {
      StepMetrics m = trainer->step().value();
      ref.losses.push_back(m.loss);
      std::vector<std::pair<std::string, core::Tensor>> grads;
      for (const model::Parameter& p : trainer->params().all()) {
        grads.emplace_back(p.name, p.grad.clone());
      }
      ref.grads.push_back(std::move(grads));
    }
  });
  return ref;
}

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
    // run_on_threads owns the communicators; the trainer takes shared ownership of a non-owning
    // alias that lives for this call.
    std::shared_ptr<comm::Communicator> self(&comm, [](comm::Communicator*) {});
    HYD_ASSIGN_OR_RETURN(auto trainer, DistributedTrainer::create(config, dataset, self));
    for (int s = 0; s < 5; ++s) {
      HYD_ASSIGN_OR_RETURN(StepMetrics m, trainer->step());
      if (std::abs(m.loss - ref.losses[size_t(s)]) > 2e-5 * std::abs(ref.losses[size_t(s)])) {
        fail(fmt::format("step {} loss {} vs single device {}", s + 1, m.loss, ref.losses[size_t(s)]));
      }
      for (const auto& [name, expected] : ref.grads[size_t(s)]) {
        HYD_ASSIGN_OR_RETURN(core::Tensor got, trainer->gather_parameter(name, true));
        double scale = 0, worst = 0;
        for (int64_t i = 0; i < expected.numel(); ++i) {
          scale = std::max(scale, std::abs(model::element(expected, i)));
        }
        for (int64_t i = 0; i < expected.numel(); ++i) {
          worst = std::max(worst, std::abs(model::element(got, i) - model::element(expected, i)));
        }
        if (comm.rank() == 0 && worst > 1e-4 * std::max(scale, 1e-6)) {
          fail(fmt::format("step {} {}: max |Δgrad| {} (grad scale {})", s + 1, name, worst, scale));
        }
      }
    }
    return core::Status::ok();
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
TEST(Parity, PlannerChoosesAmongStrategies) {
  expect_parity("[[(1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1)], [(1, 2, 1), (1, 1, 2)]]", 4);
}

}  // namespace
}  // namespace hydraulis::train
