// WordCache insertion, growth (rehash from the stored keys) and reset; lookups are inline in
// word_cache.h. Tests: tests/data/tokenizer_test.cpp.
#include "data/word_cache.h"

#include <algorithm>

#include "core/check.h"

namespace hydraulis::data {

void WordCache::insert(std::string_view word, uint64_t head, uint64_t hash,
                       std::span<const int32_t> ids) {
  HYD_CHECK(!word.empty() && word.size() <= kMaxWordBytes && !ids.empty(),
            "word of {} bytes with {} ids", word.size(), ids.size());
  if (count_ >= kMaxWords) clear();
  if ((count_ + 1) * 2 > slots_.size()) grow();
  Slot slot;
  slot.tag = static_cast<uint32_t>(hash >> 32);
  slot.key_length = static_cast<uint16_t>(word.size());
  slot.ids_length = static_cast<uint16_t>(ids.size());
  slot.key_head = head;
  if (word.size() > 8) {
    slot.key_offset = static_cast<uint32_t>(keys_.size());
    keys_.append(word);
  }
  if (ids.size() <= kInlineIds) {
    std::copy(ids.begin(), ids.end(), slot.ids);
  } else {
    slot.ids[0] = static_cast<int32_t>(ids_.size());
    ids_.insert(ids_.end(), ids.begin(), ids.end());
  }
  place(slot, hash);
  ++count_;
}

void WordCache::clear() {
  std::fill(slots_.begin(), slots_.end(), Slot{});
  keys_.clear();
  ids_.clear();
  count_ = 0;
}

void WordCache::place(const Slot& slot, uint64_t hash) {
  size_t i = hash & mask_;
  while (slots_[i].key_length != 0) i = (i + 1) & mask_;
  slots_[i] = slot;
}

void WordCache::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.empty() ? 1024 : old.size() * 2, Slot{});
  mask_ = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.key_length == 0) continue;
    // Recompute the hash from the key: its head, or the whole word in keys_.
    char head_bytes[8];
    std::memcpy(head_bytes, &s.key_head, 8);
    const std::string_view word = s.key_length <= 8
                                      ? std::string_view(head_bytes, s.key_length)
                                      : std::string_view(keys_.data() + s.key_offset, s.key_length);
    place(s, hash_of(word, s.key_head));
  }
}

}  // namespace hydraulis::data
