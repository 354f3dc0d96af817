#include "tests/wire/raw_worker.h"

namespace tessera::wire::testing {

Result<std::unique_ptr<Socket>> RawWorkerSocket(const std::shared_ptr<Context>& ctx, uint64_t job_id, int rank,
                                                const std::string& endpoint, int recv_hwm) {
  SocketOptions o;
  o.stamp_sender = true;
  o.job_id = job_id;
  o.role = Role::WORKER;
  o.rank = rank;
  o.recv_hwm = recv_hwm;
  TESSERA_ASSIGN_OR_RETURN(auto s, Socket::Create(ctx, SocketType::kDealer, o));
  TESSERA_RETURN_IF_ERROR(s->Connect(endpoint));
  return s;
}

OutMessage DensePull(uint64_t shard_map_version, uint32_t param_id, int64_t begin, int64_t end) {
  OutMessage pull(Op::PULL);
  pull.header().setShardMapVersion(shard_map_version);
  pull.SetStep(-1);
  auto d = pull.header().getBody().initData();
  d.setParamId(param_id);
  d.setKind(capnp::ParamKind::DENSE);
  d.setBegin(begin);
  d.setEnd(end);
  return pull;
}

}  // namespace tessera::wire::testing
