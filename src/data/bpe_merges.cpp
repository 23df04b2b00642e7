// BPE merge loop, equal to the reference encoder's bpe() (gpt-3-encoder Encoder.js):
//   repeat: among the word's adjacent pairs take the lowest rank; on a tie between different
//   pairs (possible only through the reference's "a,b" string keys, see tokenizer.cpp) the
//   rightmost pair wins; merge every occurrence of exactly that pair, left to right without
//   overlap, among the pairs that existed when the pass began; stop when no pair has a rank.
// Here each pass pops all pairs of the lowest rank from a min-heap ordered by (rank, position);
// pairs created by a pass enter the heap only after it, as in the reference.
// Worked example, merges (a a)=0, (aa a)=1: "a a a" -> pass rank 0 merges at 0, skips 1 (its
// left symbol was consumed) -> "aa a" -> pass rank 1 -> "aaa".
#include "data/bpe_merges.h"

#include <algorithm>
#include <bit>

#include "core/check.h"

namespace hydraulis::data {
namespace {

// Min-heap order for std::push_heap/pop_heap (which build max-heaps): lowest (rank, pos) on top.
struct HeapAfter {
  bool operator()(const BpeMerges::PairAt& a, const BpeMerges::PairAt& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  }
};
constexpr HeapAfter heap_after;

}  // namespace

BpeMerges::BpeMerges(const std::vector<Entry>& entries) {
  const size_t capacity = std::bit_ceil(std::max<size_t>(2, entries.size() * 2));
  slots_.assign(capacity, Slot{kEmpty, {0, 0}});
  mask_ = capacity - 1;
  shift_ = 64 - static_cast<unsigned>(std::countr_zero(capacity));
  for (const Entry& e : entries) {
    HYD_CHECK(e.left >= 0 && e.right >= 0, "negative id in merge ({}, {})", e.left, e.right);
    const uint64_t key = pack(e.left, e.right);
    size_t i = slot_of(key);
    while (slots_[i].key != kEmpty) {
      HYD_CHECK(slots_[i].key != key, "duplicate merge ({}, {})", e.left, e.right);
      i = (i + 1) & mask_;
    }
    slots_[i] = Slot{key, e.merge};
  }
  size_ = entries.size();
}

void BpeMerges::merge_word(std::span<const int32_t> symbols, Scratch& s,
                           std::vector<int32_t>& out) const {
  const auto n = static_cast<int32_t>(symbols.size());
  if (n <= 1) {
    out.insert(out.end(), symbols.begin(), symbols.end());
    return;
  }
  s.id.assign(symbols.begin(), symbols.end());
  s.next.resize(n);
  s.prev.resize(n);
  s.heap.clear();
  for (int32_t i = 0; i < n; ++i) {
    s.next[i] = i + 1 < n ? i + 1 : -1;
    s.prev[i] = i - 1;
    if (i + 1 < n) {
      if (const Merge* m = find(s.id[i], s.id[i + 1])) {
        s.heap.push_back({m->rank, static_cast<uint32_t>(i), s.id[i], s.id[i + 1]});
      }
    }
  }
  std::make_heap(s.heap.begin(), s.heap.end(), heap_after);
  // A heap entry is stale once either of its symbols has changed (merged ids never repeat a
  // position's earlier id: a merged token is longer than both of its parts).
  auto current = [&s](const PairAt& p) {
    const int32_t right = s.next[p.pos];
    return s.id[p.pos] == p.left && right >= 0 && s.id[right] == p.right;
  };
  auto push_pair = [&](int32_t left_pos, int32_t right_pos) {
    if (const Merge* m = find(s.id[left_pos], s.id[right_pos])) {
      s.pending.push_back(
          {m->rank, static_cast<uint32_t>(left_pos), s.id[left_pos], s.id[right_pos]});
    }
  };
  while (!s.heap.empty()) {
    const uint32_t rank = s.heap.front().rank;
    s.pass.clear();
    while (!s.heap.empty() && s.heap.front().rank == rank) {
      std::pop_heap(s.heap.begin(), s.heap.end(), heap_after);
      if (current(s.heap.back())) s.pass.push_back(s.heap.back());
      s.heap.pop_back();
    }
    if (s.pass.empty()) continue;
    // The reference keeps the last pair (rightmost) of the lowest rank and merges its content.
    const int32_t left = s.pass.back().left;
    const int32_t right = s.pass.back().right;
    const int32_t merged = find(left, right)->merged;
    s.pending.clear();
    for (const PairAt& p : s.pass) {
      if (p.left != left || p.right != right) {
        s.pending.push_back(p);  // same rank, other content: a later pass decides
        continue;
      }
      if (!current(p)) continue;  // its left symbol was consumed by the previous merge
      const auto pos = static_cast<int32_t>(p.pos);
      const int32_t consumed = s.next[pos];
      const int32_t after = s.next[consumed];
      s.id[pos] = merged;
      s.id[consumed] = -1;
      s.next[pos] = after;
      if (after >= 0) s.prev[after] = pos;
      if (s.prev[pos] >= 0) push_pair(s.prev[pos], pos);
      if (after >= 0) push_pair(pos, after);
    }
    for (const PairAt& p : s.pending) {
      s.heap.push_back(p);
      std::push_heap(s.heap.begin(), s.heap.end(), heap_after);
    }
  }
  for (int32_t i = 0; i >= 0; i = s.next[i]) out.push_back(s.id[i]);
}

}  // namespace hydraulis::data
