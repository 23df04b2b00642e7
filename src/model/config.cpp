// Named LLaMA presets and config validation (docs/model.md lists the presets).
#include "model/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace hydraulis::model {

namespace {

struct Preset {
  const char* name;
  int64_t layers, hidden, heads, kv_heads, ffn, max_seq_len;
  LmHead lm_head;
};

// tiny: CPU demo. 125m: GPT-2-small widths with a LLaMA block. 1b: TinyLlama-1.1B's shape.
// 7b/13b/32b: spec.md §8 (multi-head attention, as the original runs).
constexpr Preset kPresets[] = {
    {"tiny", 4, 128, 4, 2, 384, 1024, LmHead::kTied},
    {"125m", 12, 768, 12, 12, 2048, 2048, LmHead::kTied},
    {"1b", 22, 2048, 32, 4, 5632, 4096, LmHead::kUntied},
    {"7b", 32, 4096, 32, 32, 11008, 32768, LmHead::kUntied},
    {"13b", 40, 5120, 40, 40, 13824, 32768, LmHead::kUntied},
    {"32b", 60, 6656, 64, 64, 17920, 32768, LmHead::kUntied},
};

}  // namespace

int64_t LlamaConfig::layer_parameters() const {
  int64_t norms = 2 * hidden;
  int64_t attention = hidden * q_width() + 2 * hidden * kv_width() + q_width() * hidden;
  int64_t mlp = 2 * ffn_hidden * hidden + ffn_hidden * hidden;
  return norms + attention + mlp;
}

int64_t LlamaConfig::num_parameters() const {
  int64_t embedding = vocab_size * hidden;
  int64_t head = lm_head == LmHead::kTied ? 0 : vocab_size * hidden;
  return embedding + num_layers * layer_parameters() + hidden + head;
}

std::string LlamaConfig::describe() const {
  return fmt::format(
      "{}: {} layers, hidden {}, {} heads ({} kv, head dim {}), ffn {}, vocab {}, max seq {}, "
      "rope theta {}, {} LM head, {:.2f}M parameters",
      name, num_layers, hidden, num_heads, num_kv_heads, head_dim(), ffn_hidden, vocab_size,
      max_seq_len, rope_theta, lm_head == LmHead::kTied ? "tied" : "untied",
      double(num_parameters()) / 1e6);
}

core::Status LlamaConfig::validate() const {
  auto positive = [&](const char* field, int64_t value) -> core::Status {
    if (value > 0) return core::Status::ok();
    return core::invalid_argument("model '{}': {} = {} must be > 0", name, field, value);
  };
  HYD_RETURN_IF_ERROR(positive("num_layers", num_layers));
  HYD_RETURN_IF_ERROR(positive("hidden", hidden));
  HYD_RETURN_IF_ERROR(positive("num_heads", num_heads));
  HYD_RETURN_IF_ERROR(positive("num_kv_heads", num_kv_heads));
  HYD_RETURN_IF_ERROR(positive("ffn_hidden", ffn_hidden));
  HYD_RETURN_IF_ERROR(positive("vocab_size", vocab_size));
  HYD_RETURN_IF_ERROR(positive("max_seq_len", max_seq_len));
  if (head_dim_override == 0 && hidden % num_heads != 0) {
    return core::invalid_argument("model '{}': hidden {} is not a multiple of num_heads {}", name,
                                  hidden, num_heads);
  }
  if (head_dim() % 2 != 0) {
    return core::invalid_argument(
        "model '{}': head dim {} (hidden {} / {} heads) must be even for the rotary embedding",
        name, head_dim(), hidden, num_heads);
  }
  if (num_heads % num_kv_heads != 0) {
    return core::invalid_argument(
        "model '{}': num_kv_heads {} must divide num_heads {} (grouped-query attention)", name,
        num_kv_heads, num_heads);
  }
  if (vocab_size > int64_t{1} << 31) {
    return core::invalid_argument("model '{}': vocab_size {} does not fit int32 token ids", name,
                                  vocab_size);
  }
  if (!(rope_theta > 0)) {
    return core::invalid_argument("model '{}': rope_theta {} must be > 0", name, rope_theta);
  }
  if (!(norm_eps > 0)) {
    return core::invalid_argument("model '{}': norm_eps {} must be > 0", name, norm_eps);
  }
  return core::Status::ok();
}

core::StatusOr<LlamaConfig> tensor_parallel_shard(const LlamaConfig& config, int64_t tp) {
  HYD_RETURN_IF_ERROR(config.validate());
  if (tp < 1) return core::invalid_argument("tensor-parallel degree {} must be >= 1", tp);
  const std::pair<const char*, int64_t> fields[] = {{"num_heads", config.num_heads},
                                                    {"num_kv_heads", config.num_kv_heads},
                                                    {"ffn_hidden", config.ffn_hidden},
                                                    {"vocab_size", config.vocab_size}};
  for (const auto& [field, value] : fields) {
    if (value % tp != 0) {
      return core::invalid_argument(
          "model '{}': {} {} is not divisible by tp {}: use a tp that divides it", config.name,
          field, value, tp);
    }
  }
  LlamaConfig shard = config;
  shard.head_dim_override = config.head_dim();
  shard.num_heads = config.num_heads / tp;
  shard.num_kv_heads = config.num_kv_heads / tp;
  shard.ffn_hidden = config.ffn_hidden / tp;
  shard.vocab_size = config.vocab_size / tp;
  return shard;
}

int64_t padded_vocab_size(int64_t tokenizer_size, int64_t multiple) {
  return (tokenizer_size + multiple - 1) / multiple * multiple;
}

const std::vector<std::string>& llama_config_names() {
  static const std::vector<std::string> kNames = [] {
    std::vector<std::string> names;
    for (const Preset& p : kPresets) names.emplace_back(p.name);
    return names;
  }();
  return kNames;
}

core::StatusOr<LlamaConfig> llama_config(const std::string& name, int64_t vocab_size,
                                         int64_t tokenizer_size) {
  for (const Preset& p : kPresets) {
    if (name != p.name) continue;
    LlamaConfig config;
    config.name = p.name;
    config.num_layers = p.layers;
    config.hidden = p.hidden;
    config.num_heads = p.heads;
    config.num_kv_heads = p.kv_heads;
    config.ffn_hidden = p.ffn;
    config.max_seq_len = p.max_seq_len;
    config.lm_head = p.lm_head;
    if (vocab_size == 0) {
      config.vocab_size = padded_vocab_size(tokenizer_size);
    } else if (vocab_size < tokenizer_size) {
      return core::invalid_argument(
          "vocabulary size {} is smaller than the tokenizer's {} tokens: use at least {} "
          "(padded to a multiple of {}: {})",
          vocab_size, tokenizer_size, tokenizer_size, kVocabMultiple,
          padded_vocab_size(tokenizer_size));
    } else {
      config.vocab_size = vocab_size;
    }
    HYD_RETURN_IF_ERROR(config.validate());
    return config;
  }
  return core::invalid_argument("unknown model '{}': choose one of {}", name,
                                fmt::join(llama_config_names(), ", "));
}

}  // namespace hydraulis::model
