// plan.jsonl writer/reader and the plan verifier (see plan.h).
#include "planner/plan.h"

#include <limits>
#include <optional>

#include <algorithm>
#include <cmath>

#include "core/file.h"
#include "planner/cost_model.h"

namespace hydraulis::planner {

double BatchPlan::gap() const {
  if (lower_bound_ms <= 0) return 0.0;
  return estimated_ms / lower_bound_ms - 1.0;
}

core::Json plan_to_json(const BatchPlan& plan) {
  core::Json pipelines = core::Json::array();
  for (const PipelinePlan& p : plan.pipelines) {
    core::Json micro_batches = core::Json::array();
    for (const auto& mb : p.micro_batches) micro_batches.push_back(mb);
    core::Json entry = core::Json::object();
    entry["scheme"] = {p.scheme.cp, p.scheme.tp, p.scheme.pp};
    entry["max_tokens"] = p.max_tokens;
    entry["estimated_ms"] = p.estimated_ms;
    entry["micro_batches"] = std::move(micro_batches);
    pipelines.push_back(std::move(entry));
  }
  // nlohmann::json orders object keys alphabetically; plan_to_json_line writes design.md's order.
  core::Json json = core::Json::object();
  json["batch"] = plan.batch;
  json["strategy"] = plan.strategy;
  json["estimated_ms"] = plan.estimated_ms;
  json["lower_bound_ms"] = plan.lower_bound_ms;
  json["planning_ms"] = plan.planning_ms;
  json["pipelines"] = std::move(pipelines);
  json["method"] = plan.method;
  if (plan.pad_tokens > 0) json["pad_tokens"] = plan.pad_tokens;
  return json;
}

namespace {

// Shortest text that reads back to the same double (nlohmann's dump does the same).
std::string number_text(double x) { return core::Json(x).dump(); }

}  // namespace

std::string plan_to_json_line(const BatchPlan& plan) {
  std::string out = fmt::format("{{\"batch\": {}, \"strategy\": {}, \"estimated_ms\": {}, "
                                "\"lower_bound_ms\": {}, \"planning_ms\": {}, \"pipelines\": [",
                                plan.batch, plan.strategy, number_text(plan.estimated_ms),
                                number_text(plan.lower_bound_ms), number_text(plan.planning_ms));
  for (size_t j = 0; j < plan.pipelines.size(); ++j) {
    const PipelinePlan& p = plan.pipelines[j];
    out += fmt::format("{}{{\"scheme\": [{}, {}, {}], \"max_tokens\": {}, \"estimated_ms\": {}, "
                       "\"micro_batches\": [",
                       j ? ", " : "", p.scheme.cp, p.scheme.tp, p.scheme.pp, p.max_tokens,
                       number_text(p.estimated_ms));
    for (size_t m = 0; m < p.micro_batches.size(); ++m) {
      out += fmt::format("{}[{}]", m ? ", " : "", fmt::join(p.micro_batches[m], ", "));
    }
    out += "]}";
  }
  out += fmt::format("], \"method\": {}", plan.method);
  if (plan.pad_tokens > 0) out += fmt::format(", \"pad_tokens\": {}", plan.pad_tokens);
  out += "}";
  return out;
}

// An integer JSON value within [lo, hi]; nullopt when not an integer or out of range (values
// beyond int must be refused, not wrapped: 4294967299 must not read as index 3).
std::optional<int> bounded_int(const core::Json& v, int64_t lo = 0,
                               int64_t hi = std::numeric_limits<int>::max()) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(hi) || static_cast<int64_t>(u) < lo) return std::nullopt;
    return static_cast<int>(u);
  }
  if (!v.is_number_integer()) return std::nullopt;
  int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) return std::nullopt;
  return static_cast<int>(x);
}

core::StatusOr<int> int_field(const core::Json& json, const char* key, const std::string& source,
                              int64_t lo) {
  HYD_ASSIGN_OR_RETURN(const core::Json* field, core::json_field(json, key, source));
  std::optional<int> value = bounded_int(*field, lo);
  if (!value) {
    return core::invalid_argument("{}: '{}' must be an integer in [{}, {}], got {}", source, key,
                                  lo, std::numeric_limits<int>::max(), field->dump());
  }
  return *value;
}

core::StatusOr<BatchPlan> plan_from_json(const core::Json& json, const std::string& source) {
  BatchPlan plan;
  HYD_ASSIGN_OR_RETURN(plan.batch, core::json_integer(json, "batch", source));
  HYD_ASSIGN_OR_RETURN(plan.strategy, int_field(json, "strategy", source, -1));
  HYD_ASSIGN_OR_RETURN(plan.estimated_ms, core::json_number(json, "estimated_ms", source));
  HYD_ASSIGN_OR_RETURN(plan.lower_bound_ms, core::json_number(json, "lower_bound_ms", source));
  HYD_ASSIGN_OR_RETURN(plan.planning_ms, core::json_number(json, "planning_ms", source));
  if (json.contains("method")) {
    HYD_ASSIGN_OR_RETURN(plan.method, int_field(json, "method", source, 0));
  }
  if (json.contains("pad_tokens")) {
    HYD_ASSIGN_OR_RETURN(plan.pad_tokens, core::json_integer(json, "pad_tokens", source));
  }
  HYD_ASSIGN_OR_RETURN(const core::Json* pipelines, core::json_field(json, "pipelines", source));
  if (!pipelines->is_array()) {
    return core::invalid_argument("{}: 'pipelines' must be an array, got {}", source,
                                  pipelines->type_name());
  }
  for (size_t j = 0; j < pipelines->size(); ++j) {
    const core::Json& entry = (*pipelines)[j];
    std::string where = fmt::format("{}: pipelines[{}]", source, j);
    PipelinePlan p;
    HYD_ASSIGN_OR_RETURN(const core::Json* scheme, core::json_field(entry, "scheme", where));
    std::optional<int> degree[3];
    if (scheme->is_array() && scheme->size() == 3) {
      for (size_t d = 0; d < 3; ++d) degree[d] = bounded_int((*scheme)[d], 1);
    }
    if (!degree[0] || !degree[1] || !degree[2]) {
      return core::invalid_argument("{}: 'scheme' must be [cp, tp, pp] of positive integers, got {}",
                                    where, scheme->dump());
    }
    p.scheme = Scheme{*degree[0], *degree[1], *degree[2]};
    HYD_ASSIGN_OR_RETURN(p.max_tokens, core::json_integer(entry, "max_tokens", where));
    HYD_ASSIGN_OR_RETURN(p.estimated_ms, core::json_number(entry, "estimated_ms", where));
    HYD_ASSIGN_OR_RETURN(const core::Json* mbs, core::json_field(entry, "micro_batches", where));
    if (!mbs->is_array()) {
      return core::invalid_argument("{}: 'micro_batches' must be an array", where);
    }
    for (size_t m = 0; m < mbs->size(); ++m) {
      const core::Json& mb = (*mbs)[m];
      if (!mb.is_array()) {
        return core::invalid_argument("{}: micro_batches[{}] must be an array of indices", where,
                                      m);
      }
      std::vector<int> ids;
      ids.reserve(mb.size());
      for (const core::Json& id : mb) {
        std::optional<int> index = bounded_int(id);
        if (!index) {
          return core::invalid_argument("{}: micro_batches[{}] holds {}, not an index", where, m,
                                        id.dump());
        }
        ids.push_back(*index);
      }
      p.micro_batches.push_back(std::move(ids));
    }
    plan.pipelines.push_back(std::move(p));
  }
  return plan;
}

core::Status write_plan_jsonl(const std::string& path, std::span<const BatchPlan> plans) {
  HYD_ASSIGN_OR_RETURN(core::AtomicFile file, core::AtomicFile::create(path));
  for (const BatchPlan& plan : plans) {
    HYD_RETURN_IF_ERROR(file.write(plan_to_json_line(plan)));
    HYD_RETURN_IF_ERROR(file.write("\n"));
  }
  return file.commit();
}

core::StatusOr<std::vector<BatchPlan>> parse_plan_jsonl(std::string_view text,
                                                        const std::string& source) {
  std::vector<BatchPlan> plans;
  size_t line_number = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    ++line_number;
    start = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    std::string where = fmt::format("{}:{}", source, line_number);
    HYD_ASSIGN_OR_RETURN(core::Json json, core::parse_json(line, where));
    HYD_ASSIGN_OR_RETURN(BatchPlan plan, plan_from_json(json, where));
    plans.push_back(std::move(plan));
  }
  return plans;
}

core::StatusOr<std::vector<BatchPlan>> read_plan_jsonl(const std::string& path) {
  HYD_ASSIGN_OR_RETURN(std::string text, core::read_file(path));
  return parse_plan_jsonl(text, path);
}

double micro_batch_cost_padded(const SchemeCost& cost, std::span<const int64_t> lengths,
                               int64_t pad_tokens) {
  double total = 0;
  for (int64_t s : lengths) total += sequence_cost(cost, pad_tokens > 0 ? pad_tokens : s);
  return total;
}

namespace {

bool close(double a, double b, double tolerance) {
  return std::abs(a - b) <= tolerance * std::max({1.0, std::abs(a), std::abs(b)});
}

}  // namespace

core::Status verify_plan(const BatchPlan& plan, std::span<const int64_t> lengths,
                         std::span<const SchemeCost> costs, double tolerance) {
  if (costs.size() != plan.pipelines.size()) {
    return core::invalid_argument("batch {}: plan has {} pipelines, the strategy has {}",
                                  plan.batch, plan.pipelines.size(), costs.size());
  }
  std::vector<int> seen(lengths.size(), 0);
  double largest = 0;
  for (size_t j = 0; j < plan.pipelines.size(); ++j) {
    const PipelinePlan& p = plan.pipelines[j];
    if (!(p.scheme == costs[j].scheme)) {
      return core::invalid_argument("batch {} pipeline {}: scheme {} but the strategy has {}",
                                    plan.batch, j, p.scheme.to_string(),
                                    costs[j].scheme.to_string());
    }
    double max_cost = 0;
    int64_t used = 0;
    for (size_t m = 0; m < p.micro_batches.size(); ++m) {
      const auto& mb = p.micro_batches[m];
      if (mb.empty()) {
        return core::invalid_argument("batch {} pipeline {}: micro-batch {} is empty", plan.batch,
                                      j, m);
      }
      int64_t tokens = 0;
      std::vector<int64_t> mb_lengths;
      for (int id : mb) {
        if (id < 0 || static_cast<size_t>(id) >= lengths.size()) {
          return core::invalid_argument("batch {} pipeline {}: index {} outside the batch of {}",
                                        plan.batch, j, id, lengths.size());
        }
        ++seen[id];
        int64_t s = lengths[id];
        if (plan.pad_tokens > 0 && s > plan.pad_tokens) {
          return core::invalid_argument("batch {}: sequence {} has {} tokens > pad length {}",
                                        plan.batch, id, s, plan.pad_tokens);
        }
        tokens += plan.pad_tokens > 0 ? plan.pad_tokens : s;
        mb_lengths.push_back(s);
      }
      if (tokens > p.max_tokens) {
        return core::invalid_argument(
            "batch {} pipeline {}: micro-batch {} holds {} tokens > max_tokens {}", plan.batch, j,
            m, tokens, p.max_tokens);
      }
      max_cost = std::max(max_cost, micro_batch_cost_padded(costs[j], mb_lengths, plan.pad_tokens));
      ++used;
    }
    double expected =
        used == 0 ? 0.0 : (max_cost + costs[j].c) * static_cast<double>(p.scheme.pp - 1 + used);
    if (!close(expected, p.estimated_ms, tolerance)) {
      return core::invalid_argument(
          "batch {} pipeline {}: estimated_ms {} but spec.md §4 gives {}", plan.batch, j,
          p.estimated_ms, expected);
    }
    largest = std::max(largest, expected);
  }
  for (size_t i = 0; i < seen.size(); ++i) {
    if (seen[i] != 1) {
      return core::invalid_argument("batch {}: sequence {} ({} tokens) is assigned {} times",
                                    plan.batch, i, lengths[i], seen[i]);
    }
  }
  if (!close(largest, plan.estimated_ms, tolerance)) {
    return core::invalid_argument("batch {}: estimated_ms {} but the largest pipeline takes {}",
                                  plan.batch, plan.estimated_ms, largest);
  }
  if (plan.lower_bound_ms > plan.estimated_ms * (1 + tolerance) + tolerance) {
    return core::invalid_argument("batch {}: lower_bound_ms {} exceeds estimated_ms {}",
                                  plan.batch, plan.lower_bound_ms, plan.estimated_ms);
  }
  return core::Status::ok();
}

}  // namespace hydraulis::planner
