// Scheme space: the profiled/fitted cost and memory model of every parallel scheme (cp, tp, pp),
// read from and written to the original Hydraulis JSON schema (spec.md §3; reference files for
// 7b/13b/32b live beside the design notes). We may add fields (e.g. `cp`), never rename them.
// Units: milliseconds and bytes. Tests: tests/planner/scheme_space_test.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/status.h"

namespace hydraulis::planner {

// One pipeline's parallel configuration; it uses cp·tp·pp GPUs.
struct Scheme {
  int cp = 1;
  int tp = 1;
  int pp = 1;
  int gpus() const { return cp * tp * pp; }
  bool operator==(const Scheme&) const = default;
  auto operator<=>(const Scheme&) const = default;
  std::string to_string() const;  // "(cp, tp, pp)", e.g. "(1, 8, 2)"
};

// Fitted time of one micro-batch holding one sequence of s tokens: a·s² + b·s + c (ms).
struct SchemeCost {
  Scheme scheme;
  double a = 0;
  double b = 0;
  double c = 0;
};

struct MemoryRegression {
  std::map<int, double> activation_per_tp;  // "A": bytes per hidden element per layer, by tp
  double block_bytes = 0;                   // "B": bytes per H² element of one layer
  double alpha = 0;                         // share of B that is optimizer state
  std::map<std::string, double> gap;        // "gap": {gpu1, gpu2, gpu4, node}
  double safe_bound = 0;
};

struct ModelDims {
  int64_t hidden = 0;  // H
  int64_t layers = 0;  // L
  int64_t vocab = 0;   // V
};

struct ClusterConfig {
  int gpus_per_node = 8;
  double gpu_memory_bound = 0;                      // bytes
  std::map<int, int64_t> utilization_seqlen;        // by tp
};

class SchemeSpace {
 public:
  static core::StatusOr<SchemeSpace> load(const std::string& path);
  // `source` names the input in error messages (a file name).
  static core::StatusOr<SchemeSpace> from_json(const core::Json& json, const std::string& source);
  core::Json to_json() const;
  core::Status save(const std::string& path) const;

  const std::vector<SchemeCost>& schemes() const { return schemes_; }
  // nullptr when the scheme was not profiled.
  const SchemeCost* find(const Scheme& scheme) const;
  const MemoryRegression& memory() const { return memory_; }
  const ModelDims& model() const { return model_; }
  const ClusterConfig& cluster() const { return cluster_; }
  double hetero_dp_comm_ms() const { return hetero_dp_comm_ms_; }
  // utilization_seqlen for this tp (0 when unknown).
  int64_t utilization_seqlen(int tp) const;

  // Builders (used by build-space and tests).
  void add_scheme(const SchemeCost& cost);
  void set_memory(const MemoryRegression& memory) { memory_ = memory; }
  void set_model(const ModelDims& model) { model_ = model; }
  void set_cluster(const ClusterConfig& cluster) { cluster_ = cluster; }
  void set_hetero_dp_comm_ms(double ms) { hetero_dp_comm_ms_ = ms; }

 private:
  std::vector<SchemeCost> schemes_;
  MemoryRegression memory_;
  ModelDims model_;
  ClusterConfig cluster_;
  double hetero_dp_comm_ms_ = 0;
};

}  // namespace hydraulis::planner
