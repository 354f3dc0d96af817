#include "paramserver/request_decode.h"

#include <climits>
#include <cstdint>
#include <string>

namespace tessera::paramserver {

namespace {

// Frames: i32 offsets from begin, then f32 values, as many of each.
Status DecodeTopK(const wire::InMessage& msg, DataRequest* out) {
  const ParamRequest& req = out->req;
  if (msg.num_payloads() != 2 || msg.payload_dtype(1) != DType::kF32) {
    return Status::InvalidArgument("a top-k push needs two payload frames: i32 offsets, then f32 values");
  }
  auto ob = msg.payload(0), vb = msg.payload(1);
  const size_t n = ob.size() / sizeof(uint32_t);
  if (vb.size() / sizeof(float) != n) {
    return Status::InvalidArgument("a top-k push carries " + std::to_string(n) + " offsets but " +
                                   std::to_string(vb.size() / sizeof(float)) + " values");
  }
  if (req.end <= req.begin) {
    return Status::InvalidArgument("a top-k push needs begin < end, got [" + std::to_string(req.begin) + ", " +
                                   std::to_string(req.end) + ")");
  }
  std::span<const int32_t> offsets{reinterpret_cast<const int32_t*>(ob.data()), n};
  const uint64_t len = req.end - req.begin;
  for (size_t i = 0; i < n; ++i) {
    if (offsets[i] < 0 || static_cast<uint64_t>(offsets[i]) >= len || (i > 0 && offsets[i] <= offsets[i - 1])) {
      return Status::InvalidArgument("top-k offset " + std::to_string(offsets[i]) + " (entry " + std::to_string(i) +
                                     ") is outside [0, " + std::to_string(len) + ") or not above the one before");
    }
  }
  out->topk = true;
  out->topk_offsets = offsets;
  out->values = {reinterpret_cast<const float*>(vb.data()), n};
  return Status::OK();
}

}  // namespace

Status ExpandTopKPush(const ShardMap& map, DataRequest* r, std::vector<float>* storage) {
  if (!r->topk) return Status::OK();
  const ParamSpec* spec = map.param(r->req.param_id);
  if (spec == nullptr || spec->kind != ParamKind::kDense) {
    return Status::InvalidArgument("a top-k push needs a dense parameter (id " + std::to_string(r->req.param_id) + ")");
  }
  if (r->req.end > static_cast<uint64_t>(spec->numel())) {
    return Status::InvalidArgument("top-k push range [" + std::to_string(r->req.begin) + ", " +
                                   std::to_string(r->req.end) + ") is past the end of '" + spec->name + "' (" +
                                   std::to_string(spec->numel()) + " elements)");
  }
  storage->assign(r->req.end - r->req.begin, 0.0f);
  for (size_t i = 0; i < r->topk_offsets.size(); ++i) (*storage)[r->topk_offsets[i]] = r->values[i];
  r->values = *storage;
  return Status::OK();
}

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
  out.want_digest = d.getWantDigest();
  if (out.want_digest > 2) {
    return Status::InvalidArgument("wantDigest " + std::to_string(out.want_digest) + " (0, 1 or 2)");
  }
  size_t values_frame = 0;
  if (req.kind == ParamKind::kSparse) {
    if (msg.num_payloads() == 0 || msg.payload_dtype(0) != DType::kU64) {
      return Status::InvalidArgument("a sparse request needs its keys (u64) in the first payload frame");
    }
    auto bytes = msg.payload(0);
    req.keys = {reinterpret_cast<const Key*>(bytes.data()), bytes.size() / sizeof(Key)};
    values_frame = 1;
  }
  if (msg.op() != wire::Op::PULL && req.kind == ParamKind::kDense && msg.num_payloads() > 0 &&
      msg.payload_dtype(0) == DType::kI32) {
    TESSERA_RETURN_IF_ERROR(DecodeTopK(msg, &out));
    return out;
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
