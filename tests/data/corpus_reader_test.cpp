// Corpus reader: real documents from data/corpora read back plain, gzip (several members) and
// zstd; JSON arrays; every bad-record reason with file:line under both policies; truncated and
// corrupt compressed streams; extension/magic disagreements.
#include "data/corpus_reader.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "data_test_util.h"

namespace hydraulis::data {
namespace {

namespace fs = std::filesystem;
using test_util::gzip;
using test_util::source_dir;
using test_util::zstd;

// The first `count` lines of a demo corpus, and their "content" strings.
struct Sample {
  std::string jsonl;
  std::vector<std::string> contents;
};

Sample demo_sample(const std::string& name, size_t count) {
  std::ifstream in(source_dir() + "/data/corpora/" + name);
  Sample sample;
  std::string line;
  while (sample.contents.size() < count && std::getline(in, line)) {
    sample.jsonl += line + "\n";
    std::string content = nlohmann::json::parse(line).at("content").get<std::string>();
    if (!content.empty()) sample.contents.push_back(content);
  }
  return sample;
}

class CorpusReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("hyd_corpus_test_{}_{}", ::getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& bytes) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    return path;
  }

  // Reads every document; the status of the first error, if any.
  core::Status read_all(const std::string& path, const CorpusOptions& options,
                        std::vector<std::string>& documents, CorpusStats* stats = nullptr) {
    documents.clear();
    auto reader = CorpusReader::open(path, options);
    if (!reader.is_ok()) return reader.status();
    Document document;
    core::Status status;
    while (true) {
      auto more = reader->next(document);
      if (!more.is_ok()) {
        status = more.status();
        break;
      }
      if (!*more) break;
      documents.push_back(document.text);
    }
    if (stats != nullptr) *stats = reader->stats();
    return status;
  }

  fs::path dir_;
};

TEST_F(CorpusReaderTest, PlainGzipZstdGiveTheSameDocuments) {
  Sample sample = demo_sample("code.jsonl", 200);
  ASSERT_EQ(sample.contents.size(), 200u);
  // Two gzip members back to back (as `cat a.gz b.gz` makes) must read as one stream.
  const size_t half = sample.jsonl.find('\n', sample.jsonl.size() / 2) + 1;
  const std::string two_members =
      gzip(sample.jsonl.substr(0, half)) + gzip(sample.jsonl.substr(half));
  const std::vector<std::pair<std::string, Compression>> inputs = {
      {write("c.jsonl", sample.jsonl), Compression::kNone},
      {write("c.jsonl.gz", two_members), Compression::kGzip},
      {write("c.jsonl.zst", zstd(sample.jsonl)), Compression::kZstd}};
  for (const auto& [path, compression] : inputs) {
    auto reader = CorpusReader::open(path, {});
    ASSERT_TRUE(reader.is_ok()) << reader.status().to_string();
    EXPECT_EQ(reader->compression(), compression);
    EXPECT_EQ(reader->layout(), CorpusLayout::kJsonLines);
    std::vector<std::string> documents;
    ASSERT_TRUE(read_all(path, {}, documents).is_ok()) << path;
    EXPECT_EQ(documents, sample.contents) << path;
  }
}

// Highly compressible input: one compressed read decodes to many output buffers, so the
// decoders must flush what they hold before more input is read (or the end is declared).
TEST_F(CorpusReaderTest, CompressedInputLargerThanBuffers) {
  Sample sample = demo_sample("code.jsonl", 40);
  std::string text;
  size_t copies = 0;
  while (text.size() < 12'000'000) {
    text += sample.jsonl;
    ++copies;
  }
  for (const auto& [name, bytes] : {std::pair{std::string("r.jsonl.gz"), gzip(text)},
                                    std::pair{std::string("r.jsonl.zst"), zstd(text)}}) {
    std::vector<std::string> documents;
    ASSERT_TRUE(read_all(write(name, bytes), {}, documents).is_ok()) << name;
    ASSERT_EQ(documents.size(), copies * sample.contents.size()) << name;
    EXPECT_EQ(documents.back(), sample.contents.back());
  }
}

TEST_F(CorpusReaderTest, JsonArrayWithOtherKey) {
  // Real web text under key "text", as a pretty-printed array; strings hold ',', ']' and '"'.
  Sample sample = demo_sample("web.jsonl", 20);
  nlohmann::json array = nlohmann::json::array();
  for (const std::string& content : sample.contents) array.push_back({{"text", content}, {"n", 1}});
  array.push_back({{"text", "a, b] \"c\" {d}"}});
  const std::string path = write("w.json", array.dump(2));
  std::vector<std::string> documents;
  CorpusStats stats;
  ASSERT_TRUE(read_all(path, {.key = "text"}, documents, &stats).is_ok());
  std::vector<std::string> expected = sample.contents;
  expected.push_back("a, b] \"c\" {d}");
  EXPECT_EQ(documents, expected);
  EXPECT_EQ(stats.records, 21u);
  EXPECT_EQ(CorpusReader::open(path, {})->layout(), CorpusLayout::kJsonArray);
}

TEST_F(CorpusReaderTest, JsonArrayErrorsHaveLines) {
  const std::string path =
      write("a.json", "[\n{\"content\": \"x\"},\n{\"content\": 1},\n{\"c\": 2}\n]\n");
  std::vector<std::string> documents;
  CorpusStats stats;
  ASSERT_TRUE(read_all(path, {.on_error = OnError::kSkip}, documents, &stats).is_ok());
  EXPECT_EQ(documents, std::vector<std::string>{"x"});
  ASSERT_EQ(stats.first_errors.size(), 2u);
  EXPECT_EQ(stats.first_errors[0].rfind(path + ":3: 'content' must be a string", 0), 0u)
      << stats.first_errors[0];
  EXPECT_EQ(stats.first_errors[1].rfind(path + ":4: key 'content' missing", 0), 0u);
  const std::string open = write("b.json", "[{\"content\": \"x\"},\n{\"content\": \"y\"}");
  core::Status status = read_all(open, {}, documents);
  EXPECT_NE(status.message().find("not closed"), std::string::npos) << status.message();
}

// One line per reason: malformed, missing key, non-string, empty (dropped), blank (ignored),
// not an object, invalid UTF-8 (repaired), CRLF.
const char kBadLines[] =
    "{\"content\": \"first doc\"}\n"
    "{\"content\": \"broken\"\n"
    "{\"text\": \"x\", \"id\": 3}\n"
    "{\"content\": 42}\n"
    "{\"content\": \"\"}\n"
    "   \n"
    "[1, 2]\n"
    "{\"content\": \"bad \xff byte\"}\r\n"
    "{\"content\": \"last\"}";

TEST_F(CorpusReaderTest, SkipPolicyCountsEveryReason) {
  const std::string path = write("bad.jsonl", kBadLines);
  std::vector<std::string> documents;
  CorpusStats stats;
  ASSERT_TRUE(read_all(path, {.on_error = OnError::kSkip}, documents, &stats).is_ok());
  EXPECT_EQ(documents, (std::vector<std::string>{"first doc", "bad \xEF\xBF\xBD byte", "last"}));
  EXPECT_EQ(stats.records, 8u);
  EXPECT_EQ(stats.documents, 3u);
  EXPECT_EQ(stats.empty_documents, 1u);
  EXPECT_EQ(stats.blank_lines, 1u);
  EXPECT_EQ(stats.replaced_utf8, 1u);
  EXPECT_EQ(stats.bad_records, 4u);
  EXPECT_EQ(stats.bad_by_reason, (std::map<std::string, uint64_t>{{"malformed JSON", 1},
                                                                  {"missing key", 1},
                                                                  {"non-string value", 1},
                                                                  {"not a JSON object", 1}}));
  ASSERT_EQ(stats.first_errors.size(), 4u);
  EXPECT_EQ(stats.first_errors[0].rfind(path + ":2: malformed JSON at column 21", 0), 0u)
      << stats.first_errors[0];
  EXPECT_EQ(stats.first_errors[1], path +
                                       ":3: key 'content' missing (keys: 'id', 'text'); "
                                       "choose the key with --key");
  EXPECT_EQ(stats.first_errors[2], path + ":4: 'content' must be a string, got number 42");
  EXPECT_EQ(stats.first_errors[3],
            path + ":7: expected a JSON object with key 'content', got array");
}

TEST_F(CorpusReaderTest, FailPolicyListsBadLines) {
  const std::string path = write("bad.jsonl", kBadLines);
  std::vector<std::string> documents;
  core::Status status = read_all(path, {}, documents);
  EXPECT_EQ(status.code(), core::StatusCode::kInvalidArgument);
  EXPECT_EQ(documents, std::vector<std::string>{"first doc"});
  const std::string& m = status.message();
  EXPECT_NE(m.find("4 bad record(s)"), std::string::npos) << m;
  for (const char* line : {":2: malformed JSON", ":3: key", ":4: 'content'", ":7: expected"}) {
    EXPECT_NE(m.find(path + line), std::string::npos) << line << " in " << m;
  }
  EXPECT_NE(m.find("--on-error skip"), std::string::npos);
}

TEST_F(CorpusReaderTest, ReportsAtMostTenReasons) {
  std::string text;
  for (int i = 0; i < 15; ++i) text += "{\"content\": \"ok\"}\n{\"content\": null}\n";
  const std::string path = write("many.jsonl", text);
  std::vector<std::string> documents;
  CorpusStats stats;
  ASSERT_TRUE(read_all(path, {.on_error = OnError::kSkip}, documents, &stats).is_ok());
  EXPECT_EQ(documents.size(), 15u);
  EXPECT_EQ(stats.bad_records, 15u);
  EXPECT_EQ(stats.first_errors.size(), 10u);
  EXPECT_EQ(stats.first_errors[9], path + ":20: 'content' must be a string, got null null");
  core::Status status = read_all(path, {}, documents);
  EXPECT_NE(status.message().find("at least 10 bad records (stopped looking at line 20)"),
            std::string::npos)
      << status.message();
  EXPECT_EQ(status.message().find(":22:"), std::string::npos);  // the 11th is not listed
}

TEST_F(CorpusReaderTest, TruncatedAndCorruptStreams) {
  Sample sample = demo_sample("web.jsonl", 50);
  std::vector<std::string> documents;
  const std::string gz = gzip(sample.jsonl);
  core::Status status = read_all(write("t.jsonl.gz", gz.substr(0, gz.size() / 2)), {}, documents);
  EXPECT_EQ(status.code(), core::StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("truncated gzip stream"), std::string::npos) << status.message();
  std::string bad_gz = gz;
  for (size_t i = 100; i < 140; ++i) bad_gz[i] = static_cast<char>(bad_gz[i] ^ 0x5a);
  status = read_all(write("c.jsonl.gz", bad_gz), {}, documents);
  EXPECT_EQ(status.code(), core::StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("corrupt gzip data"), std::string::npos) << status.message();

  const std::string zst = zstd(sample.jsonl);
  status = read_all(write("t.jsonl.zst", zst.substr(0, zst.size() - 10)), {}, documents);
  EXPECT_EQ(status.code(), core::StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("truncated zstd stream"), std::string::npos) << status.message();
  std::string bad_zst = zst;
  for (size_t i = 20; i < 60; ++i) bad_zst[i] = static_cast<char>(bad_zst[i] ^ 0x5a);
  status = read_all(write("c.jsonl.zst", bad_zst), {}, documents);
  EXPECT_EQ(status.code(), core::StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("corrupt zstd data"), std::string::npos) << status.message();
}

TEST_F(CorpusReaderTest, ExtensionAndMagicMustAgree) {
  auto opened = CorpusReader::open(write("plain.jsonl.gz", "{\"content\": \"x\"}\n"), {});
  EXPECT_EQ(opened.status().code(), core::StatusCode::kInvalidArgument);
  EXPECT_NE(opened.status().message().find("gzip magic 1f 8b (found 7b 22)"), std::string::npos)
      << opened.status().message();
  opened = CorpusReader::open(write("plain.jsonl.zst", "{\"content\": \"x\"}\n"), {});
  EXPECT_NE(opened.status().message().find("zstd magic"), std::string::npos);
  opened = CorpusReader::open(write("hidden.jsonl", gzip("{\"content\": \"x\"}\n")), {});
  EXPECT_NE(opened.status().message().find("gzip magic but its name has no .gz"), std::string::npos)
      << opened.status().message();
  opened = CorpusReader::open((dir_ / "missing.jsonl").string(), {});
  EXPECT_EQ(opened.status().code(), core::StatusCode::kNotFound);
}

TEST_F(CorpusReaderTest, EmptyInputAndLongLines) {
  std::vector<std::string> documents;
  EXPECT_TRUE(read_all(write("empty.jsonl", ""), {}, documents).is_ok());
  EXPECT_TRUE(documents.empty());
  // A 3 MB line spans several 1 MiB reads.
  std::string big(3'000'000, 'a');
  const std::string path =
      write("long.jsonl", "{\"content\": \"" + big + "\"}\n{\"content\": \"b\"}\n");
  ASSERT_TRUE(read_all(path, {}, documents).is_ok());
  ASSERT_EQ(documents.size(), 2u);
  EXPECT_EQ(documents[0], big);
  EXPECT_EQ(documents[1], "b");
}

}  // namespace
}  // namespace hydraulis::data
