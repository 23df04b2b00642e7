// Balanced uneven layer split (docs/parallel.md, "Layer split").
#include "parallel/layer_split.h"

#include <algorithm>

#include "core/check.h"

namespace hydraulis::parallel {

int64_t first_layer(int64_t num_layers, int pp, int stage) {
  HYD_CHECK(pp >= 1 && num_layers >= 0, "split of {} layers over pp {}: need pp >= 1, layers >= 0",
            num_layers, pp);
  HYD_CHECK(stage >= 0 && stage <= pp, "stage {} outside [0, {}]", stage, pp);
  const int64_t base = num_layers / pp, extra = num_layers % pp;
  return stage * base + std::min<int64_t>(stage, extra);
}

int64_t end_layer(int64_t num_layers, int pp, int stage) {
  return first_layer(num_layers, pp, stage + 1);
}

std::vector<int64_t> split_layers(int64_t num_layers, int pp) {
  HYD_CHECK(pp >= 1, "split of {} layers over pp {}: need pp >= 1", num_layers, pp);
  std::vector<int64_t> sizes;
  for (int s = 0; s < pp; ++s) {
    sizes.push_back(end_layer(num_layers, pp, s) - first_layer(num_layers, pp, s));
  }
  return sizes;
}

int stage_of_layer(int64_t num_layers, int pp, int64_t layer) {
  HYD_CHECK(layer >= 0 && layer < num_layers, "layer {} outside [0, {})", layer, num_layers);
  // Stages 0 .. extra − 1 hold base + 1 layers each, the rest base.
  const int64_t base = num_layers / pp, extra = num_layers % pp;
  const int64_t big = extra * (base + 1);  // layers in the larger stages
  if (layer < big) return static_cast<int>(layer / (base + 1));
  return static_cast<int>(extra + (layer - big) / base);
}

}  // namespace hydraulis::parallel
