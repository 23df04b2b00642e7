// Global batches from a --batches file or sampled from an indexed dataset (--data).
#include "apps/hydraulis/batch_source.h"

#include "data/indexed_dataset.h"
#include "data/sampler.h"
#include "planner/simulate.h"

namespace hydraulis::apps {

namespace {

core::StatusOr<std::vector<std::vector<int64_t>>> batches_from_dataset(const BatchSourceArgs& args) {
  HYD_ASSIGN_OR_RETURN(data::IndexedDataset dataset, data::IndexedDataset::open(args.data));
  data::SamplerConfig config;
  config.global_token_num = args.global_token_num;
  config.max_seq_len = args.max_seq_len;
  HYD_ASSIGN_OR_RETURN(data::GlobalBatchSampler sampler,
                       data::GlobalBatchSampler::create(dataset.lengths(), config));
  std::vector<std::vector<int64_t>> out;
  for (const data::GlobalBatch& batch : sampler.take(static_cast<size_t>(args.num_batches))) {
    std::vector<int64_t> lengths;
    for (int64_t n : batch.lengths()) {
      if (n >= 2) lengths.push_back(n - 1);
    }
    if (!lengths.empty()) out.push_back(std::move(lengths));
  }
  return out;
}

}  // namespace

void add_batch_source_options(CLI::App* app, BatchSourceArgs* args) {
  app->add_option("--data", args->data, "Indexed dataset prefix P (P.bin/P.idx) to sample from");
  app->add_option("--batches", args->batches,
                  "JSON array of global batches, each an array of sequence lengths");
  app->add_option("--global-token-num", args->global_token_num, "Tokens per global batch (--data)")
      ->capture_default_str();
  app->add_option("--num-batches", args->num_batches, "Global batches sampled from --data")
      ->capture_default_str();
}

core::StatusOr<std::vector<std::vector<int64_t>>> load_global_batches(const BatchSourceArgs& args) {
  if (args.data.empty() == args.batches.empty()) {
    return core::invalid_argument("give exactly one of --data P or --batches F.json");
  }
  if (!args.batches.empty()) return planner::read_batches_json(args.batches);
  if (args.global_token_num <= 0 || args.max_seq_len <= 0 || args.num_batches <= 0) {
    return core::invalid_argument(
        "--global-token-num, --max-seq-len and --num-batches must be positive (got {}, {}, {})",
        args.global_token_num, args.max_seq_len, args.num_batches);
  }
  return batches_from_dataset(args);
}

}  // namespace hydraulis::apps
