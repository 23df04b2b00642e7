// First-fit decreasing: sequences longest first, each into the first micro-batch with room.
#include "train/packer.h"

#include <algorithm>
#include <numeric>

namespace hydraulis::train {

core::StatusOr<std::vector<std::vector<size_t>>> pack_greedy(std::span<const int64_t> positions,
                                                             int64_t cap) {
  if (cap <= 0) return core::invalid_argument("micro-batch token cap {} must be > 0", cap);
  std::vector<size_t> order(positions.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return positions[a] > positions[b]; });
  std::vector<std::vector<size_t>> micro_batches;
  std::vector<int64_t> load;
  for (size_t i : order) {
    if (positions[i] == 0) continue;
    if (positions[i] > cap) {
      return core::invalid_argument(
          "sequence {} has {} positions, more than the micro-batch cap of {} tokens: raise "
          "--micro-batch-tokens or lower --max-seq-len",
          i, positions[i], cap);
    }
    size_t m = 0;
    while (m < load.size() && load[m] + positions[i] > cap) ++m;
    if (m == load.size()) {
      micro_batches.emplace_back();
      load.push_back(0);
    }
    micro_batches[m].push_back(i);
    load[m] += positions[i];
  }
  std::vector<size_t> by_size(micro_batches.size());
  std::iota(by_size.begin(), by_size.end(), size_t{0});
  std::stable_sort(by_size.begin(), by_size.end(),
                   [&](size_t a, size_t b) { return load[a] > load[b]; });
  std::vector<std::vector<size_t>> sorted;
  for (size_t m : by_size) sorted.push_back(std::move(micro_batches[m]));
  return sorted;
}

}  // namespace hydraulis::train
