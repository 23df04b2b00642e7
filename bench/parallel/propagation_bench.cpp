// Propagation bench: for every strategy of a list, the per-switch cost of optimization-
// propagation disaggregation — elements moved across ranks by the parameter propagation
// (optimizer layout → strategy layout) and the gradient reduction (strategy layout → optimizer
// layout), against the parameter count, and the wall time of both over in-process ranks
// (ThreadComm, CPU tensors, f32). The competitor in the same run is a ZeRO-3-style full parameter
// all-gather plus gradient reduce-scatter on the same ranks, which moves (W − 1)/W of every
// rank's whole model each way. Output: a table and JSON (bench/parallel/results/).
// Usage: propagation_bench [--model 125m] [--world 8] [--strategies "[[...]]"] [--reps 3] [--out F]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "comm/thread_comm.h"
#include "core/file.h"
#include "core/json.h"
#include "model/config.h"
#include "parallel/layout.h"
#include "parallel/process_grid.h"
#include "parallel/reshard.h"
#include "parallel/reshard_exec.h"
#include "planner/strategy.h"

namespace hydraulis {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<core::Tensor> allocate(const parallel::RankLayout& layout) {
  std::vector<core::Tensor> out;
  for (const auto& t : layout.tensors) out.push_back(core::Tensor::zeros({t.rows(), t.cols()}, core::DType::kF32));
  return out;
}

// Median over `reps` runs of rank 0's wall ms for `body`, each run on fresh thread ranks: `setup`
// allocates a rank's buffers (untimed), then the ranks meet at a barrier, run `body` and meet
// again.
template <typename Setup, typename Body>
double median_ms(int world, int reps, Setup setup, Body body) {
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    double ms = 0;
    core::Status status = comm::run_on_threads(world, [&](comm::Communicator& comm) -> core::Status {
      auto buffers = setup(comm.rank());
      HYD_RETURN_IF_ERROR(comm.barrier());
      const auto start = Clock::now();
      HYD_RETURN_IF_ERROR(body(comm, buffers));
      HYD_RETURN_IF_ERROR(comm.barrier());
      if (comm.rank() == 0) {
        ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      }
      return core::Status::ok();
    });
    HYD_CHECK(status.is_ok(), "{}", status.message());
    times.push_back(ms);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

using Buffers = std::pair<std::vector<core::Tensor>, std::vector<core::Tensor>>;

double time_plan(const parallel::ReshardPlan& plan, const parallel::Layout& src,
                 const parallel::Layout& dst, int world, int reps) {
  return median_ms(
      world, reps,
      [&](int rank) {
        return Buffers{allocate(src.ranks[size_t(rank)]), allocate(dst.ranks[size_t(rank)])};
      },
      [&](comm::Communicator& comm, Buffers& b) {
        return parallel::run_reshard(plan, comm, model::cpu_ops(), b.first, b.second).status();
      });
}

// ZeRO-3 competitor: all-gather every rank's 1/W flat shard of the whole model, then
// reduce-scatter the gradients back.
double time_zero3(int64_t numel, int world, int reps) {
  const int64_t shard = (numel + world - 1) / world;
  return median_ms(
      world, reps,
      [&](int) {
        return Buffers{{core::Tensor::zeros({shard}, core::DType::kF32)},
                       {core::Tensor::zeros({shard * world}, core::DType::kF32)}};
      },
      [&](comm::Communicator& comm, Buffers& b) -> core::Status {
        HYD_RETURN_IF_ERROR(comm.all_gather(b.first[0], b.second[0]));
        return comm.reduce_scatter(b.second[0], b.first[0]);
      });
}

int run(int argc, char** argv) {
  std::string model_name = "125m", out_path;
  int world = 8, reps = 3;
  std::string list =
      "[[(1,2,1),(1,2,1),(1,2,1),(1,2,1)], [(1,4,1),(1,2,1),(1,1,1),(1,1,1)], "
      "[(1,2,2),(1,1,2),(1,1,1),(1,1,1)], [(2,1,2),(1,2,1),(1,1,2)], [(1,1,8)]]";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--model") model_name = argv[i + 1];
    if (a == "--world") world = std::stoi(argv[i + 1]);
    if (a == "--strategies") list = argv[i + 1];
    if (a == "--reps") reps = std::stoi(argv[i + 1]);
    if (a == "--out") out_path = argv[i + 1];
  }
  model::LlamaConfig config = model::llama_config(model_name).value();
  auto strategies = planner::parse_strategy_list(list).value();
  auto params = parallel::logical_params(config);
  int64_t numel = 0;
  for (const auto& p : params) numel += p.numel();
  auto homogeneous = parallel::ProcessGrid::create(strategies[0], world).value();
  parallel::Layout optimizer = parallel::optimizer_layout(params, homogeneous, config).value();
  const double zero3_ms = time_zero3(numel, world, reps);
  const double zero3_elements = 2.0 * double(numel) * double(world - 1);  // gather + scatter, all ranks
  std::printf("model %s (%.1fM parameters), %d ranks; ZeRO-3 gather+scatter: %.2f elements/param, %.1f ms\n",
              model_name.c_str(), double(numel) / 1e6, world, zero3_elements / double(numel), zero3_ms);
  std::printf("%-44s %12s %12s %10s %10s %8s\n", "strategy", "prop elem/P", "grad elem/P", "prop ms",
              "grad ms", "vs ZeRO3");
  core::Json rows = core::Json::array();
  for (const auto& s : strategies) {
    auto grid = parallel::ProcessGrid::create(s, world).value();
    parallel::Layout layout = parallel::strategy_layout(params, grid, config);
    auto prop = parallel::make_reshard_plan(optimizer, layout, parallel::ReshardMode::kAssign).value();
    auto grad = parallel::make_reshard_plan(layout, optimizer, parallel::ReshardMode::kAccumulate).value();
    const double prop_ms = time_plan(prop, optimizer, layout, world, reps);
    const double grad_ms = time_plan(grad, layout, optimizer, world, reps);
    const double moved = double(prop.elements_across_ranks() + grad.elements_across_ranks());
    std::printf("%-44s %12.3f %12.3f %10.1f %10.1f %7.2fx\n", planner::format_strategy(s).c_str(),
                double(prop.elements_across_ranks()) / double(numel),
                double(grad.elements_across_ranks()) / double(numel), prop_ms, grad_ms,
                zero3_ms / (prop_ms + grad_ms));
    core::Json row;
    row["strategy"] = planner::format_strategy(s);
    row["propagate_elements_across_ranks"] = prop.elements_across_ranks();
    row["propagate_elements_local"] = prop.elements_local();
    row["reduce_elements_across_ranks"] = grad.elements_across_ranks();
    row["reduce_elements_local"] = grad.elements_local();
    row["bytes_moved_f32"] = moved * 4;
    row["moved_over_parameters"] = moved / double(numel);
    row["propagate_ms"] = prop_ms;
    row["reduce_ms"] = grad_ms;
    row["zero3_over_ours_time"] = zero3_ms / (prop_ms + grad_ms);
    rows.push_back(row);
  }
  if (!out_path.empty()) {
    core::Json doc;
    doc["model"] = model_name;
    doc["parameters"] = numel;
    doc["world"] = world;
    doc["ranks"] = "in-process threads (ThreadComm), CPU f32";
    doc["zero3_ms"] = zero3_ms;
    doc["zero3_elements_over_parameters"] = zero3_elements / double(numel);
    doc["strategies"] = rows;
    HYD_CHECK(core::write_file_atomic(out_path, doc.dump(2) + "\n").is_ok(), "cannot write {}", out_path);
  }
  return 0;
}

}  // namespace
}  // namespace hydraulis

int main(int argc, char** argv) { return hydraulis::run(argc, argv); }
