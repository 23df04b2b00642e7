// The scheme profiler: per scheme a one-pipeline StrategyRuntime with its optimizer shards, then
// timed steps of pp one-sequence micro-batches at doubling lengths (docs/profiling.md).
#include "train/profiler.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <new>

#include "core/progress.h"
#include "kernels/cpu/parallel.h"
#include "model/micro_batch.h"
#include "model/parameters.h"
#include "optim/sharded_adamw.h"
#include "parallel/layer_split.h"
#include "parallel/layout.h"
#include "parallel/process_grid.h"
#include "parallel/reshard_exec.h"
#include "parallel/strategy_runtime.h"
#include "train/trainer.h"

#ifdef HYD_WITH_CUDA
#include <cuda_runtime.h>

#include "kernels/cuda/cuda_check.h"
#endif

namespace hydraulis::train {
namespace {

using Clock = std::chrono::steady_clock;
using planner::Scheme;

// Counts the bytes of host tensors in use and their high-water mark (the CPU backend tracks none),
// forwarding to the allocator it replaces. Installed for the whole profile; process-lifetime, since
// tensors allocated through it may outlive the profile (they free through the pointer they hold).
class CountingAllocator final : public core::Allocator {
 public:
  void* allocate(size_t bytes) override {
    void* p = inner_->allocate(bytes);
    const int64_t now = in_use_.fetch_add(int64_t(bytes)) + int64_t(bytes);
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return p;
  }
  void deallocate(void* ptr, size_t bytes) override {
    in_use_.fetch_sub(int64_t(bytes));
    inner_->deallocate(ptr, bytes);
  }
  void set_inner(core::Allocator* inner) { inner_ = inner; }
  int64_t in_use() const { return in_use_.load(); }
  int64_t peak() const { return peak_.load(); }
  void reset_peak() { peak_.store(in_use_.load()); }

 private:
  core::Allocator* inner_ = nullptr;
  std::atomic<int64_t> in_use_{0}, peak_{0};
};

CountingAllocator& counting_allocator() {
  static CountingAllocator* allocator = new CountingAllocator();  // never freed (see above)
  return *allocator;
}

// Memory bookkeeping of one rank on its backend: bytes in use, peak since reset, free bytes.
class MemoryMeter {
 public:
  explicit MemoryMeter(const model::Ops& ops) : ops_(ops) {}
  bool host() const { return ops_.device() == core::Device::kCpu; }
  int64_t in_use() const {
    if (host()) return counting_allocator().in_use();
    ops_.reset_peak_memory();
    return ops_.peak_memory();
  }
  void reset_peak() const {
    if (host()) {
      counting_allocator().reset_peak();
    } else {
      ops_.reset_peak_memory();
    }
  }
  int64_t peak() const { return host() ? counting_allocator().peak() : ops_.peak_memory(); }
  // Bytes that can still be allocated: MemAvailable on the host (the CPU backend's own count
  // leaves out the page cache), free + cached on a GPU.
  int64_t available() const { return host() ? available_host_memory() : ops_.available_memory(); }
  // Device bytes in use outside the tensor allocator (CUDA context, NCCL buffers); 0 on the CPU.
  int64_t context_bytes() const {
#ifdef HYD_WITH_CUDA
    if (!host()) {
      size_t free_b = 0, total_b = 0;
      HYD_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
      return std::max<int64_t>(0, int64_t(total_b) - ops_.available_memory() - in_use());
    }
#endif
    return 0;
  }
  int64_t device_total() const {
#ifdef HYD_WITH_CUDA
    if (!host()) {
      size_t free_b = 0, total_b = 0;
      HYD_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
      return int64_t(total_b);
    }
#endif
    return available_host_memory();
  }

 private:
  const model::Ops& ops_;
};

// Wall time of one step: CUDA events on the backend's stream, the steady clock on the CPU.
class StepTimer {
 public:
  explicit StepTimer(const model::Ops& ops) : ops_(ops) {
#ifdef HYD_WITH_CUDA
    if (ops_.device() == core::Device::kCuda) {
      HYD_CUDA_CHECK(cudaEventCreate(&start_));
      HYD_CUDA_CHECK(cudaEventCreate(&stop_));
    }
#endif
  }
  ~StepTimer() {
#ifdef HYD_WITH_CUDA
    if (start_ != nullptr) (void)cudaEventDestroy(start_);
    if (stop_ != nullptr) (void)cudaEventDestroy(stop_);
#endif
  }
  StepTimer(const StepTimer&) = delete;
  StepTimer& operator=(const StepTimer&) = delete;

  void start() {
#ifdef HYD_WITH_CUDA
    if (start_ != nullptr) {
      HYD_CUDA_CHECK(cudaEventRecord(start_, static_cast<cudaStream_t>(ops_.native_stream())));
      return;
    }
#endif
    begin_ = Clock::now();
  }
  double stop_ms() {
#ifdef HYD_WITH_CUDA
    if (stop_ != nullptr) {
      HYD_CUDA_CHECK(cudaEventRecord(stop_, static_cast<cudaStream_t>(ops_.native_stream())));
      HYD_CUDA_CHECK(cudaEventSynchronize(stop_));
      float ms = 0;
      HYD_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
      return double(ms);
    }
#endif
    ops_.synchronize();
    return std::chrono::duration<double, std::milli>(Clock::now() - begin_).count();
  }

 private:
  const model::Ops& ops_;
  Clock::time_point begin_;
#ifdef HYD_WITH_CUDA
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
#endif
};

core::StatusOr<double> reduce_f64(comm::Communicator& comm, double value, comm::ReduceOp op) {
  core::Tensor t = core::Tensor::empty({1}, core::DType::kF64);
  t.data<double>()[0] = value;
  HYD_RETURN_IF_ERROR(comm.all_reduce(t, op));
  return t.data<double>()[0];
}

// Every rank learns whether any rank failed; the failing rank returns its own error, the others
// one that names it (so no rank waits forever in the next collective).
core::Status agree(comm::Communicator& world, const core::Status& mine, const std::string& what) {
  HYD_ASSIGN_OR_RETURN(double failed,
                       reduce_f64(world, mine.is_ok() ? 0.0 : double(world.rank() + 1),
                                  comm::ReduceOp::kMax));
  if (!mine.is_ok()) return mine;
  if (failed > 0) {
    return core::internal_error("{}: rank {} failed (its error is printed by that rank)", what,
                                int(failed) - 1);
  }
  return core::Status::ok();
}

// One scheme set up on this rank: the runtime, its optimizer shards and the measured state bytes.
struct SchemeRun {
  std::unique_ptr<parallel::StrategyRuntime> runtime;
  std::unique_ptr<optim::ShardedAdamW> optimizer;
  planner::RankState state;
};

int64_t tensor_bytes(const core::Tensor& t) { return t.defined() ? int64_t(t.nbytes()) : 0; }

// Builds the scheme's runtime over `group` (the scheme's ranks), its optimizer-layout shards with
// the trainer's initial values, and propagates them into the strategy layout once.
core::StatusOr<SchemeRun> set_up_scheme(const ProfileOptions& options, const Scheme& scheme,
                                        std::shared_ptr<comm::Communicator> group,
                                        std::shared_ptr<const model::Ops> ops) {
  const planner::Strategy strategy = {scheme};
  const int me = group->rank();
  const std::vector<parallel::LogicalParam> params = parallel::logical_params(options.model);
  HYD_ASSIGN_OR_RETURN(parallel::ProcessGrid grid,
                       parallel::ProcessGrid::create(strategy, scheme.gpus()));
  HYD_ASSIGN_OR_RETURN(parallel::Layout layout,
                       parallel::optimizer_layout(params, grid, options.model));
  SchemeRun run;
  HYD_ASSIGN_OR_RETURN(run.runtime,
                       parallel::StrategyRuntime::create(group, strategy, options.model,
                                                         options.model_options, params, layout,
                                                         ops));
  const std::vector<model::ParameterSpec> specs = model::parameter_specs(options.model);
  std::vector<optim::Shard> shards;
  const parallel::RankLayout& mine = layout.ranks[size_t(me)];
  for (const parallel::LocalTensor& lt : mine.tensors) {
    const parallel::LogicalParam& lp = params[size_t(lt.param)];
    core::Tensor host = core::Tensor::empty({lt.rows(), lt.cols()}, core::DType::kF32);
    float* v = host.data<float>();
    for (const parallel::Block& b : lt.blocks) {
      for (int64_t r = b.row0; r < b.row1; ++r) {
        for (int64_t c = b.col0; c < b.col1; ++c) {
          *v++ = model::init_value(options.seed, uint64_t(lt.param), uint64_t(r * lp.cols + c),
                                   specs[size_t(lt.param)].init_std);
        }
      }
    }
    optim::Shard shard;
    shard.decay = specs[size_t(lt.param)].decay;
    shard.value = ops->upload_as(host, core::DType::kF32);
    shard.grad = ops->zeros(host.shape(), core::DType::kF32);
    // value, gradient and the two moments the optimizer allocates, all f32.
    const int64_t bytes = 4 * tensor_bytes(shard.value);
    if (lp.layer >= 0) {
      run.state.layer_optimizer_bytes += bytes;
    } else {
      run.state.other_optimizer_bytes += bytes;
    }
    shards.push_back(std::move(shard));
  }
  std::vector<core::Tensor> values;
  for (const optim::Shard& s : shards) values.push_back(s.value);
  run.optimizer = std::make_unique<optim::ShardedAdamW>(std::move(shards), optim::AdamWOptions{},
                                                        ops, group);
  std::vector<core::Tensor> local = run.runtime->values();
  HYD_RETURN_IF_ERROR(
      parallel::run_reshard(run.runtime->propagate_plan(), *group, *ops, values, local).status());
  run.runtime->store().refresh_compute();
  for (const model::Parameter& p : run.runtime->store().all()) {
    const int64_t bytes = tensor_bytes(p.value) + tensor_bytes(p.grad) + tensor_bytes(p.compute);
    if (p.layer >= 0) {
      run.state.layer_strategy_bytes += bytes;
    } else {
      run.state.other_strategy_bytes += bytes;
    }
  }
  const parallel::RankCoord coord = run.runtime->coord();
  run.state.rank = me;
  run.state.stage = coord.stage;
  run.state.layers = parallel::split_layers(options.model.num_layers, scheme.pp)[size_t(coord.stage)];
  ops->synchronize();
  return run;
}

// v micro-batches, each ONE sequence of seq_len positions (seq_len + 1 tokens) of pseudo-random ids.
std::vector<model::MicroBatch> make_micro_batches(int64_t seq_len, int64_t count, int64_t vocab,
                                                  uint64_t seed) {
  std::vector<model::MicroBatch> out;
  uint64_t state = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (int64_t m = 0; m < count; ++m) {
    std::vector<std::vector<int32_t>> seq(1);
    for (int64_t i = 0; i <= seq_len; ++i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      seq[0].push_back(int32_t((state >> 33) % uint64_t(vocab)));
    }
    out.push_back(model::pack_sequences(seq));
  }
  return out;
}

// Bytes this rank would need at `seq_len`: the larger of the model's forecast for its stage and
// the straight line through its last two measured peaks.
int64_t forecast_peak(const ProfileOptions& options, const Scheme& scheme,
                      const SchemeRun& run, const planner::SchemeProfile& done,
                      const model::Ops& ops, int64_t seq_len) {
  model::LlamaConfig stage = model::tensor_parallel_shard(options.model, scheme.tp).value();
  stage.num_layers = std::max<int64_t>(1, run.state.layers);
  const int64_t tokens = (seq_len + scheme.cp - 1) / scheme.cp;
  const model::MemoryEstimate m =
      ops.device() == core::Device::kCpu
          ? model::estimate_memory(stage, tokens, options.model_options)
          : model::estimate_device_memory(stage, tokens, options.model_options);
  // The first stage holds pp micro-batches' activations in the 1F1B warm-up.
  const int64_t in_flight = std::min<int64_t>(scheme.pp - run.state.stage, done.micro_batches);
  int64_t forecast = run.state.total() + m.activation_bytes * in_flight + m.transient_bytes;
  const size_t n = done.points.size();
  if (n >= 2) {
    const double s1 = double(done.points[n - 2].seq_len), s2 = double(done.points[n - 1].seq_len);
    const double p1 = double(done.points[n - 2].peak_bytes[size_t(run.state.rank)]);
    const double p2 = double(done.points[n - 1].peak_bytes[size_t(run.state.rank)]);
    const double line = p2 + (p2 - p1) / (s2 - s1) * (double(seq_len) - s2);
    forecast = std::max(forecast, int64_t(line));
  }
  return forecast;
}

// Runs warm-up + repeats steps at one length; fills the point (times on every rank of the group,
// peaks gathered).
core::Status measure(const ProfileOptions& options, SchemeRun& run, comm::Communicator& host_group,
                     const model::Ops& ops, int64_t seq_len, int64_t micro_batches,
                     planner::ProfilePoint& point) {
  const std::vector<model::MicroBatch> batches =
      make_micro_batches(seq_len, micro_batches, options.model.vocab_size, options.seed + uint64_t(seq_len));
  MemoryMeter meter(ops);
  StepTimer timer(ops);
  int64_t peak = 0;
  for (int i = 0; i < options.warmup + options.repeats; ++i) {
    run.runtime->store().zero_grads();
    ops.synchronize();
    HYD_RETURN_IF_ERROR(host_group.barrier());
    meter.reset_peak();
    timer.start();
    HYD_ASSIGN_OR_RETURN(parallel::StageResult result,
                         run.runtime->run(batches, micro_batches * seq_len));
    (void)result;
    const double ms = timer.stop_ms();
    HYD_ASSIGN_OR_RETURN(double slowest, reduce_f64(host_group, ms, comm::ReduceOp::kMax));
    if (i >= options.warmup) point.step_ms.push_back(slowest);
    peak = std::max(peak, meter.peak());
  }
  core::Tensor mine = core::Tensor::empty({1}, core::DType::kI64);
  mine.data<int64_t>()[0] = peak;
  core::Tensor all = core::Tensor::empty({host_group.size()}, core::DType::kI64);
  HYD_RETURN_IF_ERROR(host_group.all_gather(mine, all));
  point.seq_len = seq_len;
  point.peak_bytes.assign(all.data<int64_t>(), all.data<int64_t>() + host_group.size());
  return core::Status::ok();
}

std::vector<int64_t> profile_lengths(const ProfileOptions& o) {
  std::vector<int64_t> out;
  for (int64_t s = o.min_seq_len; s <= o.max_seq_len; s *= 2) out.push_back(s);
  return out;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Rank state gathered from the group to every member (8 int64 fields per rank).
core::StatusOr<std::vector<planner::RankState>> gather_states(comm::Communicator& group,
                                                              const planner::RankState& s) {
  constexpr int64_t kFields = 8;
  core::Tensor mine = core::Tensor::empty({kFields}, core::DType::kI64);
  int64_t* m = mine.data<int64_t>();
  m[0] = s.rank, m[1] = s.stage, m[2] = s.layers, m[3] = s.layer_strategy_bytes;
  m[4] = s.layer_optimizer_bytes, m[5] = s.other_strategy_bytes, m[6] = s.other_optimizer_bytes;
  m[7] = s.context_bytes;
  core::Tensor all = core::Tensor::empty({kFields * group.size()}, core::DType::kI64);
  HYD_RETURN_IF_ERROR(group.all_gather(mine, all));
  std::vector<planner::RankState> out;
  for (int r = 0; r < group.size(); ++r) {
    const int64_t* a = all.data<int64_t>() + kFields * r;
    planner::RankState x;
    x.rank = int(a[0]), x.stage = int(a[1]), x.layers = a[2], x.layer_strategy_bytes = a[3];
    x.layer_optimizer_bytes = a[4], x.other_strategy_bytes = a[5], x.other_optimizer_bytes = a[6];
    x.context_bytes = a[7];
    out.push_back(x);
  }
  return out;
}

// Progress over (scheme, length) cells weighted by length·runs (a step's work grows with it).
struct Progress {
  double total = 0, done = 0;
  Clock::time_point start = Clock::now();
  void print(const Scheme& scheme, size_t index, size_t count, const planner::SchemeProfile& sp,
             const planner::ProfilePoint& p, int runs) const {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    std::vector<double> t;
    for (double ms : p.step_ms) t.push_back(ms / double(sp.slots()));
    const auto [lo, hi] = std::minmax_element(t.begin(), t.end());
    const double eta = done > 0 ? elapsed / done * std::max(0.0, total - done) : 0;
    std::fprintf(stderr,
                 "profile %s [%zu/%zu] %lld tokens: %.3f ms per micro-batch (spread %.3f, %zu "
                 "repeats), peak %s; %.2f steps/s, ETA %s\n",
                 scheme.to_string().c_str(), index + 1, count, static_cast<long long>(p.seq_len),
                 sp.median_ms(p), *hi - *lo, t.size(),
                 core::format_bytes(double(p.max_peak_bytes())).c_str(),
                 elapsed > 0 ? runs / elapsed : 0.0, core::format_duration(eta).c_str());
  }
};

}  // namespace

std::vector<Scheme> default_profile_schemes(int ranks, const model::LlamaConfig& model,
                                            bool context_parallel_supported) {
  std::vector<Scheme> out;
  for (int cp : {1, 2, 4, 8}) {
    for (int tp : {1, 2, 4, 8}) {
      for (int pp : {1, 2, 4, 8}) {
        const Scheme s{cp, tp, pp};
        if (s.gpus() > ranks || (cp > 1 && !context_parallel_supported)) continue;
        if (!parallel::check_model_fits(model, {s}).is_ok()) continue;
        out.push_back(s);
      }
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Scheme& a, const Scheme& b) { return a.gpus() < b.gpus(); });
  return out;
}

core::Status validate_profile_options(const ProfileOptions& o, int ranks) {
  if (o.min_seq_len < 1 || o.max_seq_len < o.min_seq_len) {
    return core::invalid_argument(
        "--min-seq-len {} and --max-seq-len {}: lengths run min, 2·min, ... <= max, so min must "
        "be >= 1 and <= max",
        o.min_seq_len, o.max_seq_len);
  }
  if (o.repeats < 1 || o.warmup < 0) {
    return core::invalid_argument("--repeats {} / --warmup {}: at least 1 repeat, warm-up >= 0",
                                  o.repeats, o.warmup);
  }
  for (const Scheme& s : o.schemes) {
    if (s.cp < 1 || s.tp < 1 || s.pp < 1) {
      return core::invalid_argument("scheme {} has a degree < 1", s.to_string());
    }
    if (s.gpus() > ranks) {
      return core::invalid_argument(
          "scheme {} needs {} ranks but this run has {}: start the profile with mpirun -np {} "
          "(or drop the scheme from --schemes)",
          s.to_string(), s.gpus(), ranks, s.gpus());
    }
    HYD_RETURN_IF_ERROR(parallel::check_model_fits(o.model, {s}));
  }
  return core::Status::ok();
}

namespace {

// What every scheme's profiling shares: the options, the communicators, the lengths, the progress.
struct ProfileRun {
  const ProfileOptions& options;
  std::shared_ptr<comm::Communicator> world, device_world;
  std::shared_ptr<const model::Ops> ops;
  std::vector<int64_t> lengths;
  Progress progress;
  int runs = 0;
  bool printer = false;  // rank 0 prints progress
};

// The reason a member rank stops before `seq_len` ("" when its forecast fits).
std::string memory_stop(const ProfileRun& pr, const Scheme& scheme, const SchemeRun& run,
                        const planner::SchemeProfile& sp, int64_t seq_len) {
  const MemoryMeter meter(*pr.ops);
  const int64_t need = forecast_peak(pr.options, scheme, run, sp, *pr.ops, seq_len);
  const int64_t extra = int64_t(double(need - meter.in_use()) * (1 + pr.options.memory_margin));
  const int64_t free_bytes = meter.available();
  if (free_bytes <= 0 || extra <= free_bytes) return "";
  return fmt::format("rank {} forecasts a peak of {} ({} more than now, with {:.0f}% headroom) "
                     "but {} is free",
                     pr.world->rank(), core::format_bytes(double(need)),
                     core::format_bytes(double(extra)), 100 * pr.options.memory_margin,
                     core::format_bytes(double(free_bytes)));
}

// The reason a member rank cannot even hold the scheme's model state ("" when it can): its
// elements in the strategy layout (fp32 weights and gradients, + a bf16 copy on GPUs) and in the
// optimizer layout (fp32 master, gradient, two moments), from the layouts alone, before any
// allocation (a failed GPU allocation aborts the process).
std::string state_stop(const ProfileRun& pr, const Scheme& scheme, int rank) {
  const planner::Strategy strategy = {scheme};
  auto grid = parallel::ProcessGrid::create(strategy, scheme.gpus());
  if (!grid.is_ok()) return "";
  const std::vector<parallel::LogicalParam> params = parallel::logical_params(pr.options.model);
  const parallel::Layout mine = parallel::strategy_layout(params, *grid, pr.options.model);
  auto optimizer = parallel::optimizer_layout(params, *grid, pr.options.model);
  if (!optimizer.is_ok()) return "";
  const MemoryMeter meter(*pr.ops);
  const int64_t per_element = meter.host() ? 8 : 10;
  const int64_t need = mine.ranks[size_t(rank)].numel() * per_element +
                       optimizer->ranks[size_t(rank)].numel() * 16;
  const int64_t with_margin = int64_t(double(need) * (1 + pr.options.memory_margin));
  const int64_t free_bytes = meter.available();
  if (free_bytes <= 0 || with_margin <= free_bytes) return "";
  return fmt::format("rank {} needs {} for the model state alone ({:.0f}% headroom included) but "
                     "{} is free",
                     rank, core::format_bytes(double(with_margin)), 100 * pr.options.memory_margin,
                     core::format_bytes(double(free_bytes)));
}

// Scheme k of the options on world ranks 0 .. gpus − 1 (collective over the world).
core::StatusOr<planner::SchemeProfile> profile_scheme(ProfileRun& pr, size_t k) {
  const Scheme& scheme = pr.options.schemes[k];
  comm::Communicator& world = *pr.world;
  const bool member = world.rank() < scheme.gpus();
  const std::string what = fmt::format("profiling scheme {}", scheme.to_string());
  HYD_ASSIGN_OR_RETURN(auto host_group, world.split(member ? 0 : -1, world.rank()));
  // On the CPU one communicator carries both; on GPUs the tensors go over the device one.
  std::shared_ptr<comm::Communicator> device_group = host_group;
  if (pr.device_world != pr.world) {
    HYD_ASSIGN_OR_RETURN(device_group, pr.device_world->split(member ? 0 : -1, world.rank()));
  }
  planner::SchemeProfile sp;
  sp.scheme = scheme;
  sp.micro_batches = scheme.pp;
  // A scheme whose model state does not fit is recorded as stopped at the first length.
  const std::string too_big = member ? state_stop(pr, scheme, world.rank()) : "";
  HYD_ASSIGN_OR_RETURN(double any_too_big,
                       reduce_f64(world, too_big.empty() ? 0.0 : 1.0, comm::ReduceOp::kMax));
  if (any_too_big > 0) {
    sp.stopped_at = pr.lengths.front();
    sp.stop_reason = too_big.empty() ? "another rank cannot hold the model state" : too_big;
    if (pr.printer) {
      std::fprintf(stderr, "profile %s: skipped: %s\n", scheme.to_string().c_str(),
                   sp.stop_reason.c_str());
    }
    for (int64_t len : pr.lengths) {
      pr.progress.total -= double(len) * (pr.options.warmup + pr.options.repeats);
    }
    HYD_RETURN_IF_ERROR(world.barrier());
    return sp;
  }
  SchemeRun run;
  core::Status status = core::Status::ok();
  if (member) {
    auto made = set_up_scheme(pr.options, scheme, device_group, pr.ops);
    status = made.status();
    if (made.is_ok()) {
      run = std::move(made).value();
      run.state.context_bytes = MemoryMeter(*pr.ops).context_bytes();
      auto states = gather_states(*host_group, run.state);
      status = states.status();
      if (states.is_ok()) sp.ranks = std::move(states).value();
    }
  }
  HYD_RETURN_IF_ERROR(agree(world, status.is_ok() ? status : status.with_context(what), what));
  if (pr.printer) {
    std::fprintf(stderr, "profile %s: %d rank%s, model state %s on rank 0\n",
                 scheme.to_string().c_str(), scheme.gpus(), scheme.gpus() == 1 ? "" : "s",
                 core::format_bytes(double(sp.ranks.front().total())).c_str());
  }
  const int per_length = pr.options.warmup + pr.options.repeats;
  for (int64_t len : pr.lengths) {
    // Stop (on every rank) at the first length a member's forecast does not fit.
    const std::string reason = member ? memory_stop(pr, scheme, run, sp, len) : "";
    HYD_ASSIGN_OR_RETURN(double any_stop,
                         reduce_f64(world, reason.empty() ? 0.0 : 1.0, comm::ReduceOp::kMax));
    if (any_stop > 0) {
      sp.stopped_at = len;
      sp.stop_reason = reason.empty() ? "the memory forecast of another rank does not fit" : reason;
      if (pr.printer) {
        std::fprintf(stderr, "profile %s: stopped at %lld tokens: %s\n",
                     scheme.to_string().c_str(), static_cast<long long>(len),
                     sp.stop_reason.c_str());
      }
      break;
    }
    planner::ProfilePoint point;
    if (member) {
      try {
        status = measure(pr.options, run, *host_group, *pr.ops, len, sp.micro_batches, point);
      } catch (const std::bad_alloc&) {
        status = core::make_error(core::StatusCode::kResourceExhausted,
                                  "{} at {} tokens: out of host memory although the forecast "
                                  "fitted: lower --max-seq-len",
                                  what, len);
      }
    }
    HYD_RETURN_IF_ERROR(agree(world, status.is_ok() ? status : status.with_context(what), what));
    pr.runs += per_length;
    pr.progress.done += double(len) * per_length;
    if (member) sp.points.push_back(std::move(point));
    if (pr.printer) {
      pr.progress.print(scheme, k, pr.options.schemes.size(), sp, sp.points.back(), pr.runs);
    }
  }
  // Lengths left out by a stop no longer count in the ETA.
  for (int64_t len : pr.lengths) {
    if (sp.stopped_at > 0 && len >= sp.stopped_at) pr.progress.total -= double(len) * per_length;
  }
  run = SchemeRun();  // free this scheme's memory before the next
  HYD_RETURN_IF_ERROR(world.barrier());
  return sp;
}

}  // namespace

core::StatusOr<planner::Profile> run_profile(const ProfileOptions& options_in,
                                             std::shared_ptr<comm::Communicator> world,
                                             std::shared_ptr<comm::Communicator> device_world,
                                             std::shared_ptr<const model::Ops> ops) {
  ProfileOptions options = options_in;
  // The preset's max_seq_len only bounds what the trainer accepts; the profile may go further.
  options.model.max_seq_len = std::max(options.model.max_seq_len, options.max_seq_len);
  if (options.schemes.empty()) {
    options.schemes = default_profile_schemes(world->size(), options.model,
                                              ops->supports_attention_segments());
  }
  HYD_RETURN_IF_ERROR(validate_profile_options(options, world->size()));
  HYD_RETURN_IF_ERROR(ops->check_supported(options.model));
  const bool host = ops->device() == core::Device::kCpu;
  if (host) {
    CountingAllocator& counting = counting_allocator();
    if (core::allocator_for(core::Device::kCpu) != &counting) {
      counting.set_inner(core::allocator_for(core::Device::kCpu));
      core::set_allocator(core::Device::kCpu, &counting);
    }
  }
  planner::Profile profile;
  const model::LlamaConfig& c = options.model;
  profile.model = {c.name, c.hidden, c.num_layers, c.vocab_size, c.num_heads, c.num_kv_heads,
                   c.ffn_hidden};
  profile.device_kind = host ? "cpu" : "cuda";
  profile.device_name = ops->description();
  profile.device_memory_bytes = MemoryMeter(*ops).device_total();
  profile.ranks = world->size();
  profile.cpu_threads = host ? cpu::max_threads() : 0;
  profile.git = options.git;
  profile.created = utc_now();
  profile.warmup = options.warmup;
  profile.repeats = options.repeats;
  profile.min_seq_len = options.min_seq_len;
  profile.max_seq_len = options.max_seq_len;

  ProfileRun pr{options, world, device_world, ops, profile_lengths(options), {}, 0,
                world->rank() == 0 && options.progress};
  for (int64_t len : pr.lengths) {
    pr.progress.total += double(options.schemes.size()) * double(len) *
                         (options.warmup + options.repeats);
  }
  for (size_t k = 0; k < options.schemes.size(); ++k) {
    HYD_ASSIGN_OR_RETURN(planner::SchemeProfile sp, profile_scheme(pr, k));
    profile.schemes.push_back(std::move(sp));
  }
  return profile;
}

}  // namespace hydraulis::train
