// Hugging Face LLaMA export and its inverse: a directory that transformers' LlamaForCausalLM
// loads (model.safetensors with HF names, config.json, generation_config.json and the GPT-2
// tokenizer files), written atomically, and import_hf() which reads such a directory back into
// our config and logical tensors (our names, f32). The name map, RoPE convention (ours already
// rotates halves like HF: q/k rows are exported unpermuted), vocabulary padding and dtypes are in
// docs/model.md, "Export to Hugging Face". Tests: tests/model/hf_export_test.cpp,
// tests/apps/export_cli_test.cpp; against transformers: tools/check_hf_export.py.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/json.h"
#include "core/status.h"
#include "core/tensor.h"
#include "model/config.h"
#include "model/micro_batch.h"

namespace hydraulis::model {

// Logical tensors in our names (parameter_specs order), e.g. a checkpoint's weights.
using NamedTensors = std::vector<std::pair<std::string, core::Tensor>>;

enum class ExistingOutput {
  kRefuse,   // a non-empty output directory is an error
  kReplace,  // --force: the old directory is replaced (after the new one is complete)
};

struct HfExportOptions {
  core::DType dtype = core::DType::kBF16;  // of the exported weights: kBF16 or kF32
  // GPT-2 vocab.json / merges.txt copied into the export (both or neither; empty: none).
  std::string vocab_path;
  std::string merges_path;
  ExistingOutput existing = ExistingOutput::kRefuse;
};

// "bf16" / "f32" (the CLI's --dtype) to the export dtype.
core::StatusOr<core::DType> hf_export_dtype(const std::string& name);

// HF name -> our name and the rows of our tensor it holds, for one exported tensor.
struct HfTensorMap {
  std::string hf_name;    // "model.layers.0.mlp.gate_proj.weight"
  std::string our_name;   // "model.layers.0.mlp.gate_up_proj.weight"
  int64_t row_begin = 0;  // rows [row_begin, row_end) of our tensor (gate/up split the fused one)
  int64_t row_end = 0;
  core::Shape shape;  // the HF tensor's shape
};
// Every tensor of the export, in file order (lm_head.weight only when untied).
std::vector<HfTensorMap> hf_tensor_map(const LlamaConfig& config);

// config.json of `config` (LlamaForCausalLM) with `dtype` as torch_dtype; bos/eos are
// `eod_id` (GPT-2's <|endoftext|>), omitted when eod_id < 0 or outside the vocabulary.
core::Json hf_config_json(const LlamaConfig& config, core::DType dtype, int64_t eod_id);

// Writes the export of `params` (our names and shapes for `config`, f32 or f64) to `out_dir`:
// everything goes into a sibling temp directory first, which is renamed to out_dir at the end.
// Errors: a missing, unexpected or misshapen tensor, a non-empty out_dir without kReplace,
// tokenizer files that are unreadable or do not fit the vocabulary, I/O failures.
core::Status export_hf(const LlamaConfig& config, const NamedTensors& params,
                       const std::string& out_dir, const HfExportOptions& options);

struct HfModel {
  LlamaConfig config;
  NamedTensors params;                    // our names, parameter_specs order, f32
  core::DType dtype = core::DType::kF32;  // of the weights in model.safetensors
};

// Reads an export back (the inverse of export_hf): validates config.json (architecture, model
// type, activation, every size), and that model.safetensors holds exactly the expected tensors
// with HF's shapes; re-fuses gate/up. Errors name the file, the tensor or field, and the fix.
core::StatusOr<HfModel> import_hf(const std::string& dir);

// Our model's logits (T, V) f32 for weights `params` (our names, any float dtype) on the CPU:
// the reference side of the export checks.
core::StatusOr<core::Tensor> model_logits(const LlamaConfig& config, const NamedTensors& params,
                                          const MicroBatch& batch);

// The input of tools/check_hf_export.py: `sequences` packed (each of n tokens gives n − 1
// positions), and our logits on them for `model`: input_ids (T) i32, cu_seqlens (B + 1) i32,
// logits (T, V) f32, metadata {"format": "pt", "model": describe()}. Written atomically.
core::Status write_hf_logits_check(const HfModel& model,
                                   std::span<const std::vector<int32_t>> sequences,
                                   const std::string& path);

}  // namespace hydraulis::model
