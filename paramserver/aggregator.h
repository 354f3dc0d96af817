// Aggregator: turns the W workers' pushes into optimizer steps on a ShardStore, under the
// shard map's sync policy and grad_reduce (rules: docs/consistency.md).
//
// Unit of aggregation: a dense chunk, or a whole sparse table on this server. Each unit
// has a StepGate (common/cluster/sync_policy.h).
//  - bsp: the pushes of step s are summed per unit and applied once all W arrived, steps
//    strictly in order. The sum is formed in worker order 0, 1, ..., W-1 whatever the
//    arrival order (a push that arrives early waits in a per-worker buffer until the ones
//    before it are folded in), so a bsp run is bitwise independent of network timing.
//    grad_reduce=mean then scales by 1/W (as the optimizer reads the sum, see below).
//    Every worker must push every unit every step, a sparse table included (an empty
//    key list when it touched no row here).
//  - ssp:K and asp: each push is applied on arrival, scaled by 1/W for mean (so W pushes
//    of g make one SGD step of g); the gate only holds back pulls. The optimizer reads
//    the push where it arrived and multiplies by 1/W as it reads (grad_scale of
//    kernels::ApplyUpdateReadOnly, bitwise a scaled copy); only a parameter that clips
//    gets a scaled copy first (clipping writes the gradient and needs it scaled).
// Clipping (cfg.clip_norm) applies to the gradient that reaches the optimizer: per dense
// chunk, per sparse row (kernels/optimizer_step.h).
//
// Dense pushes are whole chunks: [first_chunk, last_chunk] with the gradient of exactly
// their elements, in order. Sparse pushes carry distinct keys (ParamServerCore refuses
// duplicates), all owned by this server.
//
// Each Push* is all-or-nothing with respect to refusals: it calls its Check* first and
// changes nothing when that fails. A kInternal error (a kernel refusing sizes we built)
// may leave a step half-applied; it means a bug, and the server should stop.
//
// Thread safety: none; the server's reactor thread owns it (with the store).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/keys.h"
#include "common/status.h"
#include "common/cluster/shard_map.h"
#include "common/cluster/sync_policy.h"
#include "paramserver/shard_store.h"

namespace tessera::paramserver {

struct AggregatorOptions {
  // The first step of this run: 0 for a fresh job, the checkpoint's step on resume.
  // Pushes for earlier steps are refused. Default: 0
  int64_t first_step = 0;
  // bsp: how many steps beyond the applied one a unit buffers (StepGate::CheckPush).
  // Bounds the memory a client that runs ahead can pin. Default: 4
  int64_t max_pending_steps = 4;
};

class Aggregator {
 public:
  // Gates for every dense chunk `map` places on `server` and every sparse table.
  // kInvalidArgument for a bad server index or first_step < 0 or max_pending_steps < 1.
  static Result<Aggregator> Create(const ShardMap& map, uint32_t server,
                                   const AggregatorOptions& options);

  // Whether PushDense with these arguments would be accepted: the StepGate refusals of
  // every chunk (kInvalidArgument bad worker or step, kFailedPrecondition duplicate /
  // out of order / bsp gap, kResourceExhausted beyond the bsp window), prefixed with the
  // chunk; kInternal when a chunk is not stored here (the caller checks ownership first).
  Status CheckDensePush(int worker, uint32_t param_id, uint64_t first_chunk, uint64_t last_chunk,
                        int64_t step) const;
  // REQUIRES: grad.size() == elements of chunks [first_chunk, last_chunk] (kInternal else).
  // `mirror` (empty or grad's size; a push+pull's reply): when the push is applied at once
  // (ssp, asp), the updated values of the chunks are written there in the same pass and
  // *mirrored is set; otherwise (bsp, whose update may wait for other workers) it is left
  // false and `mirror` is untouched.
  // `gate` (a gradient still arriving, wire/shm_stream.h; element offsets into `grad`):
  // the update reads each block once the gate lets it when it applies straight from
  // `grad` (ssp/asp, nothing clipped; a mean's 1/W included); any other push waits for
  // all of it.
  // `before_apply`: when the update applies straight from `grad` and mirrors (so every
  // chunk's push is recorded and the pull is answerable before any value changes), it is
  // called once, after recording and before applying: the server sends the reply then
  // and streams the mirrored values into it (its gate publishes them block by block).
  Status PushDense(ShardStore& store, int worker, uint32_t param_id, uint64_t first_chunk,
                   uint64_t last_chunk, int64_t step, std::span<const float> grad,
                   std::span<float> mirror = {}, bool* mirrored = nullptr,
                   const kernels::GradientGate* gate = nullptr, const std::function<void()>* before_apply = nullptr);

  Status CheckSparsePush(int worker, uint32_t param_id, int64_t step) const;
  // REQUIRES: distinct keys owned here, grad.size() == keys.size() * row_width.
  Status PushSparse(ShardStore& store, int worker, uint32_t param_id, int64_t step,
                    std::span<const Key> keys, std::span<const float> grad);

  // StepGate::CanServePull of every chunk in [first_chunk, last_chunk] (of the table).
  // false for units not stored here.
  bool DenseReady(uint32_t param_id, uint64_t first_chunk, uint64_t last_chunk, int64_t step) const;
  bool SparseReady(uint32_t param_id, int64_t step) const;

  // Min StepGate::applied_step over the chunks (the table): the newest step whose update
  // the values include (wire DataResponse.appliedStep). first_step - 1 for unknown units.
  int64_t DenseAppliedStep(uint32_t param_id, uint64_t first_chunk, uint64_t last_chunk) const;
  int64_t SparseAppliedStep(uint32_t param_id) const;

  // Steps buffered (pushed by some but not all workers) over all units; 0 outside bsp.
  uint64_t PendingSteps() const;

 private:
  // One step's pushes to one unit, summed in worker order.
  struct Pending {
    std::vector<char> arrived;                 // per worker: buffered, waiting to be folded
    std::vector<std::vector<Key>> keys;        // sparse: per-worker buffered keys
    std::vector<std::vector<float>> grads;     // per-worker buffered gradient
    int folded = 0;                            // workers [0, folded) are in the sums
    std::vector<float> sum;                    // dense: chunk size; sparse: rows back to back
    std::vector<Key> sum_keys;                 // sparse: key of each row of `sum`
    std::unordered_map<Key, uint64_t> row_of;  // sparse: key -> row in `sum`
  };
  struct Unit {
    explicit Unit(StepGate g) : gate(std::move(g)) {}
    StepGate gate;
    std::map<int64_t, Pending> pending;  // bsp: by step
  };
  struct ParamUnits {
    ParamKind kind = ParamKind::kDense;
    uint64_t chunk_elements = 0;                // dense
    uint64_t num_elements = 0;                  // dense
    uint64_t row_width = 0;                     // sparse
    std::unordered_map<uint64_t, Unit> chunks;  // dense: by chunk index, stored here only
    std::optional<Unit> table;                  // sparse
  };

  Aggregator() = default;
  const Unit* FindDense(uint32_t param_id, uint64_t chunk) const;
  Unit* FindDense(uint32_t param_id, uint64_t chunk);
  const Unit* FindSparse(uint32_t param_id) const;
  Unit* FindSparse(uint32_t param_id);
  // Folds `keys`/`grad` of `worker` into p when every worker before it is folded in
  // (then also the buffered ones that follow), else buffers a copy. row_width 0: dense.
  Status Add(Pending& p, int worker, uint64_t row_width, std::span<const Key> keys,
             std::span<const float> grad);
  static Status Fold(Pending& p, uint64_t row_width, std::span<const Key> keys,
                     std::span<const float> grad);
  // bsp: applies every step of `unit` that has become complete.
  Status DrainDense(ShardStore& store, uint32_t param_id, uint64_t chunk, Unit& unit);
  Status DrainSparse(ShardStore& store, uint32_t param_id, Unit& unit);
  // Whether a push's gradient is scaled before the optimizer (the mean over >1 workers),
  // and by what (1 when not).
  bool Rescales() const;
  float ReduceScale() const;
  Status ScaleForReduce(std::span<float> grad) const;
  // Whether a push to `param_id` (ssp/asp; bsp: a step's sum) is scaled and clipped in
  // a buffer before the update (clipping; or the test-only switch below for a rescaled
  // push) rather than scaled as the optimizer reads it, where it arrived.
  bool CopiesPush(const ShardStore& store, uint32_t param_id) const;

  // Constant after construction
  SyncPolicy sync_;
  GradReduce reduce_ = GradReduce::kMean;
  int num_workers_ = 1;
  AggregatorOptions options_;

  std::vector<ParamUnits> params_;  // by param id
  std::vector<float> scratch_;      // ssp/asp: the scaled copy of a push that clips
};

// Test only: true makes pushes that are rescaled (mean, W > 1) take the path they took
// before the optimizer read the scale itself: ssp/asp scale a copy, bsp its sum, then
// update from it (the bitwise reference of tests/ps/mean_fold_job_test.cc). Any thread; read by the
// servers' reactors at each push.
void TEST_CopyRescaledPushes(bool on);

}  // namespace tessera::paramserver
