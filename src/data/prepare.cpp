// prepare_dataset: the calling thread reads records into chunks and hands them to a pool of
// tokenizer threads; results are consumed strictly in chunk order (a deque of futures), so
// accounting, the bad-record policy and the written bytes do not depend on the worker count.
// At most 2·workers+1 chunks are in flight, which bounds memory. Tests:
// tests/data/prepare_test.cpp.
#include "data/prepare.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <future>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "core/file.h"
#include "core/progress.h"
#include "data/tokenizer.h"

namespace hydraulis::data {

namespace {

using core::Status;
using core::StatusOr;

constexpr int kMaxWorkers = 256;
constexpr size_t kMaxChunkRecords = 4096;

// Records read together; `consumed` is the input file offset after the last one (for progress).
struct Chunk {
  std::vector<RawRecord> records;
  uint64_t consumed = 0;
};

// One record after a worker saw it: its outcome and, for documents, its token range.
struct RecordResult {
  RecordKind kind = RecordKind::kDocument;
  uint64_t line = 0;
  std::string reason;
  uint64_t replaced_utf8 = 0;
  size_t token_begin = 0;
  size_t token_end = 0;
};

struct ChunkResult {
  std::vector<RecordResult> records;
  std::vector<int32_t> tokens;  // every document of the chunk back to back
  uint64_t consumed = 0;
};

// `eod` >= 0 is appended after every document.
ChunkResult tokenize_chunk(const Chunk& chunk, const Gpt2Tokenizer& tokenizer,
                           const std::string& key, int32_t eod) {
  ChunkResult result;
  result.consumed = chunk.consumed;
  result.records.reserve(chunk.records.size());
  for (const RawRecord& raw : chunk.records) {
    ParsedRecord parsed = parse_record(raw.json, key);
    RecordResult& out = result.records.emplace_back();
    out.kind = parsed.kind;
    out.line = raw.line;
    out.reason = std::move(parsed.reason);
    out.replaced_utf8 = parsed.replaced_utf8;
    out.token_begin = result.tokens.size();
    if (parsed.kind == RecordKind::kDocument) {
      tokenizer.encode(parsed.text, result.tokens);
      if (eod >= 0) result.tokens.push_back(eod);
    }
    out.token_end = result.tokens.size();
  }
  return result;
}

// A fixed pool of threads running queued tasks; the destructor drops queued tasks and joins.
class WorkerPool {
 public:
  explicit WorkerPool(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
  }
  ~WorkerPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closed_ = true;
      tasks_.clear();
    }
    ready_.notify_all();
    for (std::thread& thread : threads_) thread.join();
  }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  std::future<ChunkResult> submit(std::packaged_task<ChunkResult()> task) {
    std::future<ChunkResult> future = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    ready_.notify_one();
    return future;
  }

 private:
  void run() {
    while (true) {
      std::packaged_task<ChunkResult()> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return closed_ || !tasks_.empty(); });
        if (closed_) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();  // exceptions land in the future
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::packaged_task<ChunkResult()>> tasks_;
  bool closed_ = false;
  std::vector<std::thread> threads_;
};

Status validate_options(const PrepareOptions& o) {
  if (o.input.empty()) return core::invalid_argument("--input is required");
  if (o.vocab_path.empty()) return core::invalid_argument("--vocab is required");
  if (o.merges_path.empty()) return core::invalid_argument("--merges is required");
  if (o.output_prefix.empty()) return core::invalid_argument("--output-prefix is required");
  if (o.workers < 1 || o.workers > kMaxWorkers) {
    return core::out_of_range("--workers must be in [1, {}], got {}", kMaxWorkers, o.workers);
  }
  if (o.chunk_bytes == 0) return core::invalid_argument("chunk_bytes must be positive");
  struct stat st;
  if (::stat(o.input.c_str(), &st) != 0) {
    return core::not_found("--input {}: no such file", o.input);
  }
  if (S_ISDIR(st.st_mode)) return core::invalid_argument("--input {} is a directory", o.input);
  return Status::ok();
}

bool cancelled(const PrepareOptions& o) {
  return o.cancel != nullptr && o.cancel->load(std::memory_order_relaxed);
}

// Reads up to chunk_bytes of records; an empty chunk means the input is exhausted.
StatusOr<Chunk> read_chunk(CorpusReader& reader, size_t chunk_bytes) {
  Chunk chunk;
  size_t bytes = 0;
  while (bytes < chunk_bytes && chunk.records.size() < kMaxChunkRecords) {
    RawRecord& record = chunk.records.emplace_back();
    HYD_ASSIGN_OR_RETURN(bool more, reader.next_record(record));
    if (!more) {
      chunk.records.pop_back();
      break;
    }
    bytes += record.json.size();
  }
  chunk.consumed = reader.bytes_consumed();
  return chunk;
}

// The main loop: keeps the pool busy, consumes results in order, writes kept documents.
Status run_pipeline(const PrepareOptions& o, CorpusReader& reader, const Gpt2Tokenizer& tokenizer,
                    IndexedDatasetWriter& writer, PrepareSummary& summary,
                    core::ProgressLine* progress) {
  WorkerPool pool(o.workers);
  std::deque<std::future<ChunkResult>> in_flight;
  const size_t max_in_flight = 2 * static_cast<size_t>(o.workers) + 1;
  const int32_t eod = o.append_eod == AppendEod::kYes ? tokenizer.eod_id() : -1;
  bool reading = true;
  bool failed = false;  // a bad record under OnError::kFail: stop writing, keep accounting
  while (true) {
    while (reading && !failed && in_flight.size() < max_in_flight) {
      HYD_ASSIGN_OR_RETURN(Chunk chunk, read_chunk(reader, o.chunk_bytes));
      if (chunk.records.empty()) {
        reading = false;
        break;
      }
      auto shared = std::make_shared<Chunk>(std::move(chunk));
      in_flight.push_back(
          pool.submit(std::packaged_task<ChunkResult()>([shared, &tokenizer, &o, eod] {
            return tokenize_chunk(*shared, tokenizer, o.key, eod);
          })));
    }
    if (in_flight.empty()) break;
    if (cancelled(o)) {
      return core::make_error(core::StatusCode::kFailedPrecondition,
                              "interrupted after {} of {} input bytes; nothing was written",
                              reader.bytes_consumed(), reader.file_bytes());
    }
    ChunkResult result;
    try {
      result = in_flight.front().get();
    } catch (const std::exception& e) {
      return core::internal_error("tokenizer worker failed: {}", e.what());
    }
    in_flight.pop_front();
    for (const RecordResult& record : result.records) {
      ParsedRecord parsed;
      parsed.kind = record.kind;
      parsed.reason = record.reason;
      parsed.replaced_utf8 = record.replaced_utf8;
      const bool keep = reader.account(record.line, parsed);
      if (is_bad_record(record.kind) && o.on_error == OnError::kFail) failed = true;
      if (!keep || failed) continue;
      std::span<const int32_t> ids(result.tokens.data() + record.token_begin,
                                   record.token_end - record.token_begin);
      if (eod >= 0) ++summary.eod_tokens;
      HYD_RETURN_IF_ERROR(writer.add_document(ids));
    }
    if (progress != nullptr) progress->set(result.consumed);
  }
  if (failed) {
    Status report = reader.fail_report();
    return Status(
        report.code(),
        report.message() + fmt::format("\nNothing was written to {} / {} (an existing pair is left "
                                       "as it was).",
                                       bin_path(o.output_prefix), idx_path(o.output_prefix)));
  }
  return Status::ok();
}

}  // namespace

StatusOr<PrepareSummary> prepare_dataset(const PrepareOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  HYD_RETURN_IF_ERROR(validate_options(o));
  HYD_ASSIGN_OR_RETURN(Gpt2Tokenizer tokenizer, Gpt2Tokenizer::load(o.vocab_path, o.merges_path));
  const double load_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const TokenDType dtype = token_dtype_for_vocab(tokenizer.vocab_size());
  // The writer's temp file proves the output directory is writable before any corpus byte is read.
  auto writer_or = IndexedDatasetWriter::create(o.output_prefix, dtype);
  if (!writer_or.is_ok()) return writer_or.status().with_context("--output-prefix");
  IndexedDatasetWriter writer = std::move(writer_or).value();
  HYD_ASSIGN_OR_RETURN(CorpusReader reader, CorpusReader::open(o.input, {o.key, o.on_error}));

  PrepareSummary summary;
  summary.input = o.input;
  summary.output_prefix = o.output_prefix;
  summary.compression = reader.compression();
  summary.layout = reader.layout();
  summary.dtype = dtype;
  summary.workers = o.workers;
  summary.on_error = o.on_error;
  summary.input_bytes = reader.file_bytes();
  summary.load_seconds = load_seconds;

  std::optional<core::ProgressLine> progress;
  if (o.progress == ProgressDisplay::kShow) {
    progress.emplace(fmt::format("prepare {}", o.input), reader.file_bytes(),
                     core::ProgressUnit::kBytes);
  }
  HYD_RETURN_IF_ERROR(
      run_pipeline(o, reader, tokenizer, writer, summary, progress ? &*progress : nullptr));
  if (progress) progress->finish();
  summary.corpus = reader.stats();
  summary.text_bytes = reader.text_bytes();
  if (writer.num_sequences() == 0) {
    return core::invalid_argument(
        "{}: no documents under key '{}' ({} records, {} empty, {} bad); nothing was written. "
        "Check --key (web text uses 'content', others often 'text')",
        o.input, o.key, summary.corpus.records, summary.corpus.empty_documents,
        summary.corpus.bad_records);
  }
  summary.sequences = writer.num_sequences();
  summary.tokens = writer.num_tokens();
  HYD_RETURN_IF_ERROR(writer.finish());
  HYD_ASSIGN_OR_RETURN(summary.bin_bytes, core::file_size(bin_path(o.output_prefix)));
  HYD_ASSIGN_OR_RETURN(summary.idx_bytes, core::file_size(idx_path(o.output_prefix)));
  HYD_ASSIGN_OR_RETURN(summary.sum_bytes, core::file_size(sum_path(o.output_prefix)));
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

std::string format_summary(const PrepareSummary& s) {
  std::string out;
  out += fmt::format("input      {} ({}, {}, {}; {} of JSON)\n", s.input,
                     core::format_bytes(static_cast<double>(s.input_bytes)),
                     compression_name(s.compression),
                     s.layout == CorpusLayout::kJsonArray ? "JSON array" : "JSON Lines",
                     core::format_bytes(static_cast<double>(s.text_bytes)));
  out += fmt::format(
      "output     {}.bin ({}) + {}.idx ({}), MMIDIDX v1, {} tokens; {}.sum ({}, "
      "CRC32C per 1 MiB)\n",
      s.output_prefix, core::format_bytes(static_cast<double>(s.bin_bytes)), s.output_prefix,
      core::format_bytes(static_cast<double>(s.idx_bytes)), token_dtype_name(s.dtype),
      s.output_prefix, core::format_bytes(static_cast<double>(s.sum_bytes)));
  out += fmt::format("documents  {} written ({} records, {} empty dropped)\n", s.sequences,
                     s.corpus.records, s.corpus.empty_documents);
  out += fmt::format("tokens     {} ({} EOD), {:.1f} per document\n", s.tokens, s.eod_tokens,
                     s.sequences ? static_cast<double>(s.tokens) / s.sequences : 0.0);
  out += fmt::format("skipped    {} bad records (--on-error {})", s.corpus.bad_records,
                     on_error_name(s.on_error));
  for (const auto& [reason, count] : s.corpus.bad_by_reason) {
    out += fmt::format("\n  {:>8}  {}", count, reason);
  }
  for (const std::string& error : s.corpus.first_errors) out += fmt::format("\n    {}", error);
  out +=
      fmt::format("\nutf-8      {} invalid sequences replaced by U+FFFD\n", s.corpus.replaced_utf8);
  out += fmt::format("time       {} with {} worker(s) (tokenizer load {:.2f}s)\n",
                     core::format_duration(s.seconds), s.workers, s.load_seconds);
  out += fmt::format(
      "rate       {:.2f} MB/s of JSON end to end, {:.2f} MB/s after the load, {} "
      "tokens/s\n",
      s.text_mb_per_s(), s.pipeline_mb_per_s(),
      core::format_count(s.seconds > 0 ? s.tokens / s.seconds : 0.0));
  return out;
}

}  // namespace hydraulis::data
