#include "tests/wire/raw_worker.h"

namespace tessera::wire::testing {

Result<std::unique_ptr<Socket>> RawWorkerSocket(const std::shared_ptr<Context>& ctx, uint64_t job_id, int rank,
                                                const std::string& endpoint) {
  SocketOptions o;
  o.stamp_sender = true;
  o.job_id = job_id;
  o.role = Role::WORKER;
  o.rank = rank;
  TESSERA_ASSIGN_OR_RETURN(auto s, Socket::Create(ctx, SocketType::kDealer, o));
  TESSERA_RETURN_IF_ERROR(s->Connect(endpoint));
  return s;
}

}  // namespace tessera::wire::testing
