// The engine-knob switch of the cuDNN attention plans (attention_cudnn_knobs.h).
#include "kernels/cuda/attention_cudnn_knobs.h"

#include <array>
#include <cstdio>
#include <cstdlib>

namespace hydraulis::cuda::cudnn_backend {

namespace {

using Desc = cudnnBackendDescriptor_t;
using Parts = std::vector<std::unique_ptr<Descriptor>>;

Descriptor& make(Parts& parts, cudnnBackendDescriptorType_t type) {
  parts.push_back(std::make_unique<Descriptor>(type));
  return *parts.back();
}

// The backend descriptors (of `type`, at most `capacity`) held by attribute `name` of `owner`.
std::vector<Desc> get_descriptors(Parts& parts, Desc owner, cudnnBackendAttributeName_t name,
                                  cudnnBackendDescriptorType_t type, int64_t capacity) {
  std::vector<Desc> out;
  for (int64_t i = 0; i < capacity; ++i) out.push_back(make(parts, type).get());
  int64_t n = 0;
  HYD_CUDNN_CHECK(api().get_attribute(owner, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, capacity, &n,
                                      out.data()));
  out.resize(size_t(n));
  return out;
}

int64_t get_int(Desc owner, cudnnBackendAttributeName_t name) {
  int64_t value = 0, n = 0;
  HYD_CUDNN_CHECK(api().get_attribute(owner, name, CUDNN_TYPE_INT64, 1, &n, &value));
  return value;
}

int64_t get_knob_type(Desc owner, cudnnBackendAttributeName_t name) {
  cudnnBackendKnobType_t type{};
  int64_t n = 0;
  HYD_CUDNN_CHECK(api().get_attribute(owner, name, CUDNN_TYPE_KNOB_TYPE, 1, &n, &type));
  return int64_t(type);
}

}  // namespace

KnobRequest knob_request(const std::string& what) {
  KnobRequest r;
  r.variable = what.find("_bwd") != std::string::npos ? "HYD_CUDNN_KNOBS_BWD"
                                                       : "HYD_CUDNN_KNOBS_FWD";
  const char* env = std::getenv(r.variable.c_str());
  if (env == nullptr || *env == '\0') return r;
  const std::string text = env;
  for (size_t at = 0; at <= text.size();) {
    const size_t end = std::min(text.find(',', at), text.size());
    const std::string token = text.substr(at, end - at);
    at = end + 1;
    if (token == "list") {
      r.list = true;
      continue;
    }
    long long type = -1, value = 0;
    char tail = 0;
    HYD_CHECK(std::sscanf(token.c_str(), "%lld=%lld%c", &type, &value, &tail) == 2 &&
                  type >= 0 && type < CUDNN_KNOB_TYPE_COUNTS,
              "{}={}: `{}` is neither `list` nor KNOB=VALUE with a knob number in [0, {}) (unset "
              "it for the heuristic's config)",
              r.variable, text, token, int(CUDNN_KNOB_TYPE_COUNTS));
    r.set[type] = value;
  }
  return r;
}

Desc with_knobs(Desc graph, Desc config, const KnobRequest& request, const std::string& what,
                Parts& parts) {
  const std::vector<Desc> engine = get_descriptors(parts, config, CUDNN_ATTR_ENGINECFG_ENGINE,
                                                   CUDNN_BACKEND_ENGINE_DESCRIPTOR, 1);
  HYD_CHECK(engine.size() == 1, "{}: the engine config names no engine", what);
  const int64_t index = get_int(engine[0], CUDNN_ATTR_ENGINE_GLOBAL_INDEX);
  std::map<int64_t, int64_t> choices;
  for (Desc c : get_descriptors(parts, config, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES,
                                CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR, CUDNN_KNOB_TYPE_COUNTS)) {
    choices[get_knob_type(c, CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE)] =
        get_int(c, CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE);
  }
  std::map<int64_t, std::array<int64_t, 3>> ranges;  // type -> min, max, stride
  for (Desc k : get_descriptors(parts, engine[0], CUDNN_ATTR_ENGINE_KNOB_INFO,
                                CUDNN_BACKEND_KNOB_INFO_DESCRIPTOR, CUDNN_KNOB_TYPE_COUNTS)) {
    ranges[get_knob_type(k, CUDNN_ATTR_KNOB_INFO_TYPE)] = {
        get_int(k, CUDNN_ATTR_KNOB_INFO_MINIMUM_VALUE),
        get_int(k, CUDNN_ATTR_KNOB_INFO_MAXIMUM_VALUE), get_int(k, CUDNN_ATTR_KNOB_INFO_STRIDE)};
  }
  if (request.list) {
    std::string text =
        fmt::format("{}: engine {}, knobs (type: min..max step, chosen):", what, index);
    for (const auto& [type, r] : ranges) {
      auto c = choices.find(type);
      text += fmt::format(" {}: {}..{} step {}, {};", type, r[0], r[1], r[2],
                          c == choices.end() ? std::string("-") : std::to_string(c->second));
    }
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  for (const auto& [type, value] : request.set) {
    HYD_CHECK(ranges.count(type) != 0, "{}: {} sets knob {}, which engine {} does not have", what,
              request.variable, type, index);
    choices[type] = value;
  }
  Descriptor& fresh = make(parts, CUDNN_BACKEND_ENGINE_DESCRIPTOR);
  fresh.set(CUDNN_ATTR_ENGINE_OPERATION_GRAPH, graph);
  fresh.set_int(CUDNN_ATTR_ENGINE_GLOBAL_INDEX, index);
  fresh.finalize("engine");
  std::vector<Desc> knob_choices;
  for (const auto& [type, value] : choices) {
    Descriptor& c = make(parts, CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR);
    const auto knob = cudnnBackendKnobType_t(type);
    c.set(CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE, CUDNN_TYPE_KNOB_TYPE, 1, &knob);
    c.set_int(CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, value);
    c.finalize("knob choice");
    knob_choices.push_back(c.get());
  }
  Descriptor& cfg = make(parts, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
  cfg.set(CUDNN_ATTR_ENGINECFG_ENGINE, fresh.get());
  if (!knob_choices.empty()) {
    cfg.set(CUDNN_ATTR_ENGINECFG_KNOB_CHOICES, CUDNN_TYPE_BACKEND_DESCRIPTOR,
            int64_t(knob_choices.size()), knob_choices.data());
  }
  const cudnnStatus_t st = cfg.try_finalize();
  HYD_CHECK(st == CUDNN_STATUS_SUCCESS, "{}: engine {} rejects the knob choices of {}: {}", what,
            index, request.variable, status_text(st));
  return cfg.get();
}

}  // namespace hydraulis::cuda::cudnn_backend
