// Gpt2Tokenizer against the reference encoder (npm gpt-3-encoder run by node at test time via
// tools/node/reference_encode.js) on 2,000 documents of the demo corpora and on seeded random
// Unicode text; the merge loop against a direct C++ port of the reference bpe(); UTF-8 handling
// against node's decoder; every load() error. Needs data/ and node (scripts/setup.sh).
#include "data/tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <thread>
#include <unordered_map>

#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "data/pretokenizer.h"
#include "data/unicode_tables.h"
#include "data/utf8.h"

namespace hydraulis::data {
namespace {

namespace fs = std::filesystem;
using core::Json;

std::string source_dir() {
  const char* dir = std::getenv("HYD_SOURCE_DIR");
  return dir != nullptr ? dir : ".";
}
std::string vocab_path() {
  return source_dir() + "/data/gpt2/vocab.json";
}
std::string merges_path() {
  return source_dir() + "/data/gpt2/merges.txt";
}

std::string temp_dir() {
  fs::path dir = fs::temp_directory_path() / fmt::format("hyd_tokenizer_test_{}", ::getpid());
  fs::create_directories(dir);
  return dir.string();
}

void write_text(const std::string& path, std::string_view text) {
  ASSERT_TRUE(core::write_file_atomic(path, text).is_ok()) << path;
}

// Runs tools/node/reference_encode.js <mode> <input> and returns its output lines.
std::vector<std::string> run_reference(const std::string& mode, const std::string& input) {
  const std::string output = input + "." + mode + ".out";
  const std::string command = fmt::format("node '{}/tools/node/reference_encode.js' {} '{}' > '{}'",
                                          source_dir(), mode, input, output);
  const int rc = std::system(command.c_str());
  EXPECT_EQ(rc, 0) << command << " failed; node and tools/node/node_modules come from "
                   << "scripts/setup.sh";
  std::vector<std::string> lines;
  auto text = core::read_file(output);
  if (!text.is_ok()) return lines;
  for (size_t pos = 0; pos < text->size();) {
    size_t end = text->find('\n', pos);
    if (end == std::string::npos) end = text->size();
    lines.push_back(text->substr(pos, end - pos));
    pos = end + 1;
  }
  return lines;
}

// Writes `docs` as {"content": ...} JSONL for the reference script.
std::string write_docs(const std::vector<std::string>& docs, const std::string& name) {
  std::string jsonl;
  for (const std::string& doc : docs) jsonl += Json{{"content", doc}}.dump() + "\n";
  const std::string path = temp_dir() + "/" + name;
  write_text(path, jsonl);
  return path;
}

// JSON string form of any bytes (invalid UTF-8 shown as U+FFFD), for failure messages.
std::string printable(std::string_view bytes) {
  return Json(std::string(bytes)).dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::vector<int32_t> parse_ids(const std::string& line) {
  std::vector<int32_t> ids;
  auto json = core::parse_json(line, "reference output");
  if (!json.is_ok() || !json->is_array()) {
    ADD_FAILURE() << "reference output is not an array of ids: " << line.substr(0, 200);
    return ids;
  }
  for (const Json& v : *json) {
    if (!v.is_number_integer()) {
      ADD_FAILURE() << "reference output holds a non-id (a token missing from its vocabulary): "
                    << line.substr(0, 200);
      return ids;
    }
    ids.push_back(v.get<int32_t>());
  }
  return ids;
}

const Gpt2Tokenizer& gpt2() {
  static const Gpt2Tokenizer* tokenizer = [] {
    auto loaded = Gpt2Tokenizer::load(vocab_path(), merges_path());
    if (!loaded.is_ok()) {
      ADD_FAILURE() << loaded.status().to_string() << " (run scripts/setup.sh)";
      return new Gpt2Tokenizer();
    }
    return new Gpt2Tokenizer(std::move(loaded).value());
  }();
  return *tokenizer;
}

// Compares our ids with the reference's for each doc; reports the first mismatches with context.
void expect_reference_ids(const std::vector<std::string>& docs, const std::string& name) {
  const std::vector<std::string> lines = run_reference("encode", write_docs(docs, name));
  ASSERT_EQ(lines.size(), docs.size());
  int failures = 0;
  for (size_t d = 0; d < docs.size() && failures < 5; ++d) {
    const std::vector<int32_t> expected = parse_ids(lines[d]);
    const std::vector<int32_t> ours = gpt2().encode(docs[d]);
    if (ours == expected) continue;
    ++failures;
    size_t i = 0;
    while (i < ours.size() && i < expected.size() && ours[i] == expected[i]) ++i;
    auto piece = [](const std::vector<int32_t>& ids, size_t at) {
      std::vector<int32_t> window(ids.begin() + std::min(at, ids.size()),
                                  ids.begin() + std::min(at + 8, ids.size()));
      auto text = gpt2().decode(window);
      return fmt::format("{} {}", Json(window).dump(), printable(text.is_ok() ? *text : "?"));
    };
    ADD_FAILURE() << name << " doc " << d << ": first difference at token " << i << " of "
                  << expected.size() << "\n  reference: " << piece(expected, i)
                  << "\n  ours:      " << piece(ours, i);
  }
}

// ---- the demo corpora ---------------------------------------------------------------------------

// `count` evenly spaced documents of a JSONL corpus, each cut to at most `cap` bytes (at a
// character boundary, so the text stays valid UTF-8).
std::vector<std::string> corpus_sample(const std::string& path, size_t count, size_t cap) {
  std::vector<std::string> docs;
  auto text = core::read_file(path);
  EXPECT_TRUE(text.is_ok()) << text.status().to_string() << " (run scripts/setup.sh)";
  if (!text.is_ok()) return docs;
  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos < text->size();) {
    size_t end = text->find('\n', pos);
    if (end == std::string::npos) end = text->size();
    if (end > pos) lines.emplace_back(text->data() + pos, end - pos);
    pos = end + 1;
  }
  const size_t n = std::min(count, lines.size());
  for (size_t k = 0; k < n; ++k) {
    const size_t index = k * lines.size() / n;
    auto json = core::parse_json(lines[index], path);
    EXPECT_TRUE(json.is_ok()) << json.status().to_string();
    if (!json.is_ok()) continue;
    std::string content = (*json)["content"].get<std::string>();
    if (content.size() > cap) {
      size_t cut = cap;
      while (cut > 0 && (static_cast<unsigned char>(content[cut]) & 0xC0) == 0x80) --cut;
      content.resize(cut);
    }
    docs.push_back(sanitize_utf8(content));
  }
  return docs;
}

constexpr size_t kDocsPerCorpus = 1000;
constexpr size_t kDocCapBytes = 1500;

TEST(Gpt2Tokenizer, EqualsReferenceOnWebCorpus) {
  auto docs = corpus_sample(source_dir() + "/data/corpora/web.jsonl", kDocsPerCorpus, kDocCapBytes);
  ASSERT_EQ(docs.size(), kDocsPerCorpus);
  expect_reference_ids(docs, "web.jsonl");
}

TEST(Gpt2Tokenizer, EqualsReferenceOnCodeCorpus) {
  auto docs =
      corpus_sample(source_dir() + "/data/corpora/code.jsonl", kDocsPerCorpus, kDocCapBytes);
  ASSERT_EQ(docs.size(), kDocsPerCorpus);
  expect_reference_ids(docs, "code.jsonl");
}

// ---- hand-written and random Unicode text -------------------------------------------------------

TEST(Gpt2Tokenizer, KnownIds) {
  const Gpt2Tokenizer& t = gpt2();
  EXPECT_EQ(t.vocab_size(), 50257);
  EXPECT_EQ(t.eod_id(), 50256);
  using Ids = std::vector<int32_t>;
  EXPECT_EQ(t.encode("Hello world"), (Ids{15496, 995}));
  EXPECT_EQ(t.encode("I'm here, DON'T go!"), (Ids{40, 1101, 994, 11, 23917, 6, 51, 467, 0}));
  EXPECT_EQ(t.encode("a  b  \n\n\t x"), (Ids{64, 220, 275, 220, 220, 628, 197, 2124}));
  EXPECT_EQ(t.encode("12345 3.14"), (Ids{10163, 2231, 513, 13, 1415}));
  EXPECT_EQ(t.encode("\xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD"),  // 😀👍🏽
            (Ids{47249, 222, 41840, 235, 8582, 237, 121}));
  EXPECT_EQ(t.encode("x\xC2\xA0y\xEF\xBB\xBFz"), (Ids{87, 1849, 88, 171, 119, 123, 89}));
  EXPECT_EQ(t.encode("<|endoftext|>"), (Ids{27, 91, 437, 1659, 5239, 91, 29}));  // plain text
  EXPECT_EQ(t.encode("\",\"\","), (Ids{2430, 1600}));
  EXPECT_EQ(t.encode(""), Ids{});
}

const std::vector<std::string>& hand_written_cases() {
  static const std::vector<std::string> cases = {
      "a  b",
      "trailing spaces   ",
      "\n\n\t x",
      "  leading",
      " ",
      "\t",
      "\r\n\r\n",
      "a\n\nb",
      "I'm",
      "DON'T",
      "we'll they've you're he'd it's I'M 'S 'tis rock'n'roll ''s",
      "' s",
      "123 4567 89.0 1,000,000 ½ Ⅻ ٣٤",
      "x1y2z3",
      "3rd 2nd",
      "emoji 😀🎉👍🏽 👨‍👩‍👧",
      "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐐀𐐁",
      "中文字符和日本語のテキスト、한국어",
      "e\xCC\x81 \xCC\x81x",  // combining marks
      "nbsp\xC2\xA0here \xC2\xA0x",
      "bom\xEF\xBB\xBFhere \xEF\xBB\xBF",
      "em\xE2\x80\x83space",
      "ideo\xE3\x80\x80space",
      "line\xE2\x80\xA8sep",
      "nel\xC2\x85x zwsp\xE2\x80\x8Bx",
      "\x0B\x0C\x1F\x7F",
      "tab\t\tx",
      "مرحبا بالعالم",
      "Привет, мир!",
      "αβγ δ",
      "ﬁ ﬂ",
      "    indented code();\n\t\treturn x;\n",
      "a,b,,c,,,,d ,,,,,,,, \",\"\",",
      "{\"a\":[1,2]}",
      "\"],\"\"}],\"",
      "������",
      "\xEF\xBF\xBD\xEF\xBF\xBD",
  };
  return cases;
}

TEST(Gpt2Tokenizer, EqualsReferenceOnHandWrittenCases) {
  expect_reference_ids(hand_written_cases(), "hand_written.jsonl");
}

// Seeded random strings built from pieces that exercise every branch of the regex.
std::vector<std::string> random_unicode_texts(size_t count, uint32_t seed) {
  static const char* kPieces[] = {"a",
                                  "Z",
                                  "é",
                                  "ß",
                                  "Ж",
                                  "中",
                                  "日本",
                                  "한",
                                  "ا",
                                  "1",
                                  "9",
                                  "٣",
                                  "Ⅻ",
                                  "½",
                                  " ",
                                  "  ",
                                  "\t",
                                  "\n",
                                  "\r\n",
                                  "\xC2\xA0",
                                  "\xEF\xBB\xBF",
                                  "\xE2\x80\x83",
                                  "\xE3\x80\x80",
                                  "\xE2\x80\xA8",
                                  "\xE1\x9A\x80",
                                  "\xE2\x80\xAF",
                                  "\xE2\x81\x9F",
                                  "\xE2\x80\x8B",
                                  "\xC2\x85",
                                  "'",
                                  "'s",
                                  "'S",
                                  "'ll",
                                  "'re",
                                  "'ve",
                                  "'d",
                                  "'m",
                                  "'t",
                                  "n't",
                                  ",",
                                  ".",
                                  "!",
                                  "?",
                                  "\"",
                                  "(",
                                  "){",
                                  "=",
                                  ":",
                                  "-",
                                  "_",
                                  "😀",
                                  "👍🏽",
                                  "𝔘",
                                  "𐐀",
                                  "\xCC\x81",
                                  "e\xCC\x81",
                                  "\xE2\x80\x8D",
                                  "\x0B",
                                  "\x0C",
                                  "\x1F",
                                  "\x7F",
                                  "the",
                                  " the",
                                  "ing",
                                  "\xEF\xBF\xBD"};
  constexpr size_t kCount = sizeof(kPieces) / sizeof(kPieces[0]);
  std::mt19937 rng(seed);
  std::vector<std::string> texts;
  for (size_t i = 0; i < count; ++i) {
    std::string text;
    const size_t pieces = 1 + rng() % 40;
    for (size_t p = 0; p < pieces; ++p) text += kPieces[rng() % kCount];
    texts.push_back(text);
  }
  return texts;
}

TEST(Gpt2Tokenizer, EqualsReferenceOnRandomUnicode) {
  expect_reference_ids(random_unicode_texts(400, 7), "random_unicode.jsonl");
}

TEST(Pretokenizer, SplitsLikeTheReferenceRegex) {
  std::vector<std::string> texts = hand_written_cases();
  for (std::string& text : random_unicode_texts(200, 11)) texts.push_back(std::move(text));
  const std::vector<std::string> lines = run_reference("split", write_docs(texts, "split.jsonl"));
  ASSERT_EQ(lines.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<std::string> ours;
    for (size_t pos = 0; pos < texts[i].size();) {
      const size_t end = pretokenize_word_end(texts[i], pos);
      ours.push_back(texts[i].substr(pos, end - pos));
      pos = end;
    }
    EXPECT_EQ(Json(ours).dump(), lines[i]) << "text " << i << ": " << Json(texts[i]).dump();
  }
}

TEST(UnicodeTables, ClassesOfSampleCodePoints) {
  for (uint32_t b = 0; b < 128; ++b) {
    const bool letter = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z');
    const bool number = b >= '0' && b <= '9';
    const bool space = b == ' ' || (b >= '\t' && b <= '\r');
    const CharClass expected = letter   ? CharClass::kLetter
                               : number ? CharClass::kNumber
                               : space  ? CharClass::kSpace
                                        : CharClass::kOther;
    EXPECT_EQ(char_class(b), expected) << b;
  }
  EXPECT_EQ(char_class(0x00A0), CharClass::kSpace);  // NBSP
  EXPECT_EQ(char_class(0xFEFF), CharClass::kSpace);  // BOM is \s in JavaScript
  EXPECT_EQ(char_class(0x3000), CharClass::kSpace);
  EXPECT_EQ(char_class(0x0085), CharClass::kOther);    // NEL is not \s in JavaScript
  EXPECT_EQ(char_class(0x200B), CharClass::kOther);    // zero-width space neither
  EXPECT_EQ(char_class(0x0301), CharClass::kOther);    // combining acute (Mn)
  EXPECT_EQ(char_class(0x4E2D), CharClass::kLetter);   // 中
  EXPECT_EQ(char_class(0x1D518), CharClass::kLetter);  // 𝔘
  EXPECT_EQ(char_class(0x10400), CharClass::kLetter);  // 𐐀
  EXPECT_EQ(char_class(0x0663), CharClass::kNumber);   // ٣
  EXPECT_EQ(char_class(0x216B), CharClass::kNumber);   // Ⅻ (Nl)
  EXPECT_EQ(char_class(0x1F600), CharClass::kOther);   // 😀
  EXPECT_EQ(char_class(0x10FFFF), CharClass::kOther);
}

// ---- the merge loop against a direct port of the reference bpe() --------------------------------

// The reference algorithm over strings, with ranks keyed by "left,right" as in Encoder.js.
class ReferenceBpe {
 public:
  ReferenceBpe(const std::string& vocab_file, const std::string& merges_file) {
    auto vocab = core::read_json_file(vocab_file);
    EXPECT_TRUE(vocab.is_ok());
    for (auto it = vocab->begin(); it != vocab->end(); ++it) encoder_[it.key()] = it.value();
    auto merges = core::read_file(merges_file);
    EXPECT_TRUE(merges.is_ok());
    size_t pos = merges->find('\n') + 1;
    for (int rank = 0; pos < merges->size(); ++rank) {
      const size_t end = merges->find('\n', pos);
      const std::string line = merges->substr(pos, end - pos);
      const size_t space = line.find(' ');
      ranks_[line.substr(0, space) + "," + line.substr(space + 1)] = rank;
      pos = end + 1;
    }
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const int cp = printable ? b : 256 + n++;
      byte_chars_[b] = cp < 0x80 ? std::string(1, static_cast<char>(cp))
                                 : std::string{static_cast<char>(0xC0 | (cp >> 6)),
                                               static_cast<char>(0x80 | (cp & 0x3F))};
    }
  }

  std::vector<int32_t> encode_word(std::string_view bytes) const {
    std::vector<std::string> word;
    for (char b : bytes) word.push_back(byte_chars_[static_cast<unsigned char>(b)]);
    while (word.size() > 1) {
      std::map<int64_t, std::pair<std::string, std::string>> min_pairs;  // later pairs overwrite
      for (size_t i = 0; i + 1 < word.size(); ++i) {
        auto it = ranks_.find(word[i] + "," + word[i + 1]);
        min_pairs[it == ranks_.end() ? int64_t{100000000000} : it->second] = {word[i], word[i + 1]};
      }
      const auto& [first, second] = min_pairs.begin()->second;
      if (!ranks_.contains(first + "," + second)) break;
      std::vector<std::string> merged;
      for (size_t i = 0; i < word.size();) {
        if (word[i] == first && i + 1 < word.size() && word[i + 1] == second) {
          merged.push_back(first + second);
          i += 2;
        } else {
          merged.push_back(word[i]);
          i += 1;
        }
      }
      word = std::move(merged);
    }
    std::vector<int32_t> ids;
    for (const std::string& token : word) {
      auto it = encoder_.find(token);
      ids.push_back(it == encoder_.end() ? -1 : it->second);
    }
    return ids;
  }

 private:
  std::unordered_map<std::string, int32_t> encoder_;
  std::unordered_map<std::string, int64_t> ranks_;
  std::string byte_chars_[256];
};

TEST(BpeMerges, EqualsReferencePortOnPunctuationWords) {
  // Words of one "other" run, rich in the commas and quotes whose "a,b" rank keys collide.
  const ReferenceBpe reference(vocab_path(), merges_path());
  const std::string alphabet = ",,,\"\"\"{}[]:.)('-";
  std::mt19937 rng(3);
  std::vector<std::string> words;
  for (int i = 0; i < 3000; ++i) {
    std::string word;
    const size_t length = 1 + rng() % 24;
    for (size_t k = 0; k < length; ++k) word += alphabet[rng() % alphabet.size()];
    words.push_back(word);
  }
  for (const std::string& word : words) {
    ASSERT_EQ(gpt2().encode(word), reference.encode_word(word)) << word;
  }
  expect_reference_ids(std::vector<std::string>(words.begin(), words.begin() + 500),
                       "punctuation.jsonl");
}

TEST(BpeMerges, EqualsReferencePortOnCorpusWords) {
  const ReferenceBpe reference(vocab_path(), merges_path());
  auto docs = corpus_sample(source_dir() + "/data/corpora/code.jsonl", 100, 20000);
  size_t words = 0;
  for (const std::string& doc : docs) {
    for (size_t pos = 0; pos < doc.size();) {
      const size_t end = pretokenize_word_end(doc, pos);
      const std::string_view word(doc.data() + pos, end - pos);
      ASSERT_EQ(gpt2().encode(word), reference.encode_word(word)) << word;
      pos = end;
      ++words;
    }
  }
  EXPECT_GT(words, 10000u);
}

// ---- invalid UTF-8 ------------------------------------------------------------------------------

std::string random_bytes(std::mt19937& rng, size_t length) {
  std::string s;
  for (size_t i = 0; i < length; ++i) {
    const uint32_t r = rng() % 4;
    // Mix ASCII (letters, spaces, apostrophes) with lead and continuation bytes.
    s += static_cast<char>(r == 0   ? "a 's\n1,"[rng() % 7]
                           : r == 1 ? 0x80 + rng() % 64
                           : r == 2 ? 0xC0 + rng() % 64
                                    : rng() % 256);
  }
  return s;
}

TEST(Gpt2Tokenizer, RoundTripsArbitraryBytes) {
  std::mt19937 rng(5);
  for (int i = 0; i < 2000; ++i) {
    const std::string text = random_bytes(rng, rng() % 120);
    const std::vector<int32_t> ids = gpt2().encode(text);
    auto decoded = gpt2().decode(ids);
    ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
    ASSERT_EQ(*decoded, text) << Json(sanitize_utf8(text)).dump();
  }
  // Each byte of an invalid sequence is one "other" character: it joins runs of punctuation
  // (and an optional leading space) and ends runs of letters.
  EXPECT_EQ(pretokenize_word_end("!\xFF!a", 0), 3u);
  EXPECT_EQ(pretokenize_word_end(" \xE2\x82!", 0), 4u);
  EXPECT_EQ(pretokenize_word_end("ab\xC3 b", 0), 2u);
  EXPECT_EQ(pretokenize_word_end("\xC3\xC3"
                                 "a",
                                 0),
            2u);
  EXPECT_EQ(pretokenize_word_end("\xF0\x9F\x98\x80\xF0\x9F", 0), 6u);  // 😀 + 2 bytes of one
  using Ids = std::vector<int32_t>;
  EXPECT_EQ(gpt2().encode("a\xC3"), (Ids{64, 127}));  // 'a', then the lone byte 0xC3 ("Ã")
}

TEST(Gpt2Tokenizer, DecodesValidTextBack) {
  for (const std::string& text : hand_written_cases()) {
    EXPECT_EQ(*gpt2().decode(gpt2().encode(text)), text);
  }
  const std::vector<int32_t> bad = {15496, 50257};
  auto decoded = gpt2().decode(bad);
  ASSERT_FALSE(decoded.is_ok());
  EXPECT_NE(decoded.status().message().find("token id 50257 at position 1"), std::string::npos)
      << decoded.status().message();
}

std::string to_hex(std::string_view bytes) {
  std::string hex;
  for (unsigned char b : bytes) hex += fmt::format("{:02x}", b);
  return hex;
}

TEST(Utf8, SanitizeEqualsNodeDecoding) {
  std::vector<std::string> inputs = {
      "\x80",
      "\xBF",
      "\xC0\x80",
      "\xC1\xBF",
      "\xC2",
      "\xC2\x41",
      "\xE2\x82",
      "\xE2\x82\x41",
      "\xE2\x82\xAC",
      "\xE0\x80\x80",
      "\xE0\x9F\xBF",
      "\xE0\xA0\x80",
      "\xED\x9F\xBF",
      "\xED\xA0\x80",
      "\xED\xBF\xBF",
      "\xEF\xBF\xBD",
      "\xF0\x80\x80\x80",
      "\xF0\x8F\xBF\xBF",
      "\xF0\x90\x80",
      "\xF0\x90\x80\x80",
      "\xF4\x8F\xBF\xBF",
      "\xF4\x90\x80\x80",
      "\xF5\x80\x80\x80",
      "\xF8\x88\x80\x80\x80",
      "\xFC\x84\x80\x80\x80\x80",
      "\xFE\xFF",
      "a\xF0\x9F\x98",
      "\xF0\x9F\x98"
      "a",
      "\xE2\x82\xE2\x82\xAC",
      "ok \xC3\xA9 \xC3",
      "\xC3\x28",
      "\xA0\xA1",
      "\xE1\x80\xC0\xAF",
  };
  std::mt19937 rng(9);
  for (int i = 0; i < 300; ++i) inputs.push_back(random_bytes(rng, 1 + rng() % 16));
  std::string hex_lines;
  for (const std::string& input : inputs) hex_lines += to_hex(input) + "\n";
  const std::string path = temp_dir() + "/utf8.hex";
  write_text(path, hex_lines);
  const std::vector<std::string> lines = run_reference("decode-utf8", path);
  ASSERT_EQ(lines.size(), inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    size_t replaced = 0;
    const std::string ours = sanitize_utf8(inputs[i], &replaced);
    EXPECT_EQ(to_hex(ours), lines[i]) << "input " << to_hex(inputs[i]);
    EXPECT_TRUE(is_valid_utf8(ours));
    EXPECT_EQ(is_valid_utf8(inputs[i]), replaced == 0) << to_hex(inputs[i]);
  }
  size_t replaced = 0;
  EXPECT_EQ(sanitize_utf8("\xE2\x82"
                          "A",
                          &replaced),
            "\xEF\xBF\xBD"
            "A");
  EXPECT_EQ(replaced, 1u);
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80", &replaced), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(replaced, 3u);
  EXPECT_EQ(sanitize_utf8("\xF0\x90\x80", &replaced), "\xEF\xBF\xBD");
  EXPECT_EQ(replaced, 1u);
}

// ---- threads ------------------------------------------------------------------------------------

TEST(Gpt2Tokenizer, ConcurrentEncodeEqualsSerial) {
  auto docs = corpus_sample(source_dir() + "/data/corpora/web.jsonl", 200, 4000);
  std::vector<std::vector<int32_t>> serial;
  for (const std::string& doc : docs) serial.push_back(gpt2().encode(doc));
  constexpr int kThreads = 4;
  std::vector<std::vector<std::vector<int32_t>>> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (size_t d = 0; d < docs.size(); ++d) {
        results[t].push_back(gpt2().encode(docs[(d + t * 37) % docs.size()]));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    for (size_t d = 0; d < docs.size(); ++d) {
      ASSERT_EQ(results[t][d], serial[(d + t * 37) % docs.size()]) << "thread " << t;
    }
  }
}

// ---- load() on a tiny vocabulary and its errors -------------------------------------------------

// The 256 byte tokens (GPT-2's byte alphabet) plus `extra` tokens and <|endoftext|>.
Json tiny_vocab(const std::vector<std::string>& extra) {
  Json vocab = Json::object();
  int n = 0;
  int id = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const int cp = printable ? b : 256 + n++;
    std::string token = cp < 0x80 ? std::string(1, static_cast<char>(cp))
                                  : std::string{static_cast<char>(0xC0 | (cp >> 6)),
                                                static_cast<char>(0x80 | (cp & 0x3F))};
    vocab[token] = id++;
  }
  for (const std::string& token : extra) vocab[token] = id++;
  vocab["<|endoftext|>"] = id++;
  return vocab;
}

struct TinyFiles {
  std::string vocab;
  std::string merges;
};

TinyFiles write_tiny(const std::string& name, const std::string& vocab_text,
                     const std::string& merges_text) {
  const std::string dir = temp_dir() + "/" + name;
  fs::create_directories(dir);
  TinyFiles files{dir + "/vocab.json", dir + "/merges.txt"};
  write_text(files.vocab, vocab_text);
  write_text(files.merges, merges_text);
  return files;
}

std::string load_error(const TinyFiles& files) {
  auto loaded = Gpt2Tokenizer::load(files.vocab, files.merges);
  EXPECT_FALSE(loaded.is_ok());
  return loaded.is_ok() ? "" : loaded.status().message();
}

TEST(Gpt2Tokenizer, LoadsTinyVocabularyAndBreaksTiesLikeTheReference) {
  // Ranks 0-1 build "aaa"; ranks 2-6 set up a tie: the merge ("!", "?,!") -> "!?,!" at rank 6 has
  // the key "!,?,!", which the reference also finds for the pair ("!,?", "!") -> "!,?!".
  const Json vocab = tiny_vocab({"aa", "aaa", "!,", "?,", "!,?", "?,!", "!?,!", "!,?!"});
  const std::string merges = "#version: 0.2\na a\naa a\n! ,\n? ,\n!, ?\n?, !\n! ?,!\n";
  auto files = write_tiny("ok", vocab.dump(), merges);
  auto loaded = Gpt2Tokenizer::load(files.vocab, files.merges);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  const Gpt2Tokenizer& t = *loaded;
  auto id = [&vocab](const char* token) { return vocab[token].get<int32_t>(); };
  using Ids = std::vector<int32_t>;
  EXPECT_EQ(t.encode("aaa"), (Ids{id("aaa")}));
  EXPECT_EQ(t.encode("aaaa"), (Ids{id("aa"), id("aa")}));
  EXPECT_EQ(t.encode("aaaaa"), (Ids{id("aa"), id("aaa")}));       // "aa aa a", then rank 1 at 2
  EXPECT_EQ(t.encode(" aaa"), (Ids{id("\xC4\xA0"), id("aaa")}));  // "Ġ" is the space byte
  EXPECT_EQ(t.eod_id(), 264);
  EXPECT_EQ(t.vocab_size(), 265);
  // "!,?!?,!" becomes ["!,?", "!", "?,!"] after ranks 2-5; then the alias pair at 0 and the merge
  // at 1 both have rank 6 and overlap. The reference keeps the rightmost pair of the lowest rank
  // (leftmost-first would give ["!,?!", "?,!"]).
  const std::string word = "!,?!?,!";
  EXPECT_EQ(t.encode(word), (Ids{id("!,?"), id("!?,!")}));
  const ReferenceBpe reference(files.vocab, files.merges);
  EXPECT_EQ(t.encode(word), reference.encode_word(word));
}

TEST(Gpt2Tokenizer, DropsTheLastMergesLineLikeTheReference) {
  // Without a final newline the reference's split('\n').slice(1, -1) drops the merge "aa a".
  const Json vocab = tiny_vocab({"aa", "aaa"});
  auto files = write_tiny("no_newline", vocab.dump(), "#version: 0.2\na a\naa a");
  const core::LogLevel level = core::log_level();
  core::set_log_level(core::LogLevel::kError);  // the warning naming the dropped line
  auto loaded = Gpt2Tokenizer::load(files.vocab, files.merges);
  core::set_log_level(level);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  EXPECT_EQ(loaded->encode("aaa"), (std::vector<int32_t>{vocab["aa"], vocab["a"]}));
}

TEST(Gpt2Tokenizer, LoadErrors) {
  const std::string good_vocab = tiny_vocab({"aa"}).dump();
  const std::string good_merges = "#version: 0.2\na a\n";
  {
    auto loaded = Gpt2Tokenizer::load(temp_dir() + "/missing/vocab.json", temp_dir() + "/m.txt");
    ASSERT_FALSE(loaded.is_ok());
    EXPECT_EQ(loaded.status().code(), core::StatusCode::kNotFound);
    EXPECT_NE(loaded.status().message().find("missing/vocab.json"), std::string::npos);
  }
  {
    auto files = write_tiny("no_merges", good_vocab, good_merges);
    auto loaded = Gpt2Tokenizer::load(files.vocab, files.merges + ".absent");
    ASSERT_FALSE(loaded.is_ok());
    EXPECT_EQ(loaded.status().code(), core::StatusCode::kNotFound);
  }
  auto expect_error = [](const std::string& name, const std::string& vocab,
                         const std::string& merges, const std::vector<std::string>& parts) {
    const std::string message = load_error(write_tiny(name, vocab, merges));
    for (const std::string& part : parts) {
      EXPECT_NE(message.find(part), std::string::npos) << name << ": " << message;
    }
  };
  expect_error("malformed", "{\n  \"a\": 1,\n  \"b\" 2\n}", good_merges,
               {"vocab.json:3:", "malformed JSON"});
  expect_error("not_object", "[1, 2]", good_merges, {"expected a JSON object"});
  expect_error("float_id", "{\"a\": 1.5}", good_merges, {"\"a\" has id 1.5", "integers"});
  expect_error("dup_id", "{\"a\": 0, \"b\": 0}", good_merges, {"each used once"});
  expect_error("no_bytes", "{\"a\": 0, \"<|endoftext|>\": 1}", good_merges,
               {"byte token", "byte 0x00", "all 256"});
  Json no_eod = tiny_vocab({});
  no_eod.erase("<|endoftext|>");
  expect_error("no_eod", no_eod.dump(), good_merges, {"<|endoftext|>"});
  expect_error("no_header", good_vocab, "a a\n", {"merges.txt:1:", "#version"});
  expect_error("three_tokens", good_vocab, "#version: 0.2\na a\na b c\n",
               {"merges.txt:3:", "two tokens", "a b c"});
  expect_error("one_token", good_vocab, "#version: 0.2\n\na a\n", {"merges.txt:2:", "got 0"});
  expect_error("unknown_token", good_vocab, "#version: 0.2\na a\nzz a\n",
               {"merges.txt:3:", "\"zz\" is not in vocab.json", "same tokenizer"});
  expect_error("unknown_merged", good_vocab, "#version: 0.2\na a\nb c\n",
               {"merges.txt:3:", "merged token \"bc\"", "same tokenizer"});
  // An alias pair (see tokenizer.cpp) whose concatenation is not a token.
  // The key "x,y,z" of the merge ("x", "y,z") also ranks the pair ("x,y", "z"): "x,yz" is no token.
  expect_error("alias", tiny_vocab({"y,z", "xy,z", "x,y"}).dump(), "#version: 0.2\nx y,z\n",
               {"merges.txt:2:", "would also merge \"x,y\" + \"z\"", "same tokenizer"});
}

}  // namespace
}  // namespace hydraulis::data
