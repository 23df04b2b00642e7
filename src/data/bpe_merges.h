// The BPE merge table and merge loop of the GPT-2 tokenizer: a flat open-addressing hash map
// (left id, right id) -> (rank, merged id), and merge_word(), which applies the merges to one
// pre-tokenized word exactly as the reference encoder's bpe() does, in O(n log n) and without
// allocating once its thread's scratch buffers have grown. Tests: tests/data/tokenizer_test.cpp
// (against a direct port of the reference loop and against node).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace hydraulis::data {

class BpeMerges {
 public:
  struct Merge {
    uint32_t rank;   // lower merges first
    int32_t merged;  // id of the token left+right
  };
  struct Entry {
    int32_t left;
    int32_t right;
    Merge merge;
  };
  // One heap entry per adjacent pair of a word: the pair (left, right) at symbol `pos`.
  struct PairAt {
    uint32_t rank;
    uint32_t pos;
    int32_t left;
    int32_t right;
  };
  // Reusable buffers of one thread (never shared between threads).
  struct Scratch {
    std::vector<int32_t> id;    // symbol id at each start position; -1 once merged into its left
    std::vector<int32_t> next;  // next live symbol or -1
    std::vector<int32_t> prev;  // previous live symbol or -1
    std::vector<PairAt> heap;   // min-heap by (rank, pos)
    std::vector<PairAt> pass;   // pairs of the current rank, by position
    std::vector<PairAt> pending;
  };

  BpeMerges() = default;
  // `entries` must have unique (left, right) keys.
  explicit BpeMerges(const std::vector<Entry>& entries);

  const Merge* find(int32_t left, int32_t right) const {
    const uint64_t key = pack(left, right);
    for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.merge;
      if (s.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

  // Appends the ids that the byte-token ids `symbols` merge into.
  void merge_word(std::span<const int32_t> symbols, Scratch& scratch,
                  std::vector<int32_t>& out) const;

 private:
  struct Slot {
    uint64_t key;
    Merge merge;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // ids are >= 0, so no pair packs to this
  static uint64_t pack(int32_t left, int32_t right) {
    return (uint64_t{static_cast<uint32_t>(left)} << 32) | static_cast<uint32_t>(right);
  }
  size_t slot_of(uint64_t key) const {
    return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_);
  }

  std::vector<Slot> slots_ = std::vector<Slot>(2, Slot{kEmpty, {0, 0}});
  size_t mask_ = 1;
  unsigned shift_ = 63;  // 64 - log2(slots_.size())
  size_t size_ = 0;
};

}  // namespace hydraulis::data
