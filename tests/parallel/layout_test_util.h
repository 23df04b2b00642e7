// Shared by the layout and reshard tests: a small model whose layouts are quick to enumerate, and
// the process grid of a strategy on exactly its GPU count.
#pragma once

#include <gtest/gtest.h>

#include "model/config.h"
#include "parallel/process_grid.h"
#include "planner/strategy.h"

namespace hydraulis::parallel::testing {

// 4 layers, C 32, 8 heads on 8 kv heads, F 24, V 40.
inline model::LlamaConfig small_config(model::LmHead head = model::LmHead::kUntied) {
  model::LlamaConfig c;
  c.name = "layout-test";
  c.num_layers = 4;
  c.hidden = 32;
  c.num_heads = 8;
  c.num_kv_heads = 8;
  c.ffn_hidden = 24;
  c.vocab_size = 40;
  c.max_seq_len = 64;
  c.lm_head = head;
  return c;
}

inline ProcessGrid grid_of(const planner::Strategy& strategy) {
  int world = 0;
  for (const auto& s : strategy) world += s.gpus();
  auto grid = ProcessGrid::create(strategy, world);
  EXPECT_TRUE(grid.is_ok()) << grid.status().message();
  return std::move(grid).value();
}

}  // namespace hydraulis::parallel::testing
