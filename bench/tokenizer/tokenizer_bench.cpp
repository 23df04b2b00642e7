// Single-core throughput of Gpt2Tokenizer::encode on the demo corpora (MB/s = input UTF-8 bytes /
// 1e6 / seconds). Builds a sample of evenly spaced documents from the corpora, writes it as JSONL
// (--sample-out) so that the reference encoder can time the very same text (run.sh), then times
// cold passes (thread's word cache emptied first) and warm passes (cache filled by a warm-up pass).
// Prints and writes (--json) the figures with the ids' count and hash, which run.sh compares with
// the reference's. Usage: tokenizer_bench [--corpus F]... [--budget-mb 8] [--repeats 5] ...
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "core/file.h"
#include "core/json.h"
#include "data/tokenizer.h"

namespace {

using hydraulis::core::Json;
using hydraulis::data::Gpt2Tokenizer;

struct Sample {
  std::vector<std::string> docs;
  size_t bytes = 0;
};

// Evenly spaced documents of each corpus, each cut to `doc_cap` bytes (at a character boundary),
// about budget / corpora bytes from each.
hydraulis::core::StatusOr<Sample> build_sample(const std::vector<std::string>& corpora,
                                               size_t budget, size_t doc_cap) {
  Sample sample;
  for (const std::string& path : corpora) {
    HYD_ASSIGN_OR_RETURN(std::string text, hydraulis::core::read_file(path));
    std::vector<std::string> docs;
    size_t total = 0;
    for (size_t pos = 0; pos < text.size();) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      if (end > pos) {
        HYD_ASSIGN_OR_RETURN(Json line, hydraulis::core::parse_json(
                                            std::string_view(text).substr(pos, end - pos), path));
        std::string content = hydraulis::data::sanitize_utf8(line["content"].get<std::string>());
        if (content.size() > doc_cap) {
          size_t cut = doc_cap;
          while (cut > 0 && (static_cast<unsigned char>(content[cut]) & 0xC0) == 0x80) --cut;
          content.resize(cut);
        }
        total += content.size();
        docs.push_back(std::move(content));
      }
      pos = end + 1;
    }
    const size_t share = budget / corpora.size();
    const size_t stride = std::max<size_t>(1, (total + share - 1) / std::max<size_t>(share, 1));
    size_t taken = 0;
    for (size_t i = 0; i < docs.size() && taken < share; i += stride) {
      taken += docs[i].size();
      sample.docs.push_back(std::move(docs[i]));
    }
    sample.bytes += taken;
  }
  return sample;
}

struct Pass {
  double seconds = 0;
  size_t tokens = 0;
  uint32_t hash = 0;  // h = h * 1000003 ^ id over all ids, as the node side computes it
};

Pass encode_all(const Gpt2Tokenizer& tokenizer, const Sample& sample) {
  Pass pass;
  std::vector<int32_t> ids;
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& doc : sample.docs) {
    ids.clear();
    tokenizer.encode(doc, ids);
    pass.tokens += ids.size();
    for (int32_t id : ids) pass.hash = (pass.hash * 1000003u) ^ static_cast<uint32_t>(id);
  }
  pass.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return pass;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Gpt2Tokenizer encode throughput on one core (cold and warm word cache)"};
  std::vector<std::string> corpora = {"data/corpora/web.jsonl", "data/corpora/code.jsonl"};
  std::string vocab = "data/gpt2/vocab.json";
  std::string merges = "data/gpt2/merges.txt";
  double budget_mb = 8;
  size_t doc_cap = 32768;
  int repeats = 5;
  std::string sample_out;
  std::string json_out;
  app.add_option("--corpus", corpora, "JSONL corpora (key \"content\")");
  app.add_option("--vocab", vocab, "vocab.json");
  app.add_option("--merges", merges, "merges.txt");
  app.add_option("--budget-mb", budget_mb, "sample size in MB (1e6 bytes), split over the corpora");
  app.add_option("--doc-cap", doc_cap, "bytes kept of each document");
  app.add_option("--repeats", repeats, "timed passes per mode (median reported)")
      ->check(CLI::Range(1, 100));
  app.add_option("--sample-out", sample_out, "write the sample as JSONL for the reference");
  app.add_option("--json", json_out, "write the result as JSON");
  CLI11_PARSE(app, argc, argv);

  auto tokenizer = Gpt2Tokenizer::load(vocab, merges);
  if (!tokenizer.is_ok()) {
    fmt::print(stderr, "tokenizer_bench: {}\n", tokenizer.status().to_string());
    return 1;
  }
  auto sample = build_sample(corpora, static_cast<size_t>(budget_mb * 1e6), doc_cap);
  if (!sample.is_ok()) {
    fmt::print(stderr, "tokenizer_bench: {}\n", sample.status().to_string());
    return 1;
  }
  if (!sample_out.empty()) {
    std::string jsonl;
    for (const std::string& doc : sample->docs) jsonl += Json{{"content", doc}}.dump() + "\n";
    auto status = hydraulis::core::write_file_atomic(sample_out, jsonl);
    if (!status.is_ok()) {
      fmt::print(stderr, "tokenizer_bench: {}\n", status.to_string());
      return 1;
    }
  }

  std::vector<double> cold;
  std::vector<double> warm;
  Pass first;
  for (int r = 0; r < repeats; ++r) {
    tokenizer->clear_thread_cache();
    Pass pass = encode_all(*tokenizer, *sample);
    if (r == 0) first = pass;
    if (pass.tokens != first.tokens || pass.hash != first.hash) {
      fmt::print(stderr, "tokenizer_bench: pass {} gave different ids\n", r);
      return 1;
    }
    cold.push_back(pass.seconds);
  }
  encode_all(*tokenizer, *sample);  // warm-up: fills the cache
  for (int r = 0; r < repeats; ++r) {
    Pass pass = encode_all(*tokenizer, *sample);
    if (pass.tokens != first.tokens || pass.hash != first.hash) {
      fmt::print(stderr, "tokenizer_bench: warm pass {} gave different ids\n", r);
      return 1;
    }
    warm.push_back(pass.seconds);
  }
  const double mb = static_cast<double>(sample->bytes) / 1e6;
  Json result = {
      {"bench", "tokenizer"},
      {"docs", sample->docs.size()},
      {"text_bytes", sample->bytes},
      {"tokens", first.tokens},
      {"ids_hash", first.hash},
      {"repeats", repeats},
      {"cold_seconds", cold},
      {"warm_seconds", warm},
      {"cold_mb_per_s", mb / median(cold)},
      {"warm_mb_per_s", mb / median(warm)},
  };
  fmt::print(
      "ours: {} docs, {:.2f} MB, {} tokens; cold cache {:.1f} MB/s, warm cache {:.1f} MB/s "
      "(median of {})\n",
      sample->docs.size(), mb, first.tokens, mb / median(cold), mb / median(warm), repeats);
  if (!json_out.empty()) {
    auto status = hydraulis::core::write_json_file(json_out, result);
    if (!status.is_ok()) {
      fmt::print(stderr, "tokenizer_bench: {}\n", status.to_string());
      return 1;
    }
  }
  return 0;
}
