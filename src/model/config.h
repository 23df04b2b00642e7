// LlamaConfig: the shape of a LLaMA decoder (layers, width, heads, kv heads, MLP width, vocabulary,
// RoPE theta, tied or untied LM head), the named presets tiny/125m/1b/7b/13b/32b (spec.md §8) and
// their validation. Every derived factor (head dim, parameter count) is computed here, once.
// Docs: docs/model.md. Tests: tests/model/config_test.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace hydraulis::model {

inline constexpr int64_t kGpt2VocabSize = 50257;  // GPT-2 BPE tokens
inline constexpr int64_t kVocabMultiple = 128;    // the padded vocabulary is a multiple of this

enum class LmHead {
  kUntied,  // separate lm_head.weight (LLaMA)
  kTied,    // logits use the embedding table (GPT-2 style)
};

struct LlamaConfig {
  std::string name = "custom";
  int64_t num_layers = 0;
  int64_t hidden = 0;        // C
  int64_t num_heads = 0;     // H query heads
  int64_t num_kv_heads = 0;  // Hkv, divides H (grouped-query attention)
  int64_t ffn_hidden = 0;    // F, SwiGLU width
  int64_t vocab_size = 0;    // V, padded
  int64_t max_seq_len = 0;   // longest sequence (training positions) the model accepts
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  LmHead lm_head = LmHead::kUntied;

  // 0: D = hidden / num_heads. A tensor-parallel shard (tensor_parallel_shard) keeps the whole
  // model's head dim while holding num_heads / tp heads.
  int64_t head_dim_override = 0;

  int64_t head_dim() const { return head_dim_override > 0 ? head_dim_override : hidden / num_heads; }
  int64_t q_width() const { return num_heads * head_dim(); }
  int64_t kv_width() const { return num_kv_heads * head_dim(); }
  // Parameters of one decoder layer and of the whole model (embedding and LM head included).
  int64_t layer_parameters() const;
  int64_t num_parameters() const;
  // "tiny: 4 layers, hidden 128, 4 heads (2 kv, head dim 32), ffn 384, vocab 50304, ...".
  std::string describe() const;
  // Shapes and ranges; the message names the field, its value and the fix.
  core::Status validate() const;
};

// The slice of `config` one rank of a tensor-parallel group of `tp` computes with: num_heads,
// num_kv_heads, ffn_hidden and vocab_size divided by tp, hidden and head dim unchanged. Errors name
// the field that tp does not divide and the fix.
core::StatusOr<LlamaConfig> tensor_parallel_shard(const LlamaConfig& config, int64_t tp);

// GPT-2's 50257 rounded up to a multiple of kVocabMultiple: 50304.
int64_t padded_vocab_size(int64_t tokenizer_size, int64_t multiple = kVocabMultiple);

// Names accepted by llama_config, in size order.
const std::vector<std::string>& llama_config_names();

// A named preset. vocab_size 0 keeps the default (GPT-2 padded, 50304); otherwise it must be
// >= tokenizer_size and is used as given (any size is allowed, padding is advised).
core::StatusOr<LlamaConfig> llama_config(const std::string& name, int64_t vocab_size = 0,
                                         int64_t tokenizer_size = kGpt2VocabSize);

}  // namespace hydraulis::model
