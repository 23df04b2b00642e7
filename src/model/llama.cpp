// LLaMA forward/backward over a packed micro-batch (docs/model.md): embedding → layers → final
// norm → chunked LM head + cross-entropy, whose backward runs chunk by chunk right after each
// chunk's loss so no (T, V) logits or gradient tensor ever exists. Every op runs on the parameter
// store's backend (model/ops.h); the micro-batch is validated on the host, then uploaded.
#include "model/llama.h"

#include <algorithm>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/tensor_checks.h"
#include "model/ops.h"
#include "model/tensor_ops.h"

namespace hydraulis::model {

using core::Tensor;

LlamaModel::LlamaModel(LlamaConfig config, ParameterStore& params, ModelOptions options)
    : config_(std::move(config)), params_(params), options_(options) {
  HYD_CHECK(config_.validate().is_ok(), "LlamaModel: {}", config_.validate().message());
  HYD_CHECK(params_.embedding().value.shape() == core::Shape({config_.vocab_size, config_.hidden}),
            "LlamaModel: parameter store does not match config {}", config_.describe());
  HYD_CHECK(options_.logits_chunk_tokens > 0, "logits_chunk_tokens = {} must be > 0",
            options_.logits_chunk_tokens);
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
  return check_token_ids(batch, config_.vocab_size);
}

core::StatusOr<double> LlamaModel::forward_backward(const MicroBatch& batch,
                                                    int64_t global_target_count) {
  HYD_RETURN_IF_ERROR(validate(batch));
  HYD_CHECK(global_target_count > 0, "global_target_count = {} must be > 0", global_target_count);
  const int64_t T = batch.num_tokens(), L = config_.num_layers;
  if (T == 0) return 0.0;
  const Ops& ops = params_.ops();
  const MicroBatch on_device = upload(batch);
  const Tensor& cu = on_device.cu_seqlens;

  Tensor x = ops.empty({T, config_.hidden}, compute_dtype());  // (T, C)
  ops.embedding_fwd(on_device.input_ids, params_.embedding().weight(), x);
  std::vector<LayerActivations> acts(static_cast<size_t>(L));
  int64_t saved_bytes = 0;
  for (int64_t l = 0; l < L; ++l) {
    Tensor y;  // (T, C)
    layer_fwd(config_, params_, l, x, cu, acts[l], y);
    if (options_.recompute == Recompute::kFull) acts[l].keep_input_only();
    saved_bytes += acts[l].bytes();
    x = y;
  }
  last_activation_bytes_ = saved_bytes;

  Tensor dx;  // (T, C)
  double loss = head(x, on_device, global_target_count, Pass::kWithGrad, dx, nullptr);
  x = Tensor();
  for (int64_t l = L - 1; l >= 0; --l) {
    if (options_.recompute == Recompute::kFull) {
      Tensor y_again;  // (T, C), equal to the forward's output; only the activations are needed
      layer_fwd(config_, params_, l, acts[l].x, cu, acts[l], y_again);
    }
    Tensor dx_in;  // (T, C)
    layer_bwd(config_, params_, l, acts[l], cu, dx, dx_in);
    acts[l] = LayerActivations{};
    dx = dx_in;
  }
  ops.embedding_bwd(on_device.input_ids, dx, params_.embedding().grad);
  return loss;
}

core::StatusOr<double> LlamaModel::forward_loss(const MicroBatch& batch,
                                                int64_t global_target_count) {
  HYD_RETURN_IF_ERROR(validate(batch));
  HYD_CHECK(global_target_count > 0, "global_target_count = {} must be > 0", global_target_count);
  const int64_t T = batch.num_tokens();
  if (T == 0) return 0.0;
  const MicroBatch on_device = upload(batch);
  Tensor x = params_.ops().empty({T, config_.hidden}, compute_dtype());  // (T, C)
  params_.ops().embedding_fwd(on_device.input_ids, params_.embedding().weight(), x);
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    LayerActivations acts;
    Tensor y;  // (T, C)
    layer_fwd(config_, params_, l, x, on_device.cu_seqlens, acts, y);
    x = y;
  }
  Tensor unused;
  return head(x, on_device, global_target_count, Pass::kLossOnly, unused, nullptr);
}

NonfiniteReport LlamaModel::find_nonfinite(const MicroBatch& batch) {
  NonfiniteReport report;
  const int64_t T = batch.num_tokens();
  if (T == 0 || !validate(batch).is_ok()) return report;
  const Ops& ops = params_.ops();
  const MicroBatch on_device = upload(batch);
  Tensor x = ops.empty({T, config_.hidden}, compute_dtype());  // (T, C)
  ops.embedding_fwd(on_device.input_ids, params_.embedding().weight(), x);
  if (first_nonfinite(ops.to_host(x)).has_value()) {
    report = {true, -1, "model.embed_tokens output"};
    return report;
  }
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    LayerActivations acts;
    Tensor y;  // (T, C)
    layer_fwd(config_, params_, l, x, on_device.cu_seqlens, acts, y);
    std::string name = acts.first_nonfinite(ops);
    if (name.empty() && first_nonfinite(ops.to_host(y)).has_value()) name = "output";
    if (!name.empty()) {
      report = {true, l, fmt::format("model.layers.{} {}", l, name)};
      return report;
    }
    x = y;
  }
  Tensor unused;
  head(x, on_device, std::max<int64_t>(1, batch.num_targets()), Pass::kDiagnose, unused, &report);
  return report;
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
  for (int64_t t0 = 0, c = 0; t0 < T; t0 += chunk, ++c) {
    const int64_t t1 = std::min(T, t0 + chunk);
    Tensor xc = xf.narrow_rows(t0, t1);                      // (n, C)
    Tensor targets = batch.targets.narrow_rows(t0, t1);      // (n)
    Tensor logits = logits_buffer.narrow_rows(0, t1 - t0);   // (n, V)
    Tensor losses = losses_buffer.narrow_rows(0, t1 - t0);   // (n)
    Tensor lse = lse_buffer.narrow_rows(0, t1 - t0);         // (n)
    Tensor chunk_loss = chunk_losses.narrow_rows(c, c + 1);  // (1)
    ops.matmul_fwd(xc, lm_head.weight(), logits);
    ops.cross_entropy_fwd(logits, targets, cpu::kIgnoreIndex, global_target_count, losses, lse,
                          chunk_loss);
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
      ops.cross_entropy_bwd(logits, targets, lse, cpu::kIgnoreIndex, global_target_count,
                            logits);         // in place: logits now hold dlogits (n, V)
      Tensor dxc = dxf.narrow_rows(t0, t1);  // (n, C)
      ops.matmul_bwd(logits, xc, lm_head.weight(), dxc, lm_head.grad);
    }
  }
  if (pass == Pass::kWithGrad) {
    dx = ops.empty({T, C}, dt);  // (T, C)
    ops.rms_norm_bwd(dxf, x, norm.weight(), rstd, dx, norm.grad);
  }
  const Tensor host_losses = ops.to_host(chunk_losses);
  double loss = 0;
  for (int64_t c = 0; c < num_chunks; ++c) loss += element(host_losses, c);
  return loss;
}

MicroBatch LlamaModel::upload(const MicroBatch& batch) const {
  const Ops& ops = params_.ops();
  return {ops.upload(batch.input_ids), ops.upload(batch.targets), ops.upload(batch.cu_seqlens)};
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
