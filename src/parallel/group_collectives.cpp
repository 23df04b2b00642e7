// GroupCollectives: each call forwards to the group's communicator; size-1 groups are identities.
#include "parallel/group_collectives.h"

#include "model/collectives.h"

namespace hydraulis::parallel {

namespace {

void check_ok(const core::Status& status, const char* what) {
  HYD_CHECK(status.is_ok(), "{} failed: {}", what, status.message());
}

}  // namespace

GroupCollectives::GroupCollectives(std::shared_ptr<comm::Communicator> tp,
                                   std::shared_ptr<comm::Communicator> cp)
    : tp_(tp && tp->size() > 1 ? std::move(tp) : nullptr),
      cp_(cp && cp->size() > 1 ? std::move(cp) : nullptr) {}

void GroupCollectives::tp_all_reduce(core::Tensor& t) const {
  if (tp_) check_ok(tp_->all_reduce(t), "tensor-parallel all_reduce");
}

void GroupCollectives::tp_all_gather(const core::Tensor& in, core::Tensor& out) const {
  if (tp_) {
    check_ok(tp_->all_gather(in, out), "tensor-parallel all_gather");
  } else {
    model::local_collectives().tp_all_gather(in, out);
  }
}

void GroupCollectives::cp_all_gather(const core::Tensor& in, core::Tensor& out) const {
  if (cp_) {
    check_ok(cp_->all_gather(in, out), "context-parallel all_gather");
  } else {
    model::local_collectives().cp_all_gather(in, out);
  }
}

void GroupCollectives::cp_reduce_scatter(const core::Tensor& in, core::Tensor& out) const {
  if (cp_) {
    check_ok(cp_->reduce_scatter(in, out), "context-parallel reduce_scatter");
  } else {
    model::local_collectives().cp_reduce_scatter(in, out);
  }
}

}  // namespace hydraulis::parallel
