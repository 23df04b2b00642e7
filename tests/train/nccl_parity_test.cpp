// Parallel parity on GPUs over NCCL: the distributed trainer against the single-GPU trainer on the
// same model, seed and real text, within bf16 tolerance. On 2 ranks (label multigpu, mpirun -np 2,
// one GPU each): dp2, tp2, pp2, cp2 and per-step switching among them. On 1 rank (label gpu):
// two strategies, so every step propagates through the device reshard executor. The same checks
// on the CPU in fp32: parity_test.cpp, mpi_parity_test.cpp.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include "comm/mpi_test_world.h"
#include "comm/nccl_comm.h"
#include "model/ops.h"
#include "parity_util.h"
#include "planner/strategy.h"
#include "train_test_util.h"

namespace hydraulis::train {
namespace {

// Head dim 64 (the CUDA attention supports 64 and 128), 3 layers (pp2 splits them 2/1), GQA 4 on 2.
TrainerConfig gpu_config() {
  TrainerConfig c = testing::parity_config();
  c.device = core::Device::kCuda;
  c.model = model::LlamaConfig{"nccl_parity", 3, 256, 4, 2, 512, 50304, 256, 10000.0, 1e-5,
                               model::LmHead::kUntied};
  c.steps = 3;
  c.global_token_num = 2048;
  c.max_seq_len = 256;
  return c;
}

void expect_nccl_parity(const std::string& strategies, std::vector<int> forced) {
  SCOPED_TRACE(strategies);
  comm::MpiComm& world = comm::testing::mpi_test_world();
  if (!model::select_cuda_device(world.rank()).is_ok()) GTEST_SKIP() << "no GPU for this rank";
  const std::string prefix = testing::real_dataset(60);
  ASSERT_FALSE(prefix.empty()) << "demo data missing: run scripts/setup.sh";
  auto dataset = data::IndexedDataset::open(prefix).value();
  static const testing::Reference ref = testing::make_reference(gpu_config(), dataset);
  DistributedConfig config;
  config.trainer = gpu_config();
  config.strategies = planner::parse_strategy_list(strategies).value();
  config.forced_strategies = std::move(forced);
  auto ops = model::make_ops(core::Device::kCuda).value();
  auto nccl = comm::NcclComm::create(world, world.rank(),
                                     static_cast<cudaStream_t>(ops->native_stream()));
  ASSERT_TRUE(nccl.is_ok()) << nccl.status().message();
  std::shared_ptr<comm::Communicator> host(&world, [](comm::Communicator*) {});
  auto trainer = DistributedTrainer::create(config, dataset, host, *nccl, ops);
  ASSERT_TRUE(trainer.is_ok()) << trainer.status().message();
  std::vector<std::string> failures;
  // bf16 compute: products and sums in another order and another micro-batch packing.
  core::Status status = testing::check_trainer(
      world.rank(), **trainer, ref, [&](std::string what) { failures.push_back(what); },
      {2e-3, 5e-2});
  ASSERT_TRUE(status.is_ok()) << status.message();
  for (size_t i = 0; i < std::min<size_t>(failures.size(), 10); ++i) {
    ADD_FAILURE() << "rank " << world.rank() << ": " << failures[i];
  }
}

TEST(NcclParity, Layouts) {
  const int W = comm::testing::mpi_test_world().size();
  if (W == 1) {
    expect_nccl_parity("[[(1, 1, 1)], [(1, 1, 1)]]", {1, 0, 1});
    return;
  }
  ASSERT_EQ(W, 2) << "run with 1 or 2 ranks";
  for (const char* s : {"[[(1, 1, 1), (1, 1, 1)]]", "[[(1, 2, 1)]]", "[[(1, 1, 2)]]", "[[(2, 1, 1)]]"}) {
    expect_nccl_parity(s, {});
  }
  expect_nccl_parity("[[(1, 1, 1), (1, 1, 1)], [(1, 2, 1)], [(1, 1, 2)], [(2, 1, 1)]]",
                     {1, 2, 3});
}

}  // namespace
}  // namespace hydraulis::train
