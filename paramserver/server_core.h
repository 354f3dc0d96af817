// ParamServerCore: everything a parameter server does with a data-plane request, minus
// the sockets. The server loop (paramserver/server.h) decodes a message, maps the
// sender's rank to a worker index, and calls Push / PullReady / Pull here; it turns a
// non-OK Status into an error reply and keeps serving. Nothing here CHECKs on request
// content.
//
// Refusals, in the order they are checked (the first that applies is returned):
//   kVersionMismatch    request's shard_map_version != the map's (names both)
//   kNotFound           unknown param id
//   kInvalidArgument    kind differs from the param's; dense range empty, past the end,
//                       or (partly) owned by another server (names the range and the
//                       owner); a sparse key owned by another server (names key and
//                       owner); a dense push not aligned to whole chunks; duplicate keys
//                       in one sparse push; values/out length != the request's elements;
//                       worker index outside [0, W); a push with step < 0
//   kFailedPrecondition a push for a step this worker already pushed (a duplicate or
//                       reordered push, whether or not the step is applied yet), a bsp
//                       push that skips a step, or Pull called before PullReady said yes
//   kResourceExhausted  a bsp push too far ahead of the unit's applied step
// A refused request changes nothing, so the next good request is served as if it never
// came.
//
// Atomicity: the loop is single-threaded, so each call runs to completion before the
// next request is looked at; a push that spans several chunks is checked for every chunk
// before any is touched, and a pull reads values that no update can interleave with.
//
// Thread safety: none. The server's reactor thread owns the core (and so the store);
// Snapshot() hands a deep copy to whoever writes it out.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/keys.h"
#include "common/param_spec.h"
#include "common/status.h"
#include "common/cluster/shard_map.h"
#include "common/cluster/sync_policy.h"
#include "paramserver/aggregator.h"
#include "paramserver/shard_store.h"

namespace tessera::paramserver {

// One data-plane request as decoded from the wire (Header + DataRequest).
struct ParamRequest {
  uint64_t shard_map_version = 0;  // Header.shardMapVersion
  int worker = -1;                 // worker index in [0, W); needed by Push only
  uint32_t param_id = 0;
  ParamKind kind = ParamKind::kDense;
  uint64_t begin = 0;  // dense: elements [begin, end)
  uint64_t end = 0;
  // Sparse: the keys. Not owned: the caller keeps them alive for the duration of the call.
  std::span<const Key> keys;
  int64_t step = kNoStep;  // Header.step: push: the gradient's step; pull: the step it is for
};

class ParamServerCore {
 public:
  // Takes its own copy of the map. Errors of ShardStore::Create and Aggregator::Create.
  static Result<ParamServerCore> Create(ShardMap map, uint32_t server,
                                        const AggregatorOptions& options = {});

  ParamServerCore(ParamServerCore&&) = default;
  ParamServerCore& operator=(ParamServerCore&&) = default;

  // Accepts worker `req.worker`'s gradient `values` for `req` (dense: end - begin
  // elements; sparse: keys.size() * row_width, row i for keys[i]) and applies whatever
  // it completes (docs/consistency.md). OK or a refusal listed above.
  // `mirror`, `mirrored`: a dense push+pull's reply, written while the update is applied
  // (Aggregator::PushDense); then Pull(..., mirrored = true) only completes it.
  // `gate`: dense `values` still arriving; `before_apply`: the reply may go first
  // (Aggregator::PushDense).
  Status Push(const ParamRequest& req, std::span<const float> values, std::span<float> mirror = {},
              bool* mirrored = nullptr, const kernels::GradientGate* gate = nullptr,
              const std::function<void()>* before_apply = nullptr);

  // Whether a pull may be answered now (StepGate::CanServePull of every unit it reads).
  // The loop parks a pull that is not ready and asks again after each push. Returns the
  // same refusals as Pull (except the not-ready one).
  Result<bool> PullReady(const ParamRequest& req) const;

  // Copies the current values of `req`'s range or rows into `out` (same layout as Push)
  // and, when applied_step is non-null, the newest step whose update they include (wire
  // DataResponse.appliedStep). Rows never pushed read as their initial values.
  // `mirrored`: `out` already holds the values (a Push with this mirror said so, and nothing
  // ran in between): every check still runs, the copy does not.
  Status Pull(const ParamRequest& req, std::span<float> out, int64_t* applied_step = nullptr,
              bool mirrored = false) const;

  uint64_t Digest() const { return store_.Digest(); }
  ShardSnapshot Snapshot() const { return store_.Snapshot(); }

  const ShardMap& map() const { return map_; }
  uint32_t server() const { return store_.server(); }
  const ShardStore& store() const { return store_; }
  ShardStore& mutable_store() { return store_; }  // checkpoint restore and dirty rows
  const Aggregator& aggregator() const { return aggregator_; }

 private:
  ParamServerCore(ShardMap map, ShardStore store, Aggregator aggregator);

  // The checks shared by push and pull: version, param, kind, ownership, length.
  Status CheckRequest(const ParamRequest& req, uint64_t values, const char* op) const;
  // The chunks a validated dense range touches.
  void ChunkSpan(const ParamRequest& req, uint64_t* first, uint64_t* last) const;

  ShardMap map_;
  // owns_partition_[p]: this server holds sparse partition p (ShardMap::SparseServerOf).
  // With the table's hash taken once per request, a key's owner check is a hash and a
  // load: at 2 servers the check's two calls and division per key were 4 % of a steady
  // 2x2 job's CPU.
  std::vector<uint8_t> owns_partition_;
  ShardStore store_;
  Aggregator aggregator_;
};

}  // namespace tessera::paramserver
