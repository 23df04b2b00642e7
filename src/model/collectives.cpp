// The one-rank collectives (model/collectives.h): identities.
#include "model/collectives.h"

#include <cstring>

namespace hydraulis::model {

namespace {

class LocalCollectives final : public Collectives {
 public:
  int64_t tp_size() const override { return 1; }
  int64_t tp_rank() const override { return 0; }
  void tp_all_reduce(core::Tensor&) const override {}
  void tp_all_gather(const core::Tensor& in, core::Tensor& out) const override { copy(in, out); }
  int64_t cp_size() const override { return 1; }
  void cp_all_gather(const core::Tensor& in, core::Tensor& out) const override { copy(in, out); }
  void cp_reduce_scatter(const core::Tensor& in, core::Tensor& out) const override {
    copy(in, out);
  }

 private:
  // The model never calls these with one rank except on host-visible CPU tensors or in place.
  static void copy(const core::Tensor& in, core::Tensor& out) {
    if (in.raw_data() == out.raw_data()) return;
    HYD_CHECK(in.nbytes() == out.nbytes() && in.device() == core::Device::kCpu &&
                  out.device() == core::Device::kCpu,
              "local collectives copy {} into {}", in.describe(), out.describe());
    std::memcpy(out.raw_data(), in.raw_data(), in.nbytes());
  }
};

}  // namespace

const Collectives& local_collectives() {
  static const LocalCollectives kLocal;
  return kLocal;
}

}  // namespace hydraulis::model
