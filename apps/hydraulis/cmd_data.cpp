// `hydraulis data prepare`: tokenizes a JSONL/JSON corpus (.gz/.zst too) with GPT-2 BPE into a
// Megatron MMIDIDX dataset P.bin + P.idx (library: src/data/prepare.h; docs: docs/data.md).
// SIGINT/SIGTERM stop the run cleanly: temp files are removed and no P.bin/P.idx pair appears;
// a second signal kills the process at once (the temp files are then named *.tmp.<pid>).
// `hydraulis data verify`: checks P.bin and P.idx against P.sum (every chunk) and the MMIDIDX
// rules.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <thread>

#include "apps/hydraulis/commands.h"
#include "data/prepare.h"

namespace hydraulis::apps {

namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void on_interrupt(int) {
  g_interrupted.store(true);
}

// Installs the handler for the lifetime of the object (SA_RESETHAND: a second signal is fatal).
class InterruptGuard {
 public:
  InterruptGuard() {
    g_interrupted.store(false);
    struct sigaction action {};
    action.sa_handler = on_interrupt;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~InterruptGuard() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

struct PrepareArgs {
  data::PrepareOptions options;
  std::string on_error = "fail";
  bool append_eod = false;
  bool quiet = false;
};

int default_workers() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(std::min(n, 16u));
}

core::Status run_prepare(PrepareArgs& args) {
  HYD_ASSIGN_OR_RETURN(args.options.on_error, data::parse_on_error(args.on_error));
  args.options.append_eod = args.append_eod ? data::AppendEod::kYes : data::AppendEod::kNo;
  args.options.progress = args.quiet ? data::ProgressDisplay::kHide : data::ProgressDisplay::kShow;
  args.options.cancel = &g_interrupted;
  InterruptGuard guard;
  HYD_ASSIGN_OR_RETURN(data::PrepareSummary summary, data::prepare_dataset(args.options));
  std::fputs(data::format_summary(summary).c_str(), stdout);
  return core::Status::ok();
}

// Refuses a missing P.sum (NotFound) or any mismatch (DataLoss naming the first bad chunk).
core::Status run_verify(const std::string& prefix) {
  const auto start = std::chrono::steady_clock::now();
  HYD_ASSIGN_OR_RETURN(data::IndexedDataset dataset,
                       data::IndexedDataset::open(prefix, data::SumRequirement::kRequired));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const data::SumCheck& sum = *dataset.sum_check();
  std::fputs(fmt::format("OK {}: {}.bin ({} bytes, {} chunks) and {}.idx ({} bytes, {} chunks) "
                         "match {} (CRC32C per {} KiB); {} sequences, {} tokens; {:.1f} ms\n",
                         prefix, prefix, sum.bin_bytes, sum.bin_chunks, prefix, sum.idx_bytes,
                         sum.idx_chunks, data::sum_path(prefix), sum.chunk_bytes / 1024,
                         dataset.num_sequences(), dataset.num_tokens(), seconds * 1e3)
                 .c_str(),
             stdout);
  return core::Status::ok();
}

}  // namespace

void add_data_command(CLI::App& root, CommandList& commands) {
  CLI::App* data = root.add_subcommand(
      "data",
      "Corpus tools: tokenize a JSONL corpus into an indexed dataset (P.bin + P.idx + P.sum), "
      "verify one");
  data->require_subcommand(1);

  CLI::App* prepare = data->add_subcommand(
      "prepare",
      "Tokenize a corpus with GPT-2 BPE into a Megatron-LM MMIDIDX dataset P.bin + P.idx\n"
      "(and P.sum, their checksums).\n"
      "Input: JSON Lines (one object per line) or a JSON array of objects, optionally .gz or "
      ".zst;\nthe document is the string under --key. Empty documents are dropped; invalid UTF-8 "
      "is\nreplaced by U+FFFD. Output is identical for every --workers and appears only on "
      "success.");
  auto args = std::make_shared<PrepareArgs>();
  args->options.workers = default_workers();
  prepare
      ->add_option("--input", args->options.input,
                   "Corpus: F.jsonl, F.json, F.jsonl.gz or F.jsonl.zst")
      ->required();
  prepare->add_option("--key", args->options.key, "JSON key holding each document's text")
      ->capture_default_str();
  prepare
      ->add_option("--vocab", args->options.vocab_path,
                   "GPT-2 vocab.json (e.g. data/gpt2/vocab.json)")
      ->required();
  prepare
      ->add_option("--merges", args->options.merges_path,
                   "GPT-2 merges.txt (e.g. data/gpt2/merges.txt)")
      ->required();
  prepare
      ->add_option("--output-prefix", args->options.output_prefix,
                   "Writes <prefix>.bin, <prefix>.idx and <prefix>.sum; the directory must exist")
      ->required();
  prepare->add_flag("--append-eod", args->append_eod,
                    "Append <|endoftext|> (id 50256) after every document");
  prepare
      ->add_option("--workers", args->options.workers,
                   "Tokenizer threads (default: CPU count, at most 16)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  prepare
      ->add_option("--on-error", args->on_error,
                   "Bad records (malformed JSON, missing key, non-string value): 'fail' stops "
                   "and lists the first 10 with file:line; 'skip' drops and counts them")
      ->capture_default_str()
      ->check(CLI::IsMember({"fail", "skip"}));
  prepare->add_flag("--quiet", args->quiet, "No progress line on stderr");
  commands.push_back({prepare, [args] { return run_prepare(*args); }});

  CLI::App* verify = data->add_subcommand(
      "verify",
      "Check a dataset P.bin + P.idx against its checksum file P.sum (a CRC32C per 1 MiB chunk,\n"
      "written by `data prepare`) and the MMIDIDX rules. Prints OK, or the file and byte range\n"
      "of the first bad chunk; exits non-zero on a mismatch or when P.sum is missing.");
  auto verify_prefix = std::make_shared<std::string>();
  verify->add_option("--data", *verify_prefix, "Dataset prefix P (reads P.bin, P.idx, P.sum)")
      ->required();
  commands.push_back({verify, [verify_prefix] { return run_verify(*verify_prefix); }});
}

}  // namespace hydraulis::apps
