// Gpt2Tokenizer: loading and validating vocab.json + merges.txt, encode (pre-tokenizer, per-thread
// word cache, BPE merge loop) and decode. How it matches the reference encoder: docs/tokenizer.md.
// Tests: tests/data/tokenizer_test.cpp; bench: bench/tokenizer/.
#include "data/tokenizer.h"

#include <fmt/format.h>

#include <array>
#include <atomic>
#include <unordered_map>

#include "core/check.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "data/bpe_merges.h"
#include "data/pretokenizer.h"
#include "data/utf8.h"
#include "data/word_cache.h"

namespace hydraulis::data {
namespace {

constexpr const char* kEndOfText = "<|endoftext|>";
constexpr const char* kSameTokenizer =
    "vocab.json and merges.txt must come from the same tokenizer";

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in byte order, so that every token is a printable string.
std::array<uint32_t, 256> byte_to_code_point() {
  std::array<uint32_t, 256> map{};
  uint32_t n = 0;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable =
        (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    map[b] = printable ? b : 256 + n++;
  }
  return map;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

struct ThreadState {
  uint64_t owner = 0;  // serial of the tokenizer whose words are cached
  WordCache cache;
  BpeMerges::Scratch scratch;
  std::vector<int32_t> symbols;
  std::vector<int32_t> word_ids;
};

std::atomic<uint64_t> next_serial{1};

ThreadState& thread_state(uint64_t serial) {
  thread_local ThreadState state;
  if (state.owner != serial) {
    state.cache.clear();
    state.owner = serial;
  }
  return state;
}

// Splits one merges.txt line into its whitespace-separated tokens (at most 3 are kept).
size_t split_tokens(std::string_view line, std::array<std::string_view, 3>& tokens) {
  size_t count = 0;
  size_t pos = 0;
  while (pos < line.size()) {
    while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t' || line[pos] == '\r')) ++pos;
    if (pos == line.size()) break;
    size_t end = pos;
    while (end < line.size() && line[end] != ' ' && line[end] != '\t' && line[end] != '\r') ++end;
    if (count < tokens.size()) tokens[count] = line.substr(pos, end - pos);
    ++count;
    pos = end;
  }
  return count;
}

}  // namespace

struct Gpt2Tokenizer::Impl {
  uint64_t serial = next_serial.fetch_add(1);
  std::array<int32_t, 256> byte_ids{};  // id of each single-byte token
  BpeMerges merges;
  std::string token_bytes;              // raw bytes of every token, concatenated
  std::vector<uint32_t> token_offsets;  // token i is token_bytes[offsets[i], offsets[i + 1])
  int32_t eod = -1;

  void encode_word(std::string_view word, ThreadState& state, std::vector<int32_t>& out) const;
};

namespace {

using Vocab = std::unordered_map<std::string, int32_t>;

core::StatusOr<Vocab> load_vocab(const std::string& path) {
  HYD_ASSIGN_OR_RETURN(core::Json json, core::read_json_file(path));
  if (!json.is_object() || json.empty()) {
    return core::invalid_argument("{}: expected a JSON object of token -> id, got {}", path,
                                  json.is_object() ? "an empty object" : json.type_name());
  }
  Vocab vocab;
  vocab.reserve(json.size());
  std::vector<bool> seen(json.size(), false);
  for (auto it = json.begin(); it != json.end(); ++it) {
    const core::Json& value = it.value();
    if (!value.is_number_integer()) {
      return core::invalid_argument("{}: token \"{}\" has id {}; ids must be integers", path,
                                    it.key(), value.dump());
    }
    const int64_t id = value.get<int64_t>();
    if (id < 0 || id >= static_cast<int64_t>(json.size()) || seen[id]) {
      return core::invalid_argument(
          "{}: token \"{}\" has id {}; the {} ids must be 0..{}, each used once", path, it.key(),
          id, json.size(), json.size() - 1);
    }
    seen[id] = true;
    vocab.emplace(it.key(), static_cast<int32_t>(id));
  }
  return vocab;
}

struct MergeLine {
  std::string left;
  std::string right;
  size_t line;
};

core::StatusOr<std::vector<MergeLine>> load_merge_lines(const std::string& path) {
  HYD_ASSIGN_OR_RETURN(std::string text, core::read_file(path));
  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos <= text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    lines.emplace_back(text.data() + pos, end - pos);
    pos = end + 1;
  }
  if (lines.empty() || !lines[0].starts_with("#version")) {
    return core::invalid_argument(
        "{}:1: expected the header \"#version: 0.2\"; is this a GPT-2 merges.txt (vocab.bpe)?",
        path);
  }
  // As the reference (bpe_file.split('\n').slice(1, -1)), the last line is dropped: it is empty
  // when the file ends with a newline.
  if (!lines.back().empty()) {
    core::log_warn(
        "{}: no newline at the end; its last line \"{}\" is ignored, as the reference "
        "GPT-2 encoders do",
        path, lines.back());
  }
  std::vector<MergeLine> merges;
  merges.reserve(lines.size());
  std::array<std::string_view, 3> tokens;
  for (size_t i = 1; i + 1 < lines.size(); ++i) {
    const size_t count = split_tokens(lines[i], tokens);
    if (count != 2) {
      return core::invalid_argument(
          "{}:{}: expected two tokens separated by a space, got {}: \"{}\"", path, i + 1, count,
          lines[i]);
    }
    merges.push_back({std::string(tokens[0]), std::string(tokens[1]), i + 1});
  }
  return merges;
}

// The reference ranks pairs by the string "left,right" (JavaScript's Array.toString()), so a pair
// whose "x,y" spells the same string as a merge's "a,b" gets that merge's rank too (the pair
// ("\",", "\"") shares "\",,\"" with the merge ("\"", ",\"")). Later duplicate keys overwrite
// earlier ones. This enumerates every such pair of vocabulary tokens for the merge table.
core::StatusOr<std::vector<BpeMerges::Entry>> merge_entries(const std::vector<MergeLine>& lines,
                                                            const Vocab& vocab,
                                                            const std::string& merges_path) {
  std::unordered_map<std::string, uint32_t> rank_of_key;  // "a,b" -> last rank
  rank_of_key.reserve(lines.size());
  for (size_t rank = 0; rank < lines.size(); ++rank) {
    const MergeLine& m = lines[rank];
    for (const std::string* token : {&m.left, &m.right}) {
      if (!vocab.contains(*token)) {
        return core::invalid_argument("{}:{}: token \"{}\" is not in vocab.json; {}", merges_path,
                                      m.line, *token, kSameTokenizer);
      }
    }
    if (!vocab.contains(m.left + m.right)) {
      return core::invalid_argument(
          "{}:{}: merged token \"{}\" (\"{}\" + \"{}\") is not in "
          "vocab.json; {}",
          merges_path, m.line, m.left + m.right, m.left, m.right, kSameTokenizer);
    }
    rank_of_key[m.left + "," + m.right] = static_cast<uint32_t>(rank);
  }
  std::vector<BpeMerges::Entry> entries;
  entries.reserve(rank_of_key.size());
  for (const auto& [key, rank] : rank_of_key) {
    for (size_t comma = key.find(','); comma != std::string::npos;
         comma = key.find(',', comma + 1)) {
      const std::string left = key.substr(0, comma);
      const std::string right = key.substr(comma + 1);
      auto l = vocab.find(left);
      auto r = vocab.find(right);
      if (left.empty() || right.empty() || l == vocab.end() || r == vocab.end()) continue;
      auto merged = vocab.find(left + right);
      if (merged == vocab.end()) {
        return core::invalid_argument(
            "{}:{}: the reference encoder would also merge \"{}\" + \"{}\" (its ranks are keyed by "
            "the string \"{}\"), but \"{}\" is not in vocab.json; {}",
            merges_path, lines[rank].line, left, right, key, left + right, kSameTokenizer);
      }
      entries.push_back({l->second, r->second, {rank, merged->second}});
    }
  }
  return entries;
}

}  // namespace

core::StatusOr<Gpt2Tokenizer> Gpt2Tokenizer::load(const std::string& vocab_path,
                                                  const std::string& merges_path) {
  HYD_ASSIGN_OR_RETURN(Vocab vocab, load_vocab(vocab_path));
  HYD_ASSIGN_OR_RETURN(std::vector<MergeLine> lines, load_merge_lines(merges_path));
  Gpt2Tokenizer tokenizer;
  Impl& impl = *tokenizer.impl_;

  const std::array<uint32_t, 256> byte_cp = byte_to_code_point();
  std::vector<int32_t> code_point_byte(512, -1);  // inverse of byte_cp (all below 512)
  for (uint32_t b = 0; b < 256; ++b) {
    std::string token;
    append_utf8(token, byte_cp[b]);
    auto it = vocab.find(token);
    if (it == vocab.end()) {
      return core::invalid_argument(
          "{}: the byte token \"{}\" (byte 0x{:02X}) is missing; a GPT-2 byte-level vocabulary "
          "has all 256 byte tokens",
          vocab_path, token, b);
    }
    impl.byte_ids[b] = it->second;
    code_point_byte[byte_cp[b]] = static_cast<int32_t>(b);
  }
  auto eod = vocab.find(kEndOfText);
  if (eod == vocab.end()) {
    return core::invalid_argument("{}: no \"{}\" token (the end-of-document id)", vocab_path,
                                  kEndOfText);
  }
  impl.eod = eod->second;

  // Raw bytes of each token: map its characters back through the byte alphabet; a character
  // outside it (added special tokens) is kept as its UTF-8.
  std::vector<std::string_view> raw(vocab.size());
  for (const auto& [token, id] : vocab) raw[id] = token;
  impl.token_offsets.reserve(vocab.size() + 1);
  impl.token_offsets.push_back(0);
  for (std::string_view token : raw) {
    for (size_t pos = 0; pos < token.size();) {
      const Utf8Char c = decode_utf8(token, pos);
      if (c.code_point < code_point_byte.size() && code_point_byte[c.code_point] >= 0) {
        impl.token_bytes += static_cast<char>(code_point_byte[c.code_point]);
      } else {
        impl.token_bytes.append(token.substr(pos, c.length));
      }
      pos += c.length;
    }
    impl.token_offsets.push_back(static_cast<uint32_t>(impl.token_bytes.size()));
  }

  HYD_ASSIGN_OR_RETURN(auto entries, merge_entries(lines, vocab, merges_path));
  impl.merges = BpeMerges(entries);
  return tokenizer;
}

Gpt2Tokenizer::Gpt2Tokenizer() : impl_(std::make_unique<Impl>()) {}
Gpt2Tokenizer::~Gpt2Tokenizer() = default;
Gpt2Tokenizer::Gpt2Tokenizer(Gpt2Tokenizer&&) noexcept = default;
Gpt2Tokenizer& Gpt2Tokenizer::operator=(Gpt2Tokenizer&&) noexcept = default;

void Gpt2Tokenizer::Impl::encode_word(std::string_view word, ThreadState& state,
                                      std::vector<int32_t>& out) const {
  if (word.size() == 1) {
    out.push_back(byte_ids[static_cast<unsigned char>(word[0])]);
    return;
  }
  const bool cacheable = word.size() <= WordCache::kMaxWordBytes;
  const uint64_t head = WordCache::head_of(word);
  const uint64_t hash = cacheable ? WordCache::hash_of(word, head) : 0;
  if (cacheable) {
    std::span<const int32_t> hit = state.cache.find(word, head, hash);
    if (!hit.empty()) {
      out.insert(out.end(), hit.begin(), hit.end());
      return;
    }
  }
  state.symbols.clear();
  for (char b : word) state.symbols.push_back(byte_ids[static_cast<unsigned char>(b)]);
  state.word_ids.clear();
  merges.merge_word(state.symbols, state.scratch, state.word_ids);
  if (cacheable) state.cache.insert(word, head, hash, state.word_ids);
  out.insert(out.end(), state.word_ids.begin(), state.word_ids.end());
}

void Gpt2Tokenizer::encode(std::string_view text, std::vector<int32_t>& out) const {
  HYD_CHECK(impl_ != nullptr, "encode() on a moved-from Gpt2Tokenizer");
  ThreadState& state = thread_state(impl_->serial);
  for (size_t pos = 0; pos < text.size();) {
    const size_t end = pretokenize_word_end(text, pos);
    impl_->encode_word(text.substr(pos, end - pos), state, out);
    pos = end;
  }
}

std::vector<int32_t> Gpt2Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 1);
  encode(text, out);
  return out;
}

core::StatusOr<std::string> Gpt2Tokenizer::decode(std::span<const int32_t> ids) const {
  HYD_CHECK(impl_ != nullptr, "decode() on a moved-from Gpt2Tokenizer");
  const auto& offsets = impl_->token_offsets;
  const int32_t size = vocab_size();
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= size) {
      return core::out_of_range("token id {} at position {} is outside the vocabulary (0..{})", id,
                                i, size - 1);
    }
    out.append(impl_->token_bytes, offsets[id], offsets[id + 1] - offsets[id]);
  }
  return out;
}

int32_t Gpt2Tokenizer::vocab_size() const {
  HYD_CHECK(impl_ != nullptr, "vocab_size() on a moved-from Gpt2Tokenizer");
  return static_cast<int32_t>(impl_->token_offsets.empty() ? 0 : impl_->token_offsets.size() - 1);
}

int32_t Gpt2Tokenizer::eod_id() const {
  HYD_CHECK(impl_ != nullptr, "eod_id() on a moved-from Gpt2Tokenizer");
  return impl_->eod;
}

void Gpt2Tokenizer::clear_thread_cache() const {
  HYD_CHECK(impl_ != nullptr, "clear_thread_cache() on a moved-from Gpt2Tokenizer");
  thread_state(impl_->serial).cache.clear();
}

}  // namespace hydraulis::data
