// The trainer on the CUDA backend against the CPU trainer: from the same seed and data, the
// losses and gradient norms of a few AdamW steps (bf16 compute vs fp32) track each other, and the
// device metrics (MFU, model TFLOP/s, peak memory) are written. Device machine only (labels
// gpu;train): skipped without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "model/ops.h"
#include "train/trainer.h"

namespace hydraulis::train {
namespace {

// 24 documents of 40..201 tokens over a 512-token vocabulary, with a learnable pattern (each
// token a fixed function of the previous one) so the loss falls.
std::string pattern_dataset() {
  std::string path = ::testing::TempDir() + "/cuda_train_test";
  auto writer = data::IndexedDatasetWriter::create(path, data::TokenDType::kU16);
  EXPECT_TRUE(writer.is_ok());
  for (int d = 0; d < 24; ++d) {
    std::vector<int32_t> ids = {d * 13 % 512};
    for (int t = 1; t < 40 + (d * 37) % 162; ++t) ids.push_back((ids.back() * 5 + 3 + d % 3) % 512);
    EXPECT_TRUE(writer->add_document(ids).is_ok());
  }
  EXPECT_TRUE(writer->finish().is_ok());
  return path;
}

TrainerConfig config_on(core::Device device) {
  TrainerConfig c;
  c.device = device;
  // Head dim 64 (what the CUDA attention supports), GQA 4 on 2, untied head.
  c.model = model::LlamaConfig{"cuda_test",           2, 256, 4, 2, 512, 512, 256, 10000.0, 1e-5,
                               model::LmHead::kUntied};
  c.steps = 6;
  c.global_token_num = 1024;
  c.max_seq_len = 200;
  c.micro_batch_tokens = 400;
  c.lr = {3e-3, 3e-4, 1, 6};
  c.progress = false;
  return c;
}

TEST(CudaTrainer, LossTracksTheCpuTrainer) {
  if (!model::make_ops(core::Device::kCuda).is_ok()) GTEST_SKIP() << "no CUDA device";
  auto dataset = data::IndexedDataset::open(pattern_dataset());
  ASSERT_TRUE(dataset.is_ok());
  auto cpu = Trainer::create(config_on(core::Device::kCpu), *dataset);
  auto gpu = Trainer::create(config_on(core::Device::kCuda), *dataset);
  ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  ASSERT_TRUE((*cpu)->run().is_ok());
  ASSERT_TRUE((*gpu)->run().is_ok());
  const auto& a = (*cpu)->history();
  const auto& b = (*gpu)->history();
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t s = 0; s < a.size(); ++s) {
    EXPECT_EQ(a[s].tokens, b[s].tokens);
    EXPECT_EQ(a[s].micro_batches, b[s].micro_batches);
    EXPECT_NEAR(b[s].loss, a[s].loss, 1e-2 * a[s].loss) << "step " << s + 1;
    // Step 1 sees the same weights; later the bf16 and fp32 trajectories drift apart a little and
    // the norm (a max-dominated quantity) drifts more than the loss.
    const double norm_tol = s == 0 ? 3e-2 : 1.5e-1;
    EXPECT_NEAR(b[s].grad_norm, a[s].grad_norm, norm_tol * a[s].grad_norm) << "step " << s + 1;
    worst = std::max(worst, std::abs(b[s].loss - a[s].loss) / a[s].loss);
    EXPECT_GT(b[s].peak_memory_bytes, 0);
    EXPECT_GT(b[s].model_tflops_per_s, 0);
    EXPECT_EQ(a[s].peak_memory_bytes, -1);  // CPU metrics keep their keys
    EXPECT_EQ(a[s].board_joules, -1);        // the CPU has no energy counter
    // Cumulative board energy where the counter had advanced: never decreasing, with a power.
    if (b[s].board_joules >= 0) {
      EXPECT_GT(b[s].board_watts, 0) << "step " << s + 1;
      if (s > 0 && b[s - 1].board_joules >= 0) {
        EXPECT_GE(b[s].board_joules, b[s - 1].board_joules) << "step " << s + 1;
      }
    }
  }
  EXPECT_LT(b.back().loss, b.front().loss - 0.3);  // it learns
  ::testing::Test::RecordProperty("loss_worst_rel_err", std::to_string(worst));
  ::testing::Test::RecordProperty(
      "loss_first_last", std::to_string(b.front().loss) + " " + std::to_string(b.back().loss));
  const core::Json line = b.back().to_json();
  EXPECT_TRUE(line.contains("peak_memory_bytes"));
  EXPECT_TRUE(line.contains("model_tflops_per_s"));
  EXPECT_EQ(line.contains("board_joules"), b.back().board_joules >= 0);
  ::testing::Test::RecordProperty("board_joules_last", std::to_string(b.back().board_joules));
}

TEST(CudaTrainer, UnsupportedHeadDimIsRefusedBeforeAllocation) {
  if (!model::make_ops(core::Device::kCuda).is_ok()) GTEST_SKIP() << "no CUDA device";
  auto dataset = data::IndexedDataset::open(pattern_dataset());
  ASSERT_TRUE(dataset.is_ok());
  TrainerConfig c = config_on(core::Device::kCuda);
  c.model.num_heads = 8;  // head dim 32
  c.model.num_kv_heads = 2;
  auto trainer = Trainer::create(c, *dataset);
  ASSERT_FALSE(trainer.is_ok());
  EXPECT_NE(trainer.status().message().find("head dim 32"), std::string::npos)
      << trainer.status().message();
}

}  // namespace
}  // namespace hydraulis::train
