// Corpus reader: byte sources (plain, gzip, zstd), record splitting (JSON Lines, JSON array),
// record parsing and the bad-record policy. Memory stays bounded by the longest record plus one
// read buffer; compressed input is decoded as a stream. Tests: tests/data/corpus_reader_test.cpp.
#include "data/corpus_reader.h"

#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/file.h"
#include "data/utf8.h"

namespace hydraulis::data {

namespace {

using core::Status;
using core::StatusOr;

constexpr size_t kReadChunk = 1 << 20;  // bytes read from disk per call
constexpr unsigned char kGzipMagic[2] = {0x1f, 0x8b};
constexpr unsigned char kZstdMagic[4] = {0x28, 0xb5, 0x2f, 0xfd};

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// A stream of decompressed bytes; read() returns 0 at the end.
class ByteSource {
 public:
  virtual ~ByteSource() {
    if (file_ != nullptr) std::fclose(file_);
  }
  virtual StatusOr<size_t> read(char* out, size_t capacity) = 0;
  uint64_t consumed() const { return consumed_; }

 protected:
  // Reads raw file bytes into `in_`; returns the count (0 at the end of the file).
  StatusOr<size_t> read_raw() {
    in_.resize(kReadChunk);
    size_t n = std::fread(in_.data(), 1, in_.size(), file_);
    if (n == 0 && std::ferror(file_)) {
      return core::io_error("{}: read failed after {} bytes: {}", path_, consumed_,
                            std::strerror(errno));
    }
    consumed_ += n;
    return n;
  }

  std::string path_;
  std::FILE* file_ = nullptr;
  std::vector<unsigned char> in_;
  uint64_t consumed_ = 0;

  friend StatusOr<std::unique_ptr<ByteSource>> open_source(const std::string&, Compression);
};

class PlainSource final : public ByteSource {
 public:
  StatusOr<size_t> read(char* out, size_t capacity) override {
    size_t n = std::fread(out, 1, capacity, file_);
    if (n == 0 && std::ferror(file_)) {
      return core::io_error("{}: read failed after {} bytes: {}", path_, consumed_,
                            std::strerror(errno));
    }
    consumed_ += n;
    return n;
  }
};

// gzip (RFC 1952) through zlib; concatenated members are read one after another.
class GzipSource final : public ByteSource {
 public:
  GzipSource() {
    std::memset(&stream_, 0, sizeof(stream_));
    HYD_CHECK(inflateInit2(&stream_, 16 + MAX_WBITS) == Z_OK, "inflateInit2 failed");
  }
  ~GzipSource() override { inflateEnd(&stream_); }

  StatusOr<size_t> read(char* out, size_t capacity) override {
    stream_.next_out = reinterpret_cast<Bytef*>(out);
    stream_.avail_out = static_cast<uInt>(capacity);
    while (stream_.avail_out == capacity) {
      // After a call that filled the output, zlib may hold more output without needing input.
      if (stream_.avail_in == 0 && !output_pending_) {
        HYD_ASSIGN_OR_RETURN(size_t n, read_raw());
        if (n == 0) {
          if (in_member_) {
            return core::data_loss(
                "{}: truncated gzip stream: the file ends after {} bytes inside a member (no "
                "end-of-stream marker); re-create or re-download it",
                path_, consumed_);
          }
          break;
        }
        stream_.next_in = in_.data();
        stream_.avail_in = static_cast<uInt>(n);
      }
      if (stream_.avail_in > 0) in_member_ = true;
      int rc = inflate(&stream_, Z_NO_FLUSH);
      output_pending_ = stream_.avail_out == 0;
      if (rc == Z_STREAM_END) {  // returned only once the member's output is all out
        in_member_ = false;
        output_pending_ = false;
        inflateReset(&stream_);  // a following member, if any, starts a new stream
      } else if (rc == Z_BUF_ERROR) {
        output_pending_ = false;  // no progress possible without more input
      } else if (rc != Z_OK) {
        return core::data_loss("{}: corrupt gzip data near compressed byte {}: {}", path_,
                               consumed_ - stream_.avail_in,
                               stream_.msg != nullptr ? stream_.msg : zError(rc));
      }
    }
    return capacity - stream_.avail_out;
  }

 private:
  z_stream stream_;
  bool in_member_ = false;
  bool output_pending_ = false;
};

// zstd frames through ZSTD_decompressStream; concatenated frames are read one after another.
class ZstdSource final : public ByteSource {
 public:
  ZstdSource() : context_(ZSTD_createDStream()) {
    HYD_CHECK(context_ != nullptr, "ZSTD_createDStream");
  }
  ~ZstdSource() override { ZSTD_freeDStream(context_); }

  StatusOr<size_t> read(char* out, size_t capacity) override {
    ZSTD_outBuffer output{out, capacity, 0};
    while (output.pos == 0) {
      // After a call that filled the output, zstd may hold more output without needing input.
      if (input_.pos == input_.size && !output_pending_) {
        HYD_ASSIGN_OR_RETURN(size_t n, read_raw());
        if (n == 0) {
          if (in_frame_) {
            return core::data_loss(
                "{}: truncated zstd stream: the file ends after {} bytes inside a frame; "
                "re-create or re-download it",
                path_, consumed_);
          }
          break;
        }
        input_ = ZSTD_inBuffer{in_.data(), n, 0};
      }
      size_t rc = ZSTD_decompressStream(context_, &output, &input_);
      if (ZSTD_isError(rc)) {
        return core::data_loss("{}: corrupt zstd data near compressed byte {}: {}", path_,
                               consumed_ - (input_.size - input_.pos), ZSTD_getErrorName(rc));
      }
      in_frame_ = rc != 0;  // 0: a frame is complete and fully flushed
      output_pending_ = output.pos == output.size;
    }
    return output.pos;
  }

 private:
  ZSTD_DStream* context_;
  ZSTD_inBuffer input_{nullptr, 0, 0};
  bool in_frame_ = false;
  bool output_pending_ = false;
};

StatusOr<std::unique_ptr<ByteSource>> open_source(const std::string& path,
                                                  Compression compression) {
  std::unique_ptr<ByteSource> source;
  switch (compression) {
    case Compression::kNone:
      source = std::make_unique<PlainSource>();
      break;
    case Compression::kGzip:
      source = std::make_unique<GzipSource>();
      break;
    case Compression::kZstd:
      source = std::make_unique<ZstdSource>();
      break;
  }
  source->path_ = path;
  source->file_ = std::fopen(path.c_str(), "rb");
  if (source->file_ == nullptr) {
    return core::io_error("{}: cannot open for reading: {}", path, std::strerror(errno));
  }
  return source;
}

// Compression from the extension, checked against the magic bytes at the start of the file.
StatusOr<Compression> detect_compression(const std::string& path) {
  unsigned char magic[4] = {0, 0, 0, 0};
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    if (!core::file_exists(path)) return core::not_found("{}: no such file", path);
    return core::io_error("{}: cannot open for reading: {}", path, std::strerror(errno));
  }
  size_t n = std::fread(magic, 1, sizeof(magic), file);
  std::fclose(file);
  const bool gzip_magic = n >= 2 && std::memcmp(magic, kGzipMagic, 2) == 0;
  const bool zstd_magic = n >= 4 && std::memcmp(magic, kZstdMagic, 4) == 0;
  if (ends_with(path, ".gz")) {
    if (!gzip_magic) {
      return core::invalid_argument(
          "{}: the name ends in .gz but the file does not start with the gzip magic 1f 8b "
          "(found {:02x} {:02x}); it is not gzip data",
          path, magic[0], magic[1]);
    }
    return Compression::kGzip;
  }
  if (ends_with(path, ".zst") || ends_with(path, ".zstd")) {
    if (!zstd_magic) {
      return core::invalid_argument(
          "{}: the name ends in .zst but the file does not start with the zstd magic 28 b5 2f fd "
          "(found {:02x} {:02x} {:02x} {:02x}); it is not zstd data",
          path, magic[0], magic[1], magic[2], magic[3]);
    }
    return Compression::kZstd;
  }
  if (gzip_magic || zstd_magic) {
    return core::invalid_argument(
        "{}: the file starts with the {} magic but its name has no {} extension; rename it so "
        "that name and contents agree",
        path, gzip_magic ? "gzip" : "zstd", gzip_magic ? ".gz" : ".zst");
  }
  return Compression::kNone;
}

// "[json.exception.parse_error.101] parse error at line 1, column 5: syntax error ..." ->
// "syntax error ...".
std::string short_json_error(const std::string& what) {
  size_t at = what.find("column ");
  size_t colon = what.find(": ", at == std::string::npos ? 0 : at);
  return colon == std::string::npos ? what : what.substr(colon + 2);
}

std::string key_list(const nlohmann::json& object) {
  std::string keys;
  size_t shown = 0;
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (shown == 5) {
      keys += ", ...";
      break;
    }
    keys += fmt::format("{}'{}'", shown++ ? ", " : "", it.key());
  }
  return keys.empty() ? "none" : keys;
}

}  // namespace

StatusOr<OnError> parse_on_error(std::string_view text) {
  if (text == "fail") return OnError::kFail;
  if (text == "skip") return OnError::kSkip;
  return core::invalid_argument("--on-error must be 'fail' or 'skip', got '{}'", text);
}

const char* on_error_name(OnError policy) {
  return policy == OnError::kFail ? "fail" : "skip";
}

const char* compression_name(Compression compression) {
  switch (compression) {
    case Compression::kNone:
      return "none";
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
  }
  return "?";
}

const char* record_kind_name(RecordKind kind) {
  switch (kind) {
    case RecordKind::kDocument:
      return "document";
    case RecordKind::kEmpty:
      return "empty document";
    case RecordKind::kMalformedJson:
      return "malformed JSON";
    case RecordKind::kNotObject:
      return "not a JSON object";
    case RecordKind::kMissingKey:
      return "missing key";
    case RecordKind::kNotString:
      return "non-string value";
  }
  return "?";
}

ParsedRecord parse_record(std::string_view json, std::string_view key) {
  ParsedRecord record;
  // nlohmann rejects invalid UTF-8 inside strings, so repair the bytes first; outside strings
  // JSON is ASCII, where a replacement still leaves the record malformed.
  std::string repaired;
  if (!is_valid_utf8(json)) {
    size_t replaced = 0;
    repaired = sanitize_utf8(json, &replaced);
    record.replaced_utf8 = replaced;
    json = repaired;
  }
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(json.begin(), json.end());
  } catch (const nlohmann::json::parse_error& e) {
    record.kind = RecordKind::kMalformedJson;
    record.reason =
        fmt::format("malformed JSON at column {}: {}", e.byte, short_json_error(e.what()));
    return record;
  } catch (const nlohmann::json::exception& e) {
    record.kind = RecordKind::kMalformedJson;
    record.reason = fmt::format("malformed JSON: {}", e.what());
    return record;
  }
  if (!value.is_object()) {
    record.kind = RecordKind::kNotObject;
    record.reason =
        fmt::format("expected a JSON object with key '{}', got {}", key, value.type_name());
    return record;
  }
  auto it = value.find(key);
  if (it == value.end()) {
    record.kind = RecordKind::kMissingKey;
    record.reason =
        fmt::format("key '{}' missing (keys: {}); choose the key with --key", key, key_list(value));
    return record;
  }
  if (!it->is_string()) {
    record.kind = RecordKind::kNotString;
    std::string shown = it->dump();
    if (shown.size() > 40) shown = shown.substr(0, 40) + "...";
    record.reason = fmt::format("'{}' must be a string, got {} {}", key, it->type_name(), shown);
    return record;
  }
  record.text = std::move(it->get_ref<std::string&>());
  record.kind = record.text.empty() ? RecordKind::kEmpty : RecordKind::kDocument;
  return record;
}

// ---------------------------------------------------------------------------------------------

struct CorpusReader::Impl {
  std::string path;
  CorpusOptions options;
  Compression compression = Compression::kNone;
  CorpusLayout layout = CorpusLayout::kJsonLines;
  uint64_t file_bytes = 0;
  std::unique_ptr<ByteSource> source;
  CorpusStats stats;

  std::string buffer;  // decompressed bytes; [pos, size) not yet consumed
  size_t pos = 0;
  bool eof = false;
  uint64_t line = 1;        // line of buffer[pos]
  uint64_t text_bytes = 0;  // decompressed bytes consumed by records
  // JSON array state: before '[', inside, or after ']'.
  enum class ArrayState { kBeforeOpen, kInside, kClosed } array_state = ArrayState::kBeforeOpen;
  uint64_t elements = 0;

  // Appends more decompressed bytes; false at the end of the input.
  StatusOr<bool> fill() {
    if (eof) return false;
    if (pos > 0 && pos == buffer.size()) {
      buffer.clear();
      pos = 0;
    } else if (pos > (1u << 22)) {
      buffer.erase(0, pos);
      pos = 0;
    }
    size_t old = buffer.size();
    buffer.resize(old + kReadChunk);
    HYD_ASSIGN_OR_RETURN(size_t n, source->read(buffer.data() + old, kReadChunk));
    buffer.resize(old + n);
    if (n == 0) eof = true;
    return n > 0;
  }

  // The first non-blank byte decides the layout; a UTF-8 byte order mark is skipped.
  Status detect_layout() {
    HYD_ASSIGN_OR_RETURN(bool any, fill());
    if (any && buffer.compare(0, 3, "\xEF\xBB\xBF") == 0) {
      pos = 3;
      text_bytes = 3;
    }
    while (true) {
      while (pos < buffer.size() && is_blank(buffer[pos])) {
        if (buffer[pos] == '\n') ++line;
        ++pos;
      }
      if (pos < buffer.size()) break;
      HYD_ASSIGN_OR_RETURN(bool more, fill());
      if (!more) return Status::ok();  // empty input: no records
    }
    layout = buffer[pos] == '[' ? CorpusLayout::kJsonArray : CorpusLayout::kJsonLines;
    return Status::ok();
  }

  StatusOr<bool> next_line(RawRecord& record) {
    while (true) {
      size_t scanned = pos;
      const char* newline = nullptr;
      while (true) {
        newline = static_cast<const char*>(
            std::memchr(buffer.data() + scanned, '\n', buffer.size() - scanned));
        if (newline != nullptr) break;
        const size_t unread_scanned = buffer.size() - pos;
        HYD_ASSIGN_OR_RETURN(bool more, fill());
        scanned = pos + unread_scanned;  // fill() may move the unread bytes to the front
        if (!more) break;
      }
      size_t end =
          newline != nullptr ? static_cast<size_t>(newline - buffer.data()) : buffer.size();
      if (end == pos && newline == nullptr) return false;  // nothing left
      std::string_view text(buffer.data() + pos, end - pos);
      if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
      record.line = line;
      text_bytes += end - pos + (newline != nullptr ? 1 : 0);
      pos = newline != nullptr ? end + 1 : end;
      ++line;
      bool blank = true;
      for (char c : text) blank = blank && is_blank(c);
      if (blank) {
        ++stats.blank_lines;
        continue;
      }
      record.json.assign(text);
      return true;
    }
  }

  // Splits a JSON array into elements: tracks strings, escapes and {}/[] depth; an element ends
  // at a ',' or ']' at depth 0. Structure errors of the array itself are fatal.
  StatusOr<bool> next_element(RawRecord& record) {
    record.json.clear();
    bool in_string = false;
    bool escape = false;
    int depth = 0;
    bool started = false;
    while (true) {
      if (pos == buffer.size()) {
        HYD_ASSIGN_OR_RETURN(bool more, fill());
        if (!more) {
          if (array_state == ArrayState::kClosed && !started) return false;
          return core::invalid_argument(
              "{}:{}: the JSON array is not closed: the input ends before its ']' (truncated "
              "file?)",
              path, line);
        }
      }
      const char c = buffer[pos++];
      ++text_bytes;
      if (array_state != ArrayState::kInside) {
        if (c == '\n') ++line;
        if (is_blank(c)) continue;
        if (array_state == ArrayState::kBeforeOpen && c == '[') {
          array_state = ArrayState::kInside;
          continue;
        }
        return core::invalid_argument("{}:{}: unexpected '{}' after the end of the JSON array",
                                      path, line, c);
      }
      if (!started) {
        if (c == '\n') ++line;
        if (is_blank(c)) continue;
        if (c == ']' && elements == 0) {  // "[]": an empty array
          array_state = ArrayState::kClosed;
          continue;
        }
        started = true;
        record.line = line;
      }
      if (in_string) {
        if (escape) {
          escape = false;
        } else if (c == '\\') {
          escape = true;
        } else if (c == '"') {
          in_string = false;
        }
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if ((c == '}' || c == ']') && depth > 0) {
        --depth;
      } else if (depth == 0 && (c == ',' || c == ']')) {
        if (c == ']') array_state = ArrayState::kClosed;
        ++elements;
        return true;
      }
      if (c == '\n') ++line;
      record.json.push_back(c);
    }
  }
};

CorpusReader::CorpusReader() = default;
CorpusReader::~CorpusReader() = default;
CorpusReader::CorpusReader(CorpusReader&&) noexcept = default;
CorpusReader& CorpusReader::operator=(CorpusReader&&) noexcept = default;

StatusOr<CorpusReader> CorpusReader::open(const std::string& path, const CorpusOptions& options) {
  if (options.key.empty()) return core::invalid_argument("--key must not be empty");
  HYD_ASSIGN_OR_RETURN(Compression compression, detect_compression(path));
  HYD_ASSIGN_OR_RETURN(uint64_t size, core::file_size(path));
  CorpusReader reader;
  reader.impl_ = std::make_unique<Impl>();
  Impl& r = *reader.impl_;
  r.path = path;
  r.options = options;
  r.compression = compression;
  r.file_bytes = size;
  HYD_ASSIGN_OR_RETURN(r.source, open_source(path, compression));
  HYD_RETURN_IF_ERROR(r.detect_layout());
  return reader;
}

StatusOr<bool> CorpusReader::next_record(RawRecord& record) {
  return impl_->layout == CorpusLayout::kJsonArray ? impl_->next_element(record)
                                                   : impl_->next_line(record);
}

bool CorpusReader::account(uint64_t line, const ParsedRecord& parsed) {
  CorpusStats& s = impl_->stats;
  ++s.records;
  if (parsed.kind == RecordKind::kDocument) {
    ++s.documents;
    s.replaced_utf8 += parsed.replaced_utf8;
    return true;
  }
  if (parsed.kind == RecordKind::kEmpty) {
    ++s.empty_documents;
    return false;
  }
  ++s.bad_records;
  ++s.bad_by_reason[record_kind_name(parsed.kind)];
  if (s.first_errors.size() < kMaxReportedErrors) {
    s.first_errors.push_back(fmt::format("{}:{}: {}", impl_->path, line, parsed.reason));
  }
  return false;
}

Status CorpusReader::fail_report() {
  CorpusStats& s = impl_->stats;
  RawRecord record;
  bool at_end = false;
  while (s.bad_records < kMaxReportedErrors) {
    HYD_ASSIGN_OR_RETURN(bool more, next_record(record));
    if (!more) {
      at_end = true;
      break;
    }
    account(record.line, parse_record(record.json, impl_->options.key));
  }
  std::string list;
  for (const std::string& error : s.first_errors) list += "\n  " + error;
  std::string count = at_end ? fmt::format("{} bad record(s)", s.bad_records)
                             : fmt::format("at least {} bad records (stopped looking at line {})",
                                           s.bad_records, record.line);
  return core::invalid_argument(
      "{}: {} under key '{}' (--on-error fail):{}\nFix these lines, or pass "
      "--on-error skip to drop bad records (they are counted by reason in the summary).",
      impl_->path, count, impl_->options.key, list);
}

StatusOr<bool> CorpusReader::next(Document& document) {
  RawRecord record;
  while (true) {
    HYD_ASSIGN_OR_RETURN(bool more, next_record(record));
    if (!more) return false;
    ParsedRecord parsed = parse_record(record.json, impl_->options.key);
    const bool keep = account(record.line, parsed);
    if (keep) {
      document.text = std::move(parsed.text);
      document.line = record.line;
      return true;
    }
    if (is_bad_record(parsed.kind) && impl_->options.on_error == OnError::kFail) {
      return fail_report();
    }
  }
}

const CorpusStats& CorpusReader::stats() const {
  return impl_->stats;
}
const std::string& CorpusReader::path() const {
  return impl_->path;
}
const CorpusOptions& CorpusReader::options() const {
  return impl_->options;
}
Compression CorpusReader::compression() const {
  return impl_->compression;
}
CorpusLayout CorpusReader::layout() const {
  return impl_->layout;
}
uint64_t CorpusReader::file_bytes() const {
  return impl_->file_bytes;
}
uint64_t CorpusReader::bytes_consumed() const {
  return impl_->source->consumed();
}
uint64_t CorpusReader::text_bytes() const {
  return impl_->text_bytes;
}

}  // namespace hydraulis::data
