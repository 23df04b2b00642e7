// The whole model against a PyTorch fp64 reference (tools/torch_golden.py): loss, every parameter
// gradient and a 10-step AdamW loss curve for the micro config of model_test_util.h.
// Regenerate: HYD_WRITE_GOLDEN_INPUT=1 build/tests/model_test --gtest_filter='Golden.*' writes
// tests/model/golden/llama_micro_input.safetensors; then, where PyTorch is installed,
// python3 tools/torch_golden.py (docs/model.md, "Golden test").
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "core/json.h"
#include "golden_util.h"
#include "model/llama.h"
#include "model/safetensors.h"
#include "model/tensor_ops.h"
#include "model_test_util.h"
#include "optim/adamw.h"
#include "optim/lr_schedule.h"

namespace hydraulis::model {
namespace {

using core::Tensor;

constexpr const char* kInputPath = "tests/model/golden/llama_micro_input.safetensors";
constexpr const char* kGoldenPath = "tests/model/golden/llama_micro_golden.safetensors";

using testing::golden_adamw;
using testing::golden_schedule;
using testing::kCurveSteps;
using testing::read_or_fail;

struct Fixture {
  LlamaConfig config = testing::golden_config();
  ParameterStore params;
  std::vector<MicroBatch> micro_batches;
  int64_t targets = 0;

  explicit Fixture(core::DType dtype) : params(ParameterStore::create(config, dtype)) {
    params.init(testing::kGoldenSeed);
    auto seqs = testing::golden_sequences(config.vocab_size);
    micro_batches.push_back(pack_sequences(Seqs{seqs[0], seqs[1]}));
    micro_batches.push_back(pack_sequences(Seqs{seqs[2]}));
    for (const auto& mb : micro_batches) targets += mb.num_targets();
  }
  double loss_and_grads(LlamaModel& model) {
    params.zero_grads();
    double loss = 0;
    for (const auto& mb : micro_batches) loss += model.forward_backward(mb, targets).value();
    return loss;
  }
};

TEST(Golden, InputFileHoldsOurInitAndBatch) {
  Fixture f(core::DType::kF64);
  auto seqs = testing::golden_sequences(f.config.vocab_size);
  MicroBatch whole = pack_sequences(seqs);
  if (std::getenv("HYD_WRITE_GOLDEN_INPUT") != nullptr) {
    ASSERT_TRUE(write_safetensors(testing::source_path(kInputPath),
                                  testing::golden_input(f.config, f.params, whole))
                    .is_ok());
  }
  // The checked-in input must be exactly what our init and batch produce today.
  SafetensorsFile in = read_or_fail(kInputPath);
  for (const Parameter& p : f.params.all()) {
    const Tensor* t = in.find(p.name);
    ASSERT_NE(t, nullptr) << p.name;
    ASSERT_EQ(t->shape(), p.value.shape()) << p.name;
    for (int64_t i = 0; i < t->numel(); ++i) {
      ASSERT_EQ(t->data<double>()[i], p.value.data<double>()[i]) << p.name << " element " << i;
    }
  }
  const Tensor* ids = in.find("batch.input_ids");
  ASSERT_NE(ids, nullptr);
  ASSERT_EQ(ids->numel(), 24);
  for (int64_t i = 0; i < 24; ++i)
    EXPECT_EQ(ids->data<int32_t>()[i], whole.input_ids.data<int32_t>()[i]);
}

void check_loss_and_grads(core::DType dtype, double tol) {
  SafetensorsFile golden = read_or_fail(kGoldenPath);
  ASSERT_NE(golden.find("loss"), nullptr);
  Fixture f(dtype);
  for (Recompute recompute : {Recompute::kNone, Recompute::kFull}) {
    LlamaModel model(f.config, f.params, {recompute, 5});
    double loss = f.loss_and_grads(model);
    double expected = element(*golden.find("loss"), 0);
    EXPECT_NEAR(loss, expected, tol * expected);
    for (const Parameter& p : f.params.all()) {
      const Tensor* g = golden.find("grad." + p.name);
      ASSERT_NE(g, nullptr) << p.name;
      testing::expect_close(p.grad, *g, tol, "grad of " + p.name);
    }
  }
}

TEST(Golden, LossAndEveryGradientMatchPyTorchInF64) {
  check_loss_and_grads(core::DType::kF64, 1e-10);
}

TEST(Golden, LossAndEveryGradientMatchPyTorchInF32) {
  check_loss_and_grads(core::DType::kF32, 2e-5);
}

TEST(Golden, TenStepAdamWLossCurveMatchesPyTorch) {
  SafetensorsFile golden = read_or_fail(kGoldenPath);
  const Tensor* curve = golden.find("curve.loss");
  const Tensor* norms = golden.find("curve.grad_norm");
  ASSERT_NE(curve, nullptr);
  ASSERT_NE(norms, nullptr);
  ASSERT_EQ(curve->numel(), kCurveSteps);
  Fixture f(core::DType::kF64);
  LlamaModel model(f.config, f.params);
  optim::AdamW adamw(f.params, golden_adamw());
  optim::LrSchedule schedule = golden_schedule();
  for (int s = 1; s <= kCurveSteps; ++s) {
    double loss = f.loss_and_grads(model);
    double norm = adamw.grad_norm();
    EXPECT_NEAR(loss, element(*curve, s - 1), 1e-9) << "step " << s;
    EXPECT_NEAR(norm, element(*norms, s - 1), 1e-9 * std::max(1.0, norm)) << "step " << s;
    adamw.step(schedule.lr_at(s), norm);
  }
  // The curve falls: the model learns the fixed batch.
  EXPECT_LT(element(*curve, kCurveSteps - 1), element(*curve, 0) - 0.5);
}

// The d64 files (head dim 64, what the CUDA backend runs; cuda_model_test.cpp) checked on the
// CPU in f32: the input is our init, and the golden is PyTorch's answer to it.
constexpr const char* kD64InputPath = "tests/model/golden/llama_d64_input.safetensors";
constexpr const char* kD64GoldenPath = "tests/model/golden/llama_d64_golden.safetensors";

TEST(GoldenD64, InputFileHoldsOurInitAndCpuMatchesPyTorchInF32) {
  const LlamaConfig config = testing::golden_d64_config();
  ParameterStore params = ParameterStore::create(config, core::DType::kF32);
  params.init(testing::kGoldenSeed);
  auto seqs = testing::golden_d64_sequences(config.vocab_size);
  if (std::getenv("HYD_WRITE_GOLDEN_INPUT") != nullptr) {
    ASSERT_TRUE(write_safetensors(testing::source_path(kD64InputPath),
                                  testing::golden_input(config, params, pack_sequences(seqs)))
                    .is_ok());
  }
  SafetensorsFile in = read_or_fail(kD64InputPath);
  for (const Parameter& p : params.all()) {
    const Tensor* t = in.find(p.name);
    ASSERT_NE(t, nullptr) << p.name;
    ASSERT_EQ(t->shape(), p.value.shape()) << p.name;
    for (int64_t i = 0; i < t->numel(); ++i) {
      ASSERT_EQ(t->data<float>()[i], p.value.data<float>()[i]) << p.name << " element " << i;
    }
  }
  SafetensorsFile golden = read_or_fail(kD64GoldenPath);
  ASSERT_NE(golden.find("loss"), nullptr);
  std::vector<MicroBatch> micro_batches = {pack_sequences(Seqs{seqs[0], seqs[1]}),
                                           pack_sequences(Seqs{seqs[2]})};
  int64_t targets = 0;
  for (const auto& mb : micro_batches) targets += mb.num_targets();
  LlamaModel model(config, params);
  double loss = 0;
  for (const auto& mb : micro_batches) loss += model.forward_backward(mb, targets).value();
  const double expected = element(*golden.find("loss"), 0);
  EXPECT_NEAR(loss, expected, 1e-5 * expected);
  for (const Parameter& p : params.all()) {
    const Tensor* g = golden.find("grad." + p.name);
    ASSERT_NE(g, nullptr) << p.name;
    testing::expect_close(p.grad, *g, 1e-4, "grad of " + p.name);
  }
}

}  // namespace
}  // namespace hydraulis::model
