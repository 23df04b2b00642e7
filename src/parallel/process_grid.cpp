// Rank placement of a strategy and the model-fits check (docs/parallel.md, "Process grid").
#include "parallel/process_grid.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "core/check.h"

namespace hydraulis::parallel {

core::StatusOr<ProcessGrid> ProcessGrid::create(const planner::Strategy& strategy, int world_size) {
  if (strategy.empty()) {
    return core::invalid_argument("empty strategy: give at least one pipeline, e.g. [(1, {}, 1)]",
                                  world_size);
  }
  int64_t total = 0;
  for (size_t p = 0; p < strategy.size(); ++p) {
    const planner::Scheme& s = strategy[p];
    if (s.cp < 1 || s.tp < 1 || s.pp < 1) {
      return core::invalid_argument("pipeline {} has scheme {}: cp, tp and pp must all be >= 1", p,
                                    s.to_string());
    }
    total += int64_t{s.cp} * s.tp * s.pp;
  }
  if (total != world_size) {
    return core::invalid_argument(
        "strategy {} uses {} GPUs but the world has {} ranks: make the schemes' cp·tp·pp sum to {}"
        " or launch {} ranks",
        planner::format_strategy(strategy), total, world_size, world_size, total);
  }
  ProcessGrid grid;
  grid.strategy_ = strategy;
  grid.world_size_ = world_size;
  int first = 0;
  for (const planner::Scheme& s : strategy) {
    grid.first_.push_back(first);
    first += s.gpus();
  }
  grid.first_.push_back(first);
  return grid;
}

const planner::Scheme& ProcessGrid::scheme(int pipeline) const {
  HYD_CHECK(pipeline >= 0 && pipeline < num_pipelines(), "pipeline {} outside [0, {})", pipeline,
            num_pipelines());
  return strategy_[static_cast<size_t>(pipeline)];
}

int ProcessGrid::first_rank(int pipeline) const {
  HYD_CHECK(pipeline >= 0 && pipeline < num_pipelines(), "pipeline {} outside [0, {})", pipeline,
            num_pipelines());
  return first_[static_cast<size_t>(pipeline)];
}

bool ProcessGrid::homogeneous() const {
  return std::all_of(strategy_.begin(), strategy_.end(),
                     [&](const planner::Scheme& s) { return s == strategy_.front(); });
}

RankCoord ProcessGrid::coord(int rank) const {
  HYD_CHECK(rank >= 0 && rank < world_size_, "rank {} outside [0, {})", rank, world_size_);
  // first_ is increasing; the pipeline is the last one whose first rank is <= rank.
  auto it = std::upper_bound(first_.begin(), first_.end(), rank);
  RankCoord c;
  c.pipeline = static_cast<int>(it - first_.begin()) - 1;
  const planner::Scheme& s = strategy_[static_cast<size_t>(c.pipeline)];
  const int local = rank - first_[static_cast<size_t>(c.pipeline)];
  c.stage = local / (s.cp * s.tp);
  c.cp_rank = (local % (s.cp * s.tp)) / s.tp;
  c.tp_rank = local % s.tp;
  return c;
}

int ProcessGrid::rank_of(const RankCoord& c) const {
  const planner::Scheme& s = scheme(c.pipeline);
  HYD_CHECK(c.stage >= 0 && c.stage < s.pp && c.cp_rank >= 0 && c.cp_rank < s.cp &&
                c.tp_rank >= 0 && c.tp_rank < s.tp,
            "coordinate (stage {}, cp {}, tp {}) outside pipeline {}'s scheme {}", c.stage,
            c.cp_rank, c.tp_rank, c.pipeline, s.to_string());
  return first_rank(c.pipeline) + c.stage * s.cp * s.tp + c.cp_rank * s.tp + c.tp_rank;
}

std::vector<int> ProcessGrid::tp_group(int pipeline, int stage, int cp_rank) const {
  const planner::Scheme& s = scheme(pipeline);
  std::vector<int> ranks;
  for (int t = 0; t < s.tp; ++t) ranks.push_back(rank_of({pipeline, stage, cp_rank, t}));
  return ranks;
}

std::vector<int> ProcessGrid::cp_group(int pipeline, int stage, int tp_rank) const {
  const planner::Scheme& s = scheme(pipeline);
  std::vector<int> ranks;
  for (int c = 0; c < s.cp; ++c) ranks.push_back(rank_of({pipeline, stage, c, tp_rank}));
  return ranks;
}

std::vector<int> ProcessGrid::stage_ranks(int pipeline, int stage) const {
  const planner::Scheme& s = scheme(pipeline);
  const int first = rank_of({pipeline, stage, 0, 0});
  std::vector<int> ranks;
  for (int i = 0; i < s.cp * s.tp; ++i) ranks.push_back(first + i);
  return ranks;
}

std::vector<int> ProcessGrid::pipeline_ranks(int pipeline) const {
  std::vector<int> ranks;
  for (int r = first_rank(pipeline); r < end_rank(pipeline); ++r) ranks.push_back(r);
  return ranks;
}

std::string ProcessGrid::describe() const {
  std::string out = fmt::format("{} ranks, {} pipelines\n", world_size_, num_pipelines());
  for (int p = 0; p < num_pipelines(); ++p) {
    const planner::Scheme& s = scheme(p);
    out += fmt::format("pipeline {} {}: ranks {}-{}\n", p, s.to_string(), first_rank(p),
                       end_rank(p) - 1);
    for (int st = 0; st < s.pp; ++st) {
      out += fmt::format("  stage {}:", st);
      for (int c = 0; c < s.cp; ++c) {
        out += fmt::format(" cp {}: tp ranks [{}]", c, fmt::join(tp_group(p, st, c), ", "));
        if (c + 1 < s.cp) out += ";";
      }
      out += "\n";
    }
  }
  return out;
}

core::Status check_model_fits(const model::LlamaConfig& config, const planner::Strategy& strategy) {
  struct Factor {
    const char* name;
    int64_t value;
    const char* more;  // what a larger model would need
  };
  const Factor factors[] = {
      {"num_heads", config.num_heads, "more attention heads"},
      {"num_kv_heads", config.num_kv_heads, "more kv heads"},
      {"ffn_hidden", config.ffn_hidden, "an ffn width divisible by tp"},
      {"vocab_size (padded)", config.vocab_size, "a vocabulary padded to a multiple of tp"},
  };
  for (size_t p = 0; p < strategy.size(); ++p) {
    const planner::Scheme& s = strategy[p];
    for (const Factor& f : factors) {
      if (s.tp < 1 || f.value % s.tp == 0) continue;
      // The largest tp that divides the factor and does not exceed this scheme's tp.
      int64_t best = 1;
      for (int64_t t = 1; t <= s.tp; ++t) {
        if (f.value % t == 0) best = t;
      }
      return core::invalid_argument(
          "{} {} is not divisible by tp {} of pipeline {} {}: use tp <= {} or a model with {}",
          f.name, f.value, s.tp, p, s.to_string(), best, f.more);
    }
    if (config.num_layers < s.pp) {
      return core::invalid_argument(
          "num_layers {} is smaller than pp {} of pipeline {} {}: use pp <= {} (every stage needs "
          "at least one layer)",
          config.num_layers, s.pp, p, s.to_string(), config.num_layers);
    }
  }
  return core::Status::ok();
}

}  // namespace hydraulis::parallel
