// LlamaModel: the whole decoder over a packed micro-batch — embedding, the decoder layers, final
// RMSNorm, LM head and token cross-entropy — with an explicit forward and backward. The loss of a
// micro-batch is Σ_t −log p(target_t) / N_global (N_global: the step's target count), so the
// micro-batch losses and gradients of a step sum to the step's mean token loss whatever the
// packing (docs/model.md, "Loss"). Runs on the parameter store's backend (model/ops.h); knows
// nothing of parallelism. Tests: tests/model/model_test.cpp, tests/model/cuda_model_test.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/config.h"
#include "model/decoder_layer.h"
#include "model/micro_batch.h"
#include "model/parameters.h"

namespace hydraulis::model {

enum class Recompute {
  kNone,  // keep every layer's activations from forward to backward
  kFull,  // keep only each layer's input; rerun the layer's forward just before its backward
};

struct ModelOptions {
  Recompute recompute = Recompute::kNone;
  // The LM head and loss run over chunks of this many tokens, so the (T, V) logits are never
  // materialised whole: at most (chunk, V) floats live at once.
  int64_t logits_chunk_tokens = 256;
};

// Where a non-finite value first appeared in a forward pass.
struct NonfiniteReport {
  bool found = false;
  int64_t layer = -1;  // -1: embedding or head
  std::string tensor;  // "model.layers.2 swiglu", "logits", ...
};

class LlamaModel {
 public:
  // `params` must be created from `config` and outlive the model.
  LlamaModel(LlamaConfig config, ParameterStore& params, ModelOptions options = {});

  // Forward and backward of one micro-batch: returns its loss contribution
  // Σ_t −log p(target_t) / global_target_count and accumulates (+=) every parameter gradient.
  // Errors: token ids outside the vocabulary, a sequence longer than max_seq_len.
  core::StatusOr<double> forward_backward(const MicroBatch& batch, int64_t global_target_count);
  // The same loss without gradients (no activations kept).
  core::StatusOr<double> forward_loss(const MicroBatch& batch, int64_t global_target_count);
  // Reruns the forward checking every activation; names the first non-finite one.
  NonfiniteReport find_nonfinite(const MicroBatch& batch);

  const LlamaConfig& config() const { return config_; }
  const ModelOptions& options() const { return options_; }
  ParameterStore& params() { return params_; }
  // Peak bytes of saved activations of the last forward_backward (all layers together).
  int64_t last_activation_bytes() const { return last_activation_bytes_; }

 private:
  enum class Pass { kLossOnly, kWithGrad, kDiagnose };
  core::Status validate(const MicroBatch& batch) const;
  // Final norm + chunked LM head + cross-entropy; with kWithGrad also the head's backward,
  // producing dx (T, C) w.r.t. the last layer's output.
  double head(const core::Tensor& x, const MicroBatch& batch, int64_t global_target_count,
              Pass pass, core::Tensor& dx, NonfiniteReport* report);
  // The micro-batch's tensors on the backend's device (the same tensors on the CPU).
  MicroBatch upload(const MicroBatch& batch) const;
  core::DType compute_dtype() const;  // of activations

  LlamaConfig config_;
  ParameterStore& params_;
  ModelOptions options_;
  int64_t last_activation_bytes_ = 0;
};

// Bytes a training step needs on one device: fp32 weights, gradients and two AdamW moments
// (16 B per parameter) plus the saved activations and transient buffers of one micro-batch of
// `micro_batch_tokens` tokens. A forecast (docs/model.md, "Memory"), checked before allocation.
struct MemoryEstimate {
  int64_t parameter_bytes = 0;   // weights + grads + moments
  int64_t activation_bytes = 0;  // saved across the micro-batch's forward and backward
  int64_t transient_bytes = 0;   // logits chunk, one layer's workspace
  int64_t total() const { return parameter_bytes + activation_bytes + transient_bytes; }
};
MemoryEstimate estimate_memory(const LlamaConfig& config, int64_t micro_batch_tokens,
                               const ModelOptions& options, int64_t bytes_per_element = 4);
// The same forecast for a GPU: fp32 master weights, gradients and moments plus the bf16 compute
// copy (18 B per parameter), bf16 activations (fp32 statistics counted as bf16 pairs).
MemoryEstimate estimate_device_memory(const LlamaConfig& config, int64_t micro_batch_tokens,
                                      const ModelOptions& options);

}  // namespace hydraulis::model
