// Parameter layouts: the model's logical parameters as 2-D matrices with a tensor-parallel
// sharding kind, and which slices of them every world rank holds, both in a strategy's layout
// (TP shards of a stage's layers, replicated over cp ranks and pipelines) and in the fixed
// optimizer layout (every element owned by exactly one rank). Reshard plans between two layouts:
// parallel/reshard.h. docs/parallel.md ("Layouts"). Tests: tests/parallel/layout_test.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/config.h"
#include "parallel/process_grid.h"

namespace hydraulis::parallel {

// How a parameter is split over a TP group of tp ranks; rank t gets, with R rows and C columns:
enum class ShardKind {
  kColumn,        // rows [t·R/tp, (t+1)·R/tp): q/k/v projections, by heads (output features)
  kColumnFused2,  // rows [gate; up], each half split: gate block t stacked over up block t
  kRow,           // cols [t·C/tp, (t+1)·C/tp): o_proj, down_proj (input features)
  kVocab,         // rows (vocabulary entries) split like kColumn: embed_tokens, lm_head
  kReplicated,    // every tp rank holds all of it: the RMSNorm weights
};
const char* shard_kind_name(ShardKind kind);

// One parameter, viewed as a row-major rows × cols matrix (a 1-D tensor of n is (n, 1)).
struct LogicalParam {
  std::string name;  // exactly as model::ParameterStore names it
  int64_t rows = 0;
  int64_t cols = 0;
  ShardKind kind = ShardKind::kReplicated;
  int64_t layer = -1;  // decoder layer; −1 for the embedding, the final norm and the LM head
  int64_t numel() const { return rows * cols; }
};

// In ParameterStore order: embedding; per layer input_layernorm, q, k, v, o,
// post_attention_layernorm, gate_up, down; final norm; lm_head (absent with a tied head).
std::vector<LogicalParam> logical_params(const model::LlamaConfig& config);

// A rectangle [row0, row1) × [col0, col1) of logical parameter `param` (an index into the
// logical parameter list).
struct Block {
  int param = 0;
  int64_t row0 = 0, row1 = 0, col0 = 0, col1 = 0;
  int64_t rows() const { return row1 - row0; }
  int64_t cols() const { return col1 - col0; }
  int64_t numel() const { return rows() * cols(); }
  bool operator==(const Block&) const = default;
};

// A tensor one rank stores: its blocks stacked vertically (all with the same column range), held
// row-major as rows() × cols(). Local row i of block k is block row i − Σ_{k' < k} rows(k').
struct LocalTensor {
  int param = 0;
  std::vector<Block> blocks;
  // Whether this copy's gradient is part of the sum that gives the logical gradient: false for
  // replicated tensors on tp_rank ≠ 0 (identical across a TP group), true otherwise (cp ranks and
  // pipelines hold partial sums over their tokens; both copies of a tied embedding count).
  bool counts_for_grad = true;
  int64_t rows() const;
  int64_t cols() const { return blocks.empty() ? 0 : blocks.front().cols(); }
  int64_t numel() const { return rows() * cols(); }
};

struct RankLayout {
  std::vector<LocalTensor> tensors;
  int64_t numel() const;
};

// One RankLayout per world rank.
struct Layout {
  std::vector<RankLayout> ranks;
  int world_size() const { return static_cast<int>(ranks.size()); }
};

// The blocks TP rank t of tp holds of parameter `param` (one block; two for kColumnFused2).
std::vector<Block> tp_shard(const LogicalParam& p, int param, int tp, int tp_rank);

// The layout a strategy runs with. Rank (pipeline, stage s, cp_rank, tp_rank) holds the TP shard
// of the layers split_layers gives stage s; stage 0 also the embedding, the last stage the final
// norm and the LM head (vocab shards). With a tied head and pp > 1 the last stage holds the
// embedding again as its last tensor (the head copy); with pp = 1 the one embedding serves both.
// cp ranks hold the same as cp rank 0. Tensors in ParameterStore order.
Layout strategy_layout(const std::vector<LogicalParam>& params, const ProcessGrid& grid,
                       const model::LlamaConfig& config);

// The fixed layout of fp32 master weights and AdamW moments, from the homogeneous strategy
// (cp, tp, pp) × os_dp: start from pipeline 0's strategy layout (one copy of a tied embedding:
// no head copy), then split the rows of each local tensor evenly among the n = os_dp·cp ranks
// that hold the same (stage, tp_rank) shard, j = pipeline·cp + cp_rank getting local rows
// [j·R/n, (j+1)·R/n). Replicated tensors (norm weights) are split over all n·tp ranks of the
// stage, j = (pipeline·cp + cp_rank)·tp + tp_rank. Every element of every parameter has exactly
// one owner. A rank whose share of a tensor is 0 rows omits the tensor. counts_for_grad is true.
// Error: a heterogeneous grid.
core::StatusOr<Layout> optimizer_layout(const std::vector<LogicalParam>& params,
                                        const ProcessGrid& homogeneous_grid,
                                        const model::LlamaConfig& config);

// "rank 3: 12 tensors, 4096 elements\n  model.norm.weight [0, 32) x [0, 1) ...": for logs/tests.
std::string describe_layout(const Layout& layout, const std::vector<LogicalParam>& params);

}  // namespace hydraulis::parallel
