// Corpus reading: streams documents (the string under one key of each JSON object) from JSON Lines
// or a JSON array file, plain or compressed (.gz via zlib, .zst via libzstd streaming). Bad records
// are counted by reason and reported as file:line under an OnError policy; invalid UTF-8 inside a
// document is replaced by U+FFFD and counted. Docs: docs/data.md. Tests:
// tests/data/corpus_reader_test.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace hydraulis::data {

// What to do with a bad record (malformed JSON, not an object, missing key, non-string value).
enum class OnError {
  kFail,  // stop writing at the first bad record; the error lists the first 10 with file:line
  kSkip,  // drop bad records, count them by reason
};
core::StatusOr<OnError> parse_on_error(std::string_view text);  // "fail" | "skip"
const char* on_error_name(OnError policy);

enum class Compression { kNone, kGzip, kZstd };
const char* compression_name(Compression compression);  // "none" | "gzip" | "zstd"

// Decided by the first non-blank byte of the (decompressed) input: '[' means a JSON array of
// objects, anything else JSON Lines.
enum class CorpusLayout { kJsonLines, kJsonArray };

// The outcome of one record (a JSONL line or an array element).
enum class RecordKind {
  kDocument,       // a non-empty string under the key
  kEmpty,          // an empty string: dropped and counted, not an error
  kMalformedJson,  // not valid JSON
  kNotObject,      // valid JSON, but not an object
  kMissingKey,     // an object without the key
  kNotString,      // the key holds a number, null, array or object
};
// "malformed JSON", "not a JSON object", "missing key", "non-string value" (the summary's reasons).
const char* record_kind_name(RecordKind kind);
inline bool is_bad_record(RecordKind kind) {
  return kind != RecordKind::kDocument && kind != RecordKind::kEmpty;
}

// One record as read, before parsing; `line` is the 1-based line where it starts.
struct RawRecord {
  std::string json;
  uint64_t line = 0;
};

struct ParsedRecord {
  RecordKind kind = RecordKind::kDocument;
  std::string text;            // the document (kDocument), valid UTF-8
  std::string reason;          // for bad records: why, without file:line
  uint64_t replaced_utf8 = 0;  // invalid UTF-8 sequences replaced by U+FFFD in this record
};

// Parses one record and extracts the string under `key`. Pure and thread-safe (prepare runs it
// on worker threads).
ParsedRecord parse_record(std::string_view json, std::string_view key);

inline constexpr size_t kMaxReportedErrors = 10;

struct CorpusStats {
  uint64_t records = 0;                           // records seen (blank lines are not records)
  uint64_t documents = 0;                         // kDocument records
  uint64_t empty_documents = 0;                   // kEmpty records (dropped)
  uint64_t bad_records = 0;                       // skipped (kSkip) or fatal (kFail)
  std::map<std::string, uint64_t> bad_by_reason;  // record_kind_name -> count
  std::vector<std::string> first_errors;          // "file:line: reason", at most 10
  uint64_t replaced_utf8 = 0;                     // over accepted documents
  uint64_t blank_lines = 0;                       // whitespace-only JSONL lines, ignored
};

struct CorpusOptions {
  std::string key = "content";
  OnError on_error = OnError::kFail;
};

struct Document {
  std::string text;
  uint64_t line = 0;
};

class CorpusReader {
 public:
  // Opens `path`, checks that its extension and its magic bytes agree on the compression, and
  // detects the layout. Errors: NotFound, InvalidArgument (mismatch), DataLoss (corrupt stream).
  static core::StatusOr<CorpusReader> open(const std::string& path, const CorpusOptions& options);
  CorpusReader();
  ~CorpusReader();
  CorpusReader(CorpusReader&&) noexcept;
  CorpusReader& operator=(CorpusReader&&) noexcept;

  // Sequential use: the next accepted document, false at the end. Bad records are skipped and
  // counted (kSkip) or turn into the error of fail_report() (kFail).
  core::StatusOr<bool> next(Document& document);

  // Pipelined use (prepare): next_record() reads, parse_record() runs anywhere, and account() is
  // called in input order with the record's line; it returns true for a document to keep.
  core::StatusOr<bool> next_record(RawRecord& record);
  bool account(uint64_t line, const ParsedRecord& parsed);
  // Under kFail after a bad record: reads on until 10 bad records or the end, and returns the
  // error listing them with file:line.
  core::Status fail_report();

  const CorpusStats& stats() const;
  const std::string& path() const;
  const CorpusOptions& options() const;
  Compression compression() const;
  CorpusLayout layout() const;
  uint64_t file_bytes() const;      // size of the input file on disk
  uint64_t bytes_consumed() const;  // of the file on disk (compressed bytes for .gz/.zst)
  uint64_t text_bytes() const;      // decompressed bytes scanned so far

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hydraulis::data
