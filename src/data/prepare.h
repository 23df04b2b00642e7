// `hydraulis data prepare` as a library call: corpus -> GPT-2 tokens -> MMIDIDX P.bin/P.idx
// (+ the checksum file P.sum).
// Records are tokenized in chunks on N worker threads and written in input order, so the output
// is byte-identical for every N. Outputs appear only when everything succeeded (temp files and
// renames); an error or cancellation leaves no P.bin/P.idx pair. Docs: docs/data.md.
// Tests: tests/data/prepare_test.cpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "core/status.h"
#include "data/corpus_reader.h"
#include "data/indexed_dataset.h"

namespace hydraulis::data {

enum class AppendEod { kNo, kYes };  // kYes: "<|endoftext|>" after every document
enum class ProgressDisplay { kShow, kHide };

struct PrepareOptions {
  std::string input;  // .jsonl / .json, optionally .gz or .zst
  std::string key = "content";
  std::string vocab_path;     // GPT-2 vocab.json
  std::string merges_path;    // GPT-2 merges.txt
  std::string output_prefix;  // writes <prefix>.bin, <prefix>.idx and <prefix>.sum
  AppendEod append_eod = AppendEod::kNo;
  int workers = 1;  // tokenizer threads (the calling thread reads and writes)
  OnError on_error = OnError::kFail;
  ProgressDisplay progress = ProgressDisplay::kShow;
  size_t chunk_bytes = 1 << 20;  // JSON bytes per work item
  // When set to true (e.g. by a SIGINT handler) the run stops and writes nothing.
  const std::atomic<bool>* cancel = nullptr;
};

struct PrepareSummary {
  std::string input;
  std::string output_prefix;
  Compression compression = Compression::kNone;
  CorpusLayout layout = CorpusLayout::kJsonLines;
  TokenDType dtype = TokenDType::kU16;
  int workers = 1;
  OnError on_error = OnError::kFail;
  uint64_t sequences = 0;  // documents written (one sequence each)
  uint64_t tokens = 0;     // tokens written, EOD tokens included
  uint64_t eod_tokens = 0;
  CorpusStats corpus;        // records, empty documents, bad records by reason, UTF-8 repairs
  uint64_t input_bytes = 0;  // file size on disk
  uint64_t text_bytes = 0;   // decompressed JSON bytes
  uint64_t bin_bytes = 0;
  uint64_t idx_bytes = 0;
  uint64_t sum_bytes = 0;
  double seconds = 0;       // wall time of the whole call (tokenizer load included)
  double load_seconds = 0;  // of which loading vocab.json + merges.txt
  // Decompressed JSON MB (1e6 bytes) per second, end to end and after the tokenizer load.
  double text_mb_per_s() const { return seconds > 0 ? text_bytes / 1e6 / seconds : 0; }
  double pipeline_mb_per_s() const {
    return seconds > load_seconds ? text_bytes / 1e6 / (seconds - load_seconds) : 0;
  }
};

core::StatusOr<PrepareSummary> prepare_dataset(const PrepareOptions& options);

// Multi-line human-readable summary (what the CLI prints).
std::string format_summary(const PrepareSummary& summary);

}  // namespace hydraulis::data
