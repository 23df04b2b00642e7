// LLaMA forward/backward over a packed micro-batch (docs/model.md): embedding → layers → final
// norm → chunked LM head + cross-entropy, whose backward runs chunk by chunk right after each
// chunk's loss so no (T, V) logits or gradient tensor ever exists. Every op runs on the parameter
// store's backend (model/ops.h); the micro-batch is validated on the host, then uploaded.
#include "model/llama.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/tensor_checks.h"
#include "model/ops.h"
#include "model/tensor_ops.h"

namespace hydraulis::model {

using core::Tensor;

core::StatusOr<Recompute> recompute_from_string(std::string_view name) {
  if (name == "none") return Recompute::kNone;
  if (name == "selective") return Recompute::kSelective;
  if (name == "full") return Recompute::kFull;
  return core::invalid_argument("--recompute '{}' is not one of none, selective, full", name);
}

LlamaModel::LlamaModel(LlamaConfig config, ParameterStore& params, ModelOptions options,
                       ShardInfo shard)
    : config_(std::move(config)), params_(params), options_(options), shard_(shard) {
  HYD_CHECK(config_.validate().is_ok(), "LlamaModel: {}", config_.validate().message());
  if (shard_.full_vocab_size == 0) shard_.full_vocab_size = config_.vocab_size;
  HYD_CHECK(params_.num_layers() == params_.part().layer_count(config_),
            "LlamaModel: parameter store does not match config {}", config_.describe());
  if (params_.has_embedding()) {
    HYD_CHECK(
        params_.embedding().value.shape() == core::Shape({config_.vocab_size, config_.hidden}),
        "LlamaModel: parameter store does not match config {}", config_.describe());
  }
  HYD_CHECK(options_.logits_chunk_tokens > 0, "logits_chunk_tokens = {} must be > 0",
            options_.logits_chunk_tokens);
}

const Collectives& LlamaModel::collectives() const {
  return shard_.collectives != nullptr ? *shard_.collectives : local_collectives();
}

core::Status LlamaModel::validate(const MicroBatch& batch) const {
  HYD_CHECK(batch.input_ids.defined() && batch.targets.defined() && batch.cu_seqlens.defined(),
            "micro-batch tensors must be defined");
  cpu::check_cu_seqlens(batch.cu_seqlens, batch.num_tokens());
  const int32_t* cu = batch.cu_seqlens.data<int32_t>();
  for (int64_t b = 0; b < batch.num_sequences(); ++b) {
    if (cu[b + 1] - cu[b] > config_.max_seq_len) {
      return core::out_of_range(
          "sequence {} of the micro-batch has {} positions; model '{}' supports at most {}: lower "
          "--max-seq-len",
          b, cu[b + 1] - cu[b], config_.name, config_.max_seq_len);
    }
  }
  return check_token_ids(batch, shard_.full_vocab_size);
}

MicroBatch LlamaModel::to_vocab_shard(const MicroBatch& batch) const {
  if (shard_.full_vocab_size == config_.vocab_size) return batch;
  const int64_t begin = shard_.vocab_begin, end = begin + config_.vocab_size, T = batch.num_tokens();
  MicroBatch shard = batch;
  shard.host_targets = batch.targets;  // global ids, for joining the shards' losses
  shard.input_ids = core::Tensor::empty({T}, core::DType::kI32);
  shard.targets = core::Tensor::empty({T}, core::DType::kI32);
  const int32_t* ids = batch.input_ids.data<int32_t>();
  const int32_t* targets = batch.targets.data<int32_t>();
  for (int64_t t = 0; t < T; ++t) {
    shard.input_ids.data<int32_t>()[t] =
        ids[t] >= begin && ids[t] < end ? int32_t(ids[t] - begin) : cpu::kMaskedId;
    const int32_t y = targets[t];
    shard.targets.data<int32_t>()[t] = y == cpu::kIgnoreIndex    ? cpu::kIgnoreIndex
                                       : y >= begin && y < end ? int32_t(y - begin)
                                                               : cpu::kTargetOnOtherShard;
  }
  return shard;
}

core::StatusOr<double> LlamaModel::forward_backward(const MicroBatch& batch,
                                                    int64_t global_target_count) {
  HYD_CHECK(params_.has_embedding() && params_.has_head(),
            "forward_backward needs the whole model; a pipeline stage uses forward_stage");
  StageState state;
  HYD_ASSIGN_OR_RETURN(core::Tensor unused, forward_stage(batch, Tensor(), global_target_count, state));
  const double loss = state.loss;
  backward_stage(state, Tensor());
  return loss;
}

core::StatusOr<Tensor> LlamaModel::forward_stage(const MicroBatch& batch, const Tensor& input,
                                                 int64_t global_target_count, StageState& state) {
  HYD_RETURN_IF_ERROR(validate(batch));
  HYD_CHECK(global_target_count > 0, "global_target_count = {} must be > 0", global_target_count);
  HYD_CHECK(params_.has_embedding() != input.defined(),
            "forward_stage: the first stage embeds the ids (no input); later stages need one");
  const int64_t T = batch.num_tokens(), L = params_.num_layers();
  state = StageState{};
  state.active = true;
  // An empty micro-batch does nothing, except on a context-parallel rank that owns no token of
  // it: the rest of its cp group needs its part in every layer's key/value exchange.
  if (T == 0 && !batch.context_parallel()) return Tensor();
  const Collectives& coll = collectives();
  state.on_device = upload(to_vocab_shard(batch));
  const MicroBatch& mb = state.on_device;

  auto use = [&](int64_t group) {
    return hooks_ != nullptr && hooks_->before_use ? hooks_->before_use(group) : core::Status::ok();
  };
  const int64_t first = params_.part().first_layer;
  Tensor x = input;  // (T, C)
  if (params_.has_embedding()) {
    HYD_RETURN_IF_ERROR(use(0));
    x = embed(mb);
  }
  state.layers.resize(static_cast<size_t>(L));
  int64_t saved_bytes = 0;
  for (int64_t l = 0; l < L; ++l) {
    HYD_RETURN_IF_ERROR(use(1 + first + l));
    Tensor y;  // (T, C)
    layer_fwd(config_, params_, l, x, mb, coll, state.layers[l], y);
    if (options_.recompute == Recompute::kFull) state.layers[l].keep_input_only();
    if (options_.recompute == Recompute::kSelective) state.layers[l].drop_elementwise_outputs();
    saved_bytes += state.layers[l].bytes();
    x = y;
  }
  last_activation_bytes_ = saved_bytes;
  if (!params_.has_head()) return x;
  HYD_RETURN_IF_ERROR(use(config_.num_layers + 1));
  state.loss = head(x, mb, global_target_count, Pass::kWithGrad, state.head_dx, nullptr);
  return Tensor();
}

Tensor LlamaModel::backward_stage(StageState& state, const Tensor& dy) {
  HYD_CHECK(state.active, "backward_stage without a forward_stage");
  HYD_CHECK(params_.has_head() != dy.defined(),
            "backward_stage: the last stage starts from the head's gradient (no dy); earlier "
            "stages need one");
  const int64_t L = params_.num_layers();
  const Ops& ops = params_.ops();
  const Collectives& coll = collectives();
  const MicroBatch& mb = state.on_device;
  Tensor dx = params_.has_head() ? state.head_dx : dy;  // (T, C)
  if (!dx.defined()) {  // an empty micro-batch
    state = StageState{};
    return Tensor();
  }
  state.head_dx = Tensor();
  auto done = [&](int64_t group) {
    if (hooks_ != nullptr && hooks_->grads_done) hooks_->grads_done(group);
  };
  const int64_t first = params_.part().first_layer;
  if (params_.has_head()) done(config_.num_layers + 1);
  for (int64_t l = L - 1; l >= 0; --l) {
    LayerActivations& acts = state.layers[l];
    if (options_.recompute == Recompute::kFull) {
      Tensor y_again;  // (T, C), equal to the forward's output; only the activations are needed
      layer_fwd(config_, params_, l, acts.x, mb, coll, acts, y_again);
    }
    Tensor dx_in;  // (T, C)
    layer_bwd(config_, params_, l, acts, mb, coll, dx, dx_in);
    acts = LayerActivations{};
    dx = dx_in;
    done(1 + first + l);
  }
  if (params_.has_embedding()) {
    ops.embedding_bwd(mb.input_ids, dx, grad_to_accumulate(ops, params_.embedding()));
    dx = Tensor();
    done(0);
  }
  state = StageState{};
  return dx;
}

core::StatusOr<double> LlamaModel::forward_loss(const MicroBatch& batch,
                                                int64_t global_target_count) {
  HYD_RETURN_IF_ERROR(validate(batch));
  HYD_CHECK(params_.has_embedding() && params_.has_head(), "forward_loss needs the whole model");
  HYD_CHECK(global_target_count > 0, "global_target_count = {} must be > 0", global_target_count);
  const int64_t T = batch.num_tokens();
  if (T == 0) return 0.0;
  const Collectives& coll = collectives();
  const MicroBatch on_device = upload(to_vocab_shard(batch));
  Tensor x = embed(on_device);  // (T, C)
  for (int64_t l = 0; l < params_.num_layers(); ++l) {
    LayerActivations acts;
    Tensor y;  // (T, C)
    layer_fwd(config_, params_, l, x, on_device, coll, acts, y);
    x = y;
  }
  Tensor unused;
  return head(x, on_device, global_target_count, Pass::kLossOnly, unused, nullptr);
}

NonfiniteReport LlamaModel::find_nonfinite(const MicroBatch& batch) {
  NonfiniteReport report;
  const int64_t T = batch.num_tokens();
  if (T == 0 || !validate(batch).is_ok()) return report;
  if (!params_.has_embedding() || !params_.has_head()) return report;
  const Ops& ops = params_.ops();
  const Collectives& coll = collectives();
  const MicroBatch on_device = upload(to_vocab_shard(batch));
  Tensor x = embed(on_device);  // (T, C)
  if (first_nonfinite(ops.to_host(x)).has_value()) {
    report = {true, -1, "model.embed_tokens output"};
    return report;
  }
  for (int64_t l = 0; l < params_.num_layers(); ++l) {
    LayerActivations acts;
    Tensor y;  // (T, C)
    layer_fwd(config_, params_, l, x, on_device, coll, acts, y);
    std::string name = acts.first_nonfinite(ops);
    if (name.empty() && first_nonfinite(ops.to_host(y)).has_value()) name = "output";
    if (!name.empty()) {
      report = {true, params_.part().first_layer + l,
                fmt::format("model.layers.{} {}", params_.part().first_layer + l, name)};
      return report;
    }
    x = y;
  }
  Tensor unused;
  head(x, on_device, std::max<int64_t>(1, batch.num_targets()), Pass::kDiagnose, unused, &report);
  return report;
}

double LlamaModel::combine_vocab_shards(const Tensor& host_targets, Tensor losses,
                                        const Tensor& lse, int64_t global_target_count,
                                        Tensor& global_lse) const {
  // Shard r holds logits z[v] for v in its rows: lse_r = log Σ_{v∈r} exp z_v, and its nll_r =
  // lse_r − z_target where it owns the target (0 elsewhere). Global: lse = log Σ_r exp lse_r and
  // nll = lse − z_target = lse − lse_owner + nll_owner (docs/parallel.md, "Vocab-parallel loss").
  const Ops& ops = params_.ops();
  const Collectives& coll = collectives();
  const int64_t n = lse.size(0), tp = coll.tp_size();
  Tensor all_lse = ops.empty({tp * n}, lse.dtype());  // (tp·n)
  coll.tp_all_gather(lse, all_lse);
  Tensor owned = losses;       // (n), summed in place: the backward reads lse, not the losses
  coll.tp_all_reduce(owned);  // Σ_r nll_r = nll_owner
  const Tensor h_lse = ops.to_host(all_lse), h_nll = ops.to_host(owned);
  const int64_t shard_vocab = config_.vocab_size;
  Tensor host_global = core::Tensor::empty({n}, h_lse.dtype());
  double total = 0;
  for (int64_t t = 0; t < n; ++t) {
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t r = 0; r < tp; ++r) m = std::max(m, element(h_lse, r * n + t));
    double sum = 0;
    for (int64_t r = 0; r < tp; ++r) sum += std::exp(element(h_lse, r * n + t) - m);
    const double g = m + std::log(sum);
    if (host_global.dtype() == core::DType::kF64) {
      host_global.data<double>()[t] = g;
    } else {
      host_global.data<float>()[t] = float(g);
    }
    const int32_t y = host_targets.data<int32_t>()[t];
    if (y == cpu::kIgnoreIndex) continue;
    const int64_t owner = y / shard_vocab;
    total += g - element(h_lse, owner * n + t) + element(h_nll, t);
  }
  global_lse = ops.upload_as(host_global, lse.dtype());
  return total / double(global_target_count);
}

double LlamaModel::head(const Tensor& x, const MicroBatch& batch, int64_t global_target_count,
                        Pass pass, Tensor& dx, NonfiniteReport* report) {
  const Ops& ops = params_.ops();
  const int64_t T = x.size(0), C = config_.hidden, V = config_.vocab_size;
  const core::DType dt = x.dtype();
  const core::DType st = ops.statistic_dtype(params_.dtype());
  Parameter& norm = params_.final_norm();
  Parameter& lm_head = params_.lm_head();
  Tensor xf = ops.empty({T, C}, dt);  // (T, C)
  Tensor rstd = ops.empty({T}, st);   // (T)
  ops.rms_norm_fwd(x, norm.weight(), config_.norm_eps, xf, rstd);
  if (pass == Pass::kDiagnose && first_nonfinite(ops.to_host(xf)).has_value()) {
    *report = {true, -1, "model.norm output"};
    return 0;
  }
  Tensor dxf;  // (T, C)
  if (pass == Pass::kWithGrad) dxf = ops.empty({T, C}, dt);
  const int64_t chunk = options_.logits_chunk_tokens;
  const int64_t num_chunks = (T + chunk - 1) / chunk;
  Tensor logits_buffer = ops.empty({std::min(chunk, T), V}, dt);  // (chunk, V)
  Tensor losses_buffer = ops.empty({std::min(chunk, T)}, st);     // (chunk)
  Tensor lse_buffer = ops.empty({std::min(chunk, T)}, st);        // (chunk)
  // One loss slot per chunk, read back once and summed in chunk order on the host (double).
  Tensor chunk_losses = ops.empty({num_chunks}, st);  // (num_chunks)
  const bool vocab_parallel = shard_.full_vocab_size != config_.vocab_size;
  double vocab_parallel_loss = 0;  // Σ over chunks (tp > 1: joined on the host)
  for (int64_t t0 = 0, c = 0; t0 < T; t0 += chunk, ++c) {
    const int64_t t1 = std::min(T, t0 + chunk);
    Tensor xc = xf.narrow_rows(t0, t1);                      // (n, C)
    Tensor targets = batch.targets.narrow_rows(t0, t1);      // (n)
    Tensor logits = logits_buffer.narrow_rows(0, t1 - t0);   // (n, V)
    Tensor losses = losses_buffer.narrow_rows(0, t1 - t0);   // (n)
    Tensor lse = lse_buffer.narrow_rows(0, t1 - t0);         // (n)
    Tensor chunk_loss = chunk_losses.narrow_rows(c, c + 1);  // (1)
    ops.matmul_fwd(xc, lm_head.weight(), logits);
    // The training pass of an unsharded vocabulary: loss and dlogits (in place) in one op.
    const bool fused = pass == Pass::kWithGrad && !vocab_parallel;
    if (fused) {
      ops.cross_entropy_fwd_bwd(logits, targets, cpu::kIgnoreIndex, global_target_count, losses,
                                lse, chunk_loss, logits);
    } else {
      ops.cross_entropy_fwd(logits, targets, cpu::kIgnoreIndex, global_target_count, losses, lse,
                            chunk_loss);
    }
    if (vocab_parallel) {
      Tensor global_lse;  // (n)
      vocab_parallel_loss += combine_vocab_shards(batch.host_targets.narrow_rows(t0, t1), losses,
                                                  lse, global_target_count, global_lse);
      lse = global_lse;
    }
    if (pass == Pass::kDiagnose) {
      const char* bad = first_nonfinite(ops.to_host(logits)).has_value()   ? "logits"
                        : first_nonfinite(ops.to_host(losses)).has_value() ? "token losses"
                                                                           : nullptr;
      if (bad != nullptr) {
        *report = {true, -1, bad};
        return 0;
      }
    }
    if (pass == Pass::kWithGrad) {
      if (!fused) {
        ops.cross_entropy_bwd(logits, targets, lse, cpu::kIgnoreIndex, global_target_count,
                              logits);  // in place: logits now hold dlogits (n, V)
      }
      Tensor dxc = dxf.narrow_rows(t0, t1);  // (n, C)
      matmul_bwd_to_grad(ops, logits, xc, dxc, lm_head);
    }
  }
  if (pass == Pass::kWithGrad) {
    collectives().tp_all_reduce(dxf);  // vocab-parallel head: partial input gradients
    dx = ops.empty({T, C}, dt);        // (T, C)
    ops.rms_norm_bwd(dxf, x, norm.weight(), rstd, dx, grad_to_accumulate(ops, norm));
  }
  if (vocab_parallel) return vocab_parallel_loss;
  const Tensor host_losses = ops.to_host(chunk_losses);
  double loss = 0;
  for (int64_t c = 0; c < num_chunks; ++c) loss += element(host_losses, c);
  return loss;
}

Tensor LlamaModel::embed(const MicroBatch& on_device) const {
  const Ops& ops = params_.ops();
  Tensor x = ops.empty({on_device.num_tokens(), config_.hidden}, compute_dtype());  // (T, C)
  ops.embedding_fwd(on_device.input_ids, params_.embedding().weight(), x);
  collectives().tp_all_reduce(x);  // vocab-parallel: each row comes from one shard, zeros elsewhere
  return x;
}

MicroBatch LlamaModel::upload(const MicroBatch& batch) const {
  const Ops& ops = params_.ops();
  MicroBatch d;
  d.input_ids = ops.upload(batch.input_ids);
  d.targets = ops.upload(batch.targets);
  d.cu_seqlens = ops.upload(batch.cu_seqlens);
  if (batch.positions.defined()) d.positions = ops.upload(batch.positions);
  if (batch.context_parallel()) {
    d.cu_seqlens_k = ops.upload(batch.cu_seqlens_k);
    d.kv_rows = ops.upload(batch.kv_rows);
    d.kv_local_rows = batch.kv_local_rows;
  }
  d.host_targets = batch.host_targets.defined() ? batch.host_targets : batch.targets;
  return d;
}

core::DType LlamaModel::compute_dtype() const {
  return params_.ops().compute_dtype(params_.dtype());
}

MemoryEstimate estimate_memory(const LlamaConfig& c, int64_t micro_batch_tokens,
                               const ModelOptions& options, int64_t bytes_per_element) {
  const int64_t b = bytes_per_element, T = micro_batch_tokens;
  MemoryEstimate m;
  m.parameter_bytes = 4 * c.num_parameters() * b;  // weights, grads, exp_avg, exp_avg_sq
  const int64_t per_layer = layer_activation_elements_per_token(c) * T * b;
  if (options.recompute == Recompute::kFull) {
    m.activation_bytes = c.num_layers * T * c.hidden * b + per_layer;
  } else if (options.recompute == Recompute::kSelective) {
    // Both norm outputs (2C) and SwiGLU's (F) are dropped; the backward rebuilds one layer's.
    const int64_t dropped = (2 * c.hidden + c.ffn_hidden) * T * b;
    m.activation_bytes = c.num_layers * (per_layer - dropped) + dropped;
  } else {
    m.activation_bytes = c.num_layers * per_layer;
  }
  const int64_t chunk = std::min(options.logits_chunk_tokens, T);
  // Head: normed x, its grad, the logits chunk; a layer's backward: dgate_up, dact and ~4 (T, C).
  const int64_t head = (2 * T * c.hidden + chunk * c.vocab_size) * b;
  const int64_t layer = (3 * c.ffn_hidden + 4 * c.hidden + 2 * c.q_width()) * T * b;
  m.transient_bytes = std::max(head, layer) + 2 * T * c.hidden * b;
  return m;
}

MemoryEstimate estimate_device_memory(const LlamaConfig& c, int64_t micro_batch_tokens,
                                      const ModelOptions& options) {
  MemoryEstimate m = estimate_memory(c, micro_batch_tokens, options, 2);
  m.parameter_bytes = 18 * c.num_parameters();  // f32 value, grad, exp_avg, exp_avg_sq; bf16 copy
  m.transient_bytes += int64_t(32) << 20;       // cuBLASLt workspace
  return m;
}

}  // namespace hydraulis::model
