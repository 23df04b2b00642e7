// Reader and writer of the safetensors format (Hugging Face): u64 little-endian header size N,
// an N-byte JSON header {name: {dtype, shape, data_offsets: [begin, end)}, "__metadata__": {..}}
// padded with spaces to 8 bytes, then the raw little-endian tensor bytes. Used for the PyTorch
// golden files and the Hugging Face export. Byte table: docs/model.md. Tests: tests/model/.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace hydraulis::model {

struct SafetensorsFile {
  std::vector<std::pair<std::string, core::Tensor>> tensors;  // in file order
  std::map<std::string, std::string> metadata;
  // nullptr when absent.
  const core::Tensor* find(const std::string& name) const;
};

// Writes atomically (core::AtomicFile). Supported dtypes: F64, F32, BF16, F16, I32, I64.
core::Status write_safetensors(const std::string& path, const SafetensorsFile& file);
// Reads every tensor into CPU memory, validating the header, dtypes, shapes and offsets.
core::StatusOr<SafetensorsFile> read_safetensors(const std::string& path);

}  // namespace hydraulis::model
