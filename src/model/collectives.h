// Collectives: the seam through which a parallel wrapper (parallel/) joins the model's partial
// results, so the layers are written once for one device and for every layout. The model calls it
// at fixed points (docs/model.md, "Collectives"):
//   tensor parallelism (tp ranks hold head/ffn/vocab slices): sum the partial outputs of o_proj and
//   down_proj and the partial input gradients of q/k/v and gate_up; sum the vocab-parallel
//   embedding rows; gather the vocab shards' log-sum-exp in the loss;
//   context parallelism (cp ranks hold chunks of every sequence): all-gather keys and values before
//   attention and reduce-scatter their gradients after it.
// Without a wrapper every group has one rank and each call is the identity (local_collectives()).
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace hydraulis::model {

class Collectives {
 public:
  virtual ~Collectives() = default;

  virtual int64_t tp_size() const = 0;
  virtual int64_t tp_rank() const = 0;
  // In place: t = Σ over the tensor-parallel group.
  virtual void tp_all_reduce(core::Tensor& t) const = 0;
  // in (n…) on every rank → out (tp·n…), rank r's rows at [r·n, (r+1)·n).
  virtual void tp_all_gather(const core::Tensor& in, core::Tensor& out) const = 0;

  virtual int64_t cp_size() const = 0;
  // in (n…) → out (cp·n…) over the context-parallel group (rank order).
  virtual void cp_all_gather(const core::Tensor& in, core::Tensor& out) const = 0;
  // in (cp·n…) → out (n…): this rank's rows of the sum over the group.
  virtual void cp_reduce_scatter(const core::Tensor& in, core::Tensor& out) const = 0;
};

// Groups of one rank: every call is the identity (copies where in and out differ).
const Collectives& local_collectives();

}  // namespace hydraulis::model
