// prepare_dataset on real demo documents with the real GPT-2 vocabulary: output independent of
// the worker count and of compression, tokens equal to a sequential encode, and no output pair
// after a bad record (fail policy), a cancellation or an unwritable output directory.
#include "data/prepare.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <fmt/ranges.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "data/tokenizer.h"
#include "data_test_util.h"

namespace hydraulis::data {
namespace {

namespace fs = std::filesystem;
using test_util::gzip;
using test_util::source_dir;

// The first `count` lines of each demo corpus, interleaved (web, code, web, ...).
std::vector<std::string> demo_lines(size_t count) {
  std::ifstream web(source_dir() + "/data/corpora/web.jsonl");
  std::ifstream code(source_dir() + "/data/corpora/code.jsonl");
  std::vector<std::string> lines;
  std::string a, b;
  for (size_t i = 0; i < count && std::getline(web, a) && std::getline(code, b); ++i) {
    lines.push_back(a);
    lines.push_back(b);
  }
  return lines;
}

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines) out += line + "\n";
  return out;
}

class PrepareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("hyd_prepare_test_{}_{}", ::getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "out");
  }
  void TearDown() override {
    fs::permissions(dir_ / "out", fs::perms::owner_all);
    fs::remove_all(dir_);
  }

  std::string write(const std::string& name, const std::string& bytes) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    return path;
  }

  PrepareOptions options(const std::string& input, const std::string& prefix) {
    PrepareOptions o;
    o.input = input;
    o.vocab_path = source_dir() + "/data/gpt2/vocab.json";
    o.merges_path = source_dir() + "/data/gpt2/merges.txt";
    o.output_prefix = (dir_ / "out" / prefix).string();
    o.progress = ProgressDisplay::kHide;
    o.chunk_bytes = 32 * 1024;  // many chunks in flight, so ordering is exercised
    return o;
  }

  std::vector<std::string> output_files() {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_ / "out")) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path dir_;
};

TEST_F(PrepareTest, OutputIndependentOfWorkersAndEqualToSequentialEncode) {
  const std::vector<std::string> lines = demo_lines(60);
  const std::string input = write("demo.jsonl", join(lines));
  PrepareOptions one = options(input, "w1");
  one.workers = 1;
  one.append_eod = AppendEod::kYes;
  PrepareOptions three = options(input, "w3");
  three.workers = 3;
  three.append_eod = AppendEod::kYes;
  auto s1 = prepare_dataset(one);
  ASSERT_TRUE(s1.is_ok()) << s1.status().to_string();
  auto s3 = prepare_dataset(three);
  ASSERT_TRUE(s3.is_ok()) << s3.status().to_string();
  EXPECT_EQ(core::read_file(bin_path(one.output_prefix)).value(),
            core::read_file(bin_path(three.output_prefix)).value());
  EXPECT_EQ(core::read_file(idx_path(one.output_prefix)).value(),
            core::read_file(idx_path(three.output_prefix)).value());

  // Expected tokens: a plain sequential encode of every non-empty document, plus EOD.
  auto tokenizer = Gpt2Tokenizer::load(one.vocab_path, one.merges_path);
  ASSERT_TRUE(tokenizer.is_ok());
  std::vector<std::vector<int32_t>> expected;
  uint64_t expected_tokens = 0;
  for (const std::string& line : lines) {
    std::string content = nlohmann::json::parse(line).at("content").get<std::string>();
    if (content.empty()) continue;
    expected.push_back(tokenizer->encode(content));
    expected.back().push_back(50256);
    expected_tokens += expected.back().size();
  }
  auto ds = IndexedDataset::open(three.output_prefix);
  ASSERT_TRUE(ds.is_ok()) << ds.status().to_string();
  ASSERT_EQ(ds->num_sequences(), expected.size());
  EXPECT_EQ(ds->dtype(), TokenDType::kU16);
  for (size_t i = 0; i < expected.size(); ++i) ASSERT_EQ(ds->tokens(i), expected[i]) << i;
  EXPECT_EQ(s3->sequences, expected.size());
  EXPECT_EQ(s3->tokens, expected_tokens);
  EXPECT_EQ(s3->eod_tokens, expected.size());
  EXPECT_EQ(s3->corpus.records, lines.size());
  EXPECT_EQ(s3->corpus.empty_documents, lines.size() - expected.size());
  EXPECT_EQ(s3->corpus.bad_records, 0u);
  EXPECT_EQ(s3->text_bytes, join(lines).size());
}

TEST_F(PrepareTest, GzipInputGivesTheSameDataset) {
  const std::string text = join(demo_lines(15));
  auto plain = prepare_dataset(options(write("d.jsonl", text), "plain"));
  ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();
  PrepareOptions o = options(write("d.jsonl.gz", gzip(text)), "gz");
  o.workers = 2;
  auto gz = prepare_dataset(o);
  ASSERT_TRUE(gz.is_ok()) << gz.status().to_string();
  EXPECT_EQ(gz->compression, Compression::kGzip);
  EXPECT_EQ(core::read_file(bin_path(o.output_prefix)).value(),
            core::read_file((dir_ / "out" / "plain.bin").string()).value());
  EXPECT_EQ(core::read_file(idx_path(o.output_prefix)).value(),
            core::read_file((dir_ / "out" / "plain.idx").string()).value());
  EXPECT_EQ(gz->eod_tokens, 0u);
}

TEST_F(PrepareTest, BadLineMidwayUnderFailWritesNothing) {
  std::vector<std::string> lines = demo_lines(30);
  lines.insert(lines.begin() + 33, "{\"content\": \"cut off");
  const std::string input = write("bad.jsonl", join(lines));
  PrepareOptions o = options(input, "p");
  o.workers = 2;
  auto summary = prepare_dataset(o);
  ASSERT_FALSE(summary.is_ok());
  EXPECT_EQ(summary.status().code(), core::StatusCode::kInvalidArgument);
  const std::string& m = summary.status().message();
  EXPECT_NE(m.find(input + ":34: malformed JSON"), std::string::npos) << m;
  EXPECT_NE(m.find("1 bad record(s)"), std::string::npos) << m;
  EXPECT_NE(m.find("Nothing was written"), std::string::npos) << m;
  EXPECT_TRUE(output_files().empty())
      << "left: " << fmt::format("{}", fmt::join(output_files(), " "));

  // The same input under skip: every other document is written and the line is counted.
  o.on_error = OnError::kSkip;
  summary = prepare_dataset(o);
  ASSERT_TRUE(summary.is_ok()) << summary.status().to_string();
  EXPECT_EQ(summary->corpus.bad_records, 1u);
  EXPECT_EQ(summary->corpus.bad_by_reason.at("malformed JSON"), 1u);
  ASSERT_EQ(summary->corpus.first_errors.size(), 1u);
  EXPECT_EQ(summary->corpus.first_errors[0].rfind(input + ":34: malformed JSON", 0), 0u);
  EXPECT_EQ(summary->sequences + summary->corpus.empty_documents, lines.size() - 1);
  EXPECT_EQ(output_files(), (std::vector<std::string>{"p.bin", "p.idx", "p.sum"}));

  // A failing run over an existing dataset leaves the old files as they were.
  const std::string old_idx = core::read_file(idx_path(o.output_prefix)).value();
  const std::string old_sum = core::read_file(sum_path(o.output_prefix)).value();
  o.on_error = OnError::kFail;
  ASSERT_FALSE(prepare_dataset(o).is_ok());
  EXPECT_EQ(core::read_file(idx_path(o.output_prefix)).value(), old_idx);
  EXPECT_EQ(core::read_file(sum_path(o.output_prefix)).value(), old_sum);
  EXPECT_EQ(output_files(), (std::vector<std::string>{"p.bin", "p.idx", "p.sum"}));
}

TEST_F(PrepareTest, CancelledRunWritesNothing) {
  std::atomic<bool> cancel{true};
  PrepareOptions o = options(write("d.jsonl", join(demo_lines(5))), "p");
  o.cancel = &cancel;
  auto summary = prepare_dataset(o);
  ASSERT_FALSE(summary.is_ok());
  EXPECT_NE(summary.status().message().find("interrupted"), std::string::npos);
  EXPECT_TRUE(output_files().empty());
}

TEST_F(PrepareTest, UnwritableOutputFailsBeforeReading) {
  // The input is bad too: the output error must come first, before any corpus byte is read.
  const std::string input = write("bad.jsonl", "not json\n");
  PrepareOptions o = options(input, "p");
  o.output_prefix = (dir_ / "missing_dir" / "p").string();
  auto summary = prepare_dataset(o);
  ASSERT_FALSE(summary.is_ok());
  EXPECT_EQ(summary.status().code(), core::StatusCode::kNotFound);
  EXPECT_NE(summary.status().message().find("--output-prefix"), std::string::npos);
  EXPECT_NE(summary.status().message().find("does not exist"), std::string::npos)
      << summary.status().message();
  if (::geteuid() != 0) {  // root ignores directory permissions
    fs::permissions(dir_ / "out", fs::perms::owner_read | fs::perms::owner_exec);
    summary = prepare_dataset(options(input, "p"));
    ASSERT_FALSE(summary.is_ok());
    EXPECT_EQ(summary.status().code(), core::StatusCode::kIoError);
    EXPECT_NE(summary.status().message().find("cannot write"), std::string::npos);
  }
}

TEST_F(PrepareTest, OptionErrors) {
  const std::string input = write("d.jsonl", join(demo_lines(3)));
  PrepareOptions o = options(input, "p");
  o.key = "text";  // the demo corpora use "content"
  o.on_error = OnError::kSkip;
  auto summary = prepare_dataset(o);
  ASSERT_FALSE(summary.is_ok());
  EXPECT_NE(summary.status().message().find("no documents under key 'text'"), std::string::npos)
      << summary.status().message();
  EXPECT_TRUE(output_files().empty());
  o = options(input, "p");
  o.workers = 0;
  EXPECT_EQ(prepare_dataset(o).status().code(), core::StatusCode::kOutOfRange);
  o = options((dir_ / "nope.jsonl").string(), "p");
  EXPECT_EQ(prepare_dataset(o).status().code(), core::StatusCode::kNotFound);
}

TEST_F(PrepareTest, SummaryText) {
  auto summary = prepare_dataset(options(write("d.jsonl", join(demo_lines(2))), "p"));
  ASSERT_TRUE(summary.is_ok());
  const std::string text = format_summary(*summary);
  EXPECT_NE(text.find(fmt::format("documents  {} written (4 records", summary->sequences)),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("MMIDIDX v1, uint16 tokens"), std::string::npos) << text;
}

}  // namespace
}  // namespace hydraulis::data
