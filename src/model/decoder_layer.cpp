// Decoder layer forward/backward on the store's backend (formulas of every op: docs/kernels.md;
// the layer: docs/model.md).
#include "model/decoder_layer.h"

#include "kernels/cpu/embedding.h"
#include "model/ops.h"
#include "model/tensor_ops.h"

namespace hydraulis::model {

using core::Tensor;

void LayerActivations::keep_input_only() {
  Tensor input = x;
  *this = LayerActivations{};
  x = input;
}

void LayerActivations::drop_elementwise_outputs() {
  xn1 = Tensor();
  xn2 = Tensor();
  act = Tensor();
}

int64_t LayerActivations::bytes() const {
  int64_t total = 0;
  for (const Tensor* t : {&x, &xn1, &rstd1, &q, &k, &v, &attn, &lse, &h, &xn2, &rstd2, &gate_up,
                          &act, &k_segments, &v_segments}) {
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

namespace {

// Context parallelism: this rank's keys (T, Hkv, D) → the keys of its attention segments
// (Tk, Hkv, D): zero-pad to kv_local_rows rows, all-gather over the cp group, pick kv_rows.
Tensor gather_segment_keys(const Ops& ops, const Tensor& local, const MicroBatch& batch,
                           const Collectives& coll) {
  const int64_t T = local.size(0), W = local.size(1) * local.size(2), R = batch.kv_local_rows;
  Tensor rows = core::Tensor::empty({R}, core::DType::kI32);  // (R) on the host
  for (int64_t i = 0; i < R; ++i) rows.data<int32_t>()[i] = i < T ? int32_t(i) : cpu::kMaskedId;
  Tensor padded = ops.empty({R, W}, local.dtype());  // (R, Hkv·D)
  ops.embedding_fwd(ops.upload(rows), local.reshape({T, W}), padded);
  Tensor gathered = ops.empty({coll.cp_size() * R, W}, local.dtype());  // (cp·R, Hkv·D)
  coll.cp_all_gather(padded, gathered);
  const int64_t Tk = batch.kv_rows.size(0);
  Tensor segments = ops.empty({Tk, W}, local.dtype());  // (Tk, Hkv·D)
  ops.embedding_fwd(batch.kv_rows, gathered, segments);
  return segments.reshape({Tk, local.size(1), local.size(2)});
}

// The inverse: gradients of the segment keys (Tk, Hkv, D) → this rank's key gradients (T, Hkv, D),
// summed over every segment of the cp group that read them.
Tensor scatter_segment_key_grads(const Ops& ops, const Tensor& dsegments, const MicroBatch& batch,
                                 const Collectives& coll, int64_t T, core::DType grad_dtype) {
  const int64_t Tk = dsegments.size(0), W = dsegments.size(1) * dsegments.size(2);
  const int64_t R = batch.kv_local_rows;
  Tensor gathered = ops.zeros({coll.cp_size() * R, W}, grad_dtype);  // (cp·R, Hkv·D)
  ops.embedding_bwd(batch.kv_rows, dsegments.reshape({Tk, W}), gathered);
  Tensor local = ops.empty({R, W}, grad_dtype);  // (R, Hkv·D)
  coll.cp_reduce_scatter(gathered, local);
  Tensor out = ops.empty({T, dsegments.size(1), dsegments.size(2)}, dsegments.dtype());
  ops.convert(local.narrow_rows(0, T).reshape(out.shape()), out);
  return out;
}

void rope_forward(const Ops& ops, const MicroBatch& batch, double theta, Tensor& x) {
  if (batch.positions.defined()) {
    ops.rope_positions_fwd(x, batch.positions, theta, x);
  } else {
    ops.rope_fwd(x, batch.cu_seqlens, theta, x);
  }
}

void rope_backward(const Ops& ops, const MicroBatch& batch, double theta, Tensor& dx) {
  if (batch.positions.defined()) {
    ops.rope_positions_bwd(dx, batch.positions, theta, dx);
  } else {
    ops.rope_bwd(dx, batch.cu_seqlens, theta, dx);
  }
}

}  // namespace

void layer_fwd(const LlamaConfig& c, ParameterStore& params, int64_t layer, const Tensor& x,
               const MicroBatch& batch, const Collectives& coll, LayerActivations& a, Tensor& y) {
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

  a.q = ops.empty({T, H, D}, dt);    // (T, H, D)
  a.k = ops.empty({T, Hkv, D}, dt);  // (T, Hkv, D)
  a.v = ops.empty({T, Hkv, D}, dt);  // (T, Hkv, D)
  Tensor w_qkv, dw_qkv;  // (H·D + 2·Hkv·D, C) where the store lays q/k/v out fused
  if (params.fused_qkv(layer, w_qkv, dw_qkv)) {
    Tensor qkv = ops.empty({T, w_qkv.size(0)}, dt);  // (T, (H + 2·Hkv)·D)
    ops.matmul_fwd(a.xn1, w_qkv, qkv);
    ops.qkv_split_rope(qkv, batch.cu_seqlens, batch.positions, c.rope_theta, a.q, a.k, a.v);
  } else {
    Tensor q = a.q.reshape({T, H * D}), k = a.k.reshape({T, Hkv * D}), v = a.v.reshape({T, Hkv * D});
    ops.matmul_fwd(a.xn1, params.at(ids.q_proj).weight(), q);
    ops.matmul_fwd(a.xn1, params.at(ids.k_proj).weight(), k);
    ops.matmul_fwd(a.xn1, params.at(ids.v_proj).weight(), v);
    rope_forward(ops, batch, c.rope_theta, a.q);
    rope_forward(ops, batch, c.rope_theta, a.k);
  }

  a.attn = ops.empty({T, H, D}, dt);  // (T, H, D)
  a.lse = ops.empty({H, T}, st);      // (H, T)
  if (batch.context_parallel()) {
    a.k_segments = gather_segment_keys(ops, a.k, batch, coll);  // (Tk, Hkv, D)
    a.v_segments = gather_segment_keys(ops, a.v, batch, coll);  // (Tk, Hkv, D)
    ops.attention_segments_fwd(a.q, a.k_segments, a.v_segments, batch.cu_seqlens,
                               batch.cu_seqlens_k, a.attn, a.lse);
  } else {
    ops.attention_fwd(a.q, a.k, a.v, batch.cu_seqlens, a.attn, a.lse);
  }

  a.h = ops.empty({T, C}, dt);  // (T, C)
  if (coll.tp_size() == 1) {   // residual in the GEMM epilogue
    ops.matmul_fwd_add(a.attn.reshape({T, H * D}), params.at(ids.o_proj).weight(), x, a.h);
  } else {
    ops.matmul_fwd(a.attn.reshape({T, H * D}), params.at(ids.o_proj).weight(), a.h);
    coll.tp_all_reduce(a.h);  // row-parallel o_proj: partial sums over the heads of each tp rank
    ops.add(a.h, x, a.h);     // residual
  }

  a.xn2 = ops.empty({T, C}, dt);  // (T, C)
  a.rstd2 = ops.empty({T}, st);   // (T)
  ops.rms_norm_fwd(a.h, params.at(ids.post_attention_norm).weight(), c.norm_eps, a.xn2, a.rstd2);
  a.gate_up = ops.empty({T, 2 * F}, dt);  // (T, 2F)
  ops.matmul_fwd(a.xn2, params.at(ids.gate_up_proj).weight(), a.gate_up);
  a.act = ops.empty({T, F}, dt);  // (T, F)
  ops.swiglu_fwd(a.gate_up, a.act);

  y = ops.empty({T, C}, dt);  // (T, C)
  if (coll.tp_size() == 1) {
    ops.matmul_fwd_add(a.act, params.at(ids.down_proj).weight(), a.h, y);
  } else {
    ops.matmul_fwd(a.act, params.at(ids.down_proj).weight(), y);
    coll.tp_all_reduce(y);  // row-parallel down_proj
    ops.add(y, a.h, y);     // residual
  }
}

void layer_bwd(const LlamaConfig& c, ParameterStore& params, int64_t layer, LayerActivations& a,
               const MicroBatch& batch, const Collectives& coll, const Tensor& dy, Tensor& dx) {
  const LayerParameterIds& ids = params.layer(layer);
  const Ops& ops = params.ops();
  const core::DType dt = dy.dtype();
  const core::DType st = ops.statistic_dtype(params.dtype());
  const int64_t T = dy.size(0), C = c.hidden, F = c.ffn_hidden;
  const int64_t H = c.num_heads, Hkv = c.num_kv_heads, D = c.head_dim();
  auto& P = params;
  // Selective recomputation: the elementwise outputs come back from the kept inputs (the rstd
  // recomputed here equals the saved one: same op, same input).
  if (!a.act.defined()) {
    a.act = ops.empty({T, F}, dt);
    ops.swiglu_fwd(a.gate_up, a.act);
  }
  if (!a.xn2.defined()) {
    a.xn2 = ops.empty({T, C}, dt);
    Tensor rstd = ops.empty({T}, st);
    ops.rms_norm_fwd(a.h, P.at(ids.post_attention_norm).weight(), c.norm_eps, a.xn2, rstd);
  }
  if (!a.xn1.defined()) {
    a.xn1 = ops.empty({T, C}, dt);
    Tensor rstd = ops.empty({T}, st);
    ops.rms_norm_fwd(a.x, P.at(ids.input_norm).weight(), c.norm_eps, a.xn1, rstd);
  }

  // MLP branch: y = h + down(swiglu(gate_up(n2))).
  Tensor dact = ops.empty({T, F}, dt);  // (T, F)
  matmul_bwd_to_grad(ops, dy, a.act, dact, P.at(ids.down_proj));
  Tensor dgate_up = ops.empty({T, 2 * F}, dt);  // (T, 2F)
  ops.swiglu_bwd(dact, a.gate_up, dgate_up);
  dact = Tensor();
  Tensor dxn2 = ops.empty({T, C}, dt);  // (T, C)
  matmul_bwd_to_grad(ops, dgate_up, a.xn2, dxn2, P.at(ids.gate_up_proj));
  dgate_up = Tensor();
  coll.tp_all_reduce(dxn2);  // column-parallel gate_up: partial input gradients
  Tensor dh = ops.empty({T, C}, dt);  // (T, C)
  ops.rms_norm_bwd_add(dxn2, a.h, P.at(ids.post_attention_norm).weight(), a.rstd2, dy, dh,
                       grad_to_accumulate(ops, P.at(ids.post_attention_norm)));  // + dy

  // Attention branch: h = x + o(attention(q, k, v)).
  Tensor dattn = ops.empty({T, H * D}, dt);  // (T, H·D)
  matmul_bwd_to_grad(ops, dh, a.attn.reshape({T, H * D}), dattn, P.at(ids.o_proj));
  Tensor dq = ops.empty({T, H, D}, dt);  // (T, H, D)
  Tensor dk, dv;                         // (T, Hkv, D)
  if (batch.context_parallel()) {
    Tensor dks = ops.empty(a.k_segments.shape(), dt);  // (Tk, Hkv, D)
    Tensor dvs = ops.empty(a.v_segments.shape(), dt);  // (Tk, Hkv, D)
    ops.attention_segments_bwd(dattn.reshape({T, H, D}), a.q, a.k_segments, a.v_segments, a.attn,
                               a.lse, batch.cu_seqlens, batch.cu_seqlens_k, dq, dks, dvs);
    const core::DType grad_dtype = P.at(ids.k_proj).grad.dtype();
    dk = scatter_segment_key_grads(ops, dks, batch, coll, T, grad_dtype);
    dv = scatter_segment_key_grads(ops, dvs, batch, coll, T, grad_dtype);
  } else {
    dk = ops.empty({T, Hkv, D}, dt);
    dv = ops.empty({T, Hkv, D}, dt);
    ops.attention_bwd(dattn.reshape({T, H, D}), a.q, a.k, a.v, a.attn, a.lse, batch.cu_seqlens, dq,
                      dk, dv);
  }
  dattn = Tensor();

  Tensor dxn1 = ops.empty({T, C}, dt);  // (T, C) = dq·Wq + dk·Wk + dv·Wv
  Tensor w_qkv, dw_qkv;                 // (H·D + 2·Hkv·D, C)
  if (P.fused_qkv(layer, w_qkv, dw_qkv)) {
    Tensor dqkv = ops.empty({T, w_qkv.size(0)}, dt);  // (T, (H + 2·Hkv)·D)
    ops.qkv_merge_rope_bwd(dq, dk, dv, batch.cu_seqlens, batch.positions, c.rope_theta, dqkv);
    dq = dk = dv = Tensor();
    matmul_bwd_to_grad(ops, dqkv, a.xn1, w_qkv, dxn1, dw_qkv,
                       {&P.at(ids.q_proj), &P.at(ids.k_proj), &P.at(ids.v_proj)});
  } else {
    rope_backward(ops, batch, c.rope_theta, dq);
    rope_backward(ops, batch, c.rope_theta, dk);
    matmul_bwd_to_grad(ops, dq.reshape({T, H * D}), a.xn1, dxn1, P.at(ids.q_proj));
    ops.matmul_bwd_accumulate(dk.reshape({T, Hkv * D}), a.xn1, P.at(ids.k_proj).weight(), dxn1,
                              grad_to_accumulate(ops, P.at(ids.k_proj)));
    ops.matmul_bwd_accumulate(dv.reshape({T, Hkv * D}), a.xn1, P.at(ids.v_proj).weight(), dxn1,
                              grad_to_accumulate(ops, P.at(ids.v_proj)));
  }
  coll.tp_all_reduce(dxn1);  // column-parallel q/k/v: partial input gradients

  dx = ops.empty({T, C}, dt);  // (T, C)
  ops.rms_norm_bwd_add(dxn1, a.x, P.at(ids.input_norm).weight(), a.rstd1, dh, dx,
                       grad_to_accumulate(ops, P.at(ids.input_norm)));  // + dh
}

}  // namespace hydraulis::model
