// The whole model on the CUDA backend (bf16 compute, fp32 master weights and gradients): loss and
// every parameter gradient against the PyTorch fp64 golden (llama_d64_*, head dim 64) within bf16
// tolerance relative to each tensor's scale, the 10-step AdamW curve against PyTorch's, and a
// longer packed batch against the CPU twin. Device machine only (labels gpu;model): skipped
// without a GPU. Worst errors go to the gtest JSON report as properties.
#include <gtest/gtest.h>

#include <cmath>

#include "golden_util.h"
#include "model/llama.h"
#include "model/ops.h"
#include "model_test_util.h"

namespace hydraulis::model {
namespace {

using core::Tensor;

constexpr const char* kD64GoldenPath = "tests/model/golden/llama_d64_golden.safetensors";
// bf16 has 8 significant bits (relative rounding 2^-9); two layers of bf16 activations and
// gradients stay within a few percent of each tensor's largest element.
constexpr double kLossTol = 1e-2;  // relative
constexpr double kGradTol = 4e-2;  // of max |golden| per tensor

std::shared_ptr<const Ops> cuda_or_skip() {
  auto ops = make_ops(core::Device::kCuda);
  return ops.is_ok() ? *ops : nullptr;
}

struct D64 {
  LlamaConfig config = testing::golden_d64_config();
  std::vector<MicroBatch> micro_batches;
  int64_t targets = 0;
  D64() {
    auto seqs = testing::golden_d64_sequences(config.vocab_size);
    micro_batches = {pack_sequences(Seqs{seqs[0], seqs[1]}), pack_sequences(Seqs{seqs[2]})};
    for (const auto& mb : micro_batches) targets += mb.num_targets();
  }
  ParameterStore params(std::shared_ptr<const Ops> ops) const {
    ParameterStore host = ParameterStore::create(config, core::DType::kF32);
    host.init(testing::kGoldenSeed);
    return host.copy_to(std::move(ops));
  }
  double loss_and_grads(ParameterStore& params, LlamaModel& model) const {
    params.zero_grads();
    double loss = 0;
    for (const auto& mb : micro_batches) loss += model.forward_backward(mb, targets).value();
    return loss;
  }
};

TEST(CudaModel, LossAndEveryGradientMatchPyTorchGolden) {
  auto ops = cuda_or_skip();
  if (!ops) GTEST_SKIP() << "no CUDA device";
  SafetensorsFile golden = testing::read_or_fail(kD64GoldenPath);
  ASSERT_NE(golden.find("loss"), nullptr);
  D64 d;
  ParameterStore params = d.params(ops);
  for (Recompute recompute : {Recompute::kNone, Recompute::kFull}) {
    LlamaModel model(d.config, params, {recompute, 64});
    const double loss = d.loss_and_grads(params, model);
    const double expected = element(*golden.find("loss"), 0);
    EXPECT_NEAR(loss, expected, kLossTol * expected);
    double worst = 0;
    for (const Parameter& p : params.all()) {
      const Tensor* g = golden.find("grad." + p.name);
      ASSERT_NE(g, nullptr) << p.name;
      worst = std::max(
          worst, testing::expect_close(ops->to_host(p.grad), *g, kGradTol, "grad of " + p.name));
    }
    const char* tag = recompute == Recompute::kNone ? "none" : "full";
    ::testing::Test::RecordProperty(std::string("loss_rel_err_") + tag,
                                    std::to_string(std::abs(loss - expected) / expected));
    ::testing::Test::RecordProperty(std::string("grad_worst_rel_err_") + tag,
                                    std::to_string(worst));
  }
}

TEST(CudaModel, TenStepAdamWCurveTracksPyTorch) {
  auto ops = cuda_or_skip();
  if (!ops) GTEST_SKIP() << "no CUDA device";
  SafetensorsFile golden = testing::read_or_fail(kD64GoldenPath);
  const Tensor* curve = golden.find("curve.loss");
  ASSERT_NE(curve, nullptr);
  ASSERT_EQ(curve->numel(), testing::kCurveSteps);
  D64 d;
  ParameterStore params = d.params(ops);
  LlamaModel model(d.config, params);
  optim::AdamW adamw(params, testing::golden_adamw());
  optim::LrSchedule schedule = testing::golden_schedule();
  double worst = 0;
  for (int s = 1; s <= testing::kCurveSteps; ++s) {
    const double loss = d.loss_and_grads(params, model);
    const double expected = element(*curve, s - 1);
    EXPECT_NEAR(loss, expected, 2e-2 * expected) << "step " << s;
    worst = std::max(worst, std::abs(loss - expected) / expected);
    adamw.step(schedule.lr_at(s), adamw.grad_norm());
  }
  ::testing::Test::RecordProperty("curve_worst_rel_err", std::to_string(worst));
}

// GQA with 4 heads on 2, sequences of 1 to 700 positions in one micro-batch, tied head: the CUDA
// model against the CPU f32 twin.
TEST(CudaModel, LongerPackedBatchMatchesCpuTwin) {
  auto ops = cuda_or_skip();
  if (!ops) GTEST_SKIP() << "no CUDA device";
  LlamaConfig config = testing::golden_d64_config();
  config.hidden = 256;
  config.num_heads = 4;
  config.num_kv_heads = 2;
  config.ffn_hidden = 512;
  config.vocab_size = 1000;
  config.max_seq_len = 1024;
  config.lm_head = LmHead::kTied;
  ParameterStore cpu = ParameterStore::create(config, core::DType::kF32);
  cpu.init(3);
  ParameterStore gpu = cpu.copy_to(ops);
  std::vector<std::vector<int32_t>> seqs;
  int salt = 20;
  for (int64_t n : {701, 2, 130, 64, 65, 300}) {
    seqs.push_back(testing::test_sequence(n, config.vocab_size, uint64_t(salt++)));
  }
  MicroBatch mb = pack_sequences(seqs);
  LlamaModel cpu_model(config, cpu);
  LlamaModel gpu_model(config, gpu, {Recompute::kNone, 512});
  const double cpu_loss = cpu_model.forward_backward(mb, mb.num_targets()).value();
  const double gpu_loss = gpu_model.forward_backward(mb, mb.num_targets()).value();
  EXPECT_NEAR(gpu_loss, cpu_loss, kLossTol * cpu_loss);
  double worst = 0;
  for (size_t i = 0; i < cpu.all().size(); ++i) {
    worst = std::max(worst, testing::expect_close(ops->to_host(gpu.at(i).grad), cpu.at(i).grad,
                                                  kGradTol, "grad of " + cpu.at(i).name));
  }
  ::testing::Test::RecordProperty("loss_rel_err",
                                  std::to_string(std::abs(gpu_loss - cpu_loss) / cpu_loss));
  ::testing::Test::RecordProperty("grad_worst_rel_err", std::to_string(worst));
}

// The GPU store lays q/k/v out fused, and deferred zeroing over NaN-poisoned gradients (each
// first write overwrites: the fused q/k/v GEMM, the other GEMMs with beta = 0, the norms and the
// embedding cleared first) gives the gradients of zeroing, over two micro-batches and an empty one.
TEST(CudaModel, DeferredZeroingOverPoisonedGradientsEqualsZeroing) {
  auto ops = cuda_or_skip();
  if (!ops) GTEST_SKIP() << "no CUDA device";
  D64 d;
  ParameterStore params = d.params(ops);
  Tensor w, dw;
  for (int64_t l = 0; l < params.num_layers(); ++l) {
    ASSERT_TRUE(params.fused_qkv(l, w, dw)) << "layer " << l;
    EXPECT_EQ(w.size(0), d.config.q_width() + 2 * d.config.kv_width());
  }
  LlamaModel model(d.config, params);
  d.loss_and_grads(params, model);
  std::vector<Tensor> zeroed;
  for (const Parameter& p : params.all()) zeroed.push_back(ops->to_host(p.grad));

  for (Parameter& p : params.all()) {
    Tensor nan = Tensor::empty(p.grad.shape(), core::DType::kF32);
    for (int64_t i = 0; i < nan.numel(); ++i) nan.data<float>()[i] = std::nanf("");
    Tensor column = p.grad.reshape({nan.numel(), 1});  // the gradient's memory, overwritten
    ops->copy_block(ops->upload(nan).reshape({nan.numel(), 1}), column,
                    {0, 0, 0, 0, nan.numel(), 1}, cpu::BlockCopy::kAssign);
  }
  params.defer_zero_grads();
  for (const auto& mb : d.micro_batches) model.forward_backward(mb, d.targets).value();
  model.forward_backward(pack_sequences(Seqs{}), d.targets).value();  // writes nothing
  params.finish_deferred_zero();
  for (size_t i = 0; i < zeroed.size(); ++i) {
    // cuDNN sums dQ with atomics: equal to rounding, not bit for bit.
    testing::expect_close(ops->to_host(params.at(i).grad), zeroed[i], 1e-3,
                          "deferred grad of " + params.at(i).name);
  }
}

TEST(CudaModel, UnsupportedHeadDimIsAClearError) {
  auto ops = cuda_or_skip();
  if (!ops) GTEST_SKIP() << "no CUDA device";
  core::Status status = ops->check_supported(testing::golden_config());  // head dim 8
  ASSERT_FALSE(status.is_ok());
  EXPECT_NE(status.message().find("head dim 8"), std::string::npos) << status.message();
}

}  // namespace
}  // namespace hydraulis::model
