// Profile JSON ("hydraulis-profile" v1, docs/formats.md): writer and validating reader. Every
// reader error names the file, the key path, the value and the fix.
#include "planner/profile.h"

#include <fmt/format.h>

#include <algorithm>

namespace hydraulis::planner {
namespace {

using core::Json;
using core::StatusOr;

// Typed field access of one object at `where` ("schemes[2].points[0]").
class Fields {
 public:
  Fields(const Json& object, const std::string& source, std::string where)
      : object_(object), source_(source), where_(std::move(where)) {}

  std::string at(const std::string& key) const {
    return where_.empty() ? key : fmt::format("{}.{}", where_, key);
  }

  StatusOr<const Json*> get(const std::string& key) const {
    if (!object_.is_object()) {
      return core::invalid_argument("{}: '{}' must be a JSON object, got {}", source_,
                                    where_.empty() ? "<top level>" : where_, object_.type_name());
    }
    auto it = object_.find(key);
    if (it == object_.end()) {
      return core::invalid_argument(
          "{}: key '{}' missing; this is not a complete hydraulis profile (write it with "
          "`hydraulis profile`, format: docs/formats.md)",
          source_, at(key));
    }
    return &*it;
  }

  StatusOr<int64_t> integer(const std::string& key, int64_t lower) const {
    HYD_ASSIGN_OR_RETURN(const Json* f, get(key));
    if (!f->is_number_integer()) {
      return core::invalid_argument("{}: '{}' must be an integer, got {}", source_, at(key),
                                    f->dump());
    }
    const int64_t v = f->get<int64_t>();
    if (v < lower) {
      return core::out_of_range("{}: '{}' is {}; it must be >= {}", source_, at(key), v, lower);
    }
    return v;
  }

  StatusOr<std::string> string(const std::string& key) const {
    HYD_ASSIGN_OR_RETURN(const Json* f, get(key));
    if (!f->is_string()) {
      return core::invalid_argument("{}: '{}' must be a string, got {}", source_, at(key),
                                    f->dump());
    }
    return f->get<std::string>();
  }

  StatusOr<const Json*> array(const std::string& key) const {
    HYD_ASSIGN_OR_RETURN(const Json* f, get(key));
    if (!f->is_array()) {
      return core::invalid_argument("{}: '{}' must be an array, got {}", source_, at(key),
                                    f->type_name());
    }
    return f;
  }

 private:
  const Json& object_;
  const std::string& source_;
  std::string where_;
};

StatusOr<RankState> read_rank(const Json& j, const std::string& source, const std::string& where) {
  Fields f(j, source, where);
  RankState r;
  HYD_ASSIGN_OR_RETURN(int64_t rank, f.integer("rank", 0));
  HYD_ASSIGN_OR_RETURN(int64_t stage, f.integer("stage", 0));
  r.rank = int(rank);
  r.stage = int(stage);
  HYD_ASSIGN_OR_RETURN(r.layers, f.integer("layers", 0));
  HYD_ASSIGN_OR_RETURN(r.layer_strategy_bytes, f.integer("layer_strategy_bytes", 0));
  HYD_ASSIGN_OR_RETURN(r.layer_optimizer_bytes, f.integer("layer_optimizer_bytes", 0));
  HYD_ASSIGN_OR_RETURN(r.other_strategy_bytes, f.integer("other_strategy_bytes", 0));
  HYD_ASSIGN_OR_RETURN(r.other_optimizer_bytes, f.integer("other_optimizer_bytes", 0));
  HYD_ASSIGN_OR_RETURN(r.context_bytes, f.integer("context_bytes", 0));
  return r;
}

StatusOr<ProfilePoint> read_point(const Json& j, const std::string& source,
                                  const std::string& where, size_t gpus) {
  Fields f(j, source, where);
  ProfilePoint p;
  HYD_ASSIGN_OR_RETURN(p.seq_len, f.integer("seq_len", 1));
  HYD_ASSIGN_OR_RETURN(const Json* times, f.array("step_ms"));
  if (times->empty()) {
    return core::invalid_argument("{}: '{}' is empty; every profiled length has >= 1 repeat",
                                  source, f.at("step_ms"));
  }
  for (size_t i = 0; i < times->size(); ++i) {
    const Json& t = (*times)[i];
    if (!t.is_number() || !(t.get<double>() > 0)) {
      return core::invalid_argument("{}: '{}[{}]' is {}; a time is a positive number of ms",
                                    source, f.at("step_ms"), i, t.dump());
    }
    p.step_ms.push_back(t.get<double>());
  }
  HYD_ASSIGN_OR_RETURN(const Json* peaks, f.array("peak_bytes"));
  if (peaks->size() != gpus) {
    return core::invalid_argument(
        "{}: '{}' has {} entries; the scheme has {} ranks and each reports its peak", source,
        f.at("peak_bytes"), peaks->size(), gpus);
  }
  for (const Json& b : *peaks) {
    if (!b.is_number_integer() || b.get<int64_t>() < 0) {
      return core::invalid_argument("{}: '{}' holds {}; peaks are byte counts >= 0", source,
                                    f.at("peak_bytes"), b.dump());
    }
    p.peak_bytes.push_back(b.get<int64_t>());
  }
  return p;
}

StatusOr<SchemeProfile> read_scheme(const Json& j, const std::string& source, size_t index) {
  const std::string where = fmt::format("schemes[{}]", index);
  Fields f(j, source, where);
  SchemeProfile s;
  HYD_ASSIGN_OR_RETURN(int64_t cp, f.integer("cp", 1));
  HYD_ASSIGN_OR_RETURN(int64_t tp, f.integer("tp", 1));
  HYD_ASSIGN_OR_RETURN(int64_t pp, f.integer("pp", 1));
  if (cp > 4096 || tp > 4096 || pp > 4096) {
    return core::out_of_range("{}: {} has degrees (cp {}, tp {}, pp {}); each must be <= 4096",
                              source, where, cp, tp, pp);
  }
  s.scheme = Scheme{int(cp), int(tp), int(pp)};
  HYD_ASSIGN_OR_RETURN(s.micro_batches, f.integer("micro_batches", 1));
  HYD_ASSIGN_OR_RETURN(const Json* ranks, f.array("ranks"));
  HYD_ASSIGN_OR_RETURN(const Json* points, f.array("points"));
  // A scheme whose model state did not fit was never set up: no ranks and no points.
  if (ranks->size() != size_t(s.scheme.gpus()) && !(ranks->empty() && points->empty())) {
    return core::invalid_argument("{}: '{}.ranks' has {} entries, the scheme {} has {} ranks",
                                  source, where, ranks->size(), s.scheme.to_string(),
                                  s.scheme.gpus());
  }
  for (size_t r = 0; r < ranks->size(); ++r) {
    HYD_ASSIGN_OR_RETURN(RankState rs,
                         read_rank((*ranks)[r], source, fmt::format("{}.ranks[{}]", where, r)));
    s.ranks.push_back(rs);
  }
  for (size_t i = 0; i < points->size(); ++i) {
    HYD_ASSIGN_OR_RETURN(ProfilePoint p, read_point((*points)[i], source,
                                                    fmt::format("{}.points[{}]", where, i),
                                                    size_t(s.scheme.gpus())));
    if (!s.points.empty() && p.seq_len <= s.points.back().seq_len) {
      return core::invalid_argument(
          "{}: {}.points[{}] has seq_len {} after {}; lengths must increase (one entry each)",
          source, where, i, p.seq_len, s.points.back().seq_len);
    }
    s.points.push_back(std::move(p));
  }
  if (j.contains("stopped_at")) {
    HYD_ASSIGN_OR_RETURN(s.stopped_at, f.integer("stopped_at", 0));
  }
  if (j.contains("stop_reason")) {
    HYD_ASSIGN_OR_RETURN(s.stop_reason, f.string("stop_reason"));
  }
  return s;
}

}  // namespace

int64_t ProfilePoint::max_peak_bytes() const {
  return peak_bytes.empty() ? 0 : *std::max_element(peak_bytes.begin(), peak_bytes.end());
}

double SchemeProfile::median_ms(const ProfilePoint& point) const {
  std::vector<double> t = point.step_ms;
  std::sort(t.begin(), t.end());
  const size_t n = t.size();
  const double m = n % 2 == 1 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
  return m / double(slots());
}

Json Profile::to_json() const {
  Json schemes_json = Json::array();
  for (const SchemeProfile& s : schemes) {
    Json ranks_json = Json::array();
    for (const RankState& r : s.ranks) {
      ranks_json.push_back(Json{{"rank", r.rank},
                                {"stage", r.stage},
                                {"layers", r.layers},
                                {"layer_strategy_bytes", r.layer_strategy_bytes},
                                {"layer_optimizer_bytes", r.layer_optimizer_bytes},
                                {"other_strategy_bytes", r.other_strategy_bytes},
                                {"other_optimizer_bytes", r.other_optimizer_bytes},
                                {"context_bytes", r.context_bytes}});
    }
    Json points_json = Json::array();
    for (const ProfilePoint& p : s.points) {
      points_json.push_back(Json{{"seq_len", p.seq_len},
                                 {"step_ms", p.step_ms},
                                 {"median_ms", s.median_ms(p)},
                                 {"peak_bytes", p.peak_bytes}});
    }
    Json entry = Json{{"cp", s.scheme.cp},          {"tp", s.scheme.tp},
                      {"pp", s.scheme.pp},          {"micro_batches", s.micro_batches},
                      {"slots", s.slots()},         {"ranks", std::move(ranks_json)},
                      {"points", std::move(points_json)}};
    if (s.stopped_at > 0) {
      entry["stopped_at"] = s.stopped_at;
      entry["stop_reason"] = s.stop_reason;
    }
    schemes_json.push_back(std::move(entry));
  }
  Json out = Json::object();
  out["format"] = kProfileFormat;
  out["version"] = kProfileVersion;
  out["model"] = Json{{"name", model.name},       {"H", model.hidden},
                      {"L", model.layers},        {"V", model.vocab},
                      {"heads", model.heads},     {"kv_heads", model.kv_heads},
                      {"ffn_hidden", model.ffn_hidden}};
  out["device"] = Json{{"kind", device_kind},
                       {"name", device_name},
                       {"memory_bytes", device_memory_bytes},
                       {"ranks", ranks},
                       {"cpu_threads", cpu_threads}};
  out["git"] = git;
  out["created"] = created;
  out["settings"] = Json{{"warmup", warmup},
                         {"repeats", repeats},
                         {"min_seq_len", min_seq_len},
                         {"max_seq_len", max_seq_len}};
  out["schemes"] = std::move(schemes_json);
  return out;
}

StatusOr<Profile> Profile::from_json(const Json& json, const std::string& source) {
  Fields top(json, source, "");
  HYD_ASSIGN_OR_RETURN(std::string format, top.string("format"));
  if (format != kProfileFormat) {
    return core::invalid_argument(
        "{}: 'format' is \"{}\", not \"{}\": pass a file written by `hydraulis profile` (a "
        "scheme-space JSON goes to --scheme-space, not --profile)",
        source, format, kProfileFormat);
  }
  HYD_ASSIGN_OR_RETURN(int64_t version, top.integer("version", 1));
  if (version != kProfileVersion) {
    return core::invalid_argument(
        "{}: profile format version {} is not supported (this binary reads version {}): "
        "re-run `hydraulis profile` with this binary",
        source, version, kProfileVersion);
  }
  Profile p;
  HYD_ASSIGN_OR_RETURN(const Json* model, top.get("model"));
  Fields m(*model, source, "model");
  HYD_ASSIGN_OR_RETURN(p.model.name, m.string("name"));
  HYD_ASSIGN_OR_RETURN(p.model.hidden, m.integer("H", 1));
  HYD_ASSIGN_OR_RETURN(p.model.layers, m.integer("L", 1));
  HYD_ASSIGN_OR_RETURN(p.model.vocab, m.integer("V", 1));
  HYD_ASSIGN_OR_RETURN(p.model.heads, m.integer("heads", 1));
  HYD_ASSIGN_OR_RETURN(p.model.kv_heads, m.integer("kv_heads", 1));
  HYD_ASSIGN_OR_RETURN(p.model.ffn_hidden, m.integer("ffn_hidden", 1));
  HYD_ASSIGN_OR_RETURN(const Json* device, top.get("device"));
  Fields d(*device, source, "device");
  HYD_ASSIGN_OR_RETURN(p.device_kind, d.string("kind"));
  if (p.device_kind != "cpu" && p.device_kind != "cuda") {
    return core::invalid_argument("{}: 'device.kind' is \"{}\"; it is \"cpu\" or \"cuda\"", source,
                                  p.device_kind);
  }
  HYD_ASSIGN_OR_RETURN(p.device_name, d.string("name"));
  HYD_ASSIGN_OR_RETURN(p.device_memory_bytes, d.integer("memory_bytes", 0));
  HYD_ASSIGN_OR_RETURN(int64_t ranks, d.integer("ranks", 1));
  HYD_ASSIGN_OR_RETURN(int64_t threads, d.integer("cpu_threads", 0));
  p.ranks = int(ranks);
  p.cpu_threads = int(threads);
  HYD_ASSIGN_OR_RETURN(p.git, top.string("git"));
  HYD_ASSIGN_OR_RETURN(p.created, top.string("created"));
  HYD_ASSIGN_OR_RETURN(const Json* settings, top.get("settings"));
  Fields s(*settings, source, "settings");
  HYD_ASSIGN_OR_RETURN(int64_t warmup, s.integer("warmup", 0));
  HYD_ASSIGN_OR_RETURN(int64_t repeats, s.integer("repeats", 1));
  p.warmup = int(warmup);
  p.repeats = int(repeats);
  HYD_ASSIGN_OR_RETURN(p.min_seq_len, s.integer("min_seq_len", 1));
  HYD_ASSIGN_OR_RETURN(p.max_seq_len, s.integer("max_seq_len", 1));
  HYD_ASSIGN_OR_RETURN(const Json* schemes, top.array("schemes"));
  for (size_t i = 0; i < schemes->size(); ++i) {
    HYD_ASSIGN_OR_RETURN(SchemeProfile sp, read_scheme((*schemes)[i], source, i));
    for (const SchemeProfile& other : p.schemes) {
      if (other.scheme == sp.scheme) {
        return core::invalid_argument("{}: schemes[{}] repeats scheme {}; profile it once",
                                      source, i, sp.scheme.to_string());
      }
    }
    p.schemes.push_back(std::move(sp));
  }
  return p;
}

StatusOr<Profile> Profile::load(const std::string& path) {
  HYD_ASSIGN_OR_RETURN(Json json, core::read_json_file(path));
  return from_json(json, path);
}

core::Status Profile::save(const std::string& path) const {
  return core::write_json_file(path, to_json(), 2);
}

}  // namespace hydraulis::planner
