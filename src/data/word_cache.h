// WordCache: one thread's memo of pre-tokenized words -> token ids for Gpt2Tokenizer::encode.
// An open-addressing table of 32-byte slots (two per cache line) that hold the word's first 8
// bytes and up to 3 ids inline, so that a hit on a typical word touches one cache line; longer
// keys and id lists live in two arenas. Not thread-safe: each thread owns one (tokenizer.cpp).
// Tests: tests/data/tokenizer_test.cpp.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hydraulis::data {

class WordCache {
 public:
  static constexpr size_t kMaxWords = size_t{1} << 18;  // then the cache starts over
  static constexpr size_t kMaxWordBytes = 256;          // longer words are not cached

  // The word's first min(8, size) bytes as a little-endian number, zero padded.
  static uint64_t head_of(std::string_view word) {
    const char* p = word.data();
    const size_t n = word.size();
    uint64_t v = 0;
    if (n >= 8) {
      std::memcpy(&v, p, 8);
    } else if (n >= 4) {  // two overlapping 4-byte loads
      uint32_t lo;
      uint32_t hi;
      std::memcpy(&lo, p, 4);
      std::memcpy(&hi, p + n - 4, 4);
      v = lo | (uint64_t{hi} << (8 * (n - 4)));
    } else {
      for (size_t i = 0; i < n; ++i) v |= uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
    }
    return v;
  }

  static uint64_t hash_of(std::string_view word, uint64_t head) {
    uint64_t h = (head ^ (word.size() * 0x9E3779B97F4A7C15ull)) * 0xFF51AFD7ED558CCDull;
    for (size_t pos = 8; pos < word.size(); pos += 8) {
      uint64_t v = 0;
      std::memcpy(&v, word.data() + pos, std::min<size_t>(8, word.size() - pos));
      h = ((h ^ (h >> 32)) ^ v) * 0xC4CEB9FE1A85EC53ull;
    }
    return h ^ (h >> 29);
  }

  // The cached ids of `word` (valid until the next insert) or an empty span.
  std::span<const int32_t> find(std::string_view word, uint64_t head, uint64_t hash) const {
    if (slots_.empty()) return {};
    const auto tag = static_cast<uint32_t>(hash >> 32);
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key_length == 0) return {};
      if (s.tag == tag && s.key_length == word.size() && s.key_head == head &&
          (word.size() <= 8 ||
           std::memcmp(keys_.data() + s.key_offset + 8, word.data() + 8, word.size() - 8) == 0)) {
        if (s.ids_length <= kInlineIds) return {s.ids, s.ids_length};
        return {ids_.data() + s.ids[0], s.ids_length};
      }
    }
  }

  void insert(std::string_view word, uint64_t head, uint64_t hash, std::span<const int32_t> ids);
  void clear();
  size_t size() const { return count_; }

 private:
  static constexpr uint16_t kInlineIds = 3;
  struct Slot {
    uint32_t tag = 0;         // high half of the hash
    uint16_t key_length = 0;  // 0 marks an empty slot (cached words are never empty)
    uint16_t ids_length = 0;
    uint64_t key_head = 0;         // head_of(word)
    uint32_t key_offset = 0;       // the whole word in keys_, when longer than 8 bytes
    int32_t ids[kInlineIds] = {};  // the ids, or ids[0] = their offset in ids_ when > kInlineIds
  };
  static_assert(sizeof(Slot) == 32);
  void place(const Slot& slot, uint64_t hash);
  void grow();

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t count_ = 0;
  std::string keys_;
  std::vector<int32_t> ids_;
};

}  // namespace hydraulis::data
