// ParameterStore: the model's named parameters (Hugging Face LLaMA names, QKV unfused, gate/up
// fused), each a master tensor with its gradient, and their deterministic initialisation from a
// seed with our own counter-based PRNG (identical on every platform and for any thread count).
// A store lives on one backend (model/ops.h): created and initialised on the CPU, copy_to() puts
// it on a device (fp32 master + fp32 gradient + the bf16 compute copy the kernels read).
// Init and naming: docs/model.md. Tests: tests/model/model_test.cpp, cuda_model_test.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "model/config.h"
#include "model/ops.h"

namespace hydraulis::model {

enum class WeightDecay { kApply, kNone };  // AdamW decay on matrices, none on norm weights

struct Parameter {
  std::string name;      // "model.layers.3.self_attn.q_proj.weight"
  core::Tensor value;    // master weights (f32, or f64 in the gradient tests)
  core::Tensor grad;     // same shape and dtype; accumulated over a step's micro-batches
  core::Tensor compute;  // bf16 copy the device kernels read; undefined where they read `value`
  WeightDecay decay = WeightDecay::kApply;
  int64_t layer = -1;   // decoder layer, -1 for embedding, final norm and LM head
  double init_std = 0;  // 0: initialised to ones (norm weights)
  // The gradient is zero, but its memory was not cleared (ParameterStore::defer_zero_grads): its
  // first writer overwrites it instead of adding.
  bool grad_unwritten = false;

  // The weights as the kernels read them.
  const core::Tensor& weight() const { return compute.defined() ? compute : value; }
};

// Name, shape, decay, layer and init scale of every parameter of the whole model, in store order
// (the stream index of the init is the position in this list).
struct LayerParameterIds;
struct ParameterSpec {
  std::string name;
  core::Shape shape;
  WeightDecay decay = WeightDecay::kApply;
  int64_t layer = -1;
  double init_std = 0;  // 0: ones
  // The LayerParameterIds field of a decoder-layer parameter (nullptr outside the layers).
  size_t LayerParameterIds::*slot = nullptr;
};
std::vector<ParameterSpec> parameter_specs(const LlamaConfig& config);

// The initial value of element `index` of parameter `stream` (init_std 0: 1), as init() draws it.
float init_value(uint64_t seed, uint64_t stream, uint64_t index, double init_std);

// Indices into ParameterStore::all() of one decoder layer's tensors.
struct LayerParameterIds {
  size_t input_norm, q_proj, k_proj, v_proj, o_proj, post_attention_norm, gate_up_proj, down_proj;
};

// The part of the model one store holds: a pipeline stage's decoder layers, the embedding (first
// stage) and the final norm + LM head (last stage). Names keep the model's layer numbers. With a
// tied head, a head-only part holds model.embed_tokens.weight as its LM head (listed last).
struct ModelPart {
  int64_t first_layer = 0;
  int64_t num_layers = -1;  // -1: through the model's last layer
  bool embedding = true;
  bool head = true;

  int64_t layer_count(const LlamaConfig& config) const;
};

class ParameterStore {
 public:
  // Zero-filled parameters and gradients of `config` in `dtype` (f32 or f64); `part` selects a
  // pipeline stage's share (default: the whole model). config may be a tensor-parallel shard
  // (model::tensor_parallel_shard): the store then holds that rank's slices.
  static ParameterStore create(const LlamaConfig& config, core::DType dtype = core::DType::kF32,
                               const ModelPart& part = {});

  // value ~ N(0, init_std²) (norm weights = 1), drawn from (seed, parameter index, element index)
  // through SplitMix64 + Box-Muller and rounded to f32 first (so f32 and f64 stores agree).
  void init(uint64_t seed);
  void zero_grads();
  // zero_grads without the memset: every gradient is marked grad_unwritten, so the model's
  // backward overwrites (a GEMM with beta = 0) where it would have added to zeros, and clears
  // what it only adds to (norm weights, the embedding table) right before. Call
  // finish_deferred_zero() after the step's last backward and before anything reads a gradient.
  void defer_zero_grads();
  // Zeroes every gradient still marked (no backward wrote it, e.g. an empty micro-batch).
  void finish_deferred_zero();

  // A copy on `ops`' device: master weights as f32 (this store's dtype on the CPU), zero
  // gradients of the same dtype, and the compute copy where ops.compute_dtype differs.
  ParameterStore copy_to(std::shared_ptr<const Ops> ops) const;
  // Rewrites every compute copy from the master weights (after changing `value` directly).
  void refresh_compute();
  const Ops& ops() const { return *ops_; }
  std::shared_ptr<const Ops> shared_ops() const { return ops_; }
  core::Device device() const { return ops_->device(); }

  std::vector<Parameter>& all() { return params_; }
  const std::vector<Parameter>& all() const { return params_; }
  // nullptr when absent.
  Parameter* find(const std::string& name);
  const Parameter* find(const std::string& name) const;
  const ModelPart& part() const { return part_; }
  bool has_embedding() const { return part_.embedding; }
  bool has_head() const { return part_.head; }
  Parameter& embedding() {
    HYD_CHECK(part_.embedding, "this parameter store holds no embedding (not the first stage)");
    return params_[embedding_];
  }
  Parameter& final_norm() {
    HYD_CHECK(part_.head, "this parameter store holds no final norm (not the last stage)");
    return params_[final_norm_];
  }
  // The LM head weight: lm_head.weight, or the embedding table when tied.
  Parameter& lm_head() {
    HYD_CHECK(part_.head, "this parameter store holds no LM head (not the last stage)");
    return params_[lm_head_];
  }
  // Layer i of this store (0 = the part's first layer).
  const LayerParameterIds& layer(int64_t i) const { return layers_[static_cast<size_t>(i)]; }
  int64_t num_layers() const { return int64_t(layers_.size()); }
  Parameter& at(size_t index) { return params_[index]; }
  // The fused q/k/v projection of layer i: the compute weight as one (q + 2·kv, C) matrix (the
  // rows of q_proj, k_proj, v_proj) and its gradient, when the store holds each as adjacent rows
  // of one allocation (copy_to onto a GPU lays them out so, and they still are); false
  // otherwise, and the layer runs the three GEMMs.
  bool fused_qkv(int64_t i, core::Tensor& weight, core::Tensor& grad) const;

  int64_t num_elements() const;
  core::DType dtype() const { return dtype_; }

 private:
  size_t add(std::string name, const core::Shape& shape, WeightDecay decay, int64_t layer,
             double init_std);

  core::DType dtype_ = core::DType::kF32;
  ModelPart part_;
  std::shared_ptr<const Ops> ops_;
  std::vector<Parameter> params_;
  std::vector<LayerParameterIds> layers_;
  struct FusedQkv {
    core::Tensor weight, grad;  // (q + 2·kv, C): the compute copies and gradients of q, k, v
  };
  std::vector<FusedQkv> fused_qkv_;  // per layer; empty where the store has no fused layout
  size_t embedding_ = 0, final_norm_ = 0, lm_head_ = 0;
};

// Backward of a GEMM whose weight gradient dw belongs to `owners` (one parameter, or the fused
// q/k/v projection's three): dw is overwritten where their zeroing was deferred (all marked),
// else accumulated; the marks are cleared.
void matmul_bwd_to_grad(const Ops& ops, const core::Tensor& dy, const core::Tensor& x,
                        const core::Tensor& w, core::Tensor& dx, core::Tensor& dw,
                        std::initializer_list<Parameter*> owners);
// The same for one parameter's GEMM: w = p.weight(), dw = p.grad.
void matmul_bwd_to_grad(const Ops& ops, const core::Tensor& dy, const core::Tensor& x,
                        core::Tensor& dx, Parameter& p);
// p's gradient, ready to be added to: zeroed first where its zeroing was deferred.
core::Tensor& grad_to_accumulate(const Ops& ops, Parameter& p);

// The value of element `index` of the N(0, 1) stream `stream` of `seed` (the init's generator).
double init_normal(uint64_t seed, uint64_t stream, uint64_t index);

}  // namespace hydraulis::model
