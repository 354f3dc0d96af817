// ShardStore: the parameters one server owns under a shard map, with their optimizer
// state. Storage and the optimizer step only; it knows nothing of workers or steps
// (Aggregator decides when to apply what) and does not validate requests
// (ParamServerCore does; every method here REQUIRES arguments it has checked).
//
//  - Dense: every chunk the map places on this server, created at construction with
//    the deterministic initialiser (kernels/param_init.h) at the chunk's global
//    offset, so a chunk's initial bits do not depend on the chunk size or the server.
//  - Sparse: one RowTable per table (paramserver/row_table.h: flat arenas and an
//    open-addressing index, no per-row heap object). Rows are created on first update
//    with InitializeSparseRow(spec, key): a pure function of (seed, table name, key), so
//    results never depend on the order in which rows were first touched. Reading an
//    absent row returns those initial values without storing the row.
//  - Tables larger than a server's share (SetTablePolicy, table_policy.cc; docs/consistency.md "Eviction,
//    expiry and admission"): a memory budget (per virtual partition of the shard map,
//    ShardMap::SparsePartitionOf: a partition over its share of the job-wide budget
//    loses its rows least recently pushed down to 90 % of the share), an expiry (rows
//    not pushed for N steps), an admission filter (a count-min sketch: absent keys
//    pushed fewer than K times get no row). Every decision is taken inside
//    ApplySparseRows from the store's state and the push's step, never from time, so
//    replaying the same pushes replays the same evictions; and every decision of the
//    budget and the expiry depends on one partition's rows only (a partition moves whole
//    on a reshard), so any server count makes the same ones.
//  - Values and slots are f32 (only f32 parameters are accepted for now).
//  - Update counters (the `step` of Adam's bias correction) are kept per dense chunk and
//    per sparse row: the number of optimizer applications that unit has seen
//    (docs/consistency.md, "Lazy sparse updates").
//
// Thread safety: none. The server's reactor thread owns the store and serialises every
// call; Snapshot() is a deep copy taken on that thread, so a background writer can use
// the copy while the store keeps changing. ReadSparse is const but keeps the slots it
// resolved (PullSlots), like RowTable::digest(): no call, const or not, from another thread.
// With SetSplitWork on, ReadSparse and ApplyRows' optimizer step of a batch of at least
// kSplitMinKeys keys run their rows in ranges on the owner and a helper thread
// (SplitWork) inside the call: the helper reads the table and writes its own ranges' rows
// of the output or of the table, only before the call returns, and never inserts or
// erases. A push of a pull's resident keys (PushResident) also opens its rows on both
// threads: the helper sets its rows' stale and dirty bits atomically and writes its own
// keys' entries of dirty_scratch_; the digest's sum and the dirty list are the reactor's.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "common/keys.h"
#include "common/param_spec.h"
#include "common/status.h"
#include "common/cluster/shard_map.h"
#include "kernels/optimizer_step.h"
#include "kernels/param_init.h"
#include "paramserver/count_min_sketch.h"
#include "paramserver/pull_slots.h"
#include "paramserver/row_table.h"
#include "paramserver/split_work.h"

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

// One sparse row (a copy: the store keeps rows in its RowTables).
struct RowState {
  uint32_t param_id = 0;
  Key key = 0;
  int64_t updates = 0;
  int64_t last_seen = -1;     // the step of its last push; -1: its table has no eviction policy
  std::vector<float> values;  // row_width
  std::vector<float> slots;   // NumOptimizerSlots * row_width
  friend bool operator==(const RowState&, const RowState&) = default;
};

// A deep copy of a store: chunks in (param_id, chunk) order, rows by param_id and in
// no particular order within a table (checkpoint::WriteShard sorts on the writer thread,
// off the reactor). The input of checkpoint writing.
struct SketchState {
  uint32_t param_id = 0;
  uint32_t width = 0;
  std::vector<float> counts;  // CountMinSketch::CountsInto
  friend bool operator==(const SketchState&, const SketchState&) = default;
};

struct ShardSnapshot {
  uint64_t shard_map_version = 0;
  uint32_t server = 0;
  std::vector<ChunkState> chunks;
  std::vector<RowState> rows;
  // Incremental snapshots: the rows erased (evicted, expired) since the parent and not
  // resident now, as (param_id, key). Empty in a full snapshot (it lists every row).
  std::vector<std::pair<uint32_t, Key>> erased;
  // The admission sketch of every table with one (full and incremental snapshots).
  std::vector<SketchState> sketches;
  friend bool operator==(const ShardSnapshot&, const ShardSnapshot&) = default;
};

// A sparse table's limits on one server (--table_memory_limit, --row_expiry_steps,
// --min_key_count; docs/consistency.md "Eviction, expiry and admission").
struct TablePolicy {
  // Resident bytes (RowTable::RowBytes per row) one server keeps of the table, set for
  // `memory_servers` servers: the job-wide budget B = memory_limit * memory_servers is
  // dealt in rows to the kSparsePartitions virtual partitions (PartitionShare: R =
  // B / RowBytes rows, partition p gets floor(R / 840) and one more when p < R % 840,
  // so shares differ by at most one row, sum to R and fall evenly on the servers; with
  // R < 840 partitions R.. get none and keep no row between pushes). After a push leaves a partition above its share, its
  // oldest rows (last seen, Mix64(key ^ name hash), key) go until its share of 90 % of
  // B is left. A partition's share does not depend on the server holding it, so a
  // reshard that keeps B evicts the same rows. 0: no limit.
  uint64_t memory_limit = 0;
  uint32_t memory_servers = 1;  // >= 1
  // A row not pushed for this many steps is erased at the next step that is a multiple
  // of max(1, expiry_steps / 4) (so it lives N to N + N/4 steps unseen). 0: off.
  int64_t expiry_steps = 0;
  // An absent key gets a row on the push that makes its sketch count reach this; the
  // gradients before are dropped. 0 and 1: off (every key gets a row).
  uint32_t min_key_count = 0;
  uint32_t sketch_width = 1u << 16;  // CountMinSketch width (a power of two >= 64)
  bool evicts() const { return memory_limit > 0 || expiry_steps > 0; }
};

// Cumulative counts of one table's policy on this server (metrics).
struct TableStats {
  uint64_t created = 0;  // rows created (admitted)
  uint64_t evicted = 0;  // over the memory limit
  uint64_t expired = 0;
  uint64_t dropped = 0;  // row gradients dropped by admission
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
  // A copy of the row; nullopt when it has never been updated.
  std::optional<RowState> row(uint32_t param_id, Key key) const;
  // The table of sparse `param_id` (nullptr for anything else): read-only access for
  // tests, benchmarks and the checkpoint participant.
  const RowTable* table(uint32_t param_id) const;
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
  // `mirror` (empty or the chunk's size) also receives the updated values, in the same
  // pass (kernels::ApplyUpdate): what ReadDense of the chunk would give right after.
  Status ApplyDense(uint32_t param_id, uint64_t chunk, std::span<float> grad, std::span<float> mirror = {});
  // The same without clipping, reading `grad` only (kernels::ApplyUpdateReadOnly), each
  // block of it once `gate` (when given) lets it: a gradient still arriving. The update
  // reads grad_scale * grad (bitwise ApplyDense of a copy scaled by kernels::Scale).
  Status ApplyDenseReadOnly(uint32_t param_id, uint64_t chunk, std::span<const float> grad,
                            std::span<float> mirror = {}, const kernels::GradientGate* gate = nullptr,
                            float grad_scale = 1.0f);
  // Whether ApplyDense of `param_id` clips (and so writes) the gradient.
  bool Clips(uint32_t param_id) const {
    return param_id < params_.size() && params_[param_id].spec.optimizer.clip_norm > 0;
  }

  // Sets sparse `param_id`'s policy. REQUIRES: before any row exists (last-seen enters
  // the row hashes when the policy evicts). kInvalidArgument for a non-sparse param, a
  // table with rows, or a sketch width that is not a power of two >= 64.
  Status SetTablePolicy(uint32_t param_id, const TablePolicy& policy);
  const TablePolicy* table_policy(uint32_t param_id) const;
  TableStats table_stats(uint32_t param_id) const;
  // The admission sketch (nullptr when the table has none).
  const CountMinSketch* sketch(uint32_t param_id) const;
  // The memory budget's resident rows of virtual partition `part` of `param_id` (0
  // without a memory limit), and the rows above which it evicts (its share of B).
  uint64_t partition_rows(uint32_t param_id, uint32_t part) const;
  uint64_t partition_cap(uint32_t param_id, uint32_t part) const;
  // Partition p's share of `total` rows: floor(total / P) + (p < total % P).
  static uint64_t PartitionShare(uint64_t total, uint32_t part);

  // One optimizer step on each row keys[i] of sparse `param_id` with gradient
  // grads[i * width, +width) (clipped in place per row; compacted in place when
  // admission drops rows), creating absent rows (initial values and slots) first: one
  // kernels::ApplyOptimizerRows call over the gathered rows. `step` is the push's step:
  // the rows' last-seen, and when the table's policy evicts, expires. REQUIRES distinct
  // keys (ParamServerCore refuses repeats).
  Status ApplySparseRows(uint32_t param_id, std::span<const Key> keys, std::span<float> grads, int64_t step = 0) {
    return ApplyRows(param_id, keys, grads, grads.data(), step, 1.0f);
  }
  // The same reading `grads` only (a push applied where it arrived, no copy): when
  // admission drops rows the kept rows' gradients are gathered into a scratch buffer
  // instead of compacted in place. REQUIRES !Clips(param_id) (clipping writes the
  // gradient): kInternal otherwise. The rows' updates read grad_scale * grads, as
  // ApplyDenseReadOnly's.
  Status ApplySparseRowsReadOnly(uint32_t param_id, std::span<const Key> keys, std::span<const float> grads,
                                 int64_t step = 0, float grad_scale = 1.0f);
  // Whether a push of exactly the keys of one of the table's last few pulls uses the
  // slots that pull resolved (PullSlots; on by default). Off: every push looks its keys
  // up (the bitwise reference in tests, the baseline in benchmarks).
  void SetReusePullSlots(bool on);
  // Whether a batch of at least kSplitMinKeys keys is read (ReadSparse) and updated
  // (ApplyRows' optimizer step) in ranges on this thread and a helper thread the store
  // then owns (SplitWork; on with --server_threads=2, and by default where the job's
  // processes all fit on this host's CPUs: launch/job_shape.h). Results are bitwise the
  // same either way: every range's rows are independent.
  void SetSplitWork(bool on);
  bool split_work() const { return split_ != nullptr; }
  // Ranges the helper ran (tests: the split happened); 0 with it off.
  uint64_t split_helper_ranges() const { return split_ ? split_->helper_ranges() : 0; }
  static constexpr size_t kSplitMinKeys = 1024;
  static constexpr size_t kSplitRange = 256;  // rows per range: the optimizer's block
  // Pushes that took the pull's slots / looked their keys up (tests, benchmarks).
  uint64_t pushes_reusing_pull_slots() const { return reused_pushes_; }
  // The same for one row.
  Status ApplySparse(uint32_t param_id, Key key, std::span<float> grad) {
    return ApplySparseRows(param_id, std::span<const Key>(&key, 1), grad);
  }

  // Order- and placement-independent digest of everything the store holds: the wrapping
  // sum of one Hash64 (common/hash.h) per unit, dense chunk (param name, begin, counter,
  // values, slots) and resident sparse row (table name, key, counter, values, slots).
  // Summing the servers' digests gives the same number for any server count (the dense
  // chunking depends on --chunk_bytes only). Sparse tables keep their sum up to date
  // lazily (RowTable::digest: the rows written since the last digest are hashed now), so
  // this costs O(dense elements + rows written since + rows / 64), not a hash per row.
  // Bitwise: 0.0f and -0.0f differ.
  uint64_t Digest() const;
  // The sparse rows' part of Digest() only: O(rows written since the last + rows / 64).
  uint64_t SparseDigest() const;

  // A copy with rows sorted by (param_id, key) (tests, tools).
  ShardSnapshot Snapshot() const;
  // The same copy, rows unsorted, into *out, reusing its vectors' memory: a checkpoint's snapshot then
  // costs a memcpy instead of page faults on fresh memory (docs/benchmarks-checkpoint.md).
  // `with_dense` false: rows only (the dense parameters live on the workers).
  void SnapshotInto(ShardSnapshot* out, bool with_dense = true) const;

  // ---- Checkpoint hooks (paramserver/checkpoint_participant.h) ----
  // Resume: the chunk to overwrite (nullptr when not stored here), and a restored row
  // (replaces any row with its key). RestoreRow: kInternal for a non-sparse param or a
  // row whose sizes do not match the spec.
  ChunkState* mutable_chunk(uint32_t param_id, uint64_t chunk);
  Status RestoreRow(RowState row);
  // Resume: removes a row (an incremental checkpoint's erased row); no-op when absent.
  void RestoreErase(uint32_t param_id, Key key);
  // Resume: the table's admission sketch from a checkpoint (add: summed into it, for a
  // reshard). kInvalidArgument when the table has none or the sizes differ.
  Status RestoreSketch(uint32_t param_id, std::span<const float> counts, bool add);
  // Incremental checkpoints: once enabled, every write to a row records it once until
  // a Take hands the set over (and clears it); MarkDirty puts rows back.
  void TrackDirtyRows(bool on);
  // The changed rows as (param, key), sorted (tests, tools).
  std::vector<std::pair<uint32_t, Key>> TakeDirtyRows();
  // What an incremental checkpoint's snapshot takes: copies every changed resident row
  // into out->rows (reusing its vectors' memory; out->chunks untouched) and lists in
  // *taken every changed (param, key), erased ones included, for MarkDirty should the
  // checkpoint be abandoned. O(d log d) for d changed rows (their slots are sorted so the
  // copies walk the arenas forwards), no lookup, nothing over all rows. With out == nullptr
  // only *taken is filled (a full checkpoint, which copies everything anyway).
  void SnapshotDirtyInto(ShardSnapshot* out, std::vector<std::pair<uint32_t, Key>>* taken);
  void MarkDirty(uint32_t param_id, Key key);

 private:
  struct Param {
    ParamSpec spec;
    uint64_t chunk_elements = 0;  // dense: the layout's
    // Dense: index into chunks_ for each chunk of the layout; -1 when not stored here.
    std::vector<int64_t> chunk_index;
    uint64_t name_hash = 0;  // ParamNameHash(spec.name): the digest's salt
    // Sparse: the rows.
    std::optional<RowTable> rows;
    std::optional<SparseRowInit> init;  // the rows' initial values (InitializeSparseRow's bits)
    mutable PullSlots pulls;  // the last pulls' slots (ReadSparse keeps, ApplySparseRows reuses)
    TablePolicy policy;
    TableStats stats;
    std::optional<CountMinSketch> sketch;
    int64_t swept_step = -1;  // the step of the last expiry sweep (an idempotent sweep's guard only)
    // The memory budget (policy.memory_limit > 0): per virtual partition its resident
    // rows and its keys (every key inserted since the partition's last visit, so also
    // keys since erased, and a key erased and created again twice: a visit looks them up
    // and keeps the live ones once), the table's row budget and 90 % of it, and the
    // partitions to visit after the push (over their share, or lists grown past twice
    // their rows; queued guards the list). A push costs O(its new rows); a visit
    // O(the partition's list), never a scan of the table.
    uint32_t id = 0;
    std::vector<uint32_t> part_rows;
    std::vector<std::vector<Key>> part_keys;
    uint64_t cap_rows = 0, keep_rows = 0;
    std::vector<uint32_t> over;
    std::vector<uint8_t> over_flag;
    bool recheck = false;  // rows were restored: every partition is checked at the next round
    // A row was restored with a counter below 0 or above 2^62 (RestoreRow): a push could
    // give it a step < 1 (or overflow), so pushes take the general path, which checks.
    bool odd_counters = false;
  };
  // ApplySparseRows' body; `writable` is grads.data() (the rows may be clipped and
  // compacted in place) or nullptr (read-only: compacted into grad_copy_; no clipping).
  Status ApplyRows(uint32_t param_id, std::span<const Key> keys, std::span<const float> grads, float* writable,
                   int64_t step, float grad_scale);
  // ApplyRows' push of `slots` (a pull's, every one resident): shard_store_push.cc.
  Status PushResident(Param& p, std::span<const uint32_t> slots, float* grads, int64_t step, float grad_scale);
  // The policy's evictions after a push at `step` (ApplySparseRows).
  void Evict(Param& p, int64_t step);
  // The memory budget's bookkeeping of one row created / erased.
  static void CountInsert(Param& p, Key key);
  static void CountErase(Param& p, Key key);
  // Visits every partition in p.over: evicts it down to its share of keep_rows when
  // over its share of cap_rows, and rebuilds its key list from its live rows.
  void EvictPartitions(Param& p);
  void SketchesInto(ShardSnapshot* out) const;
  uint64_t ChunkHash(const ChunkState& ch) const;

  ShardStore() = default;
  // Position of the chunk in chunks_, or -1 when not stored here.
  int64_t ChunkIndex(uint32_t param_id, uint64_t chunk) const;

  uint32_t server_ = 0;
  uint64_t version_ = 0;
  std::vector<Param> params_;       // by param id
  std::vector<ChunkState> chunks_;  // (param_id, chunk) ascending
  bool reuse_pull_slots_ = true;
  uint64_t reused_pushes_ = 0;
  // The helper of SetSplitWork (null: off). Its thread runs only inside ReadSparse and
  // ApplyRows, on ranges they hand it.
  std::unique_ptr<SplitWork> split_;
  // ApplySparseRows' per-key slots, rows and steps, reused so a push allocates nothing.
  mutable std::vector<uint32_t> read_scratch_;
  std::vector<float*> row_scratch_;
  std::vector<int64_t> step_scratch_;
  std::vector<uint32_t> dirty_scratch_;  // PushResident's rows made dirty by the helper's ranges, by key
  std::vector<float> grad_copy_;  // a read-only push's kept gradients when admission dropped some
  std::vector<Key> victims_;
  // EvictPartitions' rows of the partition it visits, in the eviction order: (last_seen,
  // Mix64(key ^ salt), key) ascending, a total order over the rows' own state (not slots,
  // insertion order or the server), so every replay of the same pushes picks the same victims.
  struct Candidate {
    uint32_t seen;
    uint64_t hash;
    Key key;
    bool operator<(const Candidate& o) const {
      return seen != o.seen ? seen < o.seen : hash != o.hash ? hash < o.hash : key < o.key;
    }
  };
  std::vector<Candidate> candidates_;
};

}  // namespace tessera::paramserver
