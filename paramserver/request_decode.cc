#include "paramserver/request_decode.h"

#include <climits>
#include <cstdint>
#include <string>

namespace tessera::paramserver {

Result<DataRequest> DecodeDataRequest(const wire::InMessage& msg, int num_servers) {
  auto h = msg.header();
  if (h.getSenderRole() != wire::Role::WORKER) return Status::InvalidArgument("only workers push and pull");
  if (!h.getBody().isData()) return Status::InvalidArgument("a data request without a data body");
  auto d = h.getBody().getData();
  DataRequest out;
  ParamRequest& req = out.req;
  req.shard_map_version = h.getShardMapVersion();
  // In 64 bits: senderRank is any int32 a peer chooses (INT32_MIN - 1 - S overflowed an
  // int; found by payload_fuzzer). Out of range becomes -1, which the core refuses.
  const int64_t worker = int64_t{h.getSenderRank()} - 1 - num_servers;
  req.worker = worker >= 0 && worker <= INT32_MAX ? static_cast<int>(worker) : -1;
  req.param_id = d.getParamId();
  req.kind = d.getKind() == wire::capnp::ParamKind::SPARSE ? ParamKind::kSparse : ParamKind::kDense;
  req.begin = d.getBegin();
  req.end = d.getEnd();
  req.step = h.getStep();
  size_t values_frame = 0;
  if (req.kind == ParamKind::kSparse) {
    if (msg.num_payloads() == 0 || msg.payload_dtype(0) != DType::kU64) {
      return Status::InvalidArgument("a sparse request needs its keys (u64) in the first payload frame");
    }
    auto bytes = msg.payload(0);
    req.keys = {reinterpret_cast<const Key*>(bytes.data()), bytes.size() / sizeof(Key)};
    values_frame = 1;
  }
  if (msg.op() != wire::Op::PULL) {
    if (msg.num_payloads() <= values_frame) return Status::InvalidArgument("push without values");
    if (msg.payload_dtype(values_frame) != DType::kF32) {
      return Status::InvalidArgument("push values must be f32, got " +
                                     std::string(DTypeName(msg.payload_dtype(values_frame))));
    }
    auto bytes = msg.payload(values_frame);
    out.values = {reinterpret_cast<const float*>(bytes.data()), bytes.size() / sizeof(float)};
  }
  return out;
}

}  // namespace tessera::paramserver
