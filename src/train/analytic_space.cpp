// Analytic scheme space: FLOP-derived time coefficients and a spec.md §3 memory model.
#include "train/analytic_space.h"

#include <set>

#include "model/decoder_layer.h"

namespace hydraulis::train {

planner::SchemeSpace analytic_scheme_space(const model::LlamaConfig& c,
                                           const std::vector<planner::Strategy>& strategies,
                                           double device_memory_bytes, double peak_flops,
                                           bool on_gpu) {
  planner::SchemeSpace space;
  const double rate = on_gpu ? 0.4 * peak_flops : 50e9;  // FLOP/s of one rank
  const double H = double(c.hidden), L = double(c.num_layers);
  std::set<planner::Scheme> schemes;
  std::set<int> tps;
  for (const auto& s : strategies) {
    for (const planner::Scheme& p : s) {
      schemes.insert(p);
      tps.insert(p.tp);
    }
  }
  for (const planner::Scheme& s : schemes) {
    const double ranks = double(s.cp * s.tp);  // one stage's ranks share a micro-batch's work
    planner::SchemeCost cost;
    cost.scheme = s;
    cost.a = 6.0 * L * H / (ranks * rate) * 1e3;                              // ms per token²
    cost.b = 6.0 * double(c.num_parameters()) / (ranks * s.pp * rate) * 1e3;  // ms per token
    cost.c = 1.0;
    space.add_scheme(cost);
  }
  const double bytes = on_gpu ? 2.0 : 4.0;  // activations
  planner::MemoryRegression memory;
  for (int tp : tps) {
    // activation(S) = L·(S·H/tp)·A[tp]: A = saved bytes per token and layer / (H / tp).
    model::LlamaConfig shard = model::tensor_parallel_shard(c, tp).value();
    memory.activation_per_tp[tp] =
        double(model::layer_activation_elements_per_token(shard)) * bytes / (H / double(tp));
  }
  const double per_param = on_gpu ? 18.0 : 16.0;
  memory.block_bytes = double(c.layer_parameters()) / (H * H) * per_param;
  memory.alpha = 12.0 / per_param;  // fp32 master weight and both moments are optimizer state
  memory.gap = {{"gpu1", 0.0}, {"gpu2", 0.0}, {"gpu4", 0.0}, {"node", 0.0}};
  memory.safe_bound = 0.05 * device_memory_bytes;
  space.set_memory(memory);
  space.set_model({c.hidden, c.num_layers, c.vocab_size});
  planner::ClusterConfig cluster;
  cluster.gpus_per_node = 8;
  cluster.gpu_memory_bound = device_memory_bytes;
  for (int tp : tps) cluster.utilization_seqlen[tp] = 0;
  space.set_cluster(cluster);
  return space;
}

}  // namespace hydraulis::train
