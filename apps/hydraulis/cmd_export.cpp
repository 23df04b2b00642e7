// `hydraulis export`: a training checkpoint (train::load_checkpoint_weights) to a Hugging Face
// LLaMA directory that transformers' LlamaForCausalLM loads (library: src/model/hf_export.h;
// docs: docs/model.md, "Export to Hugging Face"). --check-logits reads the export back and writes
// our logits on a tokenized text for tools/check_hf_export.py.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

#include "apps/hydraulis/commands.h"
#include "core/file.h"
#include "data/tokenizer.h"
#include "model/hf_export.h"
#include "model/tensor_ops.h"
#include "train/checkpoint.h"

namespace hydraulis::apps {

namespace {

constexpr const char* kDefaultCheckText =
    "The rotary embedding turns each pair of a head's dimensions by an angle that grows with the "
    "position, so attention scores depend on how far apart two tokens are. Export checks compare "
    "these logits with those of another implementation.";

struct ExportArgs {
  std::string checkpoint;
  std::string out;
  std::string dtype = "bf16";
  std::string vocab;
  std::string merges;
  bool force = false;
  std::string check_logits;
  std::string check_text = kDefaultCheckText;
};

// max |a − b| / max |b| over two logits tensors of one shape.
double relative_difference(const core::Tensor& a, const core::Tensor& b) {
  double scale = 0, worst = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    scale = std::max(scale, std::abs(model::element(b, i)));
    worst = std::max(worst, std::abs(model::element(a, i) - model::element(b, i)));
  }
  return scale > 0 ? worst / scale : worst;
}

// Reads the export back, compares its logits on --check-text with the checkpoint's and writes
// the check file of tools/check_hf_export.py.
core::Status check_logits(const ExportArgs& args, const train::CheckpointWeights& weights) {
  if (args.vocab.empty()) {
    return core::invalid_argument(
        "--check-logits {} tokenizes --check-text: pass --vocab and --merges too",
        args.check_logits);
  }
  HYD_ASSIGN_OR_RETURN(data::Gpt2Tokenizer tokenizer,
                       data::Gpt2Tokenizer::load(args.vocab, args.merges));
  std::vector<int32_t> ids = tokenizer.encode(args.check_text);
  if (ids.size() < 2) {
    return core::invalid_argument("--check-text '{}' has {} tokens; give at least 2",
                                  args.check_text, ids.size());
  }
  const int64_t limit = weights.model.max_seq_len + 1;
  if (int64_t(ids.size()) > limit) ids.resize(size_t(limit));
  HYD_ASSIGN_OR_RETURN(model::HfModel back, model::import_hf(args.out));
  const std::vector<std::vector<int32_t>> sequences = {ids};
  const model::MicroBatch batch = model::pack_sequences(sequences);
  HYD_ASSIGN_OR_RETURN(core::Tensor exported, model::model_logits(back.config, back.params, batch));
  HYD_ASSIGN_OR_RETURN(core::Tensor original,
                       model::model_logits(weights.model, weights.params, batch));
  HYD_RETURN_IF_ERROR(model::write_hf_logits_check(back, sequences, args.check_logits));
  std::printf(
      "check: %lld positions of --check-text; exported vs checkpoint logits differ by %.3g of the "
      "largest |logit| (%s export); wrote %s\n"
      "  verify elsewhere: python3 tools/check_hf_export.py --model %s --logits %s\n",
      static_cast<long long>(batch.num_tokens()), relative_difference(exported, original),
      args.dtype.c_str(), args.check_logits.c_str(), args.out.c_str(), args.check_logits.c_str());
  return core::Status::ok();
}

core::Status run_export(const ExportArgs& args) {
  HYD_ASSIGN_OR_RETURN(core::DType dtype, model::hf_export_dtype(args.dtype));
  HYD_ASSIGN_OR_RETURN(train::CheckpointWeights weights,
                       train::load_checkpoint_weights(args.checkpoint));
  model::HfExportOptions options;
  options.dtype = dtype;
  options.vocab_path = args.vocab;
  options.merges_path = args.merges;
  options.existing = args.force ? model::ExistingOutput::kReplace : model::ExistingOutput::kRefuse;
  HYD_RETURN_IF_ERROR(model::export_hf(weights.model, weights.params, args.out, options));
  HYD_ASSIGN_OR_RETURN(uint64_t bytes, core::file_size(args.out + "/model.safetensors"));
  std::printf("exported step %lld of %s: %s\n  to %s (%s, model.safetensors %.1f MB%s)\n",
              static_cast<long long>(weights.step), args.checkpoint.c_str(),
              weights.model.describe().c_str(), args.out.c_str(), args.dtype.c_str(),
              double(bytes) / 1e6, args.vocab.empty() ? ", no tokenizer files" : ", tokenizer");
  if (!args.check_logits.empty()) HYD_RETURN_IF_ERROR(check_logits(args, weights));
  return core::Status::ok();
}

}  // namespace

void add_export_command(CLI::App& root, CommandList& commands) {
  CLI::App* app = root.add_subcommand(
      "export",
      "Export a training checkpoint to Hugging Face LLaMA format (docs/model.md, \"Export to "
      "Hugging Face\").\n"
      "DIR gets model.safetensors (HF names; gate/up unfused; all padded vocabulary rows, so\n"
      "vocab_size is the model's), config.json (LlamaForCausalLM), generation_config.json and,\n"
      "with --vocab/--merges, the GPT-2 tokenizer files (vocab.json, merges.txt,\n"
      "tokenizer_config.json, special_tokens_map.json). Our RoPE rotates halves like HF, so\n"
      "q/k are copied unpermuted. The directory is written under a temp name and renamed.\n"
      "Load it with transformers.LlamaForCausalLM.from_pretrained(DIR).");
  auto args = std::make_shared<ExportArgs>();
  app->add_option("--checkpoint", args->checkpoint,
                  "Checkpoint: a train --checkpoint-dir (its latest step) or one step directory")
      ->required();
  app->add_option("--out", args->out, "Output directory (must be new or empty unless --force)")
      ->required();
  app->add_option("--dtype", args->dtype, "Weight dtype of the export: bf16 or f32")
      ->capture_default_str()
      ->check(CLI::IsMember({"bf16", "f32"}));
  app->add_option("--vocab", args->vocab, "GPT-2 vocab.json of the training data (copied)");
  app->add_option("--merges", args->merges, "GPT-2 merges.txt of the training data (copied)");
  app->add_flag("--force", args->force, "Replace a non-empty --out");
  app->add_option("--check-logits", args->check_logits,
                  "After exporting, read DIR back and write our logits on --check-text to this "
                  "safetensors file (input of tools/check_hf_export.py); needs --vocab/--merges");
  app->add_option("--check-text", args->check_text, "Text of --check-logits (one sequence)");
  commands.push_back({app, [args] { return run_export(*args); }});
}

}  // namespace hydraulis::apps
