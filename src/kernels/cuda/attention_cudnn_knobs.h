// Internal to the cuDNN attention files: HYD_CUDNN_KNOBS_FWD / HYD_CUDNN_KNOBS_BWD, a measurement
// switch over the knobs of the engine that cuDNN's heuristics chose for an attention graph. The
// value is a comma-separated list of `list` (print the engine, its knobs' ranges and the
// heuristic's choices to stderr) and KNOB=VALUE (a cudnnBackendKnobType_t number and its value,
// replacing the heuristic's choice). Unset: the heuristic's config as it is. Results on the H200:
// bench/train/results_h200_cudnn_knobs.json; test: attention_cudnn_test.cpp (KnobSwitch...).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cuda/attention_cudnn_api.h"

namespace hydraulis::cuda::cudnn_backend {

struct KnobRequest {
  std::string variable;  // the environment variable it came from
  bool list = false;
  std::map<int64_t, int64_t> set;  // knob type -> value

  bool active() const { return list || !set.empty(); }
};

// The request for the plan named `what` (a backward plan when it names `_bwd`); a malformed value
// is an error naming the variable and the token.
KnobRequest knob_request(const std::string& what);

// The heuristic's engine config `config` of `graph` rebuilt with the requested knob values: a new,
// finalized config of the same engine whose descriptors are appended to `parts` (listing the
// engine first when asked). A knob the engine lacks or a value it rejects is an error.
cudnnBackendDescriptor_t with_knobs(cudnnBackendDescriptor_t graph, cudnnBackendDescriptor_t config,
                                    const KnobRequest& request, const std::string& what,
                                    std::vector<std::unique_ptr<Descriptor>>& parts);

}  // namespace hydraulis::cuda::cudnn_backend
