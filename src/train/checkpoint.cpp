// Checkpoint files and directories (checkpoint.h; byte table: docs/formats.md, "Checkpoint").
#include "train/checkpoint.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>

#include "core/crc32c.h"
#include "core/file.h"
#include "core/json.h"
#include "core/log.h"
#include "model/parameters.h"
#include "train/trainer.h"

namespace hydraulis::train {

namespace {

static_assert(std::endian::native == std::endian::little, "checkpoints are little-endian");

constexpr uint64_t kDataAlignment = 64;
constexpr uint64_t kMaxMetaBytes = uint64_t{64} << 20;
// Bounds on the model fields a checkpoint may declare, so the table's sizes cannot overflow.
constexpr int64_t kMaxDimension = int64_t{1} << 31;
constexpr int64_t kMaxLayers = 1 << 20;

std::string errno_text() { return std::strerror(errno); }

void put_u32(unsigned char* p, uint32_t v) { std::memcpy(p, &v, 4); }
void put_u64(unsigned char* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint32_t get_u32(const unsigned char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t get_u64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

std::string join_path(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

// A step directory's step from its name ("step-00000042" -> 42); -1 for any other name.
int64_t parse_step_name(const std::string& name) {
  constexpr std::string_view kPrefix = "step-";
  if (name.size() <= kPrefix.size() || name.compare(0, kPrefix.size(), kPrefix) != 0) return -1;
  int64_t step = 0;
  for (size_t i = kPrefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || step > (int64_t{1} << 56)) return -1;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

core::StatusOr<uint64_t> json_u64(const core::Json& object, std::string_view key,
                                  const std::string& source) {
  HYD_ASSIGN_OR_RETURN(const core::Json* v, core::json_field(object, key, source));
  if (v->is_number_unsigned()) return v->get<uint64_t>();
  HYD_ASSIGN_OR_RETURN(int64_t i, core::json_integer(object, key, source));
  if (i < 0) return core::invalid_argument("{}: '{}' = {} must be >= 0", source, key, i);
  return uint64_t(i);
}

core::Json settings_to_json(const TrainingSettings& s) {
  return core::Json{{"global_token_num", s.global_token_num},
                    {"max_seq_len", s.max_seq_len},
                    {"seed", s.seed},
                    {"order", s.order},
                    {"dataset_documents", s.dataset_documents},
                    {"dataset_tokens", s.dataset_tokens},
                    {"peak_lr", s.peak_lr},
                    {"min_lr", s.min_lr},
                    {"warmup_steps", s.warmup_steps},
                    {"beta1", s.beta1},
                    {"beta2", s.beta2},
                    {"eps", s.eps},
                    {"weight_decay", s.weight_decay},
                    {"max_grad_norm", s.max_grad_norm},
                    {"total_steps", s.total_steps},
                    {"micro_batch_tokens", s.micro_batch_tokens}};
}

core::StatusOr<TrainingSettings> settings_from_json(const core::Json& j, const std::string& src) {
  if (!j.is_object()) return core::invalid_argument("{}: 'training' must be an object", src);
  TrainingSettings s;
  HYD_ASSIGN_OR_RETURN(s.global_token_num, core::json_integer(j, "global_token_num", src));
  HYD_ASSIGN_OR_RETURN(s.max_seq_len, core::json_integer(j, "max_seq_len", src));
  HYD_ASSIGN_OR_RETURN(s.seed, json_u64(j, "seed", src));
  HYD_ASSIGN_OR_RETURN(s.order, core::json_string(j, "order", src));
  HYD_ASSIGN_OR_RETURN(s.dataset_documents, json_u64(j, "dataset_documents", src));
  HYD_ASSIGN_OR_RETURN(s.dataset_tokens, json_u64(j, "dataset_tokens", src));
  HYD_ASSIGN_OR_RETURN(s.peak_lr, core::json_number(j, "peak_lr", src));
  HYD_ASSIGN_OR_RETURN(s.min_lr, core::json_number(j, "min_lr", src));
  HYD_ASSIGN_OR_RETURN(s.warmup_steps, core::json_integer(j, "warmup_steps", src));
  HYD_ASSIGN_OR_RETURN(s.beta1, core::json_number(j, "beta1", src));
  HYD_ASSIGN_OR_RETURN(s.beta2, core::json_number(j, "beta2", src));
  HYD_ASSIGN_OR_RETURN(s.eps, core::json_number(j, "eps", src));
  HYD_ASSIGN_OR_RETURN(s.weight_decay, core::json_number(j, "weight_decay", src));
  HYD_ASSIGN_OR_RETURN(s.max_grad_norm, core::json_number(j, "max_grad_norm", src));
  HYD_ASSIGN_OR_RETURN(s.total_steps, core::json_integer(j, "total_steps", src));
  HYD_ASSIGN_OR_RETURN(s.micro_batch_tokens, core::json_integer(j, "micro_batch_tokens", src));
  return s;
}

// The metadata JSON of a checkpoint (docs/formats.md lists its keys).
core::Json state_to_json(const CheckpointState& s, const std::vector<CheckpointTensorInfo>& table,
                         uint64_t data_start) {
  core::Json tensors = core::Json::array();
  for (const CheckpointTensorInfo& t : table) {
    tensors.push_back(core::Json{{"name", t.name},
                                 {"role", tensor_role_name(t.role)},
                                 {"shape", t.shape},
                                 {"offset", t.offset - data_start},
                                 {"bytes", t.bytes}});
  }
  return core::Json{{"format", "hydraulis checkpoint"},
                    {"version", kCheckpointVersion},
                    {"step", s.step},
                    {"optimizer_steps", s.optimizer_steps},
                    {"saved_by", s.saved_by},
                    {"model", model_config_to_json(s.model)},
                    {"training", settings_to_json(s.training)},
                    {"sampler", s.sampler.to_json()},
                    {"tensors", std::move(tensors)}};
}

// Parses the metadata and rebuilds the tensor table from its model config; the table the file
// lists must be exactly that one.
core::StatusOr<std::vector<CheckpointTensorInfo>> state_from_json(
    const core::Json& j, const std::string& src, uint64_t data_start, uint32_t chunk_bytes,
    CheckpointState& s) {
  if (!j.is_object()) return core::data_loss("{}: the metadata is not a JSON object", src);
  HYD_ASSIGN_OR_RETURN(s.step, core::json_integer(j, "step", src));
  HYD_ASSIGN_OR_RETURN(s.optimizer_steps, core::json_integer(j, "optimizer_steps", src));
  if (s.step < 0 || s.optimizer_steps < 0 || s.optimizer_steps > s.step) {
    return core::data_loss("{}: step {} and optimizer_steps {} must satisfy 0 <= optimizer_steps "
                           "<= step",
                           src, s.step, s.optimizer_steps);
  }
  HYD_ASSIGN_OR_RETURN(s.saved_by, core::json_string(j, "saved_by", src));
  HYD_ASSIGN_OR_RETURN(const core::Json* model, core::json_field(j, "model", src));
  HYD_ASSIGN_OR_RETURN(s.model, model_config_from_json(*model, src));
  HYD_ASSIGN_OR_RETURN(const core::Json* training, core::json_field(j, "training", src));
  HYD_ASSIGN_OR_RETURN(s.training, settings_from_json(*training, src));
  HYD_ASSIGN_OR_RETURN(const core::Json* sampler, core::json_field(j, "sampler", src));
  HYD_ASSIGN_OR_RETURN(s.sampler, data::SamplerState::from_json(*sampler, src));
  HYD_ASSIGN_OR_RETURN(const core::Json* listed, core::json_field(j, "tensors", src));
  if (!listed->is_array()) return core::data_loss("{}: 'tensors' must be an array", src);
  // Count first: a corrupt layer count must not build a huge table.
  const uint64_t per_role =
      uint64_t(s.model.num_layers) * 8 + 2 + (s.model.lm_head == model::LmHead::kUntied ? 1 : 0);
  if (listed->size() != 3 * per_role) {
    return core::data_loss("{}: the file lists {} tensors; model config ({} layers) needs {}", src,
                           listed->size(), s.model.num_layers, 3 * per_role);
  }
  HYD_ASSIGN_OR_RETURN(auto table, checkpoint_tensor_table(s.model, data_start, chunk_bytes));
  for (size_t i = 0; i < table.size(); ++i) {
    const core::Json& e = (*listed)[i];
    const CheckpointTensorInfo& t = table[i];
    const std::string where = fmt::format("{}: tensor {}", src, i);
    if (!e.is_object()) return core::data_loss("{} is not an object", where);
    HYD_ASSIGN_OR_RETURN(std::string name, core::json_string(e, "name", where));
    HYD_ASSIGN_OR_RETURN(std::string role, core::json_string(e, "role", where));
    HYD_ASSIGN_OR_RETURN(uint64_t offset, json_u64(e, "offset", where));
    HYD_ASSIGN_OR_RETURN(uint64_t bytes, json_u64(e, "bytes", where));
    HYD_ASSIGN_OR_RETURN(const core::Json* shape, core::json_field(e, "shape", where));
    const bool shape_ok = shape->is_array() && shape->size() == t.shape.size() &&
                          std::equal(t.shape.begin(), t.shape.end(), shape->begin(),
                                     [](int64_t d, const core::Json& v) {
                                       return v.is_number_integer() && v.get<int64_t>() == d;
                                     });
    if (name != t.name || role != tensor_role_name(t.role) || !shape_ok ||
        offset != t.offset - data_start || bytes != t.bytes) {
      return core::data_loss(
          "{} is '{}' ({}), shape {}, offset {}, {} bytes; the model config says '{}' ({}), "
          "shape {}, offset {}, {} bytes",
          where, name, role, shape->dump(), offset, bytes, t.name, tensor_role_name(t.role),
          core::shape_string(t.shape), t.offset - data_start, t.bytes);
    }
  }
  return table;
}

// Removes a directory tree; false (with a warning) when it fails.
bool remove_tree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) core::log_warn("checkpoint: cannot remove {}: {}", path, ec.message());
  return !ec;
}

// Temp step directories ("step-N.tmp.<pid>") whose writer is gone (killed mid-write).
void remove_stale_temp_directories(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const size_t tmp = name.find(".tmp.");
    if (name.rfind("step-", 0) != 0 || tmp == std::string::npos || !entry.is_directory()) continue;
    const long pid = std::strtol(name.c_str() + tmp + 5, nullptr, 10);
    if (pid > 0 && pid != long(::getpid()) && ::kill(pid_t(pid), 0) != 0 && errno == ESRCH) {
      remove_tree(entry.path().string());
    }
  }
}

// Committed step directories of `dir`, newest first.
std::vector<std::pair<int64_t, std::string>> committed_steps(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> steps;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const int64_t step = parse_step_name(name);
    if (step >= 0 && entry.is_directory()) steps.emplace_back(step, name);
  }
  std::sort(steps.rbegin(), steps.rend());
  return steps;
}

}  // namespace

const char* tensor_role_name(TensorRole role) {
  switch (role) {
    case TensorRole::kValue: return "value";
    case TensorRole::kExpAvg: return "exp_avg";
    case TensorRole::kExpAvgSq: return "exp_avg_sq";
  }
  return "?";
}

TrainingSettings training_settings(const TrainerConfig& c, uint64_t dataset_documents,
                                   uint64_t dataset_tokens) {
  TrainingSettings s;
  s.global_token_num = c.global_token_num;
  s.max_seq_len = c.max_seq_len;
  s.seed = c.seed;
  s.order = c.order == data::DocumentOrder::kShuffled ? "shuffled" : "sequential";
  s.dataset_documents = dataset_documents;
  s.dataset_tokens = dataset_tokens;
  s.peak_lr = c.lr.peak_lr;
  s.min_lr = c.lr.min_lr;
  s.warmup_steps = c.lr.warmup_steps;
  s.beta1 = c.adamw.beta1;
  s.beta2 = c.adamw.beta2;
  s.eps = c.adamw.eps;
  s.weight_decay = c.adamw.weight_decay;
  s.max_grad_norm = c.adamw.max_grad_norm;
  s.total_steps = c.steps;
  s.micro_batch_tokens = c.micro_batch_tokens;
  return s;
}

core::Json model_config_to_json(const model::LlamaConfig& c) {
  return core::Json{{"name", c.name},
                    {"num_layers", c.num_layers},
                    {"hidden", c.hidden},
                    {"num_heads", c.num_heads},
                    {"num_kv_heads", c.num_kv_heads},
                    {"ffn_hidden", c.ffn_hidden},
                    {"vocab_size", c.vocab_size},
                    {"max_seq_len", c.max_seq_len},
                    {"rope_theta", c.rope_theta},
                    {"norm_eps", c.norm_eps},
                    {"lm_head", c.lm_head == model::LmHead::kTied ? "tied" : "untied"}};
}

core::StatusOr<model::LlamaConfig> model_config_from_json(const core::Json& j,
                                                          const std::string& src) {
  if (!j.is_object()) return core::invalid_argument("{}: 'model' must be an object", src);
  model::LlamaConfig c;
  HYD_ASSIGN_OR_RETURN(c.name, core::json_string(j, "name", src));
  const std::pair<const char*, int64_t*> ints[] = {
      {"num_layers", &c.num_layers}, {"hidden", &c.hidden},         {"num_heads", &c.num_heads},
      {"num_kv_heads", &c.num_kv_heads}, {"ffn_hidden", &c.ffn_hidden},
      {"vocab_size", &c.vocab_size}, {"max_seq_len", &c.max_seq_len}};
  for (const auto& [key, field] : ints) {
    HYD_ASSIGN_OR_RETURN(*field, core::json_integer(j, key, src));
    const int64_t bound = std::string_view(key) == "num_layers" ? kMaxLayers : kMaxDimension;
    if (*field <= 0 || *field > bound) {
      return core::invalid_argument("{}: model.{} = {} is outside [1, {}]", src, key, *field, bound);
    }
  }
  HYD_ASSIGN_OR_RETURN(c.rope_theta, core::json_number(j, "rope_theta", src));
  HYD_ASSIGN_OR_RETURN(c.norm_eps, core::json_number(j, "norm_eps", src));
  HYD_ASSIGN_OR_RETURN(std::string head, core::json_string(j, "lm_head", src));
  if (head != "tied" && head != "untied") {
    return core::invalid_argument("{}: model.lm_head '{}' must be \"tied\" or \"untied\"", src,
                                  head);
  }
  c.lm_head = head == "tied" ? model::LmHead::kTied : model::LmHead::kUntied;
  HYD_RETURN_IF_ERROR(c.validate().with_context(src));
  return c;
}

core::StatusOr<std::vector<CheckpointTensorInfo>> checkpoint_tensor_table(
    const model::LlamaConfig& model, uint64_t data_start, uint32_t chunk_bytes) {
  const std::vector<model::ParameterSpec> specs = model::parameter_specs(model);
  std::vector<CheckpointTensorInfo> table;
  table.reserve(3 * specs.size());
  uint64_t offset = data_start;
  for (TensorRole role : {TensorRole::kValue, TensorRole::kExpAvg, TensorRole::kExpAvgSq}) {
    for (size_t i = 0; i < specs.size(); ++i) {
      CheckpointTensorInfo t;
      t.name = specs[i].name;
      t.role = role;
      t.param = i;
      t.shape = specs[i].shape;
      t.rows = t.shape[0];
      t.cols = t.shape.size() > 1 ? t.shape[1] : 1;
      uint64_t numel = 0, bytes = 0, end = 0;
      if (t.rows < 0 || t.cols < 0 ||
          __builtin_mul_overflow(uint64_t(t.rows), uint64_t(t.cols), &numel) ||
          __builtin_mul_overflow(numel, uint64_t{4}, &bytes)) {
        return core::out_of_range("tensor {} of shape {} is too large", t.name,
                                  core::shape_string(t.shape));
      }
      t.offset = offset;
      t.bytes = bytes;
      if (__builtin_add_overflow(offset, bytes + 4 * t.chunks(chunk_bytes), &end)) {
        return core::out_of_range("checkpoint of model '{}' exceeds 2^64 bytes", model.name);
      }
      offset = end;
      table.push_back(std::move(t));
    }
  }
  return table;
}

// ---- writer ------------------------------------------------------------------------------

core::StatusOr<CheckpointFileWriter> CheckpointFileWriter::create(const std::string& path,
                                                                  const CheckpointState& state) {
  // The metadata's offsets are relative to the data start, so its length does not depend on them.
  HYD_ASSIGN_OR_RETURN(auto relative, checkpoint_tensor_table(state.model, 0, kCheckpointChunkBytes));
  const std::string meta = state_to_json(state, relative, 0).dump();
  const uint64_t data_start = align_up(kCheckpointHeaderBytes + meta.size(), kDataAlignment);
  CheckpointFileWriter w;
  HYD_ASSIGN_OR_RETURN(w.tensors_,
                       checkpoint_tensor_table(state.model, data_start, kCheckpointChunkBytes));
  HYD_ASSIGN_OR_RETURN(w.file_, core::AtomicFile::create(path));
  unsigned char header[kCheckpointHeaderBytes] = {};
  std::memcpy(header, kCheckpointMagic, 8);
  put_u32(header + 8, kCheckpointVersion);
  put_u32(header + 12, kCheckpointChunkBytes);
  put_u64(header + 16, meta.size());
  put_u32(header + 24, core::crc32c(meta.data(), meta.size()));
  put_u32(header + 28, core::crc32c(header, 28));
  HYD_RETURN_IF_ERROR(w.file_.write(header, sizeof(header)));
  HYD_RETURN_IF_ERROR(w.file_.write(meta));
  const std::string padding(data_start - kCheckpointHeaderBytes - meta.size(), '\0');
  HYD_RETURN_IF_ERROR(w.file_.write(padding));
  return w;
}

core::Status CheckpointFileWriter::write(const float* data, int64_t numel) {
  if (next_ >= tensors_.size()) {
    return core::internal_error("{}: more tensors written than the table's {}", file_.path(),
                                tensors_.size());
  }
  const CheckpointTensorInfo& t = tensors_[next_];
  if (uint64_t(numel) * 4 != t.bytes || file_.bytes_written() != t.offset) {
    return core::internal_error("{}: tensor {} ({}) has {} elements at offset {}; expected {} at {}",
                                file_.path(), t.name, tensor_role_name(t.role), numel,
                                file_.bytes_written(), t.bytes / 4, t.offset);
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(data);
  std::vector<unsigned char> crcs(4 * t.chunks(kCheckpointChunkBytes));
  for (uint64_t c = 0, begin = 0; begin < t.bytes; ++c, begin += kCheckpointChunkBytes) {
    const uint64_t n = std::min<uint64_t>(kCheckpointChunkBytes, t.bytes - begin);
    put_u32(crcs.data() + 4 * c, core::crc32c(bytes + begin, n));
  }
  HYD_RETURN_IF_ERROR(file_.write(bytes, t.bytes));
  HYD_RETURN_IF_ERROR(file_.write(crcs.data(), crcs.size()));
  ++next_;
  return core::Status::ok();
}

core::Status CheckpointFileWriter::finish() {
  if (next_ != tensors_.size()) {
    return core::internal_error("{}: {} of {} tensors written", file_.path(), next_,
                                tensors_.size());
  }
  unsigned char footer[kCheckpointFooterBytes];
  std::memcpy(footer, kCheckpointEndMagic, 8);
  put_u64(footer + 8, tensors_.size());
  HYD_RETURN_IF_ERROR(file_.write(footer, sizeof(footer)));
  return file_.commit();
}

// ---- reader ------------------------------------------------------------------------------

CheckpointReader::CheckpointReader(CheckpointReader&& other) noexcept { *this = std::move(other); }

CheckpointReader& CheckpointReader::operator=(CheckpointReader&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = other.fd_;
    other.fd_ = -1;
    chunk_bytes_ = other.chunk_bytes_;
    state_ = std::move(other.state_);
    tensors_ = std::move(other.tensors_);
  }
  return *this;
}

CheckpointReader::~CheckpointReader() {
  if (fd_ >= 0) ::close(fd_);
}

core::Status CheckpointReader::read_bytes(uint64_t offset, void* out, uint64_t bytes) const {
  auto* p = static_cast<char*>(out);
  while (bytes > 0) {
    const ssize_t n = ::pread(fd_, p, std::min<uint64_t>(bytes, 1u << 30), off_t(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return core::data_loss("{}: read of {} bytes at offset {} failed: {}", path_, bytes, offset,
                             n == 0 ? "unexpected end of file (truncated?)" : errno_text());
    }
    p += n;
    offset += uint64_t(n);
    bytes -= uint64_t(n);
  }
  return core::Status::ok();
}

core::StatusOr<CheckpointReader> CheckpointReader::open(const std::string& path) {
  CheckpointReader r;
  r.path_ = path;
  r.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (r.fd_ < 0) return core::not_found("{}: cannot open the checkpoint: {}", path, errno_text());
  struct stat st;
  if (::fstat(r.fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    return core::io_error("{}: not a regular file", path);
  }
  const uint64_t size = uint64_t(st.st_size);
  const std::string fix = "the checkpoint is damaged: resume from an older step directory or start "
                          "a new run";
  if (size < kCheckpointHeaderBytes + kCheckpointFooterBytes) {
    return core::data_loss("{}: {} bytes is too short for a checkpoint (truncated?): {}", path,
                           size, fix);
  }
  unsigned char header[kCheckpointHeaderBytes];
  HYD_RETURN_IF_ERROR(r.read_bytes(0, header, sizeof(header)));
  if (std::memcmp(header, kCheckpointMagic, 8) != 0) {
    return core::data_loss("{}: bad magic (not a Hydraulis checkpoint, expected \"HYDCKPT\\0\"): {}",
                           path, fix);
  }
  if (get_u32(header + 28) != core::crc32c(header, 28)) {
    return core::data_loss("{}: the header (bytes 0-27) fails its CRC32C: {}", path, fix);
  }
  const uint32_t version = get_u32(header + 8);
  if (version != kCheckpointVersion) {
    return core::data_loss("{}: format version {}; this build reads version {}: {}", path, version,
                           kCheckpointVersion,
                           version > kCheckpointVersion ? "use a newer hydraulis" : fix);
  }
  r.chunk_bytes_ = get_u32(header + 12);
  if (r.chunk_bytes_ < 4 || r.chunk_bytes_ % 4 != 0 || r.chunk_bytes_ > (1u << 30)) {
    return core::data_loss("{}: chunk size {} must be a multiple of 4 in [4, 2^30]: {}", path,
                           r.chunk_bytes_, fix);
  }
  const uint64_t meta_bytes = get_u64(header + 16);
  if (meta_bytes > kMaxMetaBytes ||
      meta_bytes > size - kCheckpointHeaderBytes - kCheckpointFooterBytes) {
    return core::data_loss("{}: metadata of {} bytes does not fit the file of {} bytes: {}", path,
                           meta_bytes, size, fix);
  }
  std::string meta(meta_bytes, '\0');
  HYD_RETURN_IF_ERROR(r.read_bytes(kCheckpointHeaderBytes, meta.data(), meta_bytes));
  if (get_u32(header + 24) != core::crc32c(meta.data(), meta.size())) {
    return core::data_loss("{}: the metadata (bytes 32-{}) fails its CRC32C: {}", path,
                           kCheckpointHeaderBytes + meta_bytes, fix);
  }
  auto json = core::parse_json(meta, path + " metadata");
  if (!json.is_ok()) return core::data_loss("{}", json.status().message());
  const uint64_t data_start = align_up(kCheckpointHeaderBytes + meta_bytes, kDataAlignment);
  // The padding up to the data is zeros (it is under no checksum, so it is checked here).
  std::string padding(data_start - kCheckpointHeaderBytes - meta_bytes, '\0');
  HYD_RETURN_IF_ERROR(r.read_bytes(kCheckpointHeaderBytes + meta_bytes, padding.data(), padding.size()));
  if (padding.find_first_not_of('\0') != std::string::npos) {
    return core::data_loss("{}: the padding after the metadata (bytes {}-{}) is not zero: {}", path,
                           kCheckpointHeaderBytes + meta_bytes, data_start, fix);
  }
  auto table = state_from_json(*json, path, data_start, r.chunk_bytes_, r.state_);
  if (!table.is_ok()) return core::data_loss("{}: {}", table.status().message(), fix);
  r.tensors_ = std::move(table).value();
  const uint64_t data_end = r.tensors_.empty() ? data_start : r.tensors_.back().end(r.chunk_bytes_);
  if (data_end > size || size - data_end != kCheckpointFooterBytes) {
    return core::data_loss("{}: the file has {} bytes; its tensor table needs {} (+{} footer): "
                           "truncated or extended: {}",
                           path, size, data_end, kCheckpointFooterBytes, fix);
  }
  unsigned char footer[kCheckpointFooterBytes];
  HYD_RETURN_IF_ERROR(r.read_bytes(data_end, footer, sizeof(footer)));
  if (std::memcmp(footer, kCheckpointEndMagic, 8) != 0 || get_u64(footer + 8) != r.tensors_.size()) {
    return core::data_loss("{}: bad footer at offset {} (expected \"HYDCKEND\" and {} tensors): {}",
                           path, data_end, r.tensors_.size(), fix);
  }
  return r;
}

core::Status CheckpointReader::read_block(size_t index, int64_t row0, int64_t row1, int64_t col0,
                                          int64_t col1, float* out) const {
  if (index >= tensors_.size()) {
    return core::out_of_range("{}: tensor index {} of {}", path_, index, tensors_.size());
  }
  const CheckpointTensorInfo& t = tensors_[index];
  if (row0 < 0 || row0 >= row1 || row1 > t.rows || col0 < 0 || col0 >= col1 || col1 > t.cols) {
    return core::out_of_range("{}: block [{}, {}) x [{}, {}) outside tensor {} ({} x {})", path_,
                              row0, row1, col0, col1, t.name, t.rows, t.cols);
  }
  // Bytes [first, last) of the tensor's data hold the block; chunks [c0, c1) cover them.
  const uint64_t first = (uint64_t(row0) * uint64_t(t.cols) + uint64_t(col0)) * 4;
  const uint64_t last = (uint64_t(row1 - 1) * uint64_t(t.cols) + uint64_t(col1)) * 4;
  const uint64_t c0 = first / chunk_bytes_, c1 = (last - 1) / chunk_bytes_ + 1;
  const uint64_t begin = c0 * chunk_bytes_, end = std::min(c1 * chunk_bytes_, t.bytes);
  std::vector<unsigned char> data(end - begin), crcs(4 * (c1 - c0));
  HYD_RETURN_IF_ERROR(read_bytes(t.offset + begin, data.data(), data.size()));
  HYD_RETURN_IF_ERROR(read_bytes(t.offset + t.bytes + 4 * c0, crcs.data(), crcs.size()));
  for (uint64_t c = c0; c < c1; ++c) {
    const uint64_t a = c * chunk_bytes_, b = std::min(a + chunk_bytes_, t.bytes);
    const uint32_t computed = core::crc32c(data.data() + (a - begin), b - a);
    const uint32_t stored = get_u32(crcs.data() + 4 * (c - c0));
    if (computed != stored) {
      return core::data_loss(
          "{}: tensor {} ({}) is corrupt: bytes [{}, {}) of its data (file offset {}) have "
          "CRC32C 0x{:08x}, the file records 0x{:08x}: resume from an older step directory of "
          "this checkpoint directory, or start a new run",
          path_, t.name, tensor_role_name(t.role), a, b, t.offset + a, computed, stored);
    }
  }
  const int64_t width = col1 - col0;
  for (int64_t r = row0; r < row1; ++r) {
    const uint64_t at = (uint64_t(r) * uint64_t(t.cols) + uint64_t(col0)) * 4 - begin;
    std::memcpy(out + (r - row0) * width, data.data() + at, size_t(width) * 4);
  }
  return core::Status::ok();
}

core::StatusOr<core::Tensor> CheckpointReader::read(size_t index) const {
  if (index >= tensors_.size()) {
    return core::out_of_range("{}: tensor index {} of {}", path_, index, tensors_.size());
  }
  const CheckpointTensorInfo& t = tensors_[index];
  core::Tensor out = core::Tensor::empty(t.shape, core::DType::kF32);
  if (t.bytes == 0) return out;
  HYD_RETURN_IF_ERROR(read_block(index, 0, t.rows, 0, t.cols, out.data<float>()));
  return out;
}

// ---- directories -------------------------------------------------------------------------

std::string step_directory_name(int64_t step) { return fmt::format("step-{:08d}", step); }

core::StatusOr<std::string> resolve_checkpoint(const std::string& path) {
  const std::string direct = join_path(path, kCheckpointFileName);
  if (core::file_exists(direct)) return direct;
  const std::string latest = join_path(path, kLatestFileName);
  if (!core::file_exists(latest)) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return path;
    return core::not_found(
        "{} holds no checkpoint (neither '{}' nor '{}'): train with --checkpoint-dir {} first, or "
        "name a step directory (step-NNNNNNNN)",
        path, kLatestFileName, kCheckpointFileName, path);
  }
  HYD_ASSIGN_OR_RETURN(std::string name, core::read_file(latest));
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  if (parse_step_name(name) < 0) {
    return core::data_loss("{}: names '{}', not a step directory: rewrite it with the name of a "
                           "step-NNNNNNNN directory next to it",
                           latest, name.substr(0, 80));
  }
  const std::string file = join_path(join_path(path, name), kCheckpointFileName);
  if (!core::file_exists(file)) {
    return core::data_loss("{} names {}, which has no {}: point it at an existing step directory",
                           latest, name, kCheckpointFileName);
  }
  return file;
}

PendingCheckpoint::PendingCheckpoint(std::string dir, std::string temp_dir, int64_t step,
                                     CheckpointFileWriter writer)
    : dir_(std::move(dir)), temp_dir_(std::move(temp_dir)), step_(step),
      writer_(std::move(writer)) {}

PendingCheckpoint::PendingCheckpoint(PendingCheckpoint&& other) noexcept
    : dir_(std::move(other.dir_)), temp_dir_(std::move(other.temp_dir_)), step_(other.step_),
      writer_(std::move(other.writer_)), done_(other.done_) {
  other.done_ = true;
}

PendingCheckpoint::~PendingCheckpoint() {
  if (!done_) {
    CheckpointFileWriter discard = std::move(writer_);  // closes and removes its temp file
    (void)discard;
    remove_tree(temp_dir_);
  }
}

core::StatusOr<PendingCheckpoint> PendingCheckpoint::begin(const std::string& dir,
                                                           const CheckpointState& state) {
  HYD_RETURN_IF_ERROR(core::make_directories(dir));
  remove_stale_temp_directories(dir);
  const std::string temp =
      join_path(dir, fmt::format("{}.tmp.{}", step_directory_name(state.step), ::getpid()));
  remove_tree(temp);
  if (::mkdir(temp.c_str(), 0755) != 0) {
    return core::io_error("{}: cannot create the checkpoint's temp directory: {}", temp,
                          errno_text());
  }
  auto writer = CheckpointFileWriter::create(join_path(temp, kCheckpointFileName), state);
  if (!writer.is_ok()) {
    remove_tree(temp);
    return writer.status();
  }
  return PendingCheckpoint(dir, temp, state.step, std::move(writer).value());
}

core::StatusOr<std::string> PendingCheckpoint::commit(int keep) {
  HYD_RETURN_IF_ERROR(writer_.finish());  // fsyncs the file, renames it, fsyncs the temp dir
  const std::string name = step_directory_name(step_);
  const std::string final_dir = join_path(dir_, name);
  struct stat st;
  if (::stat(final_dir.c_str(), &st) == 0) {
    // A checkpoint of this step exists (a run resumed from it): swap the two atomically, so the
    // path always holds a complete one, then remove the old one.
    if (::renameat2(AT_FDCWD, temp_dir_.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) != 0) {
      if (errno != EINVAL && errno != ENOSYS) {
        return core::io_error("{}: cannot replace it with {}: {}", final_dir, temp_dir_,
                              errno_text());
      }
      // A file system without the exchange: move the old one aside first (a crash between the
      // two renames leaves `latest` naming a missing step; its checkpoint is in the .old name).
      const std::string old_dir = final_dir + ".old." + std::to_string(::getpid());
      if (std::rename(final_dir.c_str(), old_dir.c_str()) != 0 ||
          std::rename(temp_dir_.c_str(), final_dir.c_str()) != 0) {
        return core::io_error("{}: cannot replace it with {}: {}", final_dir, temp_dir_,
                              errno_text());
      }
      temp_dir_ = old_dir;
    }
  } else if (std::rename(temp_dir_.c_str(), final_dir.c_str()) != 0) {
    return core::io_error("{}: cannot rename {} to it: {}", final_dir, temp_dir_, errno_text());
  } else {
    done_ = true;
  }
  HYD_RETURN_IF_ERROR(core::fsync_directory(dir_));
  if (!done_) {
    done_ = true;
    remove_tree(temp_dir_);  // now the previous checkpoint of this step
  }
  HYD_RETURN_IF_ERROR(core::write_file_atomic(join_path(dir_, kLatestFileName), name + "\n"));
  // Only now, with the new one committed and named by `latest`, drop the oldest.
  int kept = 0;
  for (const auto& [step, entry] : committed_steps(dir_)) {
    if (step > step_) continue;  // newer than the one just written (left by another run)
    if (++kept > std::max(keep, 1)) remove_tree(join_path(dir_, entry));
  }
  return final_dir;
}

// ---- resume checks -----------------------------------------------------------------------

core::Status check_resume_compatible(const CheckpointState& found, const model::LlamaConfig& model,
                                     const TrainingSettings& expected, const std::string& source) {
  std::vector<std::string> diffs;
  auto field = [&](const char* name, const auto& mine, const auto& theirs) {
    if (!(mine == theirs)) diffs.push_back(fmt::format("{}: this run {}, checkpoint {}", name, mine, theirs));
  };
  const model::LlamaConfig& m = found.model;
  field("model.num_layers", model.num_layers, m.num_layers);
  field("model.hidden", model.hidden, m.hidden);
  field("model.num_heads", model.num_heads, m.num_heads);
  field("model.num_kv_heads", model.num_kv_heads, m.num_kv_heads);
  field("model.ffn_hidden", model.ffn_hidden, m.ffn_hidden);
  field("model.vocab_size", model.vocab_size, m.vocab_size);
  field("model.max_seq_len", model.max_seq_len, m.max_seq_len);
  field("model.rope_theta", model.rope_theta, m.rope_theta);
  field("model.norm_eps", model.norm_eps, m.norm_eps);
  field("model.lm_head", std::string(model.lm_head == model::LmHead::kTied ? "tied" : "untied"),
        std::string(m.lm_head == model::LmHead::kTied ? "tied" : "untied"));
  const TrainingSettings& t = found.training;
  field("--global-token-num", expected.global_token_num, t.global_token_num);
  field("--max-seq-len", expected.max_seq_len, t.max_seq_len);
  field("--seed", expected.seed, t.seed);
  field("--order", expected.order, t.order);
  field("data set documents", expected.dataset_documents, t.dataset_documents);
  field("data set tokens", expected.dataset_tokens, t.dataset_tokens);
  field("--lr", expected.peak_lr, t.peak_lr);
  field("--min-lr", expected.min_lr, t.min_lr);
  field("--warmup-steps", expected.warmup_steps, t.warmup_steps);
  field("adamw beta1", expected.beta1, t.beta1);
  field("adamw beta2", expected.beta2, t.beta2);
  field("adamw eps", expected.eps, t.eps);
  field("--weight-decay", expected.weight_decay, t.weight_decay);
  field("--max-grad-norm", expected.max_grad_norm, t.max_grad_norm);
  if (diffs.empty()) return core::Status::ok();
  std::string list;
  for (const std::string& d : diffs) list += (list.empty() ? "" : "; ") + d;
  return core::make_error(
      core::StatusCode::kFailedPrecondition,
      "{} was saved by a run with other settings ({} field(s) differ: {}): resume with the model "
      "'{}' and the options of the run that saved it, or start a new --checkpoint-dir",
      source, diffs.size(), list, m.name);
}

bool checkpoint_due(const std::string& dir, int64_t every, int64_t step, int64_t last_step,
                    bool stop) {
  if (dir.empty()) return false;
  return stop || step >= last_step || (every > 0 && step % every == 0);
}

core::Status assign_from_host(const model::Ops& ops, const core::Tensor& host, core::Tensor& dst) {
  if (host.dtype() != core::DType::kF32 || dst.dtype() != core::DType::kF32 ||
      host.numel() != dst.numel()) {
    return core::internal_error("restoring {} into {}: element count or dtype differs",
                                host.describe(), dst.describe());
  }
  if (dst.device() == core::Device::kCpu) {
    std::memcpy(dst.raw_data(), host.raw_data(), host.nbytes());
  } else {
    ops.convert(ops.upload_as(host.reshape(dst.shape()), core::DType::kF32), dst);
  }
  return core::Status::ok();
}

core::StatusOr<CheckpointWeights> load_checkpoint_weights(const std::string& path) {
  HYD_ASSIGN_OR_RETURN(std::string file, resolve_checkpoint(path));
  HYD_ASSIGN_OR_RETURN(CheckpointReader reader, CheckpointReader::open(file));
  CheckpointWeights w;
  w.model = reader.state().model;
  w.step = reader.state().step;
  for (size_t i = 0; i < reader.num_params(); ++i) {
    HYD_ASSIGN_OR_RETURN(core::Tensor t, reader.read(i));
    w.params.emplace_back(reader.tensors()[i].name, std::move(t));
  }
  return w;
}

}  // namespace hydraulis::train
