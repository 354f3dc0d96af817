// ShardStore: the parameters one server owns under a shard map, with their optimizer
// state. Storage and the optimizer step only; it knows nothing of workers or steps
// (Aggregator decides when to apply what) and does not validate requests
// (ParamServerCore does; every method here REQUIRES arguments it has checked).
//
//  - Dense: every chunk the map places on this server, created at construction with
//    the deterministic initialiser (kernels/param_init.h) at the chunk's global
//    offset, so a chunk's initial bits do not depend on the chunk size or the server.
//  - Sparse: rows created on first update with InitializeSparseRow(spec, key): a pure
//    function of (seed, table name, key), so results never depend on the order in which
//    rows were first touched. Reading an absent row returns those initial values without
//    storing the row.
//  - Values and slots are f32 (only f32 parameters are accepted for now).
//  - Update counters (the `step` of Adam's bias correction) are kept per dense chunk and
//    per sparse row: the number of optimizer applications that unit has seen
//    (docs/consistency.md, "Lazy sparse updates").
//
// Thread safety: none. The server's reactor thread owns the store and serialises every
// call; Snapshot() is a deep copy taken on that thread, so a background writer can use
// the copy while the store keeps changing.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/keys.h"
#include "common/param_spec.h"
#include "common/status.h"
#include "common/cluster/shard_map.h"

namespace tessera::paramserver {

// One dense chunk (global elements [begin, end) of param_id).
struct ChunkState {
  uint32_t param_id = 0;
  uint64_t chunk = 0;  // index in the param's DenseLayout
  uint64_t begin = 0;
  uint64_t end = 0;
  int64_t updates = 0;        // optimizer applications so far
  std::vector<float> values;  // end - begin
  std::vector<float> slots;   // NumOptimizerSlots * (end - begin), slot k at k * size
  friend bool operator==(const ChunkState&, const ChunkState&) = default;
};

// One sparse row.
struct RowState {
  uint32_t param_id = 0;
  Key key = 0;
  int64_t updates = 0;
  std::vector<float> values;  // row_width
  std::vector<float> slots;   // NumOptimizerSlots * row_width
  friend bool operator==(const RowState&, const RowState&) = default;
};

// A deep copy of a store: chunks in (param_id, chunk) order, rows in (param_id, key)
// order. The input of checkpoint writing (and of Digest()).
struct ShardSnapshot {
  uint64_t shard_map_version = 0;
  uint32_t server = 0;
  std::vector<ChunkState> chunks;
  std::vector<RowState> rows;
  friend bool operator==(const ShardSnapshot&, const ShardSnapshot&) = default;
};

class ShardStore {
 public:
  // Creates and initialises server `server`'s share of `map`. Returns kInvalidArgument
  // for a server index >= map.num_servers() or a parameter that is not f32, and the
  // initialiser's or kernels' error otherwise.
  static Result<ShardStore> Create(const ShardMap& map, uint32_t server);

  ShardStore(ShardStore&&) = default;
  ShardStore& operator=(ShardStore&&) = default;
  ShardStore(const ShardStore&) = delete;
  ShardStore& operator=(const ShardStore&) = delete;

  uint32_t server() const { return server_; }
  uint64_t shard_map_version() const { return version_; }

  // nullptr when chunk `chunk` of dense `param_id` is not stored here.
  const ChunkState* chunk(uint32_t param_id, uint64_t chunk) const;
  // nullptr when the row has never been updated.
  const RowState* row(uint32_t param_id, Key key) const;
  // Number of rows stored for sparse table `param_id` (0 for anything else).
  uint64_t num_rows(uint32_t param_id) const;

  // Copies dense elements [begin, end) of `param_id` into `out` (end - begin floats).
  // REQUIRES: this server owns every chunk the range touches.
  Status ReadDense(uint32_t param_id, uint64_t begin, uint64_t end, std::span<float> out) const;

  // Copies row `keys[i]` of sparse `param_id` into out[i * width, (i + 1) * width),
  // giving the initial values for rows never updated. REQUIRES: sparse param_id,
  // out.size() == keys.size() * width.
  Status ReadSparse(uint32_t param_id, std::span<const Key> keys, std::span<float> out) const;

  // One optimizer step on chunk `chunk` of dense `param_id` with the aggregated gradient
  // `grad` (the chunk's size; clipped in place). REQUIRES: the chunk is stored here.
  Status ApplyDense(uint32_t param_id, uint64_t chunk, std::span<float> grad);

  // One optimizer step on row `key` of sparse `param_id`, creating the row (initial
  // values and slots) first when absent. `grad` is the row's width; clipped in place.
  Status ApplySparse(uint32_t param_id, Key key, std::span<float> grad);

  // FNV-1a 64 of every value (not slots, not counters) in snapshot order: per dense
  // chunk its float bytes; per row its key's 8 bytes then its float bytes. Equal stores
  // give equal digests; it is bitwise, so 0.0f and -0.0f differ.
  uint64_t Digest() const;

  ShardSnapshot Snapshot() const;
  // The same copy into *out, reusing its vectors' memory: a checkpoint's snapshot then
  // costs a memcpy instead of page faults on fresh memory (docs/benchmarks-checkpoint.md).
  // `with_dense` false: rows only (the dense parameters live on the workers).
  void SnapshotInto(ShardSnapshot* out, bool with_dense = true) const;

  // ---- Checkpoint hooks (paramserver/checkpoint_participant.h) ----
  // Resume: the chunk to overwrite (nullptr when not stored here), and a restored row
  // (replaces any row with its key). RestoreRow: kInternal for a non-sparse param or a
  // row whose sizes do not match the spec.
  ChunkState* mutable_chunk(uint32_t param_id, uint64_t chunk);
  Status RestoreRow(RowState row);
  // Incremental checkpoints: once enabled, every ApplySparse records (param, key) until
  // TakeDirtyRows() hands the set over (and clears it); MarkDirty puts rows back.
  void TrackDirtyRows(bool on) { track_dirty_ = on; }
  std::vector<std::pair<uint32_t, Key>> TakeDirtyRows();
  void MarkDirty(uint32_t param_id, Key key) { dirty_.emplace_back(param_id, key); }

 private:
  struct Param {
    ParamSpec spec;
    uint64_t chunk_elements = 0;  // dense: the layout's
    // Dense: index into chunks_ for each chunk of the layout; -1 when not stored here.
    std::vector<int64_t> chunk_index;
    // Sparse: rows by key.
    std::unordered_map<Key, RowState> rows;
  };

  ShardStore() = default;
  // Position of the chunk in chunks_, or -1 when not stored here.
  int64_t ChunkIndex(uint32_t param_id, uint64_t chunk) const;

  uint32_t server_ = 0;
  uint64_t version_ = 0;
  std::vector<Param> params_;       // by param id
  std::vector<ChunkState> chunks_;  // (param_id, chunk) ascending
  bool track_dirty_ = false;
  std::vector<std::pair<uint32_t, Key>> dirty_;  // may repeat; deduplicated when taken
};

}  // namespace tessera::paramserver
