// Strategy-independent checkpoints (docs/training.md "Checkpoints"; byte layout docs/formats.md
// "Checkpoint"): one logical fp32 tensor per parameter (model::parameter_specs names and order),
// its AdamW moments, the step counts, the sampler state, the model config and the training
// settings a resume must share. One file per step directory, a CRC32C per 1 MiB chunk of every
// tensor; written under a temp directory name, fsynced, renamed, then `latest` replaced, so a
// crash mid-write leaves the previous checkpoint the loadable one. Any strategy list and rank
// count reads it (each rank only the chunks of its shards). Tests: tests/train/checkpoint_test.cpp,
// tests/reliability/checkpoint_fault_test.cpp, fuzz/checkpoint_fuzz.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/file.h"
#include "core/status.h"
#include "core/tensor.h"
#include "data/sampler.h"
#include "model/config.h"
#include "model/ops.h"

namespace hydraulis::train {

struct TrainerConfig;

inline constexpr char kCheckpointMagic[8] = {'H', 'Y', 'D', 'C', 'K', 'P', 'T', '\0'};
inline constexpr char kCheckpointEndMagic[8] = {'H', 'Y', 'D', 'C', 'K', 'E', 'N', 'D'};
inline constexpr uint32_t kCheckpointVersion = 1;
inline constexpr uint32_t kCheckpointChunkBytes = 1u << 20;  // CRC32C granularity
inline constexpr uint64_t kCheckpointHeaderBytes = 32;
inline constexpr uint64_t kCheckpointFooterBytes = 16;
inline constexpr const char* kCheckpointFileName = "checkpoint.hcp";
inline constexpr const char* kLatestFileName = "latest";

// The three tensors kept per parameter.
enum class TensorRole : uint8_t { kValue = 0, kExpAvg = 1, kExpAvgSq = 2 };
const char* tensor_role_name(TensorRole role);  // "value", "exp_avg", "exp_avg_sq"

// Training settings recorded with a checkpoint. The first group decides which global batches
// come next and how AdamW updates: a resume must use the same values (checked field by field).
// The second group is information: a resumed run may change it.
struct TrainingSettings {
  int64_t global_token_num = 0;
  int64_t max_seq_len = 0;
  uint64_t seed = 0;
  std::string order;  // "sequential" | "shuffled"
  uint64_t dataset_documents = 0;
  uint64_t dataset_tokens = 0;
  double peak_lr = 0, min_lr = 0;
  int64_t warmup_steps = 0;
  double beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0, max_grad_norm = 0;
  // Information only.
  int64_t total_steps = 0;         // --steps of the saving run (the cosine's end)
  int64_t micro_batch_tokens = 0;  // packing cap (changes summation order, not the math)
};
TrainingSettings training_settings(const TrainerConfig& config, uint64_t dataset_documents,
                                   uint64_t dataset_tokens);

// Everything of a checkpoint but the tensors.
struct CheckpointState {
  model::LlamaConfig model;
  TrainingSettings training;
  int64_t step = 0;             // trainer steps done (the next step is step + 1)
  int64_t optimizer_steps = 0;  // AdamW updates done (bias correction); < step after skips
  data::SamplerState sampler;   // before the batch of step + 1
  std::string saved_by;         // "single device (cpu)", "4 ranks: [[(1, 2, 1), ...]]"
};

// One tensor of a checkpoint file.
struct CheckpointTensorInfo {
  std::string name;  // parameter name
  TensorRole role = TensorRole::kValue;
  size_t param = 0;   // index into model::parameter_specs
  core::Shape shape;  // logical shape (1-D norms, 2-D matrices)
  int64_t rows = 0;   // the row-major (rows, cols) matrix view; a 1-D tensor of n is (n, 1)
  int64_t cols = 0;
  uint64_t offset = 0;  // file offset of the data
  uint64_t bytes = 0;   // 4 · rows · cols (f32, little-endian)
  uint64_t chunks(uint32_t chunk_bytes) const { return (bytes + chunk_bytes - 1) / chunk_bytes; }
  // Offset of the first byte after the data and its chunk checksums.
  uint64_t end(uint32_t chunk_bytes) const { return offset + bytes + 4 * chunks(chunk_bytes); }
};

// The tensor table of `model`: every parameter's value, then every exp_avg, then every exp_avg_sq
// (parameter_specs order each), packed from `data_start`. Error: a size that overflows.
core::StatusOr<std::vector<CheckpointTensorInfo>> checkpoint_tensor_table(
    const model::LlamaConfig& model, uint64_t data_start, uint32_t chunk_bytes);
// Index in the table of (role, param).
inline size_t checkpoint_tensor_index(size_t num_params, TensorRole role, size_t param) {
  return size_t(role) * num_params + param;
}

// Writes one checkpoint file: header and metadata at create(), then every tensor of the table in
// order, then finish() (footer, fsync, rename into place: core::AtomicFile).
class CheckpointFileWriter {
 public:
  static core::StatusOr<CheckpointFileWriter> create(const std::string& path,
                                                     const CheckpointState& state);
  const std::vector<CheckpointTensorInfo>& tensors() const { return tensors_; }
  size_t next() const { return next_; }
  // The next tensor of the table (`numel` f32 values, row-major).
  core::Status write(const float* data, int64_t numel);
  core::Status finish();

 private:
  core::AtomicFile file_;
  std::vector<CheckpointTensorInfo> tensors_;
  size_t next_ = 0;
};

// Reads and verifies one checkpoint file. open() checks magic, version, sizes, the header and
// metadata checksums and the tensor table; tensor data is checked chunk by chunk as it is read.
class CheckpointReader {
 public:
  static core::StatusOr<CheckpointReader> open(const std::string& path);
  CheckpointReader(CheckpointReader&& other) noexcept;
  CheckpointReader& operator=(CheckpointReader&& other) noexcept;
  CheckpointReader(const CheckpointReader&) = delete;
  CheckpointReader& operator=(const CheckpointReader&) = delete;
  ~CheckpointReader();

  const std::string& path() const { return path_; }
  const CheckpointState& state() const { return state_; }
  const std::vector<CheckpointTensorInfo>& tensors() const { return tensors_; }
  size_t num_params() const { return tensors_.size() / 3; }
  // Tensor `index` whole, as an f32 CPU tensor of its logical shape (every chunk verified).
  core::StatusOr<core::Tensor> read(size_t index) const;
  // Rows [row0, row1) × cols [col0, col1) of tensor `index`'s matrix view into `out`
  // ((row1 − row0) · (col1 − col0) floats, row-major); reads and verifies only the chunks that
  // hold them.
  core::Status read_block(size_t index, int64_t row0, int64_t row1, int64_t col0, int64_t col1,
                          float* out) const;

 private:
  CheckpointReader() = default;
  core::Status read_bytes(uint64_t offset, void* out, uint64_t bytes) const;

  std::string path_;
  int fd_ = -1;
  uint32_t chunk_bytes_ = kCheckpointChunkBytes;
  CheckpointState state_;
  std::vector<CheckpointTensorInfo> tensors_;
};

// "step-00000042".
std::string step_directory_name(int64_t step);
// The checkpoint file of `path`: a step directory (holding checkpoint.hcp) or a checkpoint
// directory (its `latest`). NotFound names the path and the fix.
core::StatusOr<std::string> resolve_checkpoint(const std::string& path);

// A checkpoint being written into a temp step directory of `dir` (created on demand); commit()
// fsyncs, renames the directory to step-N, replaces `latest` and removes the committed step
// directories beyond the newest `keep`; destroying it uncommitted removes the temp directory.
class PendingCheckpoint {
 public:
  static core::StatusOr<PendingCheckpoint> begin(const std::string& dir,
                                                 const CheckpointState& state);
  PendingCheckpoint(PendingCheckpoint&& other) noexcept;
  PendingCheckpoint& operator=(PendingCheckpoint&& other) = delete;
  PendingCheckpoint(const PendingCheckpoint&) = delete;
  ~PendingCheckpoint();

  CheckpointFileWriter& writer() { return writer_; }
  // Returns the committed step directory.
  core::StatusOr<std::string> commit(int keep);

 private:
  PendingCheckpoint(std::string dir, std::string temp_dir, int64_t step,
                    CheckpointFileWriter writer);
  std::string dir_, temp_dir_;
  int64_t step_ = 0;
  CheckpointFileWriter writer_;
  bool done_ = false;
};

// The error naming every field of the model config and of the must-match training settings that
// differs between the checkpoint (`found`) and this run (`model`, `expected`), or OK.
core::Status check_resume_compatible(const CheckpointState& found, const model::LlamaConfig& model,
                                     const TrainingSettings& expected, const std::string& source);

// The weights of a checkpoint, for `hydraulis export`.
struct CheckpointWeights {
  model::LlamaConfig model;
  std::vector<std::pair<std::string, core::Tensor>> params;
  int64_t step = 0;
};
// `path`: a --checkpoint-dir (its latest) or one step directory. params: fp32 CPU tensors with
// logical shapes in parameter_specs order, every chunk's checksum verified.
core::StatusOr<CheckpointWeights> load_checkpoint_weights(const std::string& path);

// Whether run() writes a checkpoint after step `step`: with a directory set, every `every` steps
// (0: never periodically), after the last step, and when the run stops early (`stop`).
bool checkpoint_due(const std::string& dir, int64_t every, int64_t step, int64_t last_step,
                    bool stop);

// Copies the f32 host tensor `host` into `dst` (same element count; f32, on ops' device).
core::Status assign_from_host(const model::Ops& ops, const core::Tensor& host, core::Tensor& dst);

// JSON of a model config (every field) and back; errors name the key.
core::Json model_config_to_json(const model::LlamaConfig& config);
core::StatusOr<model::LlamaConfig> model_config_from_json(const core::Json& json,
                                                          const std::string& source);

}  // namespace hydraulis::train
