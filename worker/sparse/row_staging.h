// RowStaging: the device side of a sparse model's embedding rows (--device=cuda, and
// --staging_on_cpu, which runs this same code with the CPU as the device; docs/training.md
// "GPU workers").
//
// Per step, for each table of the batch (worker/sparse/workload.h):
//   - LoadRows: the pulled unique rows, which the client wrote into the batch's pinned
//     values block (SparseRows::pinned_for), go host -> device;
//   - Gather: the rows of a list of batch positions (ids: the unique row of each position,
//     the KeyIndex grouping the workload already computed) are gathered from the device
//     copy by kernels::EmbeddingGather on the device, and come back to the host, where
//     the model's dense part computes;
//   - ScatterAdd: the positions' gradients go host -> device together with the grouping
//     as a CSR (order: each unique row's positions in ascending order; offsets: where
//     each row's run starts), built here on the host; kernels::GroupedRowSum sums each
//     row's run in that fixed order, with no atomics, and the row gradients come back
//     device -> host into the batch's pinned grads block, which the trainer pushes.
// The sums equal the host path's ScatterAdd into zeros bit for bit (kernels/ops.h), and
// gathers are copies, so with the CPU as the device a run through this class ends with
// the host path's params_digest (tests/worker_sparse/sparse_staging_job_test.cc); on a
// GPU so does logreg/widedeep, while word2vec's and dlrm's dot products (below) differ by
// rounding (nvcc contracts their multiply-adds). No kernel here uses atomics, so two
// --deterministic runs on one GPU type agree.
//
// widedeep's pooling and dlrm's MLP towers run on the host: widedeep's gathered rows come
// back to the host and its positions' gradients go out again (its MLP is on the device,
// SparseWorkload::dense_on_device). Evaluation gathers on the host.
//
// word2vec goes further (PairDotStep): its dot products and their backward run on the
// device too, and only the scores and their gradients (one float per target) cross. So
// does dlrm's interaction (InteractForward/Backward): the bottom MLP's output goes to the
// device, the interactions come back for the top MLP, and their gradients go out again.
//
// Timeline spans (--timeline, cat "copy", on the training thread): "h2d rows", "h2d ids",
// "d2h gathered", "h2d position grads", "d2h row grads", PairDotStep's "d2h scores" and
// "h2d score grads", and the interaction's "h2d dense", "d2h pairs", "h2d pair grads",
// "d2h dense grads"; each covers a copy and its wait.
//
// Thread safety: one thread (the training loop's) calls everything. The device buffers
// and pinned scratch are owned here and grow to the largest batch.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "common/status.h"
#include "common/tensor.h"
#include "kernels/transfer.h"
#include "worker/sparse/workload.h"

namespace tessera::worker::sparse {

// The CSR of positions per unique row: order lists, for row 0, 1, ..., U - 1 in turn,
// the positions i with ids[i] == row in ascending order; row j's run is
// order[offsets[j] .. offsets[j + 1]). InvalidArgument for an id outside [0, U).
Status GroupPositions(std::span<const int64_t> ids, int64_t num_rows, std::vector<int64_t>* order,
                      std::vector<int64_t>* offsets);

class RowStaging {
 public:
  // Errors: the copy queue's creation (e.g. kCUDA in a build without CUDA).
  static Result<std::unique_ptr<RowStaging>> Create(Device device);
  // Waits for copies still in flight.
  ~RowStaging();
  RowStaging(const RowStaging&) = delete;
  RowStaging& operator=(const RowStaging&) = delete;

  Device device() const { return queue_->device(); }

  // Copies every table's pulled rows to the device. REQUIRES the batch's pulls are done;
  // call once per step, before Gather.
  Status LoadRows(const SparseBatch& batch);
  // out[i, :] = table t's pulled row ids[i] (out: host, [ids.size(), width], the table's
  // width). InvalidArgument for an id outside the table's rows.
  Status Gather(const SparseBatch& batch, size_t t, std::span<const int64_t> ids, float* out);
  // batch->tables[t].grads[j, :] = +0 + the rows of contrib (host, [ids.size(), width])
  // at the positions i with ids[i] == j, added in ascending i. InvalidArgument for an id
  // outside the table's rows.
  Status ScatterAdd(SparseBatch* batch, size_t t, std::span<const int64_t> ids, const float* contrib);

  // word2vec's step with its math on the device. Tables 0 (input vectors) and 1 (output
  // vectors), of one width D: target i pairs input row in_ids[i] with output row
  // out_ids[i]. On the device: x[i] = (v = input row, u = output row) gathered side by
  // side, scores s[i] = dot(u, v) (kernels::PairwiseDot: added in d order, as the host
  // loop); the scores come to the host, where score_grads(s, g) sets g[i] = d loss / d
  // s[i] (and may accumulate the loss); g goes back, kernels::PairwiseDotBackward gives
  // g[i] * u and g[i] * v, and GroupedRowSum sums them per row in target order into both
  // tables' grads (pinned, D2H). The host path's additions in its order: the same bits on
  // the CPU. REQUIRES LoadRows(*batch). InvalidArgument for mismatched ids or tables.
  Status PairDotStep(SparseBatch* batch, std::span<const int64_t> in_ids, std::span<const int64_t> out_ids,
                     const std::function<void(std::span<const float> scores, std::span<float> grads)>& score_grads);

  // dlrm's dot interaction on the device, forward then backward. Example b's vectors are
  // slot 0 = dense[b] (host [B, D]: the bottom MLP's output) and slot 1 + f = table f's
  // row ids[f][b] (every table of the batch, one width D). Forward: they are laid out
  // side by side on the device (x [B, F, D], one gather), kernels::PairwiseDot gives the
  // interactions, which come back to `pairs` (host [B, F (F - 1) / 2]). Backward, with
  // dpairs (host, that shape) = d loss / d pairs: kernels::PairwiseDotBackward on the
  // device; slot 0's gradient comes back to `ddense` (host [B, D]), and the tables' rows
  // get the sum of their slots' gradients in example order (GroupedRowSum; pinned D2H).
  // REQUIRES LoadRows(batch) before InteractForward, and InteractBackward on the same
  // batch after it. The same kernels as the host path: the same bits on the CPU.
  Status InteractForward(const SparseBatch& batch, const float* dense, std::span<const std::span<const int64_t>> ids,
                         float* pairs);
  Status InteractBackward(SparseBatch* batch, const float* dpairs, float* ddense);

 private:
  explicit RowStaging(std::unique_ptr<kernels::CopyQueue> queue) : queue_(std::move(queue)) {}
  // host (pinned scratch, grown) -> device (grown); returns the device view.
  Result<TensorView> ToDevice(const void* src, DType dtype, const Shape& shape, Tensor* pinned, Tensor* dev);

  std::unique_ptr<kernels::CopyQueue> queue_;
  std::vector<Tensor> values_;  // per table: its pulled rows on the device
  std::vector<int64_t> loaded_rows_;  // per table: rows loaded by the last LoadRows
  Tensor dev_ids_, dev_gathered_, dev_contrib_, dev_order_, dev_offsets_, dev_grads_;
  Tensor pin_ids_, pin_gathered_, pin_contrib_, pin_order_, pin_offsets_;
  std::vector<int64_t> order_, offsets_;  // host CSR of the last ScatterAdd
  // PairDotStep: both tables' rows side by side, the targets' ids into them, the scores.
  Tensor dev_both_, dev_x_, dev_dx_, dev_scores_, dev_score_grads_;
  Tensor pin_scores_, pin_score_grads_;
  std::vector<int64_t> pair_ids_;
  std::vector<float> scores_, score_grads_;
  // InteractForward -> InteractBackward: the examples, slots, and each table's first row in
  // the side-by-side block (after the B dense rows).
  int64_t interact_b_ = -1, interact_f_ = 0;
  std::vector<int64_t> table_base_;
  Tensor dev_pairs_, pin_pairs_, pin_dense_;
};

}  // namespace tessera::worker::sparse
