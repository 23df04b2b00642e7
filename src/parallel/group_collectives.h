// GroupCollectives: model::Collectives over this rank's tensor-parallel and context-parallel
// communicators (comm/communicator.h), for the model's partial-result joins. A failed collective
// (timeout, dead peer) stops the process with the communicator's message, which names the rank,
// the peer and the op: the model's layers have no error path, and every rank of a group must
// stop rather than continue on half-reduced values. Tests: tests/train/parity_test.cpp.
#pragma once

#include <memory>

#include "comm/communicator.h"
#include "model/collectives.h"

namespace hydraulis::parallel {

class GroupCollectives final : public model::Collectives {
 public:
  // tp/cp: the groups of this rank (size 1 groups may be nullptr).
  GroupCollectives(std::shared_ptr<comm::Communicator> tp, std::shared_ptr<comm::Communicator> cp);

  int64_t tp_size() const override { return tp_ ? tp_->size() : 1; }
  int64_t tp_rank() const override { return tp_ ? tp_->rank() : 0; }
  void tp_all_reduce(core::Tensor& t) const override;
  void tp_all_gather(const core::Tensor& in, core::Tensor& out) const override;
  int64_t cp_size() const override { return cp_ ? cp_->size() : 1; }
  void cp_all_gather(const core::Tensor& in, core::Tensor& out) const override;
  void cp_reduce_scatter(const core::Tensor& in, core::Tensor& out) const override;

 private:
  std::shared_ptr<comm::Communicator> tp_, cp_;
};

}  // namespace hydraulis::parallel
