// Training throughput of one GPU: for each case (model × micro-batch layout) a full optimizer
// step over one packed micro-batch — forward + backward (model/llama.h), global grad norm, AdamW
// with the bf16 copy refreshed — timed as the wall time of the synchronised step (host
// validation and upload included), after a validation (the initial loss must be ≈ its expected
// value at init) and warm-up steps. Reports tokens/s, model TFLOP/s, MFU (model/flops.h over the
// device's dense bf16 peak), the allocator's peak memory and, where NVML's counter is there, the
// board's energy per step as JSON with git hash and device name.
// The same cases run in PyTorch through torch_train.py (bench/train/run.sh). Docs:
// docs/training.md.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/file.h"
#include "core/json.h"
#include "model/config.h"
#include "model/flops.h"
#include "model/llama.h"
#include "model/ops.h"
#include "model/parameters.h"
#include "optim/adamw.h"

namespace hydraulis {
namespace {

uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Positions per sequence of one micro-batch of `tokens` positions.
// fixed: tokens / 4096 sequences of 4096. longtail: lengths exp(N(6.3, 1.3)) clamped to
// [16, 8192] from a fixed counter-based stream, until the budget is full (the last one takes the
// remainder when ≥ 16) — a few long documents and many short ones, like web text.
std::vector<int64_t> layout_lengths(const std::string& layout, int64_t tokens) {
  std::vector<int64_t> lengths;
  if (layout == "fixed") {
    for (int64_t t = 0; t + 4096 <= tokens; t += 4096) lengths.push_back(4096);
    return lengths;
  }
  int64_t used = 0;
  for (uint64_t i = 0; used < tokens; ++i) {
    double u1 = double((mix64(2 * i) >> 11) + 1) * 0x1.0p-53;
    double u2 = double((mix64(2 * i + 1) >> 11) + 1) * 0x1.0p-53;
    double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    int64_t n = std::clamp<int64_t>(int64_t(std::exp(6.3 + 1.3 * z)), 16, 8192);
    if (used + n > tokens) n = tokens - used;
    if (n < 16) break;
    lengths.push_back(n);
    used += n;
  }
  return lengths;
}

model::LlamaConfig bench_config(const std::string& name) {
  if (name == "7b-4l") {  // 7b dimensions, 4 layers
    model::LlamaConfig c = model::llama_config("7b", 0).value();
    c.name = "7b-4l";
    c.num_layers = 4;
    return c;
  }
  return model::llama_config(name, 0).value();
}

core::Json run_case(const std::shared_ptr<const model::Ops>& ops, const std::string& model_name,
                    const std::string& layout, int64_t tokens, int warmup, int steps,
                    bool op_profile, model::Recompute recompute, int64_t logits_chunk) {
  model::LlamaConfig config = bench_config(model_name);
  config.max_seq_len = std::max<int64_t>(config.max_seq_len, tokens);
  const std::vector<int64_t> lengths = layout_lengths(layout, tokens);
  std::vector<std::vector<int32_t>> seqs;
  uint64_t salt = 1;
  for (int64_t n : lengths) {
    std::vector<int32_t> s;
    for (int64_t t = 0; t <= n; ++t)
      s.push_back(int32_t(mix64(salt++) % uint64_t(config.vocab_size)));
    seqs.push_back(std::move(s));
  }
  model::MicroBatch mb = model::pack_sequences(seqs);
  const int64_t targets = mb.num_targets();

  model::ParameterStore params = [&] {
    model::ParameterStore host = model::ParameterStore::create(config, core::DType::kF32);
    host.init(1234);
    return host.copy_to(ops);
  }();
  model::ModelOptions options;
  options.logits_chunk_tokens = logits_chunk;
  options.recompute = recompute;
  model::LlamaModel llama(config, params, options);
  optim::AdamW adamw(params, {});
  ops->reset_peak_memory();  // the previous case's blocks were released at its end (main)

  auto step = [&]() {
    params.defer_zero_grads();  // as the trainer: each gradient's first write overwrites it
    double loss = llama.forward_backward(mb, targets).value();
    params.finish_deferred_zero();
    double norm = adamw.grad_norm();
    adamw.step(1e-5, norm);
    ops->synchronize();
    return loss;
  };
  // Validation: at init the logits are ~N(0, σ²) with σ² = 0.02²·C (unit-RMS normed x against
  // N(0, 0.02²) head rows), so the expected loss on random targets is ln V + σ²/2.
  const double first_loss = step();
  const double expected =
      std::log(double(config.vocab_size)) + 0.5 * 0.0004 * double(config.hidden);
  HYD_CHECK(std::isfinite(first_loss) && std::abs(first_loss - expected) < 0.3,
            "{} {}: initial loss {} is not ≈ ln V + σ²/2 = {}", model_name, layout, first_loss,
            expected);
  for (int i = 1; i < warmup; ++i) step();
  std::vector<double> ms;
  const double joules_before = ops->board_joules();  // NVML's counter (kernels/cuda/energy.h)
  const auto timed_start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    step();
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  const double joules = ops->board_joules() - joules_before;
  const double timed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - timed_start).count();
  std::sort(ms.begin(), ms.end());
  const double median_ms = ms[ms.size() / 2];
  const double flops = model::training_flops(config, lengths);
  core::Json r = {
      {"model", model_name},
      {"layout", layout},
      {"tokens", targets},
      {"sequences", int64_t(lengths.size())},
      {"lengths", lengths},
      {"params", config.num_parameters()},
      {"flops_per_step", flops},
      {"step_ms", median_ms},
      {"tokens_per_s", double(targets) / (median_ms / 1e3)},
      {"model_tflops_per_s", flops / (median_ms / 1e3) / 1e12},
      {"mfu", ops->peak_flops() > 0 ? flops / (median_ms / 1e3) / ops->peak_flops() : 0},
      {"peak_memory_bytes", ops->peak_memory()},
      {"first_loss", first_loss},
      {"logits_chunk_tokens", logits_chunk}};
  const bool have_energy = std::isfinite(joules) && joules > 0;
  if (have_energy) {  // the board's energy over the timed steps (NVML's counter)
    r["joules_per_step"] = joules / steps;
    r["mean_power_w"] = joules / timed_s;
    r["tokens_per_joule"] = double(targets) * steps / joules;
  }
  if (op_profile) {  // one more step with every op timed on the stream
    ops->set_op_profiling(true);
    auto t0 = std::chrono::steady_clock::now();
    step();
    const double wall =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    ops->set_op_profiling(false);
    std::vector<model::OpTime> times = ops->take_op_profile();
    std::sort(times.begin(), times.end(),
              [](const model::OpTime& a, const model::OpTime& b) { return a.ms > b.ms; });
    double sum = 0;
    core::Json rows = core::Json::array();
    for (const auto& t : times) {
      sum += t.ms;
      rows.push_back({{"op", t.name}, {"calls", t.calls}, {"ms", t.ms}});
    }
    r["op_profile"] = {{"step_ms", wall}, {"ops_ms", sum}, {"ops", rows}};
    std::fprintf(stderr, "  op profile (%s %s): step %.1f ms, ops %.1f ms\n", model_name.c_str(),
                 layout.c_str(), wall, sum);
    for (const auto& t : times) {
      std::fprintf(stderr, "  %8.2f ms %5.1f%% %4lld× %s\n", t.ms, 100 * t.ms / wall,
                   static_cast<long long>(t.calls), t.name.c_str());
    }
  }
  std::fprintf(stderr,
               "%-6s %-8s %6lld tok  %8.1f ms  %9.0f tok/s  %6.1f TFLOP/s  MFU %5.1f%%  %.1f GiB\n",
               model_name.c_str(), layout.c_str(), static_cast<long long>(targets), median_ms,
               double(targets) / (median_ms / 1e3), flops / (median_ms / 1e3) / 1e12,
               100 * double(r["mfu"]), double(ops->peak_memory()) / (1 << 30));
  if (have_energy) {
    std::fprintf(stderr, "  energy: %.1f J per step, %.0f W mean over the timed steps\n",
                 joules / steps, joules / timed_s);
  }
  return r;
}

}  // namespace
}  // namespace hydraulis

int main(int argc, char** argv) {
  using namespace hydraulis;
  CLI::App app{"Training-step throughput of our CUDA model (bench/train/run.sh)"};
  std::string out, git = "unknown";
  std::vector<std::string> models = {"7b-4l", "1b"};
  std::vector<std::string> layouts = {"fixed", "longtail"};
  int64_t tokens = 16384;
  int warmup = 2, steps = 5;
  bool op_profile = false;
  std::string recompute_name = "none";
  int64_t logits_chunk = 4096;
  app.add_option("--out", out, "JSON output")->required();
  app.add_option("--git", git, "git hash to record");
  app.add_option("--models", models, "1b, 7b-4l, ...");
  app.add_option("--layouts", layouts, "fixed and/or longtail");
  app.add_option("--tokens", tokens, "positions per micro-batch");
  app.add_option("--warmup", warmup, "warm-up steps (the first also validates)");
  app.add_option("--steps", steps, "timed steps (median reported)");
  app.add_flag("--op-profile", op_profile,
               "after the timed steps, one more with every op's device time (JSON op_profile)");
  app.add_option("--recompute", recompute_name, "activation recomputation: none, selective, full");
  app.add_option("--logits-chunk", logits_chunk, "positions per LM-head + loss chunk")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  auto recompute = model::recompute_from_string(recompute_name);
  if (!recompute.is_ok()) {
    std::fprintf(stderr, "error: %s\n", recompute.status().to_string().c_str());
    return 1;
  }
  auto ops = model::make_ops(core::Device::kCuda);
  if (!ops.is_ok()) {
    std::fprintf(stderr, "error: %s\n", ops.status().to_string().c_str());
    return 1;
  }
  core::Json cases = core::Json::array();
  for (const auto& m : models) {
    for (const auto& l : layouts) {
      cases.push_back(
          run_case(*ops, m, l, tokens, warmup, steps, op_profile, *recompute, logits_chunk));
      // Each case starts from an empty cache, as in its own process: cached blocks cut for the
      // previous model's shapes would otherwise serve (and count as) this one's requests.
      (*ops)->release_cached_memory();
    }
  }
  core::Json result = {{"git", git},
                       {"device", (*ops)->description()},
                       {"peak_flops", (*ops)->peak_flops()},
                       {"attention", (*ops)->attention_impl()},
                       {"recompute", recompute_name},
                       {"timing", "median wall time of a synchronised optimizer step"},
                       {"cases", cases}};
  auto status = core::write_file_atomic(out, result.dump(2) + "\n");
  if (!status.is_ok()) {
    std::fprintf(stderr, "error: %s\n", status.to_string().c_str());
    return 1;
  }
  return 0;
}
