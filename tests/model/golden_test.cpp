// The whole model against a PyTorch fp64 reference (tools/torch_golden.py): loss, every parameter
// gradient and a 10-step AdamW loss curve for the micro config of model_test_util.h.
// Regenerate: HYD_WRITE_GOLDEN_INPUT=1 build/tests/model_test --gtest_filter='Golden.*' writes
// tests/model/golden/llama_micro_input.safetensors; then, where PyTorch is installed,
// python3 tools/torch_golden.py (docs/model.md, "Golden test").
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "core/json.h"
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

// Training settings of the curve, written into the input file's metadata for the script.
optim::LrSchedule golden_schedule() {
  return {1e-2, 1e-3, 3, 10};
}
optim::AdamWOptions golden_adamw() {
  return {0.9, 0.999, 1e-8, 0.01, 1.0};
}
constexpr int kCurveSteps = 10;

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

SafetensorsFile read_or_fail(const std::string& relative) {
  auto file = read_safetensors(testing::source_path(relative));
  EXPECT_TRUE(file.is_ok()) << file.status().to_string();
  return file.is_ok() ? std::move(file).value() : SafetensorsFile{};
}

TEST(Golden, InputFileHoldsOurInitAndBatch) {
  Fixture f(core::DType::kF64);
  auto seqs = testing::golden_sequences(f.config.vocab_size);
  MicroBatch whole = pack_sequences(seqs);
  if (std::getenv("HYD_WRITE_GOLDEN_INPUT") != nullptr) {
    SafetensorsFile out;
    for (const Parameter& p : f.params.all()) out.tensors.emplace_back(p.name, p.value);
    out.tensors.emplace_back("batch.input_ids", whole.input_ids);
    out.tensors.emplace_back("batch.targets", whole.targets);
    out.tensors.emplace_back("batch.cu_seqlens", whole.cu_seqlens);
    const LlamaConfig& c = f.config;
    optim::LrSchedule lr = golden_schedule();
    optim::AdamWOptions a = golden_adamw();
    core::Json meta = {{"num_layers", c.num_layers},
                       {"hidden", c.hidden},
                       {"num_heads", c.num_heads},
                       {"num_kv_heads", c.num_kv_heads},
                       {"ffn_hidden", c.ffn_hidden},
                       {"vocab_size", c.vocab_size},
                       {"rope_theta", c.rope_theta},
                       {"norm_eps", c.norm_eps},
                       {"tied", false},
                       {"peak_lr", lr.peak_lr},
                       {"min_lr", lr.min_lr},
                       {"warmup_steps", lr.warmup_steps},
                       {"total_steps", lr.total_steps},
                       {"beta1", a.beta1},
                       {"beta2", a.beta2},
                       {"eps", a.eps},
                       {"weight_decay", a.weight_decay},
                       {"max_grad_norm", a.max_grad_norm},
                       {"curve_steps", kCurveSteps}};
    out.metadata["config"] = meta.dump();
    ASSERT_TRUE(write_safetensors(testing::source_path(kInputPath), out).is_ok());
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

// |ours − torch| ≤ tol · max|torch| over the tensor (grads near 0 compared on the tensor's scale).
void expect_close(const Tensor& ours, const Tensor& golden, double tol, const std::string& what) {
  ASSERT_EQ(ours.shape(), golden.shape()) << what;
  double scale = 0;
  for (int64_t i = 0; i < golden.numel(); ++i)
    scale = std::max(scale, std::abs(element(golden, i)));
  ASSERT_GT(scale, 0) << what << " is all zeros in the golden file";
  for (int64_t i = 0; i < golden.numel(); ++i) {
    ASSERT_LE(std::abs(element(ours, i) - element(golden, i)), tol * scale)
        << what << " element " << i << ": ours " << element(ours, i) << ", torch "
        << element(golden, i);
  }
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
      expect_close(p.grad, *g, tol, "grad of " + p.name);
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

}  // namespace
}  // namespace hydraulis::model
