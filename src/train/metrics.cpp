// Metrics JSONL lines (keys: metrics.h) written atomically after every step.
#include "train/metrics.h"

#include <cmath>

#include "core/file.h"

namespace hydraulis::train {

namespace {
// JSON has no NaN/Inf: a skipped step's non-finite values are written as null.
core::Json number(double x) {
  return std::isfinite(x) ? core::Json(x) : core::Json(nullptr);
}
}  // namespace

core::Json StepMetrics::to_json() const {
  core::Json j = core::Json::object();
  j["step"] = step;
  j["loss"] = number(loss);
  j["tokens"] = tokens;
  j["step_ms"] = step_ms;
  j["strategy"] = strategy;
  j["planning_ms"] = planning_ms;
  j["tokens_per_s"] = tokens_per_s;
  j["grad_norm"] = number(grad_norm);
  j["lr"] = lr;
  j["targets"] = targets;
  j["micro_batches"] = micro_batches;
  j["skipped"] = skipped;
  if (model_tflops_per_s >= 0) j["model_tflops_per_s"] = model_tflops_per_s;
  if (mfu >= 0) j["mfu"] = mfu;
  if (peak_memory_bytes >= 0) j["peak_memory_bytes"] = peak_memory_bytes;
  if (board_joules >= 0) j["board_joules"] = board_joules;
  if (board_watts >= 0) j["board_watts"] = board_watts;
  if (estimated_ms >= 0) j["estimated_ms"] = estimated_ms;
  if (!pipelines.empty()) {
    core::Json list = core::Json::array();
    for (const Pipeline& p : pipelines) {
      list.push_back({{"scheme", p.scheme}, {"estimated_ms", p.estimated_ms},
                      {"measured_ms", p.measured_ms}});
    }
    j["pipelines"] = std::move(list);
  }
  return j;
}

core::Status MetricsWriter::append(const StepMetrics& metrics) {
  text_ += metrics.to_json().dump() + "\n";
  if (path_.empty()) return core::Status::ok();
  return core::write_file_atomic(path_, text_);
}

core::Status MetricsWriter::resume(int64_t step) {
  text_.clear();
  if (path_.empty() || !core::file_exists(path_)) return core::Status::ok();
  HYD_ASSIGN_OR_RETURN(std::string old, core::read_file(path_));
  size_t begin = 0;
  while (begin < old.size()) {
    size_t end = old.find('\n', begin);
    if (end == std::string::npos) end = old.size();
    const std::string line = old.substr(begin, end - begin);
    begin = end + 1;
    auto json = core::parse_json(line, path_);
    if (!json.is_ok() || !json->is_object() || !json->contains("step")) continue;
    auto s = core::json_integer(*json, "step", path_);
    if (s.is_ok() && *s <= step) text_ += line + "\n";
  }
  return core::Status::ok();
}

}  // namespace hydraulis::train
