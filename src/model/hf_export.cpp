// Hugging Face LLaMA export/import (docs/model.md, "Export to Hugging Face"). The directory is
// assembled under "<out>.tmp.<pid>" (every file itself written through core::AtomicFile) and
// renamed into place at the end; a replaced directory is first moved aside to "<out>.old.<pid>" and
// removed only after the new one is in place, so an interrupted export never leaves a directory at
// <out> that looks complete but is not.
#include "model/hf_export.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "core/file.h"
#include "core/json.h"
#include "kernels/cpu/parallel.h"
#include "model/collectives.h"
#include "model/decoder_layer.h"
#include "model/parameters.h"
#include "model/safetensors.h"

namespace hydraulis::model {

namespace {

namespace fs = std::filesystem;
using core::DType;
using core::Json;
using core::Tensor;

constexpr const char* kEndOfText = "<|endoftext|>";
constexpr int64_t kGpt2EndOfTextId = 50256;

// y[i] = To(float(x[i])) for i < n, over the CPU threads.
template <typename From, typename To>
void convert_values(const From* x, To* y, int64_t n) {
  cpu::parallel_for(n, int64_t{1} << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) y[i] = To(float(x[i]));
  });
}

template <typename To>
void convert_from(const Tensor& rows, To* y) {
  const int64_t n = rows.numel();
  switch (rows.dtype()) {
    case DType::kF32:
      return convert_values(rows.data<float>(), y, n);
    case DType::kF64:
      return convert_values(rows.data<double>(), y, n);
    case DType::kBF16:
      return convert_values(rows.data<core::BFloat16>(), y, n);
    case DType::kF16:
      return convert_values(rows.data<core::Float16>(), y, n);
    default:
      HYD_CHECK(false, "convert_rows: unsupported dtype {}", core::dtype_name(rows.dtype()));
  }
}

// Rows [begin, end) of a CPU f32/f64/bf16/f16 tensor as a new tensor of `dtype` (f32 or bf16).
// Values go through float: f64 master weights are rounded to f32 first, then (bf16) to nearest
// even.
Tensor convert_rows(const Tensor& src, int64_t begin, int64_t end, DType dtype) {
  const Tensor rows = src.narrow_rows(begin, end);
  Tensor out = Tensor::empty(rows.shape(), dtype);
  if (dtype == DType::kBF16) {
    convert_from(rows, out.data<core::BFloat16>());
  } else {
    HYD_CHECK(dtype == DType::kF32, "convert_rows: target dtype {}", core::dtype_name(dtype));
    convert_from(rows, out.data<float>());
  }
  return out;
}

const char* torch_dtype_name(DType dtype) {
  return dtype == DType::kBF16 ? "bfloat16" : "float32";
}

void fsync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

std::string without_trailing_slash(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

// The GPT-2 tokenizer files: vocab.json must be a {token: id} object whose ids fit the model's
// vocabulary; returns <|endoftext|>'s id (-1 when absent).
struct TokenizerFiles {
  std::string vocab, merges;
  int64_t eod_id = -1;
};

core::StatusOr<TokenizerFiles> read_tokenizer_files(const HfExportOptions& options,
                                                    int64_t vocab_size) {
  TokenizerFiles files;
  if (options.vocab_path.empty() != options.merges_path.empty()) {
    return core::invalid_argument(
        "tokenizer files: --vocab '{}' and --merges '{}' go together: give both (GPT-2 "
        "vocab.json and merges.txt of the training data) or neither",
        options.vocab_path, options.merges_path);
  }
  if (options.vocab_path.empty()) return files;
  HYD_ASSIGN_OR_RETURN(files.vocab, core::read_file(options.vocab_path));
  HYD_ASSIGN_OR_RETURN(files.merges, core::read_file(options.merges_path));
  HYD_ASSIGN_OR_RETURN(Json vocab, core::parse_json(files.vocab, options.vocab_path));
  if (!vocab.is_object() || vocab.empty()) {
    return core::invalid_argument("{}: expected GPT-2's vocab.json, a {{token: id}} object",
                                  options.vocab_path);
  }
  int64_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0) {
      return core::invalid_argument("{}: token '{}' has id {}, expected an integer >= 0",
                                    options.vocab_path, it.key(), it->dump());
    }
    max_id = std::max(max_id, it->get<int64_t>());
  }
  if (max_id >= vocab_size) {
    return core::invalid_argument(
        "{}: token id {} does not fit the model's {} embedding rows: pass the vocabulary the "
        "model was trained with",
        options.vocab_path, max_id, vocab_size);
  }
  if (files.merges.empty()) {
    return core::invalid_argument("{}: empty merges file (expected GPT-2's merges.txt)",
                                  options.merges_path);
  }
  if (vocab.contains(kEndOfText)) files.eod_id = vocab[kEndOfText].get<int64_t>();
  return files;
}

Json tokenizer_config_json(const LlamaConfig& config, int64_t eod_id) {
  Json special = {{"content", kEndOfText}, {"lstrip", false},      {"normalized", true},
                  {"rstrip", false},       {"single_word", false}, {"special", true}};
  Json tc = {{"tokenizer_class", "GPT2Tokenizer"},
             {"model_max_length", config.max_seq_len},
             {"add_prefix_space", false},
             {"add_bos_token", false},
             {"errors", "replace"},
             {"clean_up_tokenization_spaces", false},
             {"bos_token", kEndOfText},
             {"eos_token", kEndOfText},
             {"unk_token", kEndOfText}};
  if (eod_id >= 0) tc["added_tokens_decoder"] = {{std::to_string(eod_id), special}};
  return tc;
}

// Checks that `params` holds exactly parameter_specs(config), on the CPU, as f32/f64.
core::StatusOr<std::map<std::string, const Tensor*>> index_params(const LlamaConfig& config,
                                                                  const NamedTensors& params) {
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [name, tensor] : params) {
    if (!by_name.emplace(name, &tensor).second) {
      return core::invalid_argument("export: tensor '{}' is given twice", name);
    }
  }
  std::set<std::string> expected;
  for (const ParameterSpec& spec : parameter_specs(config)) {
    expected.insert(spec.name);
    auto it = by_name.find(spec.name);
    if (it == by_name.end()) {
      return core::not_found(
          "export: tensor '{}' {} of model '{}' is missing: the weights do not come from this "
          "config ({})",
          spec.name, core::shape_string(spec.shape), config.name, config.describe());
    }
    const Tensor& t = *it->second;
    if (t.shape() != spec.shape) {
      return core::invalid_argument(
          "export: tensor '{}' has shape {}, model '{}' expects {}: the weights and the config "
          "disagree",
          spec.name, core::shape_string(t.shape()), config.name, core::shape_string(spec.shape));
    }
    if (t.device() != core::Device::kCpu ||
        (t.dtype() != DType::kF32 && t.dtype() != DType::kF64)) {
      return core::invalid_argument("export: tensor '{}' is {}, expected an f32 or f64 CPU tensor",
                                    spec.name, t.describe());
    }
  }
  for (const auto& [name, tensor] : params) {
    if (!expected.count(name)) {
      return core::invalid_argument("export: tensor '{}' is not a parameter of model '{}' ({}){}",
                                    name, config.name, config.describe(),
                                    name == "lm_head.weight"
                                        ? ": the config has a tied head, the weights an untied one"
                                        : "");
    }
  }
  return by_name;
}

// Removes a directory tree when it goes out of scope, unless released.
class DirectoryGuard {
 public:
  explicit DirectoryGuard(std::string path) : path_(std::move(path)) {}
  ~DirectoryGuard() {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  DirectoryGuard(const DirectoryGuard&) = delete;
  DirectoryGuard& operator=(const DirectoryGuard&) = delete;
  void release() { path_.clear(); }

 private:
  std::string path_;
};

core::Status check_output_directory(const std::string& out, ExistingOutput existing, bool& exists) {
  std::error_code ec;
  const fs::file_status st = fs::status(out, ec);
  exists = fs::exists(st);
  if (!exists) return core::Status::ok();
  if (!fs::is_directory(st)) {
    return core::invalid_argument("--out {} exists and is not a directory: choose another path",
                                  out);
  }
  const bool empty = fs::is_empty(out, ec);
  if (ec) return core::io_error("--out {}: cannot list it: {}", out, ec.message());
  if (!empty && existing == ExistingOutput::kRefuse) {
    return core::invalid_argument(
        "--out {} is a non-empty directory: choose a new directory, or pass --force to replace "
        "it",
        out);
  }
  return core::Status::ok();
}

// Removes "<out>.tmp.<pid>" directories of exports whose process is gone (killed mid-export).
void remove_stale_temp_directories(const std::string& out) {
  const fs::path target(out);
  const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  const std::string prefix = target.filename().string() + ".tmp.";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || !entry.is_directory(ec)) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const long pid = std::strtol(digits.c_str(), nullptr, 10);
    if (pid > 0 && pid != long(::getpid()) && ::kill(pid_t(pid), 0) != 0 && errno == ESRCH) {
      fs::remove_all(entry.path(), ec);
    }
  }
}

// Moves `temp` to `out`; an existing `out` is moved aside first and removed afterwards.
core::Status move_into_place(const std::string& temp, const std::string& out, bool out_exists) {
  std::error_code ec;
  const std::string old = out + ".old." + std::to_string(::getpid());
  if (out_exists) {
    fs::rename(out, old, ec);
    if (ec) return core::io_error("cannot move the old {} aside to {}: {}", out, old, ec.message());
  }
  fs::rename(temp, out, ec);
  if (ec) {
    std::error_code restore;
    if (out_exists) fs::rename(old, out, restore);
    return core::io_error("cannot rename {} to {}: {}", temp, out, ec.message());
  }
  const std::string parent = fs::path(out).parent_path().string();
  fsync_directory(parent.empty() ? "." : parent);
  if (out_exists) fs::remove_all(old, ec);  // best effort: the new export is already in place
  return core::Status::ok();
}

// --- import helpers ----------------------------------------------------------------------------

core::StatusOr<int64_t> config_integer(const Json& cfg, const char* key, const std::string& path) {
  if (!cfg.contains(key) || !cfg[key].is_number_integer()) {
    return core::invalid_argument("{}: \"{}\" is {}, expected an integer", path, key,
                                  cfg.contains(key) ? cfg[key].dump() : "missing");
  }
  return cfg[key].get<int64_t>();
}

core::StatusOr<double> config_number(const Json& cfg, const char* key, const std::string& path) {
  if (!cfg.contains(key) || !cfg[key].is_number()) {
    return core::invalid_argument("{}: \"{}\" is {}, expected a number", path, key,
                                  cfg.contains(key) ? cfg[key].dump() : "missing");
  }
  return cfg[key].get<double>();
}

core::StatusOr<LlamaConfig> config_from_json(const Json& cfg, const std::string& path) {
  if (!cfg.is_object()) return core::invalid_argument("{}: expected a JSON object", path);
  const bool llama_arch = cfg.contains("architectures") && cfg["architectures"].is_array() &&
                          !cfg["architectures"].empty() &&
                          cfg["architectures"][0] == "LlamaForCausalLM";
  if (!llama_arch || cfg.value("model_type", std::string()) != "llama") {
    return core::invalid_argument(
        "{}: architectures {} / model_type {}: only LlamaForCausalLM with model_type \"llama\" "
        "can be imported",
        path, cfg.contains("architectures") ? cfg["architectures"].dump() : "missing",
        cfg.contains("model_type") ? cfg["model_type"].dump() : "missing");
  }
  if (cfg.value("hidden_act", std::string("silu")) != "silu") {
    return core::invalid_argument("{}: hidden_act {} is not supported (SwiGLU uses silu)", path,
                                  cfg["hidden_act"].dump());
  }
  for (const char* flag : {"attention_bias", "mlp_bias"}) {
    if (cfg.contains(flag) && cfg[flag] != false) {
      return core::invalid_argument("{}: {} = {} is not supported (our LLaMA has no biases)", path,
                                    flag, cfg[flag].dump());
    }
  }
  if (cfg.contains("rope_scaling") && !cfg["rope_scaling"].is_null()) {
    return core::invalid_argument("{}: rope_scaling {} is not supported (plain RoPE only)", path,
                                  cfg["rope_scaling"].dump());
  }
  LlamaConfig c;
  c.name = cfg.value("hydraulis_model", std::string("hf"));
  HYD_ASSIGN_OR_RETURN(c.num_layers, config_integer(cfg, "num_hidden_layers", path));
  HYD_ASSIGN_OR_RETURN(c.hidden, config_integer(cfg, "hidden_size", path));
  HYD_ASSIGN_OR_RETURN(c.num_heads, config_integer(cfg, "num_attention_heads", path));
  c.num_kv_heads = c.num_heads;  // HF's default when the key is absent
  if (cfg.contains("num_key_value_heads")) {
    HYD_ASSIGN_OR_RETURN(c.num_kv_heads, config_integer(cfg, "num_key_value_heads", path));
  }
  HYD_ASSIGN_OR_RETURN(c.ffn_hidden, config_integer(cfg, "intermediate_size", path));
  HYD_ASSIGN_OR_RETURN(c.vocab_size, config_integer(cfg, "vocab_size", path));
  HYD_ASSIGN_OR_RETURN(c.max_seq_len, config_integer(cfg, "max_position_embeddings", path));
  HYD_ASSIGN_OR_RETURN(c.norm_eps, config_number(cfg, "rms_norm_eps", path));
  if (cfg.contains("rope_theta")) {
    HYD_ASSIGN_OR_RETURN(c.rope_theta, config_number(cfg, "rope_theta", path));
  } else if (cfg.contains("rope_parameters") && cfg["rope_parameters"].is_object()) {
    HYD_ASSIGN_OR_RETURN(c.rope_theta, config_number(cfg["rope_parameters"], "rope_theta", path));
  }  // else HF's default, 10000
  const bool tied = cfg.value("tie_word_embeddings", false);
  c.lm_head = tied ? LmHead::kTied : LmHead::kUntied;
  if (cfg.contains("head_dim") && !cfg["head_dim"].is_null()) {
    HYD_ASSIGN_OR_RETURN(int64_t head_dim, config_integer(cfg, "head_dim", path));
    if (c.num_heads > 0 && head_dim != c.hidden / c.num_heads) c.head_dim_override = head_dim;
  }
  core::Status valid = c.validate();
  if (!valid.is_ok()) return valid.with_context(path);
  return c;
}

}  // namespace

core::StatusOr<DType> hf_export_dtype(const std::string& name) {
  if (name == "bf16" || name == "bfloat16") return DType::kBF16;
  if (name == "f32" || name == "float32") return DType::kF32;
  return core::invalid_argument("--dtype '{}' is not one of bf16, f32", name);
}

std::vector<HfTensorMap> hf_tensor_map(const LlamaConfig& c) {
  const int64_t C = c.hidden, F = c.ffn_hidden, V = c.vocab_size;
  const int64_t q = c.q_width(), kv = c.kv_width();
  std::vector<HfTensorMap> map;
  auto same = [&](std::string name, core::Shape shape) {
    map.push_back({name, name, 0, shape[0], shape});
  };
  same("model.embed_tokens.weight", {V, C});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    same(p + "input_layernorm.weight", {C});
    same(p + "self_attn.q_proj.weight", {q, C});
    same(p + "self_attn.k_proj.weight", {kv, C});
    same(p + "self_attn.v_proj.weight", {kv, C});
    same(p + "self_attn.o_proj.weight", {C, q});
    same(p + "post_attention_layernorm.weight", {C});
    const std::string fused = p + "mlp.gate_up_proj.weight";  // (2F, C): gate rows, then up rows
    map.push_back({p + "mlp.gate_proj.weight", fused, 0, F, {F, C}});
    map.push_back({p + "mlp.up_proj.weight", fused, F, 2 * F, {F, C}});
    same(p + "mlp.down_proj.weight", {C, F});
  }
  same("model.norm.weight", {C});
  if (c.lm_head == LmHead::kUntied) same("lm_head.weight", {V, C});
  return map;
}

Json hf_config_json(const LlamaConfig& c, DType dtype, int64_t eod_id) {
  Json cfg = {{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"hidden_size", c.hidden},
              {"intermediate_size", c.ffn_hidden},
              {"num_attention_heads", c.num_heads},
              {"num_key_value_heads", c.num_kv_heads},
              {"num_hidden_layers", c.num_layers},
              {"head_dim", c.head_dim()},
              {"hidden_act", "silu"},
              {"rms_norm_eps", c.norm_eps},
              {"rope_theta", c.rope_theta},
              {"rope_scaling", nullptr},
              // transformers >= 5 reads the same theta from here; older versions ignore the key.
              {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", c.rope_theta}}},
              {"vocab_size", c.vocab_size},
              {"max_position_embeddings", c.max_seq_len},
              {"tie_word_embeddings", c.lm_head == LmHead::kTied},
              {"attention_bias", false},
              {"attention_dropout", 0.0},
              {"mlp_bias", false},
              {"initializer_range", 0.02},
              {"pretraining_tp", 1},
              {"use_cache", true},
              {"torch_dtype", torch_dtype_name(dtype)},
              {"hydraulis_model", c.name}};
  if (eod_id >= 0 && eod_id < c.vocab_size) {
    cfg["bos_token_id"] = eod_id;
    cfg["eos_token_id"] = eod_id;
  }
  return cfg;
}

core::Status export_hf(const LlamaConfig& config, const NamedTensors& params,
                       const std::string& out_dir, const HfExportOptions& options) {
  HYD_RETURN_IF_ERROR(config.validate());
  if (options.dtype != DType::kBF16 && options.dtype != DType::kF32) {
    return core::invalid_argument("export dtype {} is not bf16 or f32",
                                  core::dtype_name(options.dtype));
  }
  if (out_dir.empty()) return core::invalid_argument("export: --out is empty");
  const std::string out = without_trailing_slash(out_dir);
  HYD_ASSIGN_OR_RETURN(auto by_name, index_params(config, params));
  HYD_ASSIGN_OR_RETURN(TokenizerFiles tokenizer, read_tokenizer_files(options, config.vocab_size));
  bool out_exists = false;
  HYD_RETURN_IF_ERROR(check_output_directory(out, options.existing, out_exists));

  SafetensorsFile weights;
  weights.metadata["format"] = "pt";  // transformers refuses safetensors files without it
  for (const HfTensorMap& m : hf_tensor_map(config)) {
    weights.tensors.emplace_back(
        m.hf_name, convert_rows(*by_name.at(m.our_name), m.row_begin, m.row_end, options.dtype));
  }
  const int64_t eod_id = tokenizer.eod_id >= 0 ? tokenizer.eod_id : kGpt2EndOfTextId;

  const fs::path parent = fs::path(out).parent_path();
  if (!parent.empty()) HYD_RETURN_IF_ERROR(core::make_directories(parent.string()));
  remove_stale_temp_directories(out);
  const std::string temp = out + ".tmp." + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(temp, ec);
  HYD_RETURN_IF_ERROR(core::make_directories(temp));
  DirectoryGuard guard(temp);
  HYD_RETURN_IF_ERROR(write_safetensors(temp + "/model.safetensors", weights));
  HYD_RETURN_IF_ERROR(
      core::write_json_file(temp + "/config.json", hf_config_json(config, options.dtype, eod_id)));
  Json generation = {{"_from_model_config", true}};
  if (eod_id < config.vocab_size) {
    generation["bos_token_id"] = eod_id;
    generation["eos_token_id"] = eod_id;
  }
  HYD_RETURN_IF_ERROR(core::write_json_file(temp + "/generation_config.json", generation));
  if (!options.vocab_path.empty()) {
    HYD_RETURN_IF_ERROR(core::write_file_atomic(temp + "/vocab.json", tokenizer.vocab));
    HYD_RETURN_IF_ERROR(core::write_file_atomic(temp + "/merges.txt", tokenizer.merges));
    HYD_RETURN_IF_ERROR(core::write_json_file(temp + "/tokenizer_config.json",
                                              tokenizer_config_json(config, tokenizer.eod_id)));
    Json special = {
        {"bos_token", kEndOfText}, {"eos_token", kEndOfText}, {"unk_token", kEndOfText}};
    HYD_RETURN_IF_ERROR(core::write_json_file(temp + "/special_tokens_map.json", special));
  }
  fsync_directory(temp);
  HYD_RETURN_IF_ERROR(move_into_place(temp, out, out_exists));
  guard.release();
  return core::Status::ok();
}

core::StatusOr<HfModel> import_hf(const std::string& dir) {
  const std::string config_path = dir + "/config.json";
  const std::string weights_path = dir + "/model.safetensors";
  if (!core::file_exists(config_path)) {
    return core::not_found("{}: no config.json: not a Hugging Face model directory", dir);
  }
  if (!core::file_exists(weights_path) &&
      core::file_exists(dir + "/model.safetensors.index.json")) {
    return core::invalid_argument(
        "{}: sharded safetensors (model.safetensors.index.json) are not supported: save the "
        "model as one model.safetensors",
        dir);
  }
  HYD_ASSIGN_OR_RETURN(Json cfg, core::read_json_file(config_path));
  HfModel model;
  core::StatusOr<LlamaConfig> config = core::internal_error("config.json not read");
  try {
    config = config_from_json(cfg, config_path);
  } catch (const Json::exception& e) {  // a field of the wrong JSON type
    return core::invalid_argument(
        "{}: {}: fix the field's type (docs/model.md, \"Export to Hugging Face\")", config_path,
        e.what());
  }
  HYD_ASSIGN_OR_RETURN(model.config, std::move(config));
  HYD_ASSIGN_OR_RETURN(SafetensorsFile file, read_safetensors(weights_path));

  // Our tensors in parameter_specs order, filled row range by row range.
  std::map<std::string, size_t> slot;
  for (const ParameterSpec& spec : parameter_specs(model.config)) {
    slot[spec.name] = model.params.size();
    model.params.emplace_back(spec.name, Tensor::zeros(spec.shape, DType::kF32));
  }
  std::set<std::string> expected;
  bool first = true;
  for (const HfTensorMap& m : hf_tensor_map(model.config)) {
    expected.insert(m.hf_name);
    const Tensor* t = file.find(m.hf_name);
    if (t == nullptr) {
      return core::not_found("{}: tensor '{}' {} is missing (config.json: {})", weights_path,
                             m.hf_name, core::shape_string(m.shape), model.config.describe());
    }
    if (t->shape() != m.shape) {
      return core::invalid_argument(
          "{}: tensor '{}' has shape {}, config.json implies {}: the weights and config.json "
          "disagree",
          weights_path, m.hf_name, core::shape_string(t->shape()), core::shape_string(m.shape));
    }
    if (t->dtype() != DType::kF32 && t->dtype() != DType::kBF16 && t->dtype() != DType::kF16 &&
        t->dtype() != DType::kF64) {
      return core::invalid_argument("{}: tensor '{}' is {}, expected a floating-point dtype",
                                    weights_path, m.hf_name, core::dtype_name(t->dtype()));
    }
    if (first) model.dtype = t->dtype();
    first = false;
    const Tensor rows = convert_rows(*t, 0, m.shape[0], DType::kF32);
    Tensor& ours = model.params[slot.at(m.our_name)].second;
    std::memcpy(ours.narrow_rows(m.row_begin, m.row_end).raw_data(), rows.raw_data(),
                rows.nbytes());
  }
  for (const auto& [name, tensor] : file.tensors) {
    if (!expected.count(name)) {
      return core::invalid_argument(
          "{}: unexpected tensor '{}' {}{}", weights_path, name, core::shape_string(tensor.shape()),
          name == "lm_head.weight" ? " (config.json says tie_word_embeddings: true)" : "");
    }
  }
  return model;
}

core::StatusOr<Tensor> model_logits(const LlamaConfig& config, const NamedTensors& params,
                                    const MicroBatch& batch) {
  HYD_RETURN_IF_ERROR(config.validate());
  ParameterStore store = ParameterStore::create(config, DType::kF32);
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [name, tensor] : params) by_name[name] = &tensor;
  for (Parameter& p : store.all()) {
    auto it = by_name.find(p.name);
    if (it == by_name.end() || it->second->shape() != p.value.shape()) {
      return core::invalid_argument("model_logits: tensor '{}' {} is {}", p.name,
                                    core::shape_string(p.value.shape()),
                                    it == by_name.end() ? "missing" : it->second->describe());
    }
    const Tensor f32 = convert_rows(*it->second, 0, p.value.size(0), DType::kF32);
    std::memcpy(p.value.raw_data(), f32.raw_data(), f32.nbytes());
  }
  HYD_RETURN_IF_ERROR(check_token_ids(batch, config.vocab_size));
  // The forward of LlamaModel (embedding, the layers, final norm) with the whole (T, V) logits
  // kept instead of the chunked loss: fine for the short check batches this serves.
  const Ops& ops = store.ops();
  const int64_t T = batch.num_tokens();
  Tensor x = ops.empty({T, config.hidden}, DType::kF32);  // (T, C)
  ops.embedding_fwd(batch.input_ids, store.embedding().value, x);
  for (int64_t l = 0; l < store.num_layers(); ++l) {
    LayerActivations acts;
    Tensor y;  // (T, C)
    layer_fwd(config, store, l, x, batch, local_collectives(), acts, y);
    x = y;
  }
  Tensor xf = ops.empty({T, config.hidden}, DType::kF32);          // (T, C)
  Tensor rstd = ops.empty({T}, ops.statistic_dtype(DType::kF32));  // (T)
  ops.rms_norm_fwd(x, store.final_norm().value, config.norm_eps, xf, rstd);
  Tensor logits = ops.empty({T, config.vocab_size}, DType::kF32);  // (T, V)
  ops.matmul_fwd(xf, store.lm_head().value, logits);
  return logits;
}

core::Status write_hf_logits_check(const HfModel& model,
                                   std::span<const std::vector<int32_t>> sequences,
                                   const std::string& path) {
  for (size_t b = 0; b < sequences.size(); ++b) {
    if (sequences[b].size() < 2) {
      return core::invalid_argument("logits check: sequence {} has {} tokens, needs at least 2", b,
                                    sequences[b].size());
    }
  }
  const MicroBatch batch = pack_sequences(sequences);
  HYD_ASSIGN_OR_RETURN(Tensor logits, model_logits(model.config, model.params, batch));
  SafetensorsFile file;
  file.metadata["format"] = "pt";
  file.metadata["model"] = model.config.describe();
  file.tensors.emplace_back("input_ids", batch.input_ids);
  file.tensors.emplace_back("cu_seqlens", batch.cu_seqlens);
  file.tensors.emplace_back("logits", logits);
  return write_safetensors(path, file);
}

}  // namespace hydraulis::model
