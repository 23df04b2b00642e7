// Balanced split of the decoder layers over a pipeline's stages (spec.md §8): the first
// L mod pp stages get ⌈L/pp⌉ layers, the others ⌊L/pp⌋ (32 over 3 → 11, 11, 10), so stage sizes
// differ by at most one. docs/parallel.md ("Layer split").
// Tests: tests/parallel/process_grid_test.cpp.
#pragma once

#include <cstdint>
#include <vector>

namespace hydraulis::parallel {

// Layers of each stage: size pp, Σ = num_layers. num_layers ≥ 0, pp ≥ 1 (checked); stages may get
// 0 layers when num_layers < pp (check_model_fits rejects such a strategy).
std::vector<int64_t> split_layers(int64_t num_layers, int pp);

// First layer of `stage` (stage = pp gives num_layers):
//   first(s) = s·⌊L/pp⌋ + min(s, L mod pp).   32 over 3: first = 0, 11, 22 (and 32).
int64_t first_layer(int64_t num_layers, int pp, int stage);
// One past the last layer of `stage`: first_layer(stage + 1).
int64_t end_layer(int64_t num_layers, int pp, int stage);
// The stage holding `layer` (0 ≤ layer < num_layers).
int stage_of_layer(int64_t num_layers, int pp, int64_t layer);

}  // namespace hydraulis::parallel
