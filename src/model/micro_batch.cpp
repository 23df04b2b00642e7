// Packing sequences into a MicroBatch and validating its token ids.
#include "model/micro_batch.h"

#include "kernels/cpu/cross_entropy.h"

namespace hydraulis::model {

int64_t MicroBatch::num_targets() const {
  int64_t n = 0;
  const int32_t* t = targets.data<int32_t>();
  for (int64_t i = 0; i < num_tokens(); ++i) n += t[i] != cpu::kIgnoreIndex;
  return n;
}

MicroBatch pack_sequences(std::span<const std::vector<int32_t>> sequences) {
  int64_t total = 0;
  for (const auto& s : sequences) {
    HYD_CHECK(!s.empty(), "pack_sequences: a sequence needs at least one token");
    total += int64_t(s.size()) - 1;
  }
  MicroBatch batch;
  batch.input_ids = core::Tensor::empty({total}, core::DType::kI32);  // (T)
  batch.targets = core::Tensor::empty({total}, core::DType::kI32);    // (T)
  batch.cu_seqlens = core::Tensor::empty({int64_t(sequences.size()) + 1}, core::DType::kI32);
  int32_t* ids = batch.input_ids.data<int32_t>();
  int32_t* targets = batch.targets.data<int32_t>();
  int32_t* cu = batch.cu_seqlens.data<int32_t>();
  int64_t t = 0;
  cu[0] = 0;
  for (size_t b = 0; b < sequences.size(); ++b) {
    const auto& s = sequences[b];
    for (size_t i = 0; i + 1 < s.size(); ++i, ++t) {
      ids[t] = s[i];
      targets[t] = s[i + 1];
    }
    cu[b + 1] = static_cast<int32_t>(t);
  }
  return batch;
}

core::Status check_token_ids(const MicroBatch& batch, int64_t vocab_size) {
  const int32_t* ids = batch.input_ids.data<int32_t>();
  const int32_t* targets = batch.targets.data<int32_t>();
  const int32_t* cu = batch.cu_seqlens.data<int32_t>();
  for (int64_t b = 0; b < batch.num_sequences(); ++b) {
    for (int64_t t = cu[b]; t < cu[b + 1]; ++t) {
      bool bad_input = ids[t] < 0 || ids[t] >= vocab_size;
      bool bad_target =
          targets[t] != cpu::kIgnoreIndex && (targets[t] < 0 || targets[t] >= vocab_size);
      if (bad_input || bad_target) {
        return core::out_of_range(
            "token id {} at position {} of sequence {} of the micro-batch is outside the model's "
            "vocabulary [0, {}): the data set was tokenized with a larger vocabulary; prepare it "
            "with the model's tokenizer or raise the model's vocabulary size",
            bad_input ? ids[t] : targets[t], t - cu[b] + (bad_input ? 0 : 1), b, vocab_size);
      }
    }
  }
  return core::Status::ok();
}

}  // namespace hydraulis::model
