// safetensors read/write (format: github.com/huggingface/safetensors, README "Format").
#include "model/safetensors.h"

#include <algorithm>
#include <cstring>

#include "core/file.h"
#include "core/json.h"

namespace hydraulis::model {

namespace {

struct DTypeName {
  core::DType dtype;
  const char* name;
};
constexpr DTypeName kDTypes[] = {{core::DType::kF64, "F64"},   {core::DType::kF32, "F32"},
                                 {core::DType::kBF16, "BF16"}, {core::DType::kF16, "F16"},
                                 {core::DType::kI32, "I32"},   {core::DType::kI64, "I64"}};

const char* safetensors_dtype(core::DType dtype) {
  for (const DTypeName& d : kDTypes) {
    if (d.dtype == dtype) return d.name;
  }
  return nullptr;
}

}  // namespace

const core::Tensor* SafetensorsFile::find(const std::string& name) const {
  for (const auto& [n, t] : tensors) {
    if (n == name) return &t;
  }
  return nullptr;
}

core::Status write_safetensors(const std::string& path, const SafetensorsFile& file) {
  core::Json header = core::Json::object();
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : file.tensors) {
    const char* dtype = safetensors_dtype(tensor.dtype());
    if (dtype == nullptr) {
      return core::invalid_argument("{}: tensor '{}' has dtype {}, not storable in safetensors",
                                    path, name, core::dtype_name(tensor.dtype()));
    }
    header[name] = {{"dtype", dtype},
                    {"shape", tensor.shape()},
                    {"data_offsets", {offset, offset + tensor.nbytes()}}};
    offset += tensor.nbytes();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  uint64_t size = text.size();
  unsigned char size_le[8];
  for (int i = 0; i < 8; ++i) size_le[i] = static_cast<unsigned char>(size >> (8 * i));
  HYD_ASSIGN_OR_RETURN(core::AtomicFile out, core::AtomicFile::create(path));
  HYD_RETURN_IF_ERROR(out.write(size_le, 8));
  HYD_RETURN_IF_ERROR(out.write(text));
  for (const auto& [name, tensor] : file.tensors) {
    HYD_RETURN_IF_ERROR(out.write(tensor.raw_data(), tensor.nbytes()));
  }
  return out.commit();
}

core::StatusOr<SafetensorsFile> read_safetensors(const std::string& path) {
  HYD_ASSIGN_OR_RETURN(std::string bytes, core::read_file(path));
  if (bytes.size() < 8)
    return core::data_loss("{}: {} bytes, too short for safetensors", path, bytes.size());
  uint64_t size = 0;
  for (int i = 0; i < 8; ++i) size |= uint64_t(static_cast<unsigned char>(bytes[i])) << (8 * i);
  if (size > bytes.size() - 8) {
    return core::data_loss("{}: header of {} bytes exceeds the file ({} bytes)", path, size,
                           bytes.size());
  }
  HYD_ASSIGN_OR_RETURN(core::Json header,
                       core::parse_json(std::string_view(bytes).substr(8, size), path + " header"));
  const uint64_t data_begin = 8 + size, data_bytes = bytes.size() - data_begin;
  SafetensorsFile file;
  std::vector<std::pair<uint64_t, std::string>> order;
  try {
    for (auto it = header.begin(); it != header.end(); ++it) {
      if (it.key() == "__metadata__") {
        for (auto m = it->begin(); m != it->end(); ++m) {
          if (m->is_string()) file.metadata[m.key()] = m->get<std::string>();
        }
        continue;
      }
      const core::Json& entry = *it;
      if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
          !entry.contains("data_offsets")) {
        return core::data_loss("{}: tensor '{}' lacks dtype, shape or data_offsets", path,
                               it.key());
      }
      std::string dtype_text = entry["dtype"].get<std::string>();
      const DTypeName* dtype = nullptr;
      for (const DTypeName& d : kDTypes) {
        if (dtype_text == d.name) dtype = &d;
      }
      if (dtype == nullptr) {
        return core::data_loss("{}: tensor '{}' has unsupported dtype {}", path, it.key(),
                               dtype_text);
      }
      core::Shape shape = entry["shape"].get<core::Shape>();
      auto offsets = entry["data_offsets"].get<std::vector<uint64_t>>();
      core::Tensor tensor = core::Tensor::empty(shape, dtype->dtype);
      if (offsets.size() != 2 || offsets[1] < offsets[0] || offsets[1] > data_bytes ||
          offsets[1] - offsets[0] != tensor.nbytes()) {
        return core::data_loss("{}: tensor '{}' ({} {}) has bad data_offsets {}", path, it.key(),
                               dtype_text, core::shape_string(shape), entry["data_offsets"].dump());
      }
      std::memcpy(tensor.raw_data(), bytes.data() + data_begin + offsets[0], tensor.nbytes());
      order.emplace_back(offsets[0], it.key());
      file.tensors.emplace_back(it.key(), std::move(tensor));
    }
  } catch (const core::Json::exception& e) {
    return core::data_loss("{}: malformed safetensors header: {}", path, e.what());
  }
  // Keep file order (the JSON object is sorted by key).
  std::vector<std::pair<std::string, core::Tensor>> sorted;
  std::vector<size_t> index(order.size());
  for (size_t i = 0; i < index.size(); ++i) index[i] = i;
  std::sort(index.begin(), index.end(), [&](size_t a, size_t b) { return order[a] < order[b]; });
  for (size_t i : index) sorted.push_back(std::move(file.tensors[i]));
  file.tensors = std::move(sorted);
  return file;
}

}  // namespace hydraulis::model
