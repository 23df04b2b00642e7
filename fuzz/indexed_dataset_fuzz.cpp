// Fuzz target: the MMIDIDX reader. Input layout: a 4-byte little-endian length n, then n bytes of
// P.idx, then the rest as P.bin (fuzz/make_seeds.sh builds seeds from a real prepared dataset).
// Property: open() returns a clean Status or a dataset whose every accessor stays inside both
// files (ASan checks the reads of the mappings) and whose counts agree; with a P.sum made for
// exactly these bytes open() gives the same answer (the checksum path refuses nothing valid and
// admits nothing else). The P.sum parser's own refusals are tested exhaustively instead
// (tests/data/dataset_sum_test.cpp: every byte of a sum file).
// Regressions: tests/reliability/fuzz_regression_test.cpp.
#include <cstring>
#include <filesystem>

#include "data/indexed_dataset.h"
#include "fuzz/fuzz_support.h"

namespace hydraulis::fuzz {

int indexed_dataset_one_input(const uint8_t* data, size_t size) {
  quiet_logs();
  const std::string_view bytes = as_text(data, size);
  uint32_t idx_bytes = 0;
  if (size >= 4) std::memcpy(&idx_bytes, data, 4);
  const std::string_view rest = size >= 4 ? bytes.substr(4) : bytes;
  const std::string_view idx = rest.substr(0, std::min<size_t>(idx_bytes, rest.size()));
  const std::string_view bin = rest.substr(idx.size());
  write_scratch_file("data.idx", idx);
  write_scratch_file("data.bin", bin);
  const std::string prefix = scratch_directory() + "/data";
  std::filesystem::remove(data::sum_path(prefix));
  auto dataset = data::IndexedDataset::open(prefix);
  {
    data::ChunkCrcs bin_crcs;
    data::ChunkCrcs idx_crcs;
    bin_crcs.update(bin.data(), bin.size());
    idx_crcs.update(idx.data(), idx.size());
    write_scratch_file("data.sum", data::make_dataset_sum(bin_crcs, idx_crcs));
    auto with_sum = data::IndexedDataset::open(prefix);
    std::filesystem::remove(data::sum_path(prefix));
    HYD_CHECK(with_sum.is_ok() == dataset.is_ok(), "a matching P.sum changed open(): {} vs {}",
              with_sum.is_ok() ? "ok" : with_sum.status().message(),
              dataset.is_ok() ? "ok" : dataset.status().message());
    HYD_CHECK(!with_sum.is_ok() || (with_sum->sum_check().has_value() &&
                                    with_sum->num_tokens() == dataset->num_tokens()),
              "with P.sum: no check recorded or other tokens");
  }
  if (!dataset.is_ok()) {
    HYD_CHECK(!dataset.status().message().empty(), "error Status without a message");
    return 0;
  }
  const int64_t item = data::token_dtype_bytes(dataset->dtype());
  HYD_CHECK(dataset->lengths().size() == dataset->num_sequences(), "lengths/sequences disagree");
  uint64_t tokens = 0;
  std::vector<int32_t> ids;
  for (uint64_t s = 0; s < dataset->num_sequences(); ++s) {
    dataset->tokens(s, ids);
    HYD_CHECK(static_cast<int64_t>(ids.size()) == dataset->length(s), "sequence {} size", s);
    HYD_CHECK(dataset->pointer(s) >= 0 && dataset->pointer(s) + dataset->length(s) * item <=
                                              static_cast<int64_t>(bin.size()),
              "sequence {} outside P.bin", s);
    if (dataset->dtype() == data::TokenDType::kU16) {
      for (int32_t id : ids) HYD_CHECK(id >= 0 && id <= 65535, "uint16 token {}", id);
    }
    tokens += ids.size();
  }
  HYD_CHECK(tokens == dataset->num_tokens(), "num_tokens {} != sum of lengths {}",
            dataset->num_tokens(), tokens);
  HYD_CHECK(dataset->document_index(0) == 0, "first document index {}", dataset->document_index(0));
  HYD_CHECK(dataset->document_index(dataset->num_documents()) ==
                static_cast<int64_t>(dataset->num_sequences()),
            "last document index != sequence count");
  return 0;
}

}  // namespace hydraulis::fuzz

HYD_FUZZ_TARGET(indexed_dataset_one_input)
