// One LLaMA decoder layer with an explicit forward and backward over a packed micro-batch:
//   h = x + o_proj(attention(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1))),  n1 = rms_norm(x)
//   y = h + down_proj(swiglu(gate_up_proj(n2))),                                  n2 = rms_norm(h)
// The forward fills LayerActivations (what the backward needs); the backward accumulates the
// layer's parameter gradients. Built from the op table of the store's backend (model/ops.h);
// activations in its compute dtype. Tests: tests/model/model_test.cpp, cuda_model_test.cpp.
#pragma once

#include <cstdint>
#include <string>

#include "core/tensor.h"
#include "model/collectives.h"
#include "model/config.h"
#include "model/micro_batch.h"
#include "model/parameters.h"

namespace hydraulis::model {

// Saved by layer_fwd for layer_bwd. With full recomputation only `x` is kept between the passes.
struct LayerActivations {
  core::Tensor x;        // (T, C) layer input (the residual stream)
  core::Tensor xn1;      // (T, C) input_layernorm output
  core::Tensor rstd1;    // (T)
  core::Tensor q;        // (T, H, D) after RoPE
  core::Tensor k;        // (T, Hkv, D) after RoPE
  core::Tensor v;        // (T, Hkv, D)
  core::Tensor attn;     // (T, H, D) attention output
  core::Tensor lse;      // (H, T)
  core::Tensor h;        // (T, C) residual stream after attention
  core::Tensor xn2;      // (T, C) post_attention_layernorm output
  core::Tensor rstd2;    // (T)
  core::Tensor gate_up;  // (T, 2F)
  core::Tensor act;      // (T, F) SwiGLU output
  // Context parallelism: the keys and values of this rank's attention segments, gathered from the
  // cp group (Tk, Hkv, D); undefined otherwise (k and v are the segments' keys then).
  core::Tensor k_segments, v_segments;

  // Drops everything but x (full recomputation keeps only the layer inputs).
  void keep_input_only();
  // Selective recomputation: drops the outputs of the cheap elementwise ops (both norms' outputs
  // and SwiGLU's), which layer_bwd recomputes from x, h and gate_up; keeps every GEMM output.
  void drop_elementwise_outputs();
  // Bytes held now.
  int64_t bytes() const;
  // Name of the first saved tensor (in forward order) holding a NaN/Inf, or "" when all finite.
  std::string first_nonfinite(const Ops& ops) const;
};

// Activation elements saved per token and layer without recomputation (for memory forecasts).
int64_t layer_activation_elements_per_token(const LlamaConfig& config);

// x (T, C) → y (T, C) (allocated here); fills acts (acts.x = x). `batch` is on the store's
// device; `layer` indexes the store's layers. config is the (tensor-parallel shard) config.
void layer_fwd(const LlamaConfig& config, ParameterStore& params, int64_t layer,
               const core::Tensor& x, const MicroBatch& batch, const Collectives& collectives,
               LayerActivations& acts, core::Tensor& y);

// dy (T, C) → dx (T, C) (allocated here); accumulates the layer's parameter gradients. Recomputes
// what drop_elementwise_outputs dropped (acts is updated in place).
void layer_bwd(const LlamaConfig& config, ParameterStore& params, int64_t layer,
               LayerActivations& acts, const MicroBatch& batch, const Collectives& collectives,
               const core::Tensor& dy, core::Tensor& dx);

}  // namespace hydraulis::model
