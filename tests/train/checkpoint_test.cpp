// Checkpoints: the file format (round trip of every tensor and field, a block read touching only
// its chunks, every single corrupt byte refused and named), the directory protocol (temp
// directory, `latest`, keeping the newest K), load_checkpoint_weights, resume refused with every
// differing model field named, and both trainers: round trip, bitwise resume on the CPU
// (run to N == run to K + resume to N, compared with ==), and loading under another strategy
// list and rank count (threads). Docs: docs/training.md "Checkpoints", docs/formats.md.
#include "train/checkpoint.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "core/file.h"
#include "model/parameters.h"
#include "train/trainer.h"

namespace hydraulis::train {
namespace {

// 2 layers, hidden 16, 2 heads on 1 kv head, vocabulary 300 (so tensors are small and the
// embedding spans 2 chunks of a 16 KiB chunk when tests shrink it; the writer uses 1 MiB).
model::LlamaConfig small_model() {
  return model::LlamaConfig{"small", 2, 16, 2, 1, 24, 300, 64, 10000.0, 1e-5,
                            model::LmHead::kUntied};
}

std::string fresh_dir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/checkpoint_test_" + name + "_" +
                          std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  return dir;
}

CheckpointState small_state(int64_t step) {
  CheckpointState s;
  s.model = small_model();
  s.training.global_token_num = 384;
  s.training.max_seq_len = 96;
  s.training.seed = 11;
  s.training.order = "sequential";
  s.training.dataset_documents = 60;
  s.training.dataset_tokens = 12345;
  s.training.peak_lr = 3e-3;
  s.training.min_lr = 3e-4;
  s.training.warmup_steps = 1;
  s.training.beta1 = 0.9;
  s.training.beta2 = 0.999;
  s.training.eps = 1e-8;
  s.training.weight_decay = 0.01;
  s.training.max_grad_norm = 1.0;
  s.training.total_steps = 5;
  s.step = step;
  s.optimizer_steps = step - 1;
  s.sampler.epoch = 1;
  s.sampler.consumed_samples = 17;
  s.sampler.batches = uint64_t(step);
  s.sampler.num_documents = 60;
  s.sampler.seed = 11;
  s.saved_by = "test";
  return s;
}

// Element i of table entry t: distinct, exactly representable, signed zeros included.
float value_of(size_t t, int64_t i) {
  if (i == 3) return -0.0f;
  return float(int64_t(t) * 1000 + i % 997) * 0.25f - 7.0f;
}

// Writes small_state(step) with value_of() tensors as a committed checkpoint of `dir`.
std::string write_small(const std::string& dir, int64_t step, int keep = 2) {
  auto pending = PendingCheckpoint::begin(dir, small_state(step));
  EXPECT_TRUE(pending.is_ok()) << pending.status().to_string();
  const auto& table = pending->writer().tensors();
  for (size_t t = 0; t < table.size(); ++t) {
    std::vector<float> v(size_t(table[t].rows * table[t].cols));
    for (size_t i = 0; i < v.size(); ++i) v[i] = value_of(t, int64_t(i));
    EXPECT_TRUE(pending->writer().write(v.data(), int64_t(v.size())).is_ok());
  }
  auto committed = pending->commit(keep);
  EXPECT_TRUE(committed.is_ok()) << committed.status().to_string();
  return committed.is_ok() ? *committed : "";
}

TEST(CheckpointFile, RoundTripOfEveryTensorAndField) {
  const std::string dir = fresh_dir("roundtrip");
  const std::string step_dir = write_small(dir, 3);
  EXPECT_EQ(step_dir, dir + "/step-00000003");
  EXPECT_EQ(*core::read_file(dir + "/latest"), "step-00000003\n");
  auto reader = CheckpointReader::open(*resolve_checkpoint(dir));
  ASSERT_TRUE(reader.is_ok()) << reader.status().to_string();
  const CheckpointState& s = reader->state();
  const CheckpointState e = small_state(3);
  EXPECT_EQ(s.step, 3);
  EXPECT_EQ(s.optimizer_steps, 2);
  EXPECT_EQ(s.sampler, e.sampler);
  EXPECT_EQ(s.saved_by, "test");
  EXPECT_EQ(s.model.describe(), e.model.describe());
  EXPECT_EQ(s.training.peak_lr, 3e-3);
  EXPECT_EQ(s.training.eps, 1e-8);
  EXPECT_EQ(s.training.dataset_tokens, 12345u);
  EXPECT_EQ(s.training.order, "sequential");
  // 2 layers · 8 + embedding, final norm, lm_head = 19 parameters, three roles.
  ASSERT_EQ(reader->tensors().size(), 57u);
  EXPECT_EQ(reader->num_params(), 19u);
  EXPECT_EQ(reader->tensors()[0].name, "model.embed_tokens.weight");
  EXPECT_EQ(reader->tensors()[19].role, TensorRole::kExpAvg);
  EXPECT_EQ(reader->tensors()[56].name, "lm_head.weight");
  for (size_t t = 0; t < reader->tensors().size(); ++t) {
    auto tensor = reader->read(t);
    ASSERT_TRUE(tensor.is_ok()) << tensor.status().to_string();
    EXPECT_EQ(tensor->shape(), model::parameter_specs(small_model())[t % 19].shape);
    for (int64_t i = 0; i < tensor->numel(); ++i) {
      const float want = value_of(t, i);
      ASSERT_EQ(std::memcmp(&tensor->data<float>()[i], &want, 4), 0) << t << " " << i;
    }
  }
  // A block: rows [5, 9) x cols [3, 7) of q_proj (16 x 16).
  std::vector<float> block(16);
  ASSERT_TRUE(reader->read_block(2, 5, 9, 3, 7, block.data()).is_ok());
  for (int64_t r = 0; r < 4; ++r) {
    for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(block[size_t(r * 4 + c)], value_of(2, (5 + r) * 16 + 3 + c));
  }
  // The export entry point: the step directory itself or the checkpoint directory.
  for (const std::string& path : {dir, step_dir}) {
    auto weights = load_checkpoint_weights(path);
    ASSERT_TRUE(weights.is_ok()) << weights.status().to_string();
    EXPECT_EQ(weights->step, 3);
    EXPECT_EQ(weights->model.hidden, 16);
    ASSERT_EQ(weights->params.size(), 19u);
    EXPECT_EQ(weights->params[1].first, "model.layers.0.input_layernorm.weight");
    EXPECT_EQ(weights->params[1].second.shape(), core::Shape{16});
    EXPECT_EQ(weights->params[18].second.data<float>()[5], value_of(18, 5));
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace hydraulis::train
