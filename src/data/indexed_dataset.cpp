// MMIDIDX writer and memory-mapped reader (layout: docs/formats.md, same bytes as Megatron-LM's
// megatron/core/datasets/indexed_dataset.py). The writer streams tokens to a temp P.bin and keeps
// the lengths in memory until finish(); the reader checks every header field, the file sizes and
// every pointer before handing out a token; P.sum (data/dataset_sum.h), when present, is checked
// first. Tests: tests/data/indexed_dataset_test.cpp, tests/data/dataset_sum_test.cpp.
#include "data/indexed_dataset.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>

#include "core/bytes.h"
#include "core/check.h"
#include "core/log.h"

namespace hydraulis::data {

static_assert(std::endian::native == std::endian::little,
              "MMIDIDX is little-endian; this build writes host-order integers");

namespace {

using core::Status;
using core::StatusOr;
using core::append_pod;
using core::hex_bytes;
using core::load_pod;

// A read-only mapping of a whole file (an empty file maps to nothing).
class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile() { reset(); }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  Status open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) {
        return core::not_found("{}: no such file (write it with `hydraulis data prepare`)", path);
      }
      return core::io_error("{}: cannot open: {}", path, std::strerror(errno));
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return core::io_error("{}: cannot stat: {}", path, std::strerror(err));
    }
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ > 0) {
      void* data = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
      if (data == MAP_FAILED) {
        int err = errno;
        ::close(fd);
        return core::io_error("{}: mmap of {} bytes failed: {}", path, size_, std::strerror(err));
      }
      data_ = static_cast<const uint8_t*>(data);
    }
    ::close(fd);  // the mapping stays valid without the descriptor
    return Status::ok();
  }

  void reset() {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

// Removes "<prefix>.{bin,idx,sum}.tmp.<pid>" left by a killed writer whose
// process no longer exists (AtomicFile names temp files after the writing process).
void remove_stale_temp_files(const std::string& prefix) {
  namespace fs = std::filesystem;
  const fs::path base(prefix);
  const fs::path directory = base.has_parent_path() ? base.parent_path() : fs::path(".");
  const std::string name = base.filename().string();
  std::error_code ec;
  for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::directory_entry& entry = *it;
    const std::string file = entry.path().filename().string();
    for (const char* kind : {".bin.tmp.", ".idx.tmp.", ".sum.tmp."}) {
      const std::string stem = name + kind;
      if (file.size() <= stem.size() || file.compare(0, stem.size(), stem) != 0) continue;
      const std::string digits = file.substr(stem.size());
      if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9)
        continue;
      const pid_t pid = static_cast<pid_t>(std::stol(digits));
      if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive or ours
      if (::unlink(entry.path().c_str()) == 0) {
        core::log_info("removed {} left by an interrupted run (process {} is gone)",
                       entry.path().string(), pid);
      }
    }
  }
}

Status remove_if_present(const std::string& path, const char* what) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return core::io_error("{}: cannot remove the previous {}: {}", path, what,
                          std::strerror(errno));
  }
  return Status::ok();
}

}  // namespace

TokenDType token_dtype_for_vocab(int64_t vocab_size) {
  return vocab_size < 65536 ? TokenDType::kU16 : TokenDType::kI32;
}

int token_dtype_bytes(TokenDType dtype) {
  return dtype == TokenDType::kU16 ? 2 : 4;
}

const char* token_dtype_name(TokenDType dtype) {
  return dtype == TokenDType::kU16 ? "uint16" : "int32";
}

std::string bin_path(const std::string& prefix) {
  return prefix + ".bin";
}
std::string idx_path(const std::string& prefix) {
  return prefix + ".idx";
}

// ---------------------------------------------------------------------------------------------
// Writer

struct IndexedDatasetWriter::Impl {
  std::string prefix;
  TokenDType dtype = TokenDType::kU16;
  core::AtomicFile bin;
  ChunkCrcs bin_crcs;  // of every byte written to `bin`, for P.sum
  std::vector<int32_t> lengths;
  uint64_t tokens = 0;
  std::vector<uint16_t> u16_buffer;
  bool finished = false;
};

IndexedDatasetWriter::IndexedDatasetWriter() = default;
IndexedDatasetWriter::~IndexedDatasetWriter() = default;
IndexedDatasetWriter::IndexedDatasetWriter(IndexedDatasetWriter&&) noexcept = default;
IndexedDatasetWriter& IndexedDatasetWriter::operator=(IndexedDatasetWriter&&) noexcept = default;

StatusOr<IndexedDatasetWriter> IndexedDatasetWriter::create(const std::string& prefix,
                                                            TokenDType dtype) {
  if (prefix.empty()) return core::invalid_argument("empty output prefix");
  if (dtype != TokenDType::kU16 && dtype != TokenDType::kI32) {
    return core::invalid_argument("unsupported token dtype code {}", static_cast<int>(dtype));
  }
  struct stat st;
  if (::stat(prefix.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return core::invalid_argument(
        "output prefix {} is a directory; pass a prefix such as {}/data (writes data.bin and "
        "data.idx)",
        prefix, prefix);
  }
  HYD_ASSIGN_OR_RETURN(core::AtomicFile bin, core::AtomicFile::create(bin_path(prefix)));
  remove_stale_temp_files(prefix);
  IndexedDatasetWriter writer;
  writer.impl_ = std::make_unique<Impl>();
  writer.impl_->prefix = prefix;
  writer.impl_->dtype = dtype;
  writer.impl_->bin = std::move(bin);
  return writer;
}

Status IndexedDatasetWriter::add_document(std::span<const int32_t> ids) {
  HYD_CHECK(impl_ != nullptr, "add_document on a moved-from or default IndexedDatasetWriter");
  Impl& w = *impl_;
  if (w.finished) return core::internal_error("{}: add_document after finish()", w.prefix);
  if (ids.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return core::out_of_range("{}: document {} has {} tokens; MMIDIDX lengths are int32", w.prefix,
                              w.lengths.size(), ids.size());
  }
  if (w.dtype == TokenDType::kU16) {
    w.u16_buffer.resize(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] < 0 || ids[i] > 65535) {
        return core::out_of_range(
            "{}: document {} token {} has id {}, outside uint16 [0, 65535]; write this vocabulary "
            "with int32 tokens",
            w.prefix, w.lengths.size(), i, ids[i]);
      }
      w.u16_buffer[i] = static_cast<uint16_t>(ids[i]);
    }
    HYD_RETURN_IF_ERROR(w.bin.write(w.u16_buffer.data(), ids.size() * sizeof(uint16_t)));
    w.bin_crcs.update(w.u16_buffer.data(), ids.size() * sizeof(uint16_t));
  } else {
    HYD_RETURN_IF_ERROR(w.bin.write(ids.data(), ids.size() * sizeof(int32_t)));
    w.bin_crcs.update(ids.data(), ids.size() * sizeof(int32_t));
  }
  w.lengths.push_back(static_cast<int32_t>(ids.size()));
  w.tokens += ids.size();
  return Status::ok();
}

Status IndexedDatasetWriter::finish() {
  HYD_CHECK(impl_ != nullptr, "finish on a moved-from or default IndexedDatasetWriter");
  Impl& w = *impl_;
  if (w.finished) return core::internal_error("{}: finish() called twice", w.prefix);
  const uint64_t n = w.lengths.size();
  std::string index;
  index.reserve(kIndexHeaderBytes + n * 12 + (n + 1) * 8);
  index.append(kIndexMagic, sizeof(kIndexMagic));
  append_pod<uint64_t>(index, kIndexVersion);
  append_pod<uint8_t>(index, static_cast<uint8_t>(w.dtype));
  append_pod<uint64_t>(index, n);      // sequence count
  append_pod<uint64_t>(index, n + 1);  // document count = entries of document_indices
  index.append(reinterpret_cast<const char*>(w.lengths.data()), n * sizeof(int32_t));
  int64_t pointer = 0;
  const int64_t item = token_dtype_bytes(w.dtype);
  for (int32_t length : w.lengths) {
    append_pod<int64_t>(index, pointer);
    pointer += static_cast<int64_t>(length) * item;
  }
  for (uint64_t d = 0; d <= n; ++d) append_pod<int64_t>(index, static_cast<int64_t>(d));
  HYD_CHECK(static_cast<uint64_t>(pointer) == w.bin.bytes_written(),
            "pointer sum {} != bytes written {}", pointer, w.bin.bytes_written());

  ChunkCrcs idx_crcs;
  idx_crcs.update(index.data(), index.size());
  HYD_CHECK(w.bin_crcs.total_bytes() == w.bin.bytes_written(), "checksummed {} of {} bytes",
            w.bin_crcs.total_bytes(), w.bin.bytes_written());

  HYD_ASSIGN_OR_RETURN(core::AtomicFile idx, core::AtomicFile::create(idx_path(w.prefix)));
  HYD_RETURN_IF_ERROR(idx.write(index));
  HYD_ASSIGN_OR_RETURN(core::AtomicFile sum, core::AtomicFile::create(sum_path(w.prefix)));
  HYD_RETURN_IF_ERROR(sum.write(make_dataset_sum(w.bin_crcs, idx_crcs)));
  // All temp files reach the disk before the old files are touched: a full disk (the last
  // buffered bytes of any file) fails here and leaves the previous dataset as it was.
  HYD_RETURN_IF_ERROR(w.bin.flush());
  HYD_RETURN_IF_ERROR(idx.flush());
  HYD_RETURN_IF_ERROR(sum.flush());
  // Order (docs/formats.md): drop the old P.sum, then the old P.idx (durably), commit the data,
  // the index, and last the new P.sum. Until the P.idx rename there is no P.idx, so no reader
  // pairs a new P.bin with an old P.idx; until the P.sum rename there is no P.sum, so no P.sum
  // ever describes files other than the pair beside it.
  HYD_RETURN_IF_ERROR(remove_if_present(sum_path(w.prefix), "checksum file"));
  HYD_RETURN_IF_ERROR(remove_if_present(idx_path(w.prefix), "index"));
  // The unlinks become durable before any rename (rename order alone may not survive a power
  // loss).
  HYD_RETURN_IF_ERROR(core::fsync_parent_directory(w.prefix));
  HYD_RETURN_IF_ERROR(w.bin.commit());
  Status committed = idx.commit();
  if (!committed.is_ok()) {
    ::unlink(bin_path(w.prefix).c_str());
    return committed;
  }
  committed = sum.commit();
  if (!committed.is_ok()) {  // nothing appears on failure, as for the pair
    ::unlink(idx_path(w.prefix).c_str());
    ::unlink(bin_path(w.prefix).c_str());
    return committed;
  }
  w.finished = true;
  return Status::ok();
}

uint64_t IndexedDatasetWriter::num_sequences() const {
  return impl_ ? impl_->lengths.size() : 0;
}
uint64_t IndexedDatasetWriter::num_tokens() const {
  return impl_ ? impl_->tokens : 0;
}

// ---------------------------------------------------------------------------------------------
// Reader

struct IndexedDataset::Impl {
  std::string prefix;
  MappedFile idx;
  MappedFile bin;
  TokenDType dtype = TokenDType::kU16;
  uint64_t sequences = 0;
  uint64_t document_entries = 0;  // the document count field (documents + 1)
  uint64_t tokens = 0;
  std::vector<int32_t> lengths;  // copied: the mapped array is not 4-byte aligned
  uint64_t pointers_offset = 0;
  uint64_t documents_offset = 0;
  std::optional<SumCheck> sum;

  Status check_sum(SumRequirement requirement);
  Status validate_header(const std::string& path);
  Status validate_arrays(const std::string& ipath, const std::string& bpath);
};

// Validates the header and sizes of P.idx; fills dtype, counts and offsets.
Status IndexedDataset::Impl::validate_header(const std::string& path) {
  Impl& d = *this;
  const uint8_t* p = d.idx.data();
  const uint64_t size = d.idx.size();
  if (size < kIndexHeaderBytes) {
    return core::data_loss("{}: header: expected at least {} bytes, found {} (truncated)", path,
                           kIndexHeaderBytes, size);
  }
  if (std::memcmp(p, kIndexMagic, sizeof(kIndexMagic)) != 0) {
    return core::data_loss(
        "{}: magic: expected 4d 4d 49 44 49 44 58 00 00 (\"MMIDIDX\\0\\0\"), found {} (not a "
        "Megatron MMIDIDX index)",
        path, hex_bytes(p, sizeof(kIndexMagic)));
  }
  const uint64_t version = load_pod<uint64_t>(p + 9);
  if (version != kIndexVersion) {
    return core::data_loss("{}: version: expected {}, found {}", path, kIndexVersion, version);
  }
  const uint8_t code = p[17];
  if (code != static_cast<uint8_t>(TokenDType::kU16) &&
      code != static_cast<uint8_t>(TokenDType::kI32)) {
    return core::data_loss("{}: dtype code: expected 8 (uint16) or 4 (int32), found {}", path,
                           code);
  }
  d.dtype = static_cast<TokenDType>(code);
  d.sequences = load_pod<uint64_t>(p + 18);
  d.document_entries = load_pod<uint64_t>(p + 26);
  const uint64_t body = size - kIndexHeaderBytes;
  // Bound the counts before multiplying so that a corrupt count cannot overflow.
  if (d.sequences > body / 12 || d.document_entries > body / 8) {
    return core::data_loss(
        "{}: file size: expected {} + 12·{} + 8·{} bytes for the counts in the header, found {} "
        "(truncated or corrupt counts)",
        path, kIndexHeaderBytes, d.sequences, d.document_entries, size);
  }
  const uint64_t expected = kIndexHeaderBytes + 12 * d.sequences + 8 * d.document_entries;
  if (size != expected) {
    const char* why = size == expected + d.sequences
                          ? "a multimodal index with sequence modes, which Hydraulis does not read"
                          : (size < expected ? "truncated" : "trailing bytes");
    return core::data_loss(
        "{}: file size: expected {} bytes for {} sequences and {} document indices, found {} ({})",
        path, expected, d.sequences, d.document_entries, size, why);
  }
  if (d.document_entries == 0) {
    return core::data_loss(
        "{}: document count: expected at least 1 (indices start with 0), found 0", path);
  }
  d.pointers_offset = kIndexHeaderBytes + 4 * d.sequences;
  d.documents_offset = d.pointers_offset + 8 * d.sequences;
  return Status::ok();
}

// Validates lengths, pointers (monotone, aligned, inside P.bin) and document indices.
Status IndexedDataset::Impl::validate_arrays(const std::string& ipath, const std::string& bpath) {
  Impl& d = *this;
  const uint8_t* p = d.idx.data();
  const int64_t item = token_dtype_bytes(d.dtype);
  const int64_t bin_size = static_cast<int64_t>(d.bin.size());
  d.lengths.resize(d.sequences);
  if (d.sequences > 0) {
    std::memcpy(d.lengths.data(), p + kIndexHeaderBytes, d.sequences * sizeof(int32_t));
  }
  int64_t end = 0;  // end of the previous sequence in P.bin, in bytes
  uint64_t tokens = 0;
  for (uint64_t i = 0; i < d.sequences; ++i) {
    const int32_t length = d.lengths[i];
    if (length < 0) {
      return core::data_loss("{}: sequence_lengths[{}]: expected >= 0, found {}", ipath, i, length);
    }
    const int64_t pointer = load_pod<int64_t>(p + d.pointers_offset + 8 * i);
    if (pointer < end || pointer % item != 0) {
      return core::data_loss(
          "{}: sequence_pointers[{}]: expected a multiple of {} that is >= {} (end of sequence "
          "{}), found {}",
          ipath, i, item, end, i == 0 ? 0 : i - 1, pointer);
    }
    // bytes < 2^33; compared against bin_size − pointer so that a corrupt pointer near 2^63
    // cannot overflow pointer + bytes (regression: tests/reliability/fuzz_regression_test.cpp).
    const int64_t bytes = static_cast<int64_t>(length) * item;
    if (pointer > bin_size || bytes > bin_size - pointer) {
      if (pointer == end) {  // end <= bin_size, so end + bytes cannot overflow
        return core::data_loss(
            "{}: size: expected at least {} bytes (sequence {} ends there), found {} (truncated)",
            bpath, pointer + bytes, i, bin_size);
      }
      return core::data_loss(
          "{}: sequence_pointers[{}]: expected <= {} ({} has {} bytes and the sequence holds {} "
          "bytes), found {}",
          ipath, i, bin_size - bytes, bpath, bin_size, bytes, pointer);
    }
    end = pointer + bytes;
    tokens += static_cast<uint64_t>(length);
  }
  if (end != bin_size) {
    return core::data_loss(
        "{}: size: expected {} bytes (end of the last sequence in {}), found {} (the .bin and "
        ".idx do not belong together)",
        bpath, end, ipath, bin_size);
  }
  d.tokens = tokens;
  int64_t previous = 0;
  for (uint64_t k = 0; k < d.document_entries; ++k) {
    const int64_t index = load_pod<int64_t>(p + d.documents_offset + 8 * k);
    const bool bad =
        (k == 0 && index != 0) || index < previous || index > static_cast<int64_t>(d.sequences);
    if (bad) {
      return core::data_loss(
          "{}: document_indices[{}]: expected {} in [{}, {}] (non-decreasing, first 0), found {}",
          ipath, k, k == 0 ? "0" : "a value", k == 0 ? 0 : previous, d.sequences, index);
    }
    previous = index;
  }
  if (previous != static_cast<int64_t>(d.sequences)) {
    return core::data_loss("{}: document_indices[{}]: expected {} (the sequence count), found {}",
                           ipath, d.document_entries - 1, d.sequences, previous);
  }
  return Status::ok();
}

IndexedDataset::IndexedDataset() = default;
IndexedDataset::~IndexedDataset() = default;
IndexedDataset::IndexedDataset(IndexedDataset&&) noexcept = default;
IndexedDataset& IndexedDataset::operator=(IndexedDataset&&) noexcept = default;

// Reads P.sum (small: 4 bytes per MiB) and checks both mapped files against it.
Status IndexedDataset::Impl::check_sum(SumRequirement requirement) {
  const std::string path = sum_path(prefix);
  if (!core::file_exists(path)) {
    if (requirement == SumRequirement::kIfPresent) return Status::ok();
    return core::not_found(
        "{}: no such file: {}.bin and {}.idx have no checksums (written by another tool, or a "
        "crash before the checksum file was renamed into place); re-run `hydraulis data "
        "prepare` to write one",
        path, prefix, prefix);
  }
  HYD_ASSIGN_OR_RETURN(std::string bytes, core::read_file(path));
  auto span_of = [](const MappedFile& file) {
    return std::span<const uint8_t>(file.data(), file.size());
  };
  HYD_ASSIGN_OR_RETURN(
      SumCheck check,
      check_dataset_sum(
          prefix,
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
          span_of(bin), span_of(idx)));
  sum = check;
  return Status::ok();
}

StatusOr<IndexedDataset> IndexedDataset::open(const std::string& prefix,
                                              SumRequirement sum_requirement) {
  IndexedDataset dataset;
  dataset.impl_ = std::make_unique<Impl>();
  Impl& d = *dataset.impl_;
  d.prefix = prefix;
  const std::string ipath = idx_path(prefix);
  const std::string bpath = bin_path(prefix);
  HYD_RETURN_IF_ERROR(d.idx.open(ipath));
  HYD_RETURN_IF_ERROR(d.bin.open(bpath));
  // Checksums first: with P.sum, a changed byte anywhere is named as such (file, chunk, fix)
  // rather than by whichever structural rule it happens to break.
  HYD_RETURN_IF_ERROR(d.check_sum(sum_requirement));
  HYD_RETURN_IF_ERROR(d.validate_header(ipath));
  HYD_RETURN_IF_ERROR(d.validate_arrays(ipath, bpath));
  return dataset;
}

uint64_t IndexedDataset::num_sequences() const {
  return impl_->sequences;
}
uint64_t IndexedDataset::num_documents() const {
  return impl_->document_entries - 1;
}
uint64_t IndexedDataset::num_tokens() const {
  return impl_->tokens;
}
TokenDType IndexedDataset::dtype() const {
  return impl_->dtype;
}
std::span<const int32_t> IndexedDataset::lengths() const {
  return impl_->lengths;
}
const std::string& IndexedDataset::prefix() const {
  return impl_->prefix;
}
const std::optional<SumCheck>& IndexedDataset::sum_check() const {
  return impl_->sum;
}

int32_t IndexedDataset::length(uint64_t sequence) const {
  HYD_CHECK(sequence < impl_->sequences, "sequence {} out of range [0, {})", sequence,
            impl_->sequences);
  return impl_->lengths[sequence];
}

int64_t IndexedDataset::pointer(uint64_t sequence) const {
  HYD_CHECK(sequence < impl_->sequences, "sequence {} out of range [0, {})", sequence,
            impl_->sequences);
  return load_pod<int64_t>(impl_->idx.data() + impl_->pointers_offset + 8 * sequence);
}

int64_t IndexedDataset::document_index(uint64_t document) const {
  HYD_CHECK(document < impl_->document_entries, "document {} out of range [0, {}]", document,
            impl_->document_entries - 1);
  return load_pod<int64_t>(impl_->idx.data() + impl_->documents_offset + 8 * document);
}

void IndexedDataset::tokens(uint64_t sequence, std::vector<int32_t>& out) const {
  const int32_t n = length(sequence);
  const uint8_t* at = impl_->bin.data() + pointer(sequence);
  out.resize(static_cast<size_t>(n));
  if (impl_->dtype == TokenDType::kU16) {
    // Pointers are validated multiples of 2 and the mapping is page-aligned.
    const auto* ids = reinterpret_cast<const uint16_t*>(at);
    for (int32_t i = 0; i < n; ++i) out[i] = ids[i];
  } else if (n > 0) {
    std::memcpy(out.data(), at, static_cast<size_t>(n) * sizeof(int32_t));
  }
}

std::vector<int32_t> IndexedDataset::tokens(uint64_t sequence) const {
  std::vector<int32_t> out;
  tokens(sequence, out);
  return out;
}

}  // namespace hydraulis::data
