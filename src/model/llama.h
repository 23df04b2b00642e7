// LlamaModel: the whole decoder over a packed micro-batch — embedding, the decoder layers, final
// RMSNorm, LM head and token cross-entropy — with an explicit forward and backward. The loss of a
// micro-batch is Σ_t −log p(target_t) / N_global (N_global: the step's target count), so the
// micro-batch losses and gradients of a step sum to the step's mean token loss whatever the
// packing (docs/model.md, "Loss"). Runs on the parameter store's backend (model/ops.h); knows
// nothing of parallelism. Tests: tests/model/model_test.cpp, tests/model/cuda_model_test.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model/collectives.h"
#include "model/config.h"
#include "model/decoder_layer.h"
#include "model/micro_batch.h"
#include "model/parameters.h"

namespace hydraulis::model {

enum class Recompute {
  kNone,       // keep every layer's activations from forward to backward
  kSelective,  // drop the norm and SwiGLU outputs, recompute them in the backward (no GEMM rerun)
  kFull,       // keep only each layer's input; rerun the layer's forward just before its backward
};

// "none", "selective", "full".
core::StatusOr<Recompute> recompute_from_string(std::string_view name);

// How this model instance relates to the whole model under tensor parallelism: the rank's
// vocabulary rows [vocab_begin, vocab_begin + shard vocab) of full_vocab_size, and the
// collectives that join the tp (and cp) group's partial results. Defaults: one device.
struct ShardInfo {
  const Collectives* collectives = nullptr;  // nullptr: local_collectives()
  int64_t vocab_begin = 0;
  int64_t full_vocab_size = 0;  // 0: the config's vocab_size
};

// One micro-batch between its stage forward and its stage backward (a pipeline schedule keeps
// several in flight).
struct StageState {
  MicroBatch on_device;
  std::vector<LayerActivations> layers;
  core::Tensor head_dx;  // (T, C) last stage: gradient w.r.t. the last layer's output
  double loss = 0;       // last stage: Σ_t −log p(target_t) / global_target_count
  bool active = false;
};

struct ModelOptions {
  Recompute recompute = Recompute::kNone;
  // The LM head and loss run over chunks of this many tokens, so the (T, V) logits are never
  // materialised whole: at most (chunk, V) floats live at once.
  int64_t logits_chunk_tokens = 256;
};

// Callbacks around a pipeline stage's use of its parameters, so that a distributed runtime can
// overlap the parameter and gradient transfers with compute (parallel/reshard_overlap.h). Groups:
// 0 the embedding, 1 + l decoder layer l (whole-model numbering), num_layers + 1 the final norm
// and the LM head.
struct StageHooks {
  // forward_stage, before a group's parameters are first read; an error stops the forward.
  std::function<core::Status(int64_t group)> before_use;
  // backward_stage, once a group's gradients got this micro-batch's last contribution (the LM
  // head's come from the fused head backward of forward_stage: reported as backward_stage starts).
  std::function<void(int64_t group)> grads_done;
};

// Where a non-finite value first appeared in a forward pass.
struct NonfiniteReport {
  bool found = false;
  int64_t layer = -1;  // -1: embedding or head
  std::string tensor;  // "model.layers.2 swiglu", "logits", ...
};

class LlamaModel {
 public:
  // `params` must be created from `config` (a tensor-parallel shard config when shard says so)
  // and outlive the model; the store's part (ModelPart) makes this model a pipeline stage.
  LlamaModel(LlamaConfig config, ParameterStore& params, ModelOptions options = {},
             ShardInfo shard = {});

  // Forward and backward of one micro-batch through the whole model (a store holding every layer
  // and both ends): returns its loss contribution Σ_t −log p(target_t) / global_target_count and
  // accumulates (+=) every parameter gradient. Errors: token ids outside the vocabulary, a
  // sequence longer than max_seq_len.
  core::StatusOr<double> forward_backward(const MicroBatch& batch, int64_t global_target_count);

  // Pipeline stage forward: `input` (T, C) is the previous stage's output (undefined on the first
  // stage, which embeds batch.input_ids). Returns this stage's output (T, C) for the next stage;
  // the last stage instead runs the head's forward and fused backward (state.loss, state.head_dx)
  // and returns an undefined tensor. Saves what backward_stage needs in `state`.
  core::StatusOr<core::Tensor> forward_stage(const MicroBatch& batch, const core::Tensor& input,
                                             int64_t global_target_count, StageState& state);
  // Pipeline stage backward: `dy` (T, C) from the next stage (undefined on the last stage).
  // Accumulates this stage's parameter gradients; returns the gradient w.r.t. the stage input
  // (undefined on the first stage, which finishes with the embedding's backward). Clears state.
  core::Tensor backward_stage(StageState& state, const core::Tensor& dy);
  // The same loss without gradients (no activations kept).
  core::StatusOr<double> forward_loss(const MicroBatch& batch, int64_t global_target_count);
  // Reruns the forward checking every activation; names the first non-finite one.
  NonfiniteReport find_nonfinite(const MicroBatch& batch);

  // Hooks of the following stage calls (nullptr: none); `hooks` must outlive their use.
  void set_hooks(const StageHooks* hooks) { hooks_ = hooks; }

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
  // Vocab-parallel loss of one chunk (tp > 1): joins the shards' lse; returns the chunk's loss
  // and writes the global lse (n) for the backward. `host_targets` are the global target ids.
  double combine_vocab_shards(const core::Tensor& host_targets, core::Tensor losses,
                              const core::Tensor& lse, int64_t global_target_count,
                              core::Tensor& global_lse) const;
  // Input ids and targets of the micro-batch in this rank's vocabulary shard (masked / "other
  // shard" outside it); the batch itself when the vocabulary is whole.
  MicroBatch to_vocab_shard(const MicroBatch& batch) const;
  const Collectives& collectives() const;
  // Embedding of the (uploaded, vocabulary-shard) ids, joined over the tensor-parallel group.
  core::Tensor embed(const MicroBatch& on_device) const;
  // The micro-batch's tensors on the backend's device (the same tensors on the CPU).
  MicroBatch upload(const MicroBatch& batch) const;
  core::DType compute_dtype() const;  // of activations

  LlamaConfig config_;
  ParameterStore& params_;
  ModelOptions options_;
  ShardInfo shard_;
  int64_t last_activation_bytes_ = 0;
  const StageHooks* hooks_ = nullptr;
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
