#include "paramserver/server_core.h"

#include <algorithm>
#include <functional>
#include <vector>

#include "common/hash.h"

namespace tessera::paramserver {

Result<ParamServerCore> ParamServerCore::Create(ShardMap map, uint32_t server,
                                                const AggregatorOptions& options) {
  TESSERA_ASSIGN_OR_RETURN(ShardStore store, ShardStore::Create(map, server));
  TESSERA_ASSIGN_OR_RETURN(Aggregator aggregator, Aggregator::Create(map, server, options));
  return ParamServerCore(std::move(map), std::move(store), std::move(aggregator));
}

ParamServerCore::ParamServerCore(ShardMap map, ShardStore store, Aggregator aggregator)
    : map_(std::move(map)), store_(std::move(store)), aggregator_(std::move(aggregator)) {
  owns_partition_.resize(kSparsePartitions);
  for (uint32_t p = 0; p < kSparsePartitions; ++p) owns_partition_[p] = p % map_.num_servers() == server() ? 1 : 0;
}

Status ParamServerCore::CheckRequest(const ParamRequest& req, uint64_t values,
                                     const char* op) const {
  if (req.shard_map_version != map_.version()) {
    return Status::VersionMismatch(std::string(op) + ": request routed with shard map version " +
                                   std::to_string(req.shard_map_version) + ", server " +
                                   std::to_string(server()) + " has version " +
                                   std::to_string(map_.version()));
  }
  const ParamSpec* spec = map_.param(req.param_id);
  if (spec == nullptr) {
    return Status::NotFound(std::string(op) + ": unknown param " + std::to_string(req.param_id) +
                            " (the shard map has " + std::to_string(map_.num_params()) + ")");
  }
  // Messages are built only on the error paths: this runs for every request.
  auto where = [&] {
    return std::string(op) + " param " + std::to_string(req.param_id) + " '" + spec->name + "'";
  };
  if (req.kind != spec->kind) {
    return Status::InvalidArgument(
        where() + ": request says " + (req.kind == ParamKind::kSparse ? "sparse" : "dense") +
        ", the param is " + (spec->kind == ParamKind::kSparse ? "sparse" : "dense"));
  }
  uint64_t expected = 0;
  if (spec->kind == ParamKind::kDense) {
    TESSERA_RETURN_IF_ERROR_CTX(map_.CheckDenseOwner(server(), req.param_id, req.begin, req.end),
                                op);
    expected = req.end - req.begin;
  } else {
    // One pass without a Status per key (one server owns every key); the message is
    // built for the first stray key only. ShardMap::SparsePartitionOf's rule, the table's
    // hash taken once (as ShardMap::SplitSparse does; SparseOwnerCheck in
    // tests/paramserver/refusals_test.cc pins the two together).
    const uint64_t salt = Mix64(req.param_id);
    for (size_t i = 0; map_.num_servers() > 1 && i < req.keys.size(); ++i) {
      if (owns_partition_[Mix64(req.keys[i] ^ salt) % kSparsePartitions] != 0) continue;
      Status st = map_.CheckKeyOwner(server(), req.param_id, req.keys[i]);
      if (!st.ok()) return st.WithContext(std::string(op) + " key #" + std::to_string(i));
    }
    const uint64_t width = static_cast<uint64_t>(spec->numel());
    if (req.keys.size() > UINT64_MAX / width) {
      return Status::InvalidArgument(where() + ": too many keys");
    }
    expected = req.keys.size() * width;
  }
  if (values != expected) {
    return Status::InvalidArgument(where() + ": " + std::to_string(values) +
                                   " values, the request covers " + std::to_string(expected));
  }
  return Status::OK();
}

void ParamServerCore::ChunkSpan(const ParamRequest& req, uint64_t* first, uint64_t* last) const {
  const uint64_t ce = map_.dense_layout(req.param_id)->chunk_elements;
  *first = req.begin / ce;
  *last = (req.end - 1) / ce;
}

Status ParamServerCore::Push(const ParamRequest& req, std::span<const float> values, std::span<float> mirror,
                             bool* mirrored, const kernels::GradientGate* gate,
                             const std::function<void()>* before_apply) {
  if (mirrored != nullptr) *mirrored = false;
  TESSERA_RETURN_IF_ERROR(CheckRequest(req, values.size(), "push"));
  auto where = [&] { return "push param " + std::to_string(req.param_id); };
  if (req.kind == ParamKind::kDense) {
    const DenseLayout* l = map_.dense_layout(req.param_id);
    if (req.begin % l->chunk_elements != 0 ||
        (req.end % l->chunk_elements != 0 && req.end != l->num_elements)) {
      return Status::InvalidArgument(where() + ": range [" + std::to_string(req.begin) + ", " +
                                     std::to_string(req.end) + ") is not made of whole chunks of " +
                                     std::to_string(l->chunk_elements) +
                                     " elements (gradients are aggregated and clipped per chunk)");
    }
    uint64_t first = 0, last = 0;
    ChunkSpan(req, &first, &last);
    TESSERA_RETURN_IF_ERROR_CTX(
        aggregator_.CheckDensePush(req.worker, req.param_id, first, last, req.step), where());
    return aggregator_.PushDense(store_, req.worker, req.param_id, first, last, req.step, values, mirror, mirrored,
                                 gate, before_apply);
  }
  // Distinct keys: a repeated key would be a second gradient for the same row in one
  // step, which the server would have to either sum silently or apply twice. The client
  // merges duplicates and sends its keys ascending (worker/client.cc), which one pass
  // proves; only other orders pay for a sorted copy to find a repeat.
  if (!std::is_sorted(req.keys.begin(), req.keys.end(), std::less_equal<Key>())) {
    std::vector<Key> sorted(req.keys.begin(), req.keys.end());
    std::sort(sorted.begin(), sorted.end());
    auto dup = std::adjacent_find(sorted.begin(), sorted.end());
    if (dup != sorted.end()) {
      return Status::InvalidArgument(where() + ": key " + std::to_string(*dup) +
                                     " appears more than once in one push (merge duplicates "
                                     "before pushing)");
    }
  }
  TESSERA_RETURN_IF_ERROR_CTX(aggregator_.CheckSparsePush(req.worker, req.param_id, req.step),
                              where());
  return aggregator_.PushSparse(store_, req.worker, req.param_id, req.step, req.keys, values);
}

Result<bool> ParamServerCore::PullReady(const ParamRequest& req) const {
  const ParamSpec* spec = map_.param(req.param_id);
  const uint64_t width = spec != nullptr && spec->kind == ParamKind::kSparse
                             ? static_cast<uint64_t>(spec->numel())
                             : 1;
  // The length a Pull would be given is not known here; check with the one it must have.
  const uint64_t values = req.kind == ParamKind::kDense
                              ? (req.end > req.begin ? req.end - req.begin : 0)
                              : req.keys.size() * width;
  TESSERA_RETURN_IF_ERROR(CheckRequest(req, values, "pull"));
  if (req.kind == ParamKind::kDense) {
    uint64_t first = 0, last = 0;
    ChunkSpan(req, &first, &last);
    return aggregator_.DenseReady(req.param_id, first, last, req.step);
  }
  return aggregator_.SparseReady(req.param_id, req.step);
}

Status ParamServerCore::Pull(const ParamRequest& req, std::span<float> out, int64_t* applied_step,
                             bool mirrored) const {
  TESSERA_RETURN_IF_ERROR(CheckRequest(req, out.size(), "pull"));
  auto where = [&] { return "pull param " + std::to_string(req.param_id); };
  if (req.kind == ParamKind::kDense) {
    uint64_t first = 0, last = 0;
    ChunkSpan(req, &first, &last);
    if (!aggregator_.DenseReady(req.param_id, first, last, req.step)) {
      return Status::FailedPrecondition(where() + ": not ready for step " +
                                        std::to_string(req.step) + " (wait for PullReady)");
    }
    if (!mirrored) TESSERA_RETURN_IF_ERROR(store_.ReadDense(req.param_id, req.begin, req.end, out));
    if (applied_step != nullptr)
      *applied_step = aggregator_.DenseAppliedStep(req.param_id, first, last);
    return Status::OK();
  }
  if (!aggregator_.SparseReady(req.param_id, req.step)) {
    return Status::FailedPrecondition(where() + ": not ready for step " + std::to_string(req.step) +
                                      " (wait for PullReady)");
  }
  TESSERA_RETURN_IF_ERROR(store_.ReadSparse(req.param_id, req.keys, out));
  if (applied_step != nullptr) *applied_step = aggregator_.SparseAppliedStep(req.param_id);
  return Status::OK();
}

}  // namespace tessera::paramserver
