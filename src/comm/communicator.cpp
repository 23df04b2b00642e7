// The Communicator defaults: backends without buffered sends have no split-phase receives.
#include "comm/communicator.h"

namespace hydraulis::comm {

core::StatusOr<std::unique_ptr<PendingRecvs>> Communicator::post_recvs(std::span<const P2POp>) {
  return core::make_error(core::StatusCode::kUnimplemented,
                          "{}: post_recvs needs a backend with buffered sends (MPI or threads); "
                          "use group_p2p",
                          description());
}

}  // namespace hydraulis::comm
