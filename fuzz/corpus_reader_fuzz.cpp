// Fuzz target: corpus reader (JSON Lines / JSON array, plain, .gz or .zst). The input bytes are a
// corpus file, named after its magic bytes so that gzip/zstd inputs reach the decompressors.
// Property: every read ends in documents or a clean Status; every document is non-empty valid
// UTF-8; the statistics add up. Regressions: tests/reliability/fuzz_regression_test.cpp.
#include <string>

#include "data/corpus_reader.h"
#include "data/utf8.h"
#include "fuzz/fuzz_support.h"

namespace hydraulis::fuzz {

namespace {

const char* corpus_name(std::string_view bytes) {
  if (bytes.starts_with("\x1f\x8b")) return "corpus.jsonl.gz";
  if (bytes.starts_with("\x28\xb5\x2f\xfd")) return "corpus.jsonl.zst";
  return "corpus.jsonl";
}

void read_all(const std::string& path, data::OnError policy) {
  data::CorpusOptions options;
  options.on_error = policy;
  auto reader = data::CorpusReader::open(path, options);
  if (!reader.is_ok()) {
    HYD_CHECK(!reader.status().message().empty(), "error Status without a message");
    return;
  }
  data::Document document;
  uint64_t documents = 0;
  uint64_t previous_line = 0;
  while (true) {
    auto more = reader->next(document);
    if (!more.is_ok()) {
      HYD_CHECK(!more.status().message().empty(), "error Status without a message");
      return;
    }
    if (!*more) break;
    ++documents;
    HYD_CHECK(!document.text.empty(), "document at line {} is empty", document.line);
    HYD_CHECK(data::is_valid_utf8(document.text), "document at line {} is not valid UTF-8",
              document.line);
    HYD_CHECK(document.line >= previous_line, "line {} after line {}", document.line,
              previous_line);
    previous_line = document.line;
  }
  const data::CorpusStats& stats = reader->stats();
  HYD_CHECK(stats.documents == documents, "stats say {} documents, read {}", stats.documents,
            documents);
  HYD_CHECK(stats.records == stats.documents + stats.empty_documents + stats.bad_records,
            "records {} != documents {} + empty {} + bad {}", stats.records, stats.documents,
            stats.empty_documents, stats.bad_records);
  HYD_CHECK(stats.first_errors.size() <= data::kMaxReportedErrors, "{} errors reported",
            stats.first_errors.size());
}

}  // namespace

int corpus_reader_one_input(const uint8_t* data, size_t size) {
  quiet_logs();
  const std::string_view bytes = as_text(data, size);
  // One record on its own (the worker-thread path of prepare).
  data::ParsedRecord parsed = data::parse_record(bytes, "content");
  if (parsed.kind == data::RecordKind::kDocument) {
    HYD_CHECK(!parsed.text.empty() && data::is_valid_utf8(parsed.text),
              "parse_record returned an empty or invalid UTF-8 document");
  } else if (data::is_bad_record(parsed.kind)) {
    HYD_CHECK(!parsed.reason.empty(), "bad record without a reason");
  }
  const std::string path = write_scratch_file(corpus_name(bytes), bytes);
  read_all(path, data::OnError::kSkip);
  read_all(path, data::OnError::kFail);
  return 0;
}

}  // namespace hydraulis::fuzz

HYD_FUZZ_TARGET(corpus_reader_one_input)
