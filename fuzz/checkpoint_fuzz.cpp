// Fuzz target: a checkpoint file (docs/formats.md, "Checkpoint"). Property: CheckpointReader
// gives a Status (DataLoss with a message) or a reader whose table has the model's 3 · P tensors
// of parameter_specs shapes; every tensor then reads whole or fails its CRC32C cleanly, a block
// read agrees with the whole read, load_checkpoint_weights returns the same values, and an
// accepted state re-written by CheckpointFileWriter reads back equal. Seeds: small checkpoints
// cut from a real one (fuzz/make_seeds.js). Regressions: tests/reliability/fuzz_regression_test.cpp.
#include <cstring>

#include "fuzz/fuzz_support.h"
#include "model/parameters.h"
#include "train/checkpoint.h"

namespace hydraulis::fuzz {

namespace {

bool same_bits(const core::Tensor& a, const core::Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

}  // namespace

int checkpoint_one_input(const uint8_t* data, size_t size) {
  quiet_logs();
  const std::string path = write_scratch_file("checkpoint.hcp", as_text(data, size));
  auto reader = train::CheckpointReader::open(path);
  if (!reader.is_ok()) {
    HYD_CHECK(!reader.status().message().empty(), "error Status without a message");
    return 0;
  }
  const train::CheckpointState& state = reader->state();
  const std::vector<model::ParameterSpec> specs = model::parameter_specs(state.model);
  const size_t P = specs.size();
  HYD_CHECK(reader->tensors().size() == 3 * P, "{} tensors for {} parameters",
            reader->tensors().size(), P);
  std::vector<core::Tensor> tensors;
  for (size_t t = 0; t < 3 * P; ++t) {
    auto tensor = reader->read(t);
    if (!tensor.is_ok()) {
      HYD_CHECK(tensor.status().code() == core::StatusCode::kDataLoss, "read: {}",
                tensor.status().to_string());
      return 0;
    }
    HYD_CHECK(tensor->shape() == specs[t % P].shape, "tensor {} has shape {}, spec {}", t,
              core::shape_string(tensor->shape()), core::shape_string(specs[t % P].shape));
    const train::CheckpointTensorInfo& info = reader->tensors()[t];
    if (info.rows > 0 && info.cols > 0) {
      std::vector<float> row(size_t(info.cols));
      const int64_t r = info.rows / 2;
      HYD_CHECK(reader->read_block(t, r, r + 1, 0, info.cols, row.data()).is_ok(), "block read");
      HYD_CHECK(std::memcmp(row.data(), tensor->data<float>() + r * info.cols, row.size() * 4) == 0,
                "block read differs from the whole read");
    }
    tensors.push_back(std::move(tensor).value());
  }
  auto weights = train::load_checkpoint_weights(path);
  HYD_CHECK(weights.is_ok(), "load_checkpoint_weights: {}", weights.status().to_string());
  for (size_t p = 0; p < P; ++p) {
    HYD_CHECK(weights->params[p].first == specs[p].name && same_bits(weights->params[p].second, tensors[p]),
              "weights differ at {}", p);
  }
  // Re-written by the writer, the state and the tensors read back equal.
  const std::string again = scratch_directory() + "/again.hcp";
  auto writer = train::CheckpointFileWriter::create(again, state);
  HYD_CHECK(writer.is_ok(), "writer: {}", writer.status().to_string());
  for (const core::Tensor& t : tensors) {
    HYD_CHECK(writer->write(t.data<float>(), t.numel()).is_ok(), "write");
  }
  HYD_CHECK(writer->finish().is_ok(), "finish");
  auto reread = train::CheckpointReader::open(again);
  HYD_CHECK(reread.is_ok(), "re-written checkpoint refused: {}", reread.status().to_string());
  const train::CheckpointState& s = reread->state();
  HYD_CHECK(s.step == state.step && s.optimizer_steps == state.optimizer_steps &&
                s.sampler == state.sampler && s.saved_by == state.saved_by &&
                s.model.describe() == state.model.describe() &&
                s.training.seed == state.training.seed &&
                s.training.order == state.training.order,
            "re-written state differs");
  for (size_t t = 0; t < tensors.size(); ++t) {
    HYD_CHECK(same_bits(reread->read(t).value(), tensors[t]), "re-written tensor {} differs", t);
  }
  return 0;
}

}  // namespace hydraulis::fuzz

HYD_FUZZ_TARGET(checkpoint_one_input)
