// Decoder layer forward/backward on the store's backend (formulas of every op: docs/kernels.md;
// the layer: docs/model.md).
#include "model/decoder_layer.h"

#include "model/ops.h"
#include "model/tensor_ops.h"

namespace hydraulis::model {

using core::Tensor;

void LayerActivations::keep_input_only() {
  Tensor input = x;
  *this = LayerActivations{};
  x = input;
}

int64_t LayerActivations::bytes() const {
  int64_t total = 0;
  for (const Tensor* t :
       {&x, &xn1, &rstd1, &q, &k, &v, &attn, &lse, &h, &xn2, &rstd2, &gate_up, &act}) {
    if (t->defined()) total += int64_t(t->nbytes());
  }
  return total;
}

std::string LayerActivations::first_nonfinite(const Ops& ops) const {
  const std::pair<const char*, const Tensor*> saved[] = {{"input", &x},
                                                         {"input_layernorm", &xn1},
                                                         {"q (after rope)", &q},
                                                         {"k (after rope)", &k},
                                                         {"v", &v},
                                                         {"attention", &attn},
                                                         {"attention lse", &lse},
                                                         {"residual after attention", &h},
                                                         {"post_attention_layernorm", &xn2},
                                                         {"gate_up", &gate_up},
                                                         {"swiglu", &act}};
  for (const auto& [name, t] : saved) {
    if (t->defined() && model::first_nonfinite(ops.to_host(*t)).has_value()) return name;
  }
  return "";
}

int64_t layer_activation_elements_per_token(const LlamaConfig& c) {
  // x, xn1, h, xn2, attn (C each; attn is q_width = C), q, k, v, gate_up, act, 2 rstd, H lse.
  return 4 * c.hidden + 2 * c.q_width() + 2 * c.kv_width() + 3 * c.ffn_hidden + 2 + c.num_heads;
}

void layer_fwd(const LlamaConfig& c, ParameterStore& params, int64_t layer, const Tensor& x,
               const Tensor& cu_seqlens, LayerActivations& a, Tensor& y) {
  const LayerParameterIds& ids = params.layer(layer);
  const Ops& ops = params.ops();
  const core::DType dt = x.dtype();                            // activations
  const core::DType st = ops.statistic_dtype(params.dtype());  // rstd, lse
  const int64_t T = x.size(0), C = c.hidden, F = c.ffn_hidden;
  const int64_t H = c.num_heads, Hkv = c.num_kv_heads, D = c.head_dim();
  a.x = x;
  a.xn1 = ops.empty({T, C}, dt);  // (T, C)
  a.rstd1 = ops.empty({T}, st);   // (T)
  ops.rms_norm_fwd(x, params.at(ids.input_norm).weight(), c.norm_eps, a.xn1, a.rstd1);

  a.q = ops.empty({T, H * D}, dt);    // (T, H·D)
  a.k = ops.empty({T, Hkv * D}, dt);  // (T, Hkv·D)
  a.v = ops.empty({T, Hkv * D}, dt);  // (T, Hkv·D)
  ops.matmul_fwd(a.xn1, params.at(ids.q_proj).weight(), a.q);
  ops.matmul_fwd(a.xn1, params.at(ids.k_proj).weight(), a.k);
  ops.matmul_fwd(a.xn1, params.at(ids.v_proj).weight(), a.v);
  a.q = a.q.reshape({T, H, D});    // (T, H, D)
  a.k = a.k.reshape({T, Hkv, D});  // (T, Hkv, D)
  a.v = a.v.reshape({T, Hkv, D});  // (T, Hkv, D)
  ops.rope_fwd(a.q, cu_seqlens, c.rope_theta, a.q);
  ops.rope_fwd(a.k, cu_seqlens, c.rope_theta, a.k);

  a.attn = ops.empty({T, H, D}, dt);  // (T, H, D)
  a.lse = ops.empty({H, T}, st);      // (H, T)
  ops.attention_fwd(a.q, a.k, a.v, cu_seqlens, a.attn, a.lse);

  a.h = ops.empty({T, C}, dt);  // (T, C)
  ops.matmul_fwd(a.attn.reshape({T, H * D}), params.at(ids.o_proj).weight(), a.h);
  ops.add(a.h, x, a.h);  // residual

  a.xn2 = ops.empty({T, C}, dt);  // (T, C)
  a.rstd2 = ops.empty({T}, st);   // (T)
  ops.rms_norm_fwd(a.h, params.at(ids.post_attention_norm).weight(), c.norm_eps, a.xn2, a.rstd2);
  a.gate_up = ops.empty({T, 2 * F}, dt);  // (T, 2F)
  ops.matmul_fwd(a.xn2, params.at(ids.gate_up_proj).weight(), a.gate_up);
  a.act = ops.empty({T, F}, dt);  // (T, F)
  ops.swiglu_fwd(a.gate_up, a.act);

  y = ops.empty({T, C}, dt);  // (T, C)
  ops.matmul_fwd(a.act, params.at(ids.down_proj).weight(), y);
  ops.add(y, a.h, y);  // residual
}

void layer_bwd(const LlamaConfig& c, ParameterStore& params, int64_t layer,
               const LayerActivations& a, const Tensor& cu_seqlens, const Tensor& dy, Tensor& dx) {
  const LayerParameterIds& ids = params.layer(layer);
  const Ops& ops = params.ops();
  const core::DType dt = dy.dtype();
  const int64_t T = dy.size(0), C = c.hidden, F = c.ffn_hidden;
  const int64_t H = c.num_heads, Hkv = c.num_kv_heads, D = c.head_dim();
  auto& P = params;

  // MLP branch: y = h + down(swiglu(gate_up(n2))).
  Tensor dact = ops.empty({T, F}, dt);  // (T, F)
  ops.matmul_bwd(dy, a.act, P.at(ids.down_proj).weight(), dact, P.at(ids.down_proj).grad);
  Tensor dgate_up = ops.empty({T, 2 * F}, dt);  // (T, 2F)
  ops.swiglu_bwd(dact, a.gate_up, dgate_up);
  dact = Tensor();
  Tensor dxn2 = ops.empty({T, C}, dt);  // (T, C)
  ops.matmul_bwd(dgate_up, a.xn2, P.at(ids.gate_up_proj).weight(), dxn2,
                 P.at(ids.gate_up_proj).grad);
  dgate_up = Tensor();
  Tensor dh = ops.empty({T, C}, dt);  // (T, C)
  ops.rms_norm_bwd(dxn2, a.h, P.at(ids.post_attention_norm).weight(), a.rstd2, dh,
                   P.at(ids.post_attention_norm).grad);
  ops.add(dh, dy, dh);  // residual

  // Attention branch: h = x + o(attention(q, k, v)).
  Tensor dattn = ops.empty({T, H * D}, dt);  // (T, H·D)
  ops.matmul_bwd(dh, a.attn.reshape({T, H * D}), P.at(ids.o_proj).weight(), dattn,
                 P.at(ids.o_proj).grad);
  Tensor dq = ops.empty({T, H, D}, dt);    // (T, H, D)
  Tensor dk = ops.empty({T, Hkv, D}, dt);  // (T, Hkv, D)
  Tensor dv = ops.empty({T, Hkv, D}, dt);  // (T, Hkv, D)
  ops.attention_bwd(dattn.reshape({T, H, D}), a.q, a.k, a.v, a.attn, a.lse, cu_seqlens, dq, dk, dv);
  dattn = Tensor();
  ops.rope_bwd(dq, cu_seqlens, c.rope_theta, dq);
  ops.rope_bwd(dk, cu_seqlens, c.rope_theta, dk);

  Tensor dxn1 = ops.empty({T, C}, dt);     // (T, C)
  Tensor partial = ops.empty({T, C}, dt);  // (T, C)
  ops.matmul_bwd(dq.reshape({T, H * D}), a.xn1, P.at(ids.q_proj).weight(), dxn1,
                 P.at(ids.q_proj).grad);
  ops.matmul_bwd(dk.reshape({T, Hkv * D}), a.xn1, P.at(ids.k_proj).weight(), partial,
                 P.at(ids.k_proj).grad);
  ops.add(dxn1, partial, dxn1);
  ops.matmul_bwd(dv.reshape({T, Hkv * D}), a.xn1, P.at(ids.v_proj).weight(), partial,
                 P.at(ids.v_proj).grad);
  ops.add(dxn1, partial, dxn1);

  dx = ops.empty({T, C}, dt);  // (T, C)
  ops.rms_norm_bwd(dxn1, a.x, P.at(ids.input_norm).weight(), a.rstd1, dx,
                   P.at(ids.input_norm).grad);
  ops.add(dx, dh, dx);  // residual
}

}  // namespace hydraulis::model
