// Shared pieces of the PyTorch golden tests (CPU: golden_test.cpp, CUDA: cuda_model_test.cpp):
// the curve's training settings, the input file written for tools/torch_golden.py, and the
// scale-relative comparison of a tensor against its golden.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "core/json.h"
#include "model/micro_batch.h"
#include "model/parameters.h"
#include "model/safetensors.h"
#include "model/tensor_ops.h"
#include "model_test_util.h"
#include "optim/adamw.h"
#include "optim/lr_schedule.h"

namespace hydraulis::model::testing {

// Training settings of the curve, written into the input file's metadata for the script.
inline optim::LrSchedule golden_schedule() {
  return {1e-2, 1e-3, 3, 10};
}
inline optim::AdamWOptions golden_adamw() {
  return {0.9, 0.999, 1e-8, 0.01, 1.0};
}
inline constexpr int kCurveSteps = 10;

// The script's input: every parameter of `params`, the packed batch and the settings.
inline SafetensorsFile golden_input(const LlamaConfig& c, const ParameterStore& params,
                                    const MicroBatch& whole) {
  SafetensorsFile out;
  for (const Parameter& p : params.all()) out.tensors.emplace_back(p.name, p.value);
  out.tensors.emplace_back("batch.input_ids", whole.input_ids);
  out.tensors.emplace_back("batch.targets", whole.targets);
  out.tensors.emplace_back("batch.cu_seqlens", whole.cu_seqlens);
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
                     {"tied", c.lm_head == LmHead::kTied},
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
  return out;
}

inline SafetensorsFile read_or_fail(const std::string& relative) {
  auto file = read_safetensors(source_path(relative));
  EXPECT_TRUE(file.is_ok()) << file.status().to_string();
  return file.is_ok() ? std::move(file).value() : SafetensorsFile{};
}

// |ours − torch| ≤ tol · max|torch| over the tensor (grads near 0 compared on the tensor's scale).
// Returns the largest |ours − torch| / max|torch| seen.
inline double expect_close(const core::Tensor& ours, const core::Tensor& golden, double tol,
                           const std::string& what) {
  EXPECT_EQ(ours.shape(), golden.shape()) << what;
  if (ours.shape() != golden.shape()) return INFINITY;
  double scale = 0, worst = 0;
  for (int64_t i = 0; i < golden.numel(); ++i)
    scale = std::max(scale, std::abs(element(golden, i)));
  EXPECT_GT(scale, 0) << what << " is all zeros in the golden file";
  for (int64_t i = 0; i < golden.numel(); ++i) {
    const double err = std::abs(element(ours, i) - element(golden, i));
    worst = std::max(worst, err / scale);
    if (err > tol * scale) {
      ADD_FAILURE() << what << " element " << i << ": ours " << element(ours, i) << ", torch "
                    << element(golden, i) << " (scale " << scale << ")";
      return worst;
    }
  }
  return worst;
}

}  // namespace hydraulis::model::testing
