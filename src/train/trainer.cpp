// The single-device training loop (docs/training.md): sample → load → pack → forward/backward per
// micro-batch → non-finite check → clip + AdamW → metrics.
#include "train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "core/progress.h"
#include "model/flops.h"
#include "model/tensor_ops.h"
#include "train/checkpoint.h"
#include "train/packer.h"

namespace hydraulis::train {

namespace {

using Clock = std::chrono::steady_clock;

// "NaN", "+Inf" or "-Inf" (printf's "-nan" is platform noise).
std::string nonfinite_name(double x) {
  if (std::isnan(x)) return "NaN";
  return x > 0 ? "+Inf" : "-Inf";
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

core::StatusOr<std::unique_ptr<data::GlobalBatchSampler>> make_sampler(
    const TrainerConfig& c, const data::IndexedDataset& dataset) {
  data::SamplerConfig sampler;
  sampler.mode = data::BatchMode::kTokenBudget;
  sampler.global_token_num = c.global_token_num;
  sampler.max_seq_len = c.max_seq_len;
  sampler.order = c.order;
  sampler.seed = c.seed;
  auto created = data::GlobalBatchSampler::create(dataset.lengths(), sampler);
  if (!created.is_ok()) return created.status().with_context("data set " + dataset.prefix());
  return std::make_unique<data::GlobalBatchSampler>(std::move(created).value());
}

core::StatusOr<std::vector<int32_t>> load_sequence(const data::IndexedDataset& dataset,
                                                   const data::SequenceRef& ref,
                                                   const model::LlamaConfig& model) {
  std::vector<int32_t> document;
  dataset.tokens(ref.document, document);
  HYD_CHECK(ref.offset + ref.tokens <= int64_t(document.size()),
            "sampler reference past the end of document {}", ref.document);
  std::vector<int32_t> seq(document.begin() + ref.offset,
                           document.begin() + ref.offset + ref.tokens);
  for (size_t i = 0; i < seq.size(); ++i) {
    if (seq[i] < 0 || seq[i] >= model.vocab_size) {
      return core::out_of_range(
          "document {} of {} holds token id {} at position {}, outside model '{}''s vocabulary "
          "[0, {}): prepare the data with the model's tokenizer or use a larger vocabulary",
          ref.document, dataset.prefix(), seq[i], ref.offset + int64_t(i), model.name,
          model.vocab_size);
    }
  }
  return seq;
}

void finish_step_metrics(StepMetrics& m, const model::Ops& ops, const model::LlamaConfig& model,
                         std::span<const int64_t> positions, int ranks) {
  m.tokens_per_s = double(m.tokens) / (m.step_ms / 1e3);
  if (ops.device() == core::Device::kCpu) return;
  const double flops = model::training_flops(model, positions);
  m.model_tflops_per_s = flops / (m.step_ms / 1e3) / 1e12;
  if (ops.peak_flops() > 0) m.mfu = flops / (m.step_ms / 1e3) / (ops.peak_flops() * ranks);
  m.peak_memory_bytes = ops.peak_memory();
}

int64_t available_host_memory() {
  long pages = sysconf(_SC_AVPHYS_PAGES);
  long page_size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return 0;
  return int64_t(pages) * int64_t(page_size);
}

core::Status TrainerConfig::validate() const {
  HYD_RETURN_IF_ERROR(model.validate());
  HYD_RETURN_IF_ERROR(lr.validate());
  if (steps < 1) return core::invalid_argument("--steps {} must be >= 1", steps);
  if (global_token_num < 2) {
    return core::invalid_argument("--global-token-num {} must be >= 2", global_token_num);
  }
  if (max_seq_len < 1) return core::invalid_argument("--max-seq-len {} must be >= 1", max_seq_len);
  if (max_seq_len > model.max_seq_len) {
    return core::invalid_argument(
        "--max-seq-len {} exceeds model '{}''s maximum sequence length {}: lower it", max_seq_len,
        model.name, model.max_seq_len);
  }
  if (checkpoint_every < 0) {
    return core::invalid_argument("--checkpoint-every {} must be >= 0", checkpoint_every);
  }
  if (keep_checkpoints < 1) {
    return core::invalid_argument("--keep-checkpoints {} must be >= 1", keep_checkpoints);
  }
  int64_t cap = micro_batch_tokens == 0 ? max_seq_len : micro_batch_tokens;
  if (cap < max_seq_len) {
    return core::invalid_argument(
        "--micro-batch-tokens {} is smaller than --max-seq-len {}: a sequence never spans "
        "micro-batches, so raise it to at least {}",
        cap, max_seq_len, max_seq_len);
  }
  return core::Status::ok();
}

Trainer::Trainer(const TrainerConfig& config, const data::IndexedDataset& dataset)
    : config_(config), dataset_(dataset), metrics_(config.metrics_path) {}

core::StatusOr<std::unique_ptr<Trainer>> Trainer::create(const TrainerConfig& config,
                                                         const data::IndexedDataset& dataset) {
  HYD_RETURN_IF_ERROR(config.validate());
  std::unique_ptr<Trainer> trainer(new Trainer(config, dataset));
  TrainerConfig& c = trainer->config_;
  if (c.micro_batch_tokens == 0) c.micro_batch_tokens = c.max_seq_len;

  HYD_ASSIGN_OR_RETURN(trainer->ops_, model::make_ops(c.device));
  const model::Ops& ops = *trainer->ops_;
  HYD_RETURN_IF_ERROR(ops.check_supported(c.model));

  // Memory forecast before any large allocation.
  trainer->memory_ =
      c.device == core::Device::kCpu
          ? model::estimate_memory(c.model, c.micro_batch_tokens, c.model_options)
          : model::estimate_device_memory(c.model, c.micro_batch_tokens, c.model_options);
  const int64_t available =
      c.available_memory_bytes > 0 ? c.available_memory_bytes : ops.available_memory();
  const model::MemoryEstimate& m = trainer->memory_;
  if (available > 0 && m.total() > available) {
    return core::make_error(
        core::StatusCode::kResourceExhausted,
        "model '{}' needs about {} on this device ({} weights, gradients and AdamW moments for "
        "{:.2f}B parameters + {} activations + {} workspace for {}-token micro-batches) but only "
        "{} is available: use a smaller model or --micro-batch-tokens, --recompute full, or a "
        "multi-GPU scheme with more tp",
        c.model.name, core::format_bytes(double(m.total())),
        core::format_bytes(double(m.parameter_bytes)), double(c.model.num_parameters()) / 1e9,
        core::format_bytes(double(m.activation_bytes)),
        core::format_bytes(double(m.transient_bytes)), c.micro_batch_tokens,
        core::format_bytes(double(available)));
  }

  HYD_ASSIGN_OR_RETURN(trainer->sampler_, make_sampler(c, dataset));

  trainer->params_ = std::make_unique<model::ParameterStore>(
      model::ParameterStore::create(c.model, core::DType::kF32));
  trainer->params_->init(c.seed);
  if (c.device != core::Device::kCpu) {
    // Initialised on the host (the same weights as a CPU run), then copied to the device.
    trainer->params_ =
        std::make_unique<model::ParameterStore>(trainer->params_->copy_to(trainer->ops_));
  }
  trainer->model_ =
      std::make_unique<model::LlamaModel>(c.model, *trainer->params_, c.model_options);
  trainer->optimizer_ = std::make_unique<optim::AdamW>(*trainer->params_, c.adamw);
  return trainer;
}

core::StatusOr<std::vector<std::vector<int32_t>>> Trainer::load(
    const data::GlobalBatch& batch) const {
  std::vector<std::vector<int32_t>> sequences;
  for (const data::SequenceRef& ref : batch.sequences) {
    HYD_ASSIGN_OR_RETURN(std::vector<int32_t> seq, load_sequence(dataset_, ref, config_.model));
    sequences.push_back(std::move(seq));
  }
  return sequences;
}

core::StatusOr<StepMetrics> Trainer::step() {
  const auto start = Clock::now();
  energy_.start(*ops_);
  StepMetrics m;
  m.step = ++step_;
  m.lr = config_.lr.lr_at(m.step);

  // Data and packing ("planning": a single device has one strategy).
  data::GlobalBatch batch = sampler_->next();
  HYD_ASSIGN_OR_RETURN(auto sequences, load(batch));
  const auto plan_start = Clock::now();
  std::vector<int64_t> positions;
  for (const auto& s : sequences) positions.push_back(int64_t(s.size()) - 1);
  HYD_ASSIGN_OR_RETURN(auto packing, pack_greedy(positions, config_.micro_batch_tokens));
  std::vector<model::MicroBatch> micro_batches;
  for (const auto& members : packing) {
    std::vector<std::vector<int32_t>> chosen;
    for (size_t i : members) chosen.push_back(sequences[i]);
    micro_batches.push_back(model::pack_sequences(chosen));
  }
  m.planning_ms = ms_since(plan_start);
  m.tokens = batch.num_tokens();
  for (const auto& mb : micro_batches) m.targets += mb.num_targets();
  m.micro_batches = int64_t(micro_batches.size());
  if (m.targets == 0) {
    return core::invalid_argument("step {}: the global batch has no training positions", m.step);
  }

  // Forward/backward of every micro-batch; gradients accumulate, losses add up (each is already
  // divided by the step's target count).
  // The gradients' zeroing is deferred: each one's first write overwrites it.
  ops_->reset_peak_memory();
  params_->defer_zero_grads();
  for (size_t i = 0; i < micro_batches.size(); ++i) {
    auto loss = model_->forward_backward(micro_batches[i], m.targets);
    if (!loss.is_ok()) {
      params_->zero_grads();
      return loss.status().with_context(fmt::format("step {}, micro-batch {}", m.step, i));
    }
    m.loss += *loss;
  }
  params_->finish_deferred_zero();

  m.grad_norm = optimizer_->grad_norm();
  if (!std::isfinite(m.loss) || !std::isfinite(m.grad_norm)) {
    core::Status error = nonfinite_error(m.step, m.loss, micro_batches);
    if (config_.nonfinite == NonfinitePolicy::kStop) return error;
    if (config_.progress) {
      std::fprintf(stderr, "warning: skipping the step: %s\n", error.message().c_str());
    }
    m.skipped = true;
    params_->zero_grads();
  } else {
    optimizer_->step(m.lr, m.grad_norm);
  }
  ops_->synchronize();
  m.step_ms = ms_since(start);
  finish_step_metrics(m, *ops_, config_.model, positions, 1);
  set_energy_metrics(m, energy_.joules(*ops_), energy_.seconds());
  history_.push_back(m);
  HYD_RETURN_IF_ERROR(metrics_.append(m));
  return m;
}

core::Status Trainer::nonfinite_error(int64_t step, double loss,
                                      const std::vector<model::MicroBatch>& micro_batches) {
  if (!std::isfinite(loss)) {
    for (size_t i = 0; i < micro_batches.size(); ++i) {
      model::NonfiniteReport report = model_->find_nonfinite(micro_batches[i]);
      if (!report.found) continue;
      return core::invalid_argument(
          "step {}: the loss is {}; the first non-finite value of the forward pass is in {} "
          "(layer {}, micro-batch {}): lower --lr or raise --warmup-steps, or pass "
          "--skip-nonfinite",
          step, nonfinite_name(loss), report.tensor, report.layer, i);
    }
    return core::invalid_argument("step {}: the loss is {} (no non-finite activation found)", step,
                                  nonfinite_name(loss));
  }
  std::vector<optim::NonfiniteGradient> bad = optimizer_->nonfinite_gradients();
  if (bad.empty()) {
    return core::invalid_argument("step {}: the gradient norm is not finite (overflow of Σ g²)",
                                  step);
  }
  const optim::NonfiniteGradient& b = bad.front();
  return core::invalid_argument(
      "step {}: the gradient of {} (layer {}) has {} non-finite values (first: element {} = {}); "
      "{} parameter(s) affected: lower --lr or pass --skip-nonfinite",
      step, b.parameter, b.layer, b.count, b.first_index, b.first_value, bad.size());
}

void Trainer::print_progress(const StepMetrics& m, double elapsed_s) const {
  const double eta = elapsed_s / double(m.step) * double(config_.steps - m.step);
  std::fprintf(stderr,
               "step %lld/%lld  loss %.4f  grad norm %.3f  lr %.3g  %s tok/s  %.0f ms/step%s  "
               "ETA %s%s\n",
               static_cast<long long>(m.step), static_cast<long long>(config_.steps), m.loss,
               m.grad_norm, m.lr, core::format_count(m.tokens_per_s).c_str(), m.step_ms,
               power_text(m).c_str(), core::format_duration(eta).c_str(),
               m.skipped ? "  (skipped)" : "");
}

core::Status Trainer::run(const std::function<void(const StepMetrics&)>& on_step,
                          const std::function<bool()>& stop_requested) {
  const auto start = Clock::now();
  const int64_t first = step_;
  while (step_ < config_.steps) {
    HYD_ASSIGN_OR_RETURN(StepMetrics m, step());
    if (config_.progress) {
      print_progress(m, ms_since(start) / 1e3 * double(m.step) / double(m.step - first));
    }
    if (on_step) on_step(m);
    const bool stop = stop_requested && stop_requested();
    if (checkpoint_due(config_.checkpoint_dir, config_.checkpoint_every, step_, config_.steps,
                       stop)) {
      HYD_ASSIGN_OR_RETURN(std::string where, save_checkpoint(config_.checkpoint_dir));
      if (config_.progress) std::fprintf(stderr, "checkpoint: %s\n", where.c_str());
    }
    if (stop && step_ < config_.steps) {
      stopped_ = true;
      break;
    }
  }
  return core::Status::ok();
}

core::StatusOr<std::string> Trainer::save_checkpoint(const std::string& dir) {
  CheckpointState state;
  state.model = config_.model;
  state.training = training_settings(config_, dataset_.num_documents(), dataset_.num_tokens());
  state.step = step_;
  state.optimizer_steps = optimizer_->steps_taken();
  state.sampler = sampler_->state();
  state.saved_by = fmt::format("single device ({})", ops_->description());
  HYD_ASSIGN_OR_RETURN(PendingCheckpoint pending, PendingCheckpoint::begin(dir, state));
  const std::vector<model::Parameter>& params = params_->all();
  const std::vector<CheckpointTensorInfo>& table = pending.writer().tensors();
  HYD_CHECK(table.size() == 3 * params.size(), "checkpoint table of {} for {} parameters",
            table.size(), params.size());
  for (size_t t = 0; t < table.size(); ++t) {
    const size_t i = table[t].param;
    HYD_CHECK(params[i].name == table[t].name, "parameter {} is {}, the checkpoint table says {}",
              i, params[i].name, table[t].name);
    const core::Tensor& source = table[t].role == TensorRole::kValue    ? params[i].value
                                 : table[t].role == TensorRole::kExpAvg ? optimizer_->exp_avg(i)
                                                                        : optimizer_->exp_avg_sq(i);
    const core::Tensor host = ops_->to_host(source);
    HYD_RETURN_IF_ERROR(pending.writer().write(host.data<float>(), host.numel()));
  }
  return pending.commit(config_.keep_checkpoints);
}

core::Status Trainer::load_checkpoint(const std::string& path) {
  if (step_ != 0) {
    return core::make_error(core::StatusCode::kFailedPrecondition,
                            "load_checkpoint after {} steps: load before the first step", step_);
  }
  HYD_ASSIGN_OR_RETURN(std::string file, resolve_checkpoint(path));
  HYD_ASSIGN_OR_RETURN(CheckpointReader reader, CheckpointReader::open(file));
  const CheckpointState& state = reader.state();
  HYD_RETURN_IF_ERROR(check_resume_compatible(
      state, config_.model,
      training_settings(config_, dataset_.num_documents(), dataset_.num_tokens()), file));
  std::vector<model::Parameter>& params = params_->all();
  for (size_t t = 0; t < reader.tensors().size(); ++t) {
    const size_t i = reader.tensors()[t].param;
    const TensorRole role = reader.tensors()[t].role;
    HYD_ASSIGN_OR_RETURN(core::Tensor host, reader.read(t));
    core::Tensor& dst = role == TensorRole::kValue    ? params[i].value
                        : role == TensorRole::kExpAvg ? optimizer_->exp_avg(i)
                                                      : optimizer_->exp_avg_sq(i);
    HYD_RETURN_IF_ERROR(assign_from_host(*ops_, host, dst));
  }
  params_->refresh_compute();
  HYD_RETURN_IF_ERROR(sampler_->restore(state.sampler).with_context(file));
  optimizer_->set_steps_taken(state.optimizer_steps);
  step_ = state.step;
  return metrics_.resume(step_);
}

}  // namespace hydraulis::train
