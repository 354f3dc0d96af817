// ShardMap: which parameter server holds which part of every parameter. Pure and
// versioned; built once by the coordinator, sent to every peer (wire ShardMap), and
// consulted by workers to route requests and by servers to refuse what they do not own.
//
//  - Dense tensor: split into chunks of chunk_elements = max(1, chunk_bytes / dtype size)
//    elements (the last chunk may be shorter). Chunks are placed by a greedy
//    least-loaded rule over all dense tensors' chunks in the order (param id, chunk
//    index): each chunk goes to the server holding the fewest bytes so far, ties to the
//    lowest index. Hence max_s ServerBytes(s) - min_s ServerBytes(s) <= one chunk's bytes.
//  - Sparse table `id`: key k belongs to virtual partition SparsePartitionOf(id, k) =
//    Mix64(k ^ Mix64(id)) % kSparsePartitions (common/hash.h) and lives on server
//    SparseServerOf(id, k, S) = partition % S. The partitions do not depend on S, so a
//    partition moves whole between servers on a reshard: what is decided per partition
//    (the memory budget of --table_memory_limit, paramserver/shard_store.h) is decided
//    the same way for any S. kSparsePartitions = 840 = lcm(1..8): for every S dividing
//    it (1..8, 10, 12, 14, 15, ...) h % 840 % S == h % S, the placement of maps before
//    the partitions; for other S it differs (checkpoints re-route rows by owner on load,
//    so either placement loads). Servers hold 840/S partitions, +-1. Sparse tables count
//    0 towards ServerBytes: their size is unknown up front and the hash balances keys.
//
// ShardMapData is the plain form, field for field the wire's ShardMap struct, so the
// codec converts it without knowing the rules; ShardMap::FromData validates a received
// one (a peer is not trusted to have sent a consistent map).
//
// Thread safety: a ShardMap is immutable after construction; const methods may be called
// from any number of threads.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/keys.h"
#include "common/param_spec.h"
#include "common/status.h"
#include "common/cluster/sync_policy.h"

namespace tessera {

// Virtual partitions of every sparse table (see the header comment).
inline constexpr uint32_t kSparsePartitions = 840;

// Default of the coordinator's --chunk_bytes.
inline constexpr uint64_t kDefaultChunkBytes = uint64_t{1} << 20;

struct ServerEndpoint {
  int32_t rank = -1;     // rank in the job
  std::string endpoint;  // where workers connect, "tcp://10.0.0.3:5555"
  friend bool operator==(const ServerEndpoint&, const ServerEndpoint&) = default;
};

// Wire DenseShard.
struct DenseLayout {
  uint32_t param_id = 0;
  uint64_t num_elements = 0;
  uint64_t chunk_elements = 0;
  std::vector<uint32_t> chunk_server;  // chunk i lives on server chunk_server[i]

  uint64_t num_chunks() const { return chunk_server.size(); }
  // Elements [i * chunk_elements, min((i + 1) * chunk_elements, num_elements)).
  // REQUIRES: i < num_chunks().
  KeyRange ChunkRange(uint64_t i) const;
  friend bool operator==(const DenseLayout&, const DenseLayout&) = default;
};

// Wire SparseShard.
struct SparseLayout {
  uint32_t param_id = 0;
  uint32_t row_width = 0;
  friend bool operator==(const SparseLayout&, const SparseLayout&) = default;
};

// Wire ShardMap. Parameter id = index in `params`.
struct ShardMapData {
  uint64_t version = 0;
  std::vector<ServerEndpoint> servers;  // server index = position
  std::vector<ParamSpec> params;
  std::vector<DenseLayout> dense;    // exactly one per dense param
  std::vector<SparseLayout> sparse;  // exactly one per sparse param
  SyncPolicy sync;
  uint32_t num_workers = 0;
  GradReduce grad_reduce = GradReduce::kMean;
};

// What the coordinator decides besides the parameters themselves.
struct ShardMapOptions {
  uint64_t version = 1;
  // Target bytes per dense chunk (of the declared dtype). Default: 1 MiB.
  uint64_t chunk_bytes = kDefaultChunkBytes;
  uint32_t num_workers = 1;
  SyncPolicy sync;                             // Default: bsp
  GradReduce grad_reduce = GradReduce::kMean;  // Default: mean
};

// One contiguous piece of a dense range on one server.
struct DensePiece {
  uint32_t server = 0;
  uint64_t begin = 0;
  uint64_t end = 0;
  friend bool operator==(const DensePiece&, const DensePiece&) = default;
};

// A key list split by owner. Both vectors have one entry per server (empty when the
// server owns none of the keys). keys[s][j] == input[positions[s][j]]: reply row j from
// server s goes to row positions[s][j] of the caller's output.
struct SparseSplit {
  std::vector<std::vector<Key>> keys;
  std::vector<std::vector<uint64_t>> positions;
};

// Checks one parameter declaration: non-empty name, known kind/dtype/init/optimizer,
// floating dtype, every dense dim > 0 with a product below 2^48, sparse shape exactly
// {row_width} with 0 < row_width < 2^32. Returns kInvalidArgument naming the parameter.
Status ValidateParamSpec(const ParamSpec& spec);

class ShardMap {
 public:
  // Splits and places every dense tensor (see the file comment). Returns
  // kInvalidArgument for: no servers, num_workers == 0, chunk_bytes == 0, an invalid
  // sync policy, more than 2^32 - 1 params, an invalid ParamSpec, or duplicate names.
  static Result<ShardMap> Build(const ShardMapOptions& options, std::vector<ServerEndpoint> servers,
                                std::vector<ParamSpec> params);

  // Adopts a map built elsewhere (decoded from the wire) after checking it completely:
  // the Build checks, plus one layout per parameter of the matching kind, num_elements
  // equal to the tensor's size, chunk_elements >= 1, the right number of chunks, every
  // server index < S, row_width equal to the declared one. kInvalidArgument otherwise.
  static Result<ShardMap> FromData(ShardMapData data);

  const ShardMapData& data() const { return data_; }
  uint64_t version() const { return data_.version; }
  uint32_t num_servers() const { return static_cast<uint32_t>(data_.servers.size()); }
  uint32_t num_workers() const { return data_.num_workers; }
  uint32_t num_params() const { return static_cast<uint32_t>(data_.params.size()); }
  const SyncPolicy& sync() const { return data_.sync; }
  GradReduce grad_reduce() const { return data_.grad_reduce; }

  // nullptr when param_id is unknown.
  const ParamSpec* param(uint32_t param_id) const;
  // nullptr when param_id is unknown or not dense.
  const DenseLayout* dense_layout(uint32_t param_id) const;

  // Pieces of dense [begin, end) in ascending order, adjacent chunks of one server merged
  // into one piece; their union is exactly [begin, end). Returns kNotFound for an unknown
  // param, kInvalidArgument when it is sparse or the range is empty or past the end.
  Result<std::vector<DensePiece>> SplitDense(uint32_t param_id, uint64_t begin, uint64_t end) const;

  // Splits `keys` by owner, keeping their order within each server (duplicates are kept,
  // each with its own position). kNotFound / kInvalidArgument (not sparse) as above.
  Result<SparseSplit> SplitSparse(uint32_t param_id, std::span<const Key> keys) const;

  // The server's refusal checks. OK when `server` holds every element of dense
  // [begin, end) (or `key` of a sparse table). kNotFound for an unknown param;
  // kInvalidArgument for a kind mismatch, a bad range, or a range/key owned (partly) by
  // another server; that message names the range or key, this server and the owner.
  Status CheckDenseOwner(uint32_t server, uint32_t param_id, uint64_t begin, uint64_t end) const;
  Status CheckKeyOwner(uint32_t server, uint32_t param_id, Key key) const;
  bool OwnsDense(uint32_t server, uint32_t param_id, uint64_t begin, uint64_t end) const {
    return CheckDenseOwner(server, param_id, begin, end).ok();
  }
  bool OwnsKey(uint32_t server, uint32_t param_id, Key key) const {
    return CheckKeyOwner(server, param_id, key).ok();
  }

  // Bytes of dense chunks (declared dtype) placed on `server`; 0 for an unknown server.
  uint64_t ServerBytes(uint32_t server) const;

  // Owner of `key` in sparse table `table_id` among `num_servers` (>= 1) servers:
  // SparsePartitionOf(table_id, key) % num_servers.
  static uint32_t SparseServerOf(uint32_t table_id, Key key, uint32_t num_servers);
  // The virtual partition of `key` in sparse table `table_id`, < kSparsePartitions.
  static uint32_t SparsePartitionOf(uint32_t table_id, Key key);

 private:
  explicit ShardMap(ShardMapData data) : data_(std::move(data)) {}
  Status Index();  // fills the lookups below, validating data_ as it goes

  ShardMapData data_;
  std::vector<int64_t> dense_index_;  // per param: index in data_.dense, or -1
  std::vector<uint64_t> server_bytes_;
};

}  // namespace tessera
