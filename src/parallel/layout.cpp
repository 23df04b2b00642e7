// Logical parameters, TP shards, strategy and optimizer layouts (docs/parallel.md, "Layouts").
#include "parallel/layout.h"

#include <fmt/format.h>

#include "core/check.h"
#include "parallel/layer_split.h"

namespace hydraulis::parallel {

namespace {

constexpr const char* kEmbeddingName = "model.embed_tokens.weight";
constexpr const char* kFinalNormName = "model.norm.weight";
constexpr const char* kLmHeadName = "lm_head.weight";

// [t·n/parts, (t+1)·n/parts)
int64_t split_begin(int64_t n, int64_t parts, int64_t t) {
  return t * n / parts;
}

// The rows [lo, hi) of a vertical stack of blocks, as blocks.
std::vector<Block> slice_rows(const std::vector<Block>& stack, int64_t lo, int64_t hi) {
  std::vector<Block> out;
  int64_t offset = 0;
  for (const Block& b : stack) {
    const int64_t a = std::max(lo, offset), e = std::min(hi, offset + b.rows());
    if (a < e)
      out.push_back({b.param, b.row0 + (a - offset), b.row0 + (e - offset), b.col0, b.col1});
    offset += b.rows();
  }
  return out;
}

int find_param(const std::vector<LogicalParam>& params, const char* name) {
  for (size_t i = 0; i < params.size(); ++i) {
    if (params[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

const char* shard_kind_name(ShardKind kind) {
  switch (kind) {
    case ShardKind::kColumn:
      return "column";
    case ShardKind::kColumnFused2:
      return "column_fused2";
    case ShardKind::kRow:
      return "row";
    case ShardKind::kVocab:
      return "vocab";
    case ShardKind::kReplicated:
      return "replicated";
  }
  return "?";
}

int64_t LocalTensor::rows() const {
  int64_t n = 0;
  for (const Block& b : blocks) n += b.rows();
  return n;
}

int64_t RankLayout::numel() const {
  int64_t n = 0;
  for (const LocalTensor& t : tensors) n += t.numel();
  return n;
}

std::vector<LogicalParam> logical_params(const model::LlamaConfig& config) {
  const int64_t C = config.hidden, F = config.ffn_hidden, V = config.vocab_size;
  std::vector<LogicalParam> params;
  params.push_back({kEmbeddingName, V, C, ShardKind::kVocab, -1});
  for (int64_t i = 0; i < config.num_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    params.push_back({p + "input_layernorm.weight", C, 1, ShardKind::kReplicated, i});
    params.push_back({p + "self_attn.q_proj.weight", config.q_width(), C, ShardKind::kColumn, i});
    params.push_back({p + "self_attn.k_proj.weight", config.kv_width(), C, ShardKind::kColumn, i});
    params.push_back({p + "self_attn.v_proj.weight", config.kv_width(), C, ShardKind::kColumn, i});
    params.push_back({p + "self_attn.o_proj.weight", C, config.q_width(), ShardKind::kRow, i});
    params.push_back({p + "post_attention_layernorm.weight", C, 1, ShardKind::kReplicated, i});
    params.push_back({p + "mlp.gate_up_proj.weight", 2 * F, C, ShardKind::kColumnFused2, i});
    params.push_back({p + "mlp.down_proj.weight", C, F, ShardKind::kRow, i});
  }
  params.push_back({kFinalNormName, C, 1, ShardKind::kReplicated, -1});
  if (config.lm_head == model::LmHead::kUntied) {
    params.push_back({kLmHeadName, V, C, ShardKind::kVocab, -1});
  }
  return params;
}

std::vector<Block> tp_shard(const LogicalParam& p, int param, int tp, int tp_rank) {
  HYD_CHECK(tp >= 1 && tp_rank >= 0 && tp_rank < tp, "tp rank {} of tp {}", tp_rank, tp);
  const int64_t t = tp_rank;
  switch (p.kind) {
    case ShardKind::kColumn:
    case ShardKind::kVocab:
      return {{param, split_begin(p.rows, tp, t), split_begin(p.rows, tp, t + 1), 0, p.cols}};
    case ShardKind::kColumnFused2: {
      const int64_t half = p.rows / 2;
      return {
          {param, split_begin(half, tp, t), split_begin(half, tp, t + 1), 0, p.cols},
          {param, half + split_begin(half, tp, t), half + split_begin(half, tp, t + 1), 0, p.cols}};
    }
    case ShardKind::kRow:
      return {{param, 0, p.rows, split_begin(p.cols, tp, t), split_begin(p.cols, tp, t + 1)}};
    case ShardKind::kReplicated:
      return {{param, 0, p.rows, 0, p.cols}};
  }
  return {};
}

Layout strategy_layout(const std::vector<LogicalParam>& params, const ProcessGrid& grid,
                       const model::LlamaConfig& config) {
  const int embedding = find_param(params, kEmbeddingName);
  const bool tied = config.lm_head == model::LmHead::kTied;
  Layout layout;
  layout.ranks.resize(static_cast<size_t>(grid.world_size()));
  for (int rank = 0; rank < grid.world_size(); ++rank) {
    const RankCoord c = grid.coord(rank);
    const planner::Scheme& s = grid.scheme(c.pipeline);
    const int64_t first = first_layer(config.num_layers, s.pp, c.stage);
    const int64_t end = end_layer(config.num_layers, s.pp, c.stage);
    const bool first_stage = c.stage == 0, last_stage = c.stage == s.pp - 1;
    auto add = [&](int param) {
      const LogicalParam& p = params[static_cast<size_t>(param)];
      LocalTensor t;
      t.param = param;
      t.blocks = tp_shard(p, param, s.tp, c.tp_rank);
      t.counts_for_grad = !(p.kind == ShardKind::kReplicated && c.tp_rank != 0);
      layout.ranks[static_cast<size_t>(rank)].tensors.push_back(std::move(t));
    };
    for (size_t i = 0; i < params.size(); ++i) {
      const LogicalParam& p = params[i];
      bool held;
      if (p.layer >= 0) {
        held = p.layer >= first && p.layer < end;
      } else if (p.name == kEmbeddingName) {
        held = first_stage;
      } else {  // final norm, LM head
        held = last_stage;
      }
      if (held) add(static_cast<int>(i));
    }
    if (tied && last_stage && !first_stage && embedding >= 0) add(embedding);
  }
  return layout;
}

core::StatusOr<Layout> optimizer_layout(const std::vector<LogicalParam>& params,
                                        const ProcessGrid& grid, const model::LlamaConfig& config) {
  if (!grid.homogeneous()) {
    return core::invalid_argument(
        "the optimizer layout needs a homogeneous strategy, got {}: use the strategy list's first "
        "strategy (all pipelines with the same scheme)",
        planner::format_strategy(grid.strategy()));
  }
  const planner::Scheme& s = grid.scheme(0);
  const int os_dp = grid.num_pipelines();
  // Pipeline 0 with a single pipeline (so the tied head copy logic matches) is the base.
  model::LlamaConfig untied_view = config;
  untied_view.lm_head = model::LmHead::kUntied;  // drops the head copy; no lm_head param exists
  auto base_grid = ProcessGrid::create({s}, s.gpus());
  HYD_CHECK(base_grid.is_ok(), "{}", base_grid.status().message());
  const Layout base = strategy_layout(params, *base_grid, untied_view);
  Layout layout;
  layout.ranks.resize(static_cast<size_t>(grid.world_size()));
  for (int rank = 0; rank < grid.world_size(); ++rank) {
    const RankCoord c = grid.coord(rank);
    const int base_rank = base_grid->rank_of({0, c.stage, 0, c.tp_rank});
    for (const LocalTensor& t : base.ranks[static_cast<size_t>(base_rank)].tensors) {
      const bool replicated = params[static_cast<size_t>(t.param)].kind == ShardKind::kReplicated;
      const int64_t group = int64_t{c.pipeline} * s.cp + c.cp_rank;
      const int64_t n = replicated ? int64_t{os_dp} * s.cp * s.tp : int64_t{os_dp} * s.cp;
      const int64_t j = replicated ? group * s.tp + c.tp_rank : group;
      LocalTensor owned;
      owned.param = t.param;
      owned.blocks =
          slice_rows(t.blocks, split_begin(t.rows(), n, j), split_begin(t.rows(), n, j + 1));
      owned.counts_for_grad = true;
      if (!owned.blocks.empty()) layout.ranks[static_cast<size_t>(rank)].tensors.push_back(owned);
    }
  }
  return layout;
}

std::string describe_layout(const Layout& layout, const std::vector<LogicalParam>& params) {
  std::string out;
  for (int r = 0; r < layout.world_size(); ++r) {
    const RankLayout& rl = layout.ranks[static_cast<size_t>(r)];
    out += fmt::format("rank {}: {} tensors, {} elements\n", r, rl.tensors.size(), rl.numel());
    for (const LocalTensor& t : rl.tensors) {
      out += fmt::format("  {}{}:", params[static_cast<size_t>(t.param)].name,
                         t.counts_for_grad ? "" : " (grad not counted)");
      for (const Block& b : t.blocks) {
        out += fmt::format(" [{}, {}) x [{}, {})", b.row0, b.row1, b.col0, b.col1);
      }
      out += "\n";
    }
  }
  return out;
}

}  // namespace hydraulis::parallel
