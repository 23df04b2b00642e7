// Reshard execution over thread ranks: run_reshard (whole plan) and the chunked, overlapped
// ReshardExchange both reproduce the reference executor (parallel/reshard.h) bit for bit, for
// parameter propagation (assign) and gradient reduction (accumulate, where the summation order
// shows in the bits), with both exchanges sharing one communicator and chunks sent out of order
// of the calls; plus the worked example of stage_chunks.
#include "parallel/reshard_overlap.h"

#include <gtest/gtest.h>

#include <cmath>
#include <mutex>

#include "comm/thread_comm.h"
#include "parallel/reshard_exec.h"

#include "tests/parallel/layout_test_util.h"

namespace hydraulis::parallel {
namespace {

using planner::Strategy;
using HostData = std::vector<std::vector<std::vector<float>>>;  // [rank][tensor][element]

using testing::grid_of;
using testing::small_config;

// The chunks of `name`'s tensors on `rank` (use, done); -1, -1 when the rank holds none.
std::pair<int, int> chunks_of(const StageChunks& chunks, const Layout& layout,
                              const std::vector<LogicalParam>& params, int rank,
                              const std::string& name, int copy = 0) {
  const auto& tensors = layout.ranks[size_t(rank)].tensors;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (params[size_t(tensors[i].param)].name == name && copy-- == 0) {
      return {chunks.use[size_t(rank)][i], chunks.done[size_t(rank)][i]};
    }
  }
  return {-1, -1};
}

TEST(StageChunks, WorkedExample) {
  // L = 4 on pp 2: stage 0 holds the embedding and layers 0-1, stage 1 layers 2-3 and the head.
  const model::LlamaConfig config = small_config();
  const auto params = logical_params(config);
  const Layout layout = strategy_layout(params, grid_of({{1, 1, 2}}), config);
  const StageChunks c = stage_chunks(layout, params, config.num_layers);
  EXPECT_EQ(c.count, 6);
  using P = std::pair<int, int>;
  EXPECT_EQ(chunks_of(c, layout, params, 0, "model.embed_tokens.weight"), P(0, 5));
  EXPECT_EQ(chunks_of(c, layout, params, 0, "model.layers.0.self_attn.q_proj.weight"), P(1, 4));
  EXPECT_EQ(chunks_of(c, layout, params, 0, "model.layers.1.mlp.down_proj.weight"), P(2, 3));
  EXPECT_EQ(chunks_of(c, layout, params, 1, "model.layers.2.input_layernorm.weight"), P(3, 2));
  EXPECT_EQ(chunks_of(c, layout, params, 1, "model.layers.3.self_attn.o_proj.weight"), P(4, 1));
  EXPECT_EQ(chunks_of(c, layout, params, 1, "model.norm.weight"), P(5, 0));
  EXPECT_EQ(chunks_of(c, layout, params, 1, "lm_head.weight"), P(5, 0));
  // Tied head: the last stage's copy of the table is in the head group; on one stage the table
  // is first used by the embedding and last accumulated by its backward.
  const model::LlamaConfig tied = small_config(model::LmHead::kTied);
  const auto tied_params = logical_params(tied);
  const Layout two = strategy_layout(tied_params, grid_of({{1, 1, 2}}), tied);
  const StageChunks t2 = stage_chunks(two, tied_params, tied.num_layers);
  EXPECT_EQ(chunks_of(t2, two, tied_params, 0, "model.embed_tokens.weight"), P(0, 5));
  EXPECT_EQ(chunks_of(t2, two, tied_params, 1, "model.embed_tokens.weight"), P(5, 0));
  const Layout one = strategy_layout(tied_params, grid_of({{1, 1, 1}}), tied);
  const StageChunks t1 = stage_chunks(one, tied_params, tied.num_layers);
  EXPECT_EQ(chunks_of(t1, one, tied_params, 0, "model.embed_tokens.weight"), P(0, 5));
}

// Values that are not exactly representable sums, so a different summation order would show.
float value_of(int salt, int rank, size_t tensor, size_t element) {
  return float(std::sin(0.37 * double(element) + 1.3 * double(tensor) + 2.1 * rank + salt) * 1e-2 +
               1.0 / (3.0 + double(element % 7)));
}

HostData host_data(const Layout& layout, int salt) {
  HostData data(size_t(layout.world_size()));
  for (int r = 0; r < layout.world_size(); ++r) {
    for (size_t t = 0; t < layout.ranks[size_t(r)].tensors.size(); ++t) {
      std::vector<float>& v = data[size_t(r)].emplace_back();
      for (int64_t e = 0; e < layout.ranks[size_t(r)].tensors[t].numel(); ++e) {
        v.push_back(value_of(salt, r, t, size_t(e)));
      }
    }
  }
  return data;
}

// This rank's local tensors of `layout` (rows × cols, f32) holding `data` (zeros when empty).
std::vector<core::Tensor> tensors_of(const RankLayout& layout,
                                     const std::vector<std::vector<float>>& data = {}) {
  std::vector<core::Tensor> out;
  for (size_t i = 0; i < layout.tensors.size(); ++i) {
    const LocalTensor& lt = layout.tensors[i];
    core::Tensor t = core::Tensor::zeros({lt.rows(), lt.cols()}, core::DType::kF32);
    if (!data.empty()) std::copy(data[i].begin(), data[i].end(), t.data<float>());
    out.push_back(t);
  }
  return out;
}

std::vector<std::vector<float>> values_of(const std::vector<core::Tensor>& tensors) {
  std::vector<std::vector<float>> out;
  for (const core::Tensor& t : tensors) out.emplace_back(t.data<float>(), t.data<float>() + t.numel());
  return out;
}

enum class Executor { kWhole, kOverlapped };

// Propagates optimizer → strategy and reduces strategy → optimizer on thread ranks.
void run_both(const Layout& opt, const Layout& strat, const StageChunks& chunks,
              const ReshardPlan& propagate, const ReshardPlan& reduce, const HostData& params,
              const HostData& grads, Executor executor, HostData& got_params, HostData& got_grads) {
  const int W = opt.world_size();
  got_params.assign(size_t(W), {});
  got_grads.assign(size_t(W), {});
  std::mutex mutex;
  core::Status status = comm::run_on_threads(W, [&](comm::Communicator& world) -> core::Status {
    const int r = world.rank();
    const model::Ops& ops = model::cpu_ops();
    std::vector<core::Tensor> opt_values = tensors_of(opt.ranks[size_t(r)], params[size_t(r)]);
    std::vector<core::Tensor> strat_values = tensors_of(strat.ranks[size_t(r)]);
    std::vector<core::Tensor> strat_grads = tensors_of(strat.ranks[size_t(r)], grads[size_t(r)]);
    std::vector<core::Tensor> opt_grads = tensors_of(opt.ranks[size_t(r)]);
    if (executor == Executor::kWhole) {
      HYD_RETURN_IF_ERROR(run_reshard(propagate, world, ops, opt_values, strat_values).status());
      HYD_RETURN_IF_ERROR(run_reshard(reduce, world, ops, strat_grads, opt_grads).status());
    } else {
      HYD_ASSIGN_OR_RETURN(auto comm, world.split(0, r));
      using By = ReshardExchange::ChunkBy;
      ReshardExchange p(propagate, chunks.use, chunks.count, By::kDestination, *comm, ops,
                        opt_values, strat_values);
      ReshardExchange g(reduce, chunks.done, chunks.count, By::kSource, *comm, ops, strat_grads,
                        opt_grads);
      HYD_RETURN_IF_ERROR(p.post_receives());
      HYD_RETURN_IF_ERROR(g.post_receives());
      p.send_through(chunks.count - 1);
      for (int k = 0; k < chunks.count; ++k) HYD_RETURN_IF_ERROR(p.wait_through(k));
      // Chunks are sent in increasing order whatever the calls: 2 flushes 0-2, 1 is a no-op.
      g.send_through(2);
      g.send_through(1);
      HYD_RETURN_IF_ERROR(p.finish().status());
      HYD_RETURN_IF_ERROR(g.finish().status());
    }
    std::lock_guard<std::mutex> lock(mutex);
    got_params[size_t(r)] = values_of(strat_values);
    got_grads[size_t(r)] = values_of(opt_grads);
    return core::Status::ok();
  });
  ASSERT_TRUE(status.is_ok()) << status.message();
}

TEST(ReshardExchange, MatchesTheReferenceBitForBit) {
  for (model::LmHead head : {model::LmHead::kUntied, model::LmHead::kTied}) {
    SCOPED_TRACE(head == model::LmHead::kTied ? "tied" : "untied");
    const model::LlamaConfig config = small_config(head);
    const auto params = logical_params(config);
    const Layout opt = optimizer_layout(params, grid_of({{1, 2, 1}, {1, 2, 1}}), config).value();
    for (const Strategy& s : std::vector<Strategy>{{{1, 2, 1}, {1, 1, 2}},
                                                   {{1, 1, 4}},
                                                   {{2, 1, 2}},
                                                   {{1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}}) {
      SCOPED_TRACE(planner::format_strategy(s));
      const Layout strat = strategy_layout(params, grid_of(s), config);
      const StageChunks chunks = stage_chunks(strat, params, config.num_layers);
      const ReshardPlan propagate = make_reshard_plan(opt, strat, ReshardMode::kAssign).value();
      const ReshardPlan reduce = make_reshard_plan(strat, opt, ReshardMode::kAccumulate).value();
      const HostData values = host_data(opt, 1), grads = host_data(strat, 2);
      HostData want_params, want_grads;
      execute_reshard(propagate, opt, strat, values, want_params, ReshardMode::kAssign);
      execute_reshard(reduce, strat, opt, grads, want_grads, ReshardMode::kAccumulate);
      for (Executor e : {Executor::kWhole, Executor::kOverlapped}) {
        SCOPED_TRACE(e == Executor::kWhole ? "run_reshard" : "ReshardExchange");
        HostData got_params, got_grads;
        run_both(opt, strat, chunks, propagate, reduce, values, grads, e, got_params, got_grads);
        EXPECT_EQ(got_params, want_params);
        EXPECT_EQ(got_grads, want_grads);
      }
    }
  }
}

// The bitwise comparison above can fail: with four data-parallel copies, summing the gradients
// in another order changes the bits of some elements.
TEST(ReshardExchange, SummationOrderShowsInTheBits) {
  const model::LlamaConfig config = small_config();
  const auto params = logical_params(config);
  const Layout dp4 = strategy_layout(params, grid_of({{1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}}), config);
  const HostData grads = host_data(dp4, 2);
  int differ = 0;
  for (size_t t = 0; t < grads[0].size(); ++t) {
    for (size_t e = 0; e < grads[0][t].size(); ++e) {
      float forward = 0, backward = 0;
      for (int r = 0; r < 4; ++r) forward += grads[size_t(r)][t][e];
      for (int r = 3; r >= 0; --r) backward += grads[size_t(r)][t][e];
      differ += forward != backward;
    }
  }
  EXPECT_GT(differ, 0);
}

}  // namespace
}  // namespace hydraulis::parallel
