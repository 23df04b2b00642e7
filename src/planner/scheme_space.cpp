// Scheme space JSON loader/saver with schema validation (spec.md §3, docs/planner.md). Every error
// names the file, the key path, the offending value and the fix. tp and cp must be powers of two
// (the profiler's grid); pp is any positive integer (the 32b reference file profiles pp 3 and 6).
// Tests: tests/planner/scheme_space_test.cpp.
#include "planner/scheme_space.h"

#include <fmt/format.h>

#include <cmath>
#include <set>

namespace hydraulis::planner {
namespace {

using core::Json;
using core::Status;
using core::StatusOr;

bool is_power_of_two(int64_t x) {
  return x > 0 && (x & (x - 1)) == 0;
}

// Integral doubles are written as JSON integers, so the reference files round-trip unchanged.
Json number_json(double v) {
  if (std::isfinite(v) && std::fabs(v) < 9.0e15 && v == std::floor(v)) {
    return Json(static_cast<int64_t>(v));
  }
  return Json(v);
}

// Field readers over one object at `where` (a key path such as "memory_regression.gap").
class Reader {
 public:
  Reader(const Json& object, std::string source, std::string where)
      : object_(object), source_(std::move(source)), where_(std::move(where)) {}

  bool has(const std::string& key) const { return object_.is_object() && object_.contains(key); }

  std::string path(const std::string& key) const {
    return where_.empty() ? key : fmt::format("{}.{}", where_, key);
  }

  StatusOr<const Json*> field(const std::string& key) const {
    if (!object_.is_object()) {
      return core::invalid_argument("{}: '{}' must be a JSON object, got {}", source_,
                                    where_.empty() ? "<top level>" : where_, object_.type_name());
    }
    auto it = object_.find(key);
    if (it == object_.end()) {
      return core::invalid_argument("{}: key '{}' missing; add it (schema: docs/planner.md)",
                                    source_, path(key));
    }
    return &*it;
  }

  StatusOr<const Json*> object(const std::string& key) const {
    HYD_ASSIGN_OR_RETURN(const Json* f, field(key));
    if (!f->is_object()) {
      return core::invalid_argument("{}: '{}' must be a JSON object, got {}", source_, path(key),
                                    f->dump());
    }
    return f;
  }

  // A finite number above `lower` (or equal to it when `lower_inclusive`).
  StatusOr<double> number(const std::string& key, double lower, bool lower_inclusive) const {
    HYD_ASSIGN_OR_RETURN(const Json* f, field(key));
    return check_number(*f, path(key), lower, lower_inclusive);
  }

  StatusOr<int64_t> integer(const std::string& key, int64_t lower) const {
    HYD_ASSIGN_OR_RETURN(const Json* f, field(key));
    return check_integer(*f, path(key), lower);
  }

  StatusOr<double> check_number(const Json& f, const std::string& at, double lower,
                                bool lower_inclusive) const {
    if (!f.is_number()) {
      return core::invalid_argument("{}: '{}' must be a number, got {}", source_, at, f.dump());
    }
    double v = f.get<double>();
    bool ok = std::isfinite(v) && (lower_inclusive ? v >= lower : v > lower);
    if (!ok) {
      return core::out_of_range("{}: '{}' is {}; it must be {} {}", source_, at, f.dump(),
                                lower_inclusive ? ">=" : ">", lower);
    }
    return v;
  }

  StatusOr<int64_t> check_integer(const Json& f, const std::string& at, int64_t lower) const {
    bool integral =
        f.is_number_integer() || (f.is_number_float() && std::fabs(f.get<double>()) < 9.0e15 &&
                                  f.get<double>() == std::floor(f.get<double>()));
    if (!integral) {
      return core::invalid_argument("{}: '{}' must be an integer, got {}", source_, at, f.dump());
    }
    int64_t v = f.is_number_float() ? static_cast<int64_t>(f.get<double>()) : f.get<int64_t>();
    if (v < lower) {
      return core::out_of_range("{}: '{}' is {}; it must be >= {}", source_, at, v, lower);
    }
    return v;
  }

  const std::string& source() const { return source_; }

 private:
  const Json& object_;
  std::string source_;
  std::string where_;
};

// Parses a {"tp1": x, "tp2": y, ...} table; every key must be "tp<power of two>".
template <typename T, typename Convert>
StatusOr<std::map<int, T>> read_tp_table(const Json& table, const std::string& source,
                                         const std::string& where, Convert convert) {
  std::map<int, T> out;
  for (auto it = table.begin(); it != table.end(); ++it) {
    const std::string& key = it.key();
    std::string at = fmt::format("{}.{}", where, key);
    int64_t tp = 0;
    bool ok = key.size() > 2 && key.rfind("tp", 0) == 0 && key.size() <= 7;
    for (size_t i = 2; ok && i < key.size(); ++i) {
      ok = key[i] >= '0' && key[i] <= '9';
      if (ok) tp = tp * 10 + (key[i] - '0');
    }
    if (!ok || !is_power_of_two(tp)) {
      return core::invalid_argument(
          "{}: key '{}' is not of the form 'tpN' with N a power of two (e.g. \"tp8\")", source, at);
    }
    HYD_ASSIGN_OR_RETURN(T value, convert(it.value(), at));
    out[static_cast<int>(tp)] = value;
  }
  return out;
}

StatusOr<SchemeCost> read_scheme(const Json& entry, const std::string& source, size_t index) {
  Reader r(entry, source, fmt::format("strategies[{}]", index));
  SchemeCost cost;
  HYD_ASSIGN_OR_RETURN(int64_t tp, r.integer("tp", 1));
  HYD_ASSIGN_OR_RETURN(int64_t pp, r.integer("pp", 1));
  int64_t cp = 1;
  if (r.has("cp")) {
    HYD_ASSIGN_OR_RETURN(cp, r.integer("cp", 1));
  }
  if (!is_power_of_two(tp)) {
    return core::invalid_argument("{}: '{}' is {}; tp must be a power of two (1, 2, 4, 8, 16)",
                                  source, r.path("tp"), tp);
  }
  if (!is_power_of_two(cp)) {
    return core::invalid_argument("{}: '{}' is {}; cp must be a power of two (1, 2, 4, 8)", source,
                                  r.path("cp"), cp);
  }
  if (tp > 4096 || pp > 4096 || cp > 4096) {
    return core::out_of_range(
        "{}: strategies[{}] has degrees (cp {}, tp {}, pp {}); each must be "
        "<= 4096",
        source, index, cp, tp, pp);
  }
  cost.scheme = Scheme{static_cast<int>(cp), static_cast<int>(tp), static_cast<int>(pp)};
  HYD_ASSIGN_OR_RETURN(cost.a, r.number("a", 0.0, true));
  HYD_ASSIGN_OR_RETURN(cost.b, r.number("b", 0.0, true));
  HYD_ASSIGN_OR_RETURN(cost.c, r.number("c", 0.0, true));
  return cost;
}

StatusOr<MemoryRegression> read_memory(const Json& top, const std::string& source) {
  Reader outer(top, source, "");
  HYD_ASSIGN_OR_RETURN(const Json* mem_json, outer.object("memory_regression"));
  Reader r(*mem_json, source, "memory_regression");
  MemoryRegression mem;
  HYD_ASSIGN_OR_RETURN(const Json* a_json, r.object("A"));
  auto positive = [&](const Json& v, const std::string& at) {
    return r.check_number(v, at, 0.0, false);
  };
  HYD_ASSIGN_OR_RETURN(mem.activation_per_tp,
                       read_tp_table<double>(*a_json, source, "memory_regression.A", positive));
  if (mem.activation_per_tp.empty()) {
    return core::invalid_argument(
        "{}: 'memory_regression.A' is empty; give bytes per hidden "
        "element per layer for every tp, e.g. {{\"tp1\": 38}}",
        source);
  }
  HYD_ASSIGN_OR_RETURN(mem.block_bytes, r.number("B", 0.0, false));
  HYD_ASSIGN_OR_RETURN(mem.alpha, r.number("alpha", 0.0, true));
  if (mem.alpha > 1.0) {
    return core::out_of_range("{}: 'memory_regression.alpha' is {}; it is a share, in [0, 1]",
                              source, mem.alpha);
  }
  HYD_ASSIGN_OR_RETURN(const Json* gap_json, r.object("gap"));
  Reader g(*gap_json, source, "memory_regression.gap");
  for (auto it = gap_json->begin(); it != gap_json->end(); ++it) {
    HYD_ASSIGN_OR_RETURN(double v, g.check_number(it.value(), g.path(it.key()), 0.0, true));
    mem.gap[it.key()] = v;
  }
  if (!mem.gap.contains("node")) {
    return core::invalid_argument(
        "{}: key 'memory_regression.gap.node' missing; the memory model uses the per-node gap "
        "(CUDA/NCCL context bytes), add it",
        source);
  }
  HYD_ASSIGN_OR_RETURN(mem.safe_bound, r.number("safe_bound", 0.0, true));
  return mem;
}

StatusOr<ModelDims> read_model(const Json& top, const std::string& source) {
  Reader outer(top, source, "");
  HYD_ASSIGN_OR_RETURN(const Json* model_json, outer.object("model_config"));
  Reader r(*model_json, source, "model_config");
  ModelDims dims;
  HYD_ASSIGN_OR_RETURN(dims.hidden, r.integer("H", 1));
  HYD_ASSIGN_OR_RETURN(dims.layers, r.integer("L", 1));
  HYD_ASSIGN_OR_RETURN(dims.vocab, r.integer("V", 1));
  return dims;
}

StatusOr<ClusterConfig> read_cluster(const Json& top, const std::string& source) {
  Reader outer(top, source, "");
  HYD_ASSIGN_OR_RETURN(const Json* cluster_json, outer.object("cluster_config"));
  Reader r(*cluster_json, source, "cluster_config");
  ClusterConfig cluster;
  HYD_ASSIGN_OR_RETURN(int64_t gpn, r.integer("gpus_per_node", 1));
  cluster.gpus_per_node = static_cast<int>(gpn);
  HYD_ASSIGN_OR_RETURN(cluster.gpu_memory_bound, r.number("gpu_memory_bound", 0.0, false));
  if (r.has("utilization_seqlen")) {
    HYD_ASSIGN_OR_RETURN(const Json* util_json, r.object("utilization_seqlen"));
    auto nonneg = [&](const Json& v, const std::string& at) { return r.check_integer(v, at, 0); };
    HYD_ASSIGN_OR_RETURN(
        cluster.utilization_seqlen,
        read_tp_table<int64_t>(*util_json, source, "cluster_config.utilization_seqlen", nonneg));
  }
  return cluster;
}

}  // namespace

std::string Scheme::to_string() const {
  return fmt::format("({}, {}, {})", cp, tp, pp);
}

StatusOr<SchemeSpace> SchemeSpace::load(const std::string& path) {
  HYD_ASSIGN_OR_RETURN(Json json, core::read_json_file(path));
  return from_json(json, path);
}

StatusOr<SchemeSpace> SchemeSpace::from_json(const Json& json, const std::string& source) {
  if (!json.is_object()) {
    return core::invalid_argument("{}: the scheme space must be a JSON object, got {}", source,
                                  json.type_name());
  }
  SchemeSpace space;
  Reader top(json, source, "");
  HYD_ASSIGN_OR_RETURN(const Json* list, top.field("strategies"));
  if (!list->is_array() || list->empty()) {
    return core::invalid_argument(
        "{}: 'strategies' must be a non-empty array of {{tp, pp, a, b, c}} objects, got {}", source,
        list->is_array() ? "[]" : list->type_name());
  }
  std::set<Scheme> seen;
  for (size_t i = 0; i < list->size(); ++i) {
    HYD_ASSIGN_OR_RETURN(SchemeCost cost, read_scheme((*list)[i], source, i));
    if (!seen.insert(cost.scheme).second) {
      return core::invalid_argument(
          "{}: strategies[{}] repeats scheme (cp, tp, pp) = {}; each scheme may appear once, "
          "remove the duplicate",
          source, i, cost.scheme.to_string());
    }
    space.schemes_.push_back(cost);
  }
  HYD_ASSIGN_OR_RETURN(space.memory_, read_memory(json, source));
  HYD_ASSIGN_OR_RETURN(space.model_, read_model(json, source));
  HYD_ASSIGN_OR_RETURN(space.cluster_, read_cluster(json, source));
  if (top.has("comm_cost")) {
    HYD_ASSIGN_OR_RETURN(const Json* comm_json, top.object("comm_cost"));
    Reader r(*comm_json, source, "comm_cost");
    if (r.has("hetero_dp")) {
      HYD_ASSIGN_OR_RETURN(space.hetero_dp_comm_ms_, r.number("hetero_dp", 0.0, true));
    }
  }
  for (size_t i = 0; i < space.schemes_.size(); ++i) {
    int tp = space.schemes_[i].scheme.tp;
    if (!space.memory_.activation_per_tp.contains(tp)) {
      return core::invalid_argument(
          "{}: strategies[{}] uses tp {} but 'memory_regression.A' has no \"tp{}\" entry; add "
          "the activation bytes for tp {} or remove the scheme",
          source, i, tp, tp, tp);
    }
  }
  return space;
}

Json SchemeSpace::to_json() const {
  Json strategies = Json::array();
  for (const SchemeCost& cost : schemes_) {
    Json entry = Json::object();
    if (cost.scheme.cp != 1) entry["cp"] = cost.scheme.cp;
    entry["tp"] = cost.scheme.tp;
    entry["pp"] = cost.scheme.pp;
    entry["a"] = number_json(cost.a);
    entry["b"] = number_json(cost.b);
    entry["c"] = number_json(cost.c);
    strategies.push_back(std::move(entry));
  }
  Json a_table = Json::object();
  for (const auto& [tp, v] : memory_.activation_per_tp)
    a_table[fmt::format("tp{}", tp)] = number_json(v);
  Json gap = Json::object();
  for (const auto& [k, v] : memory_.gap) gap[k] = number_json(v);
  Json util = Json::object();
  for (const auto& [tp, v] : cluster_.utilization_seqlen) util[fmt::format("tp{}", tp)] = v;
  Json out = Json::object();
  out["strategies"] = std::move(strategies);
  out["memory_regression"] = Json{{"A", a_table},
                                  {"B", number_json(memory_.block_bytes)},
                                  {"alpha", number_json(memory_.alpha)},
                                  {"gap", gap},
                                  {"safe_bound", number_json(memory_.safe_bound)}};
  out["model_config"] = Json{{"H", model_.hidden}, {"L", model_.layers}, {"V", model_.vocab}};
  out["cluster_config"] = Json{{"gpus_per_node", cluster_.gpus_per_node},
                               {"gpu_memory_bound", number_json(cluster_.gpu_memory_bound)},
                               {"utilization_seqlen", util}};
  out["comm_cost"] = Json{{"hetero_dp", number_json(hetero_dp_comm_ms_)}};
  return out;
}

Status SchemeSpace::save(const std::string& path) const {
  return core::write_json_file(path, to_json(), 4);
}

const SchemeCost* SchemeSpace::find(const Scheme& scheme) const {
  for (const SchemeCost& cost : schemes_) {
    if (cost.scheme == scheme) return &cost;
  }
  return nullptr;
}

int64_t SchemeSpace::utilization_seqlen(int tp) const {
  auto it = cluster_.utilization_seqlen.find(tp);
  return it == cluster_.utilization_seqlen.end() ? 0 : it->second;
}

void SchemeSpace::add_scheme(const SchemeCost& cost) {
  for (SchemeCost& existing : schemes_) {
    if (existing.scheme == cost.scheme) {
      existing = cost;
      return;
    }
  }
  schemes_.push_back(cost);
}

}  // namespace hydraulis::planner
