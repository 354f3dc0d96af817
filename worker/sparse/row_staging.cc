#include "worker/sparse/row_staging.h"

#include <cstring>
#include <string>

#include "common/timeline.h"
#include "kernels/ops.h"

namespace tessera::worker::sparse {
namespace {

// A view of the first NumElements(shape) elements of *t, shaped `shape`, on `device`'s
// side (pinned host memory when `pinned`), growing *t by half again when too small.
Result<TensorView> Fit(Tensor* t, Device device, bool pinned, DType dtype, const Shape& shape) {
  const int64_t numel = NumElements(shape);
  if (t->numel() < numel || t->dtype() != dtype) {
    const Shape grown{numel + numel / 2};
    if (pinned) {
      TESSERA_ASSIGN_OR_RETURN(Buffer b, kernels::AllocatePinned(device, static_cast<size_t>(grown[0]) * DTypeSize(dtype)));
      TESSERA_ASSIGN_OR_RETURN(*t, Tensor::FromBuffer(std::move(b), dtype, grown));
    } else {
      TESSERA_ASSIGN_OR_RETURN(*t, kernels::AllocateTensor(device, dtype, grown));
    }
  }
  return TensorView{t->data(), dtype, shape, pinned ? Device::kCPU : device};
}

Status CheckTable(const SparseBatch& batch, size_t t, const char* who) {
  if (t >= batch.tables.size()) {
    return Status::InvalidArgument(std::string("RowStaging::") + who + ": no table " + std::to_string(t));
  }
  if (batch.tables[t].values.shape().size() != 2 || batch.tables[t].grads.shape() != batch.tables[t].values.shape()) {
    return Status::InvalidArgument(std::string("RowStaging::") + who + ": table " + std::to_string(t) +
                                   " was not sized (SparseRows::Resize)");
  }
  return Status::OK();
}

}  // namespace

Status GroupPositions(std::span<const int64_t> ids, int64_t num_rows, std::vector<int64_t>* order,
                      std::vector<int64_t>* offsets) {
  offsets->assign(static_cast<size_t>(num_rows + 1), 0);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= num_rows) {
      return Status::InvalidArgument("position " + std::to_string(i) + " names row " + std::to_string(ids[i]) +
                                     " of " + std::to_string(num_rows));
    }
    ++(*offsets)[static_cast<size_t>(ids[i]) + 1];
  }
  for (int64_t j = 0; j < num_rows; ++j) (*offsets)[j + 1] += (*offsets)[j];
  order->resize(ids.size());
  // A counting sort, stable: each row's positions land in ascending order. The cursor per
  // row reuses the offsets' slots shifted by one, then the offsets are shifted back.
  for (size_t i = 0; i < ids.size(); ++i) (*order)[static_cast<size_t>((*offsets)[ids[i]]++)] = static_cast<int64_t>(i);
  for (int64_t j = num_rows; j > 0; --j) (*offsets)[j] = (*offsets)[j - 1];
  (*offsets)[0] = 0;
  return Status::OK();
}

Result<std::unique_ptr<RowStaging>> RowStaging::Create(Device device) {
  TESSERA_ASSIGN_OR_RETURN(auto queue, kernels::CopyQueue::Create(device));
  return std::unique_ptr<RowStaging>(new RowStaging(std::move(queue)));
}

RowStaging::~RowStaging() {
  // Dropped: a destructor has no caller to report to; a failed copy failed its step.
  if (queue_) queue_->WaitAll().IgnoreError();
}

Result<TensorView> RowStaging::ToDevice(const void* src, DType dtype, const Shape& shape, Tensor* pinned, Tensor* dev) {
  TESSERA_ASSIGN_OR_RETURN(const TensorView host, Fit(pinned, device(), true, dtype, shape));
  TESSERA_ASSIGN_OR_RETURN(const TensorView on_device, Fit(dev, device(), false, dtype, shape));
  if (host.nbytes() == 0) return on_device;
  std::memcpy(host.data, src, host.nbytes());
  TESSERA_ASSIGN_OR_RETURN(const kernels::CopyQueue::Fence f, queue_->Copy(host, on_device));
  TESSERA_RETURN_IF_ERROR(queue_->Wait(f));
  return on_device;
}

Status RowStaging::LoadRows(const SparseBatch& batch) {
  int64_t bytes = 0;
  for (const SparseRows& r : batch.tables) bytes += static_cast<int64_t>(r.values.nbytes());
  timeline::Span span("h2d rows", "copy", "bytes", bytes);
  values_.resize(batch.tables.size());
  loaded_rows_.assign(batch.tables.size(), 0);
  for (size_t t = 0; t < batch.tables.size(); ++t) {
    TESSERA_RETURN_IF_ERROR(CheckTable(batch, t, "LoadRows"));
    const TensorView v = batch.tables[t].values.view();
    TESSERA_ASSIGN_OR_RETURN(const TensorView dst, Fit(&values_[t], device(), false, DType::kF32, v.shape));
    if (v.nbytes() > 0) TESSERA_RETURN_IF_ERROR(queue_->Copy(v, dst).status());
    loaded_rows_[t] = v.shape.empty() ? 0 : v.shape[0];
  }
  return queue_->WaitAll().WithContext("copying the pulled rows to the device");
}

Status RowStaging::Gather(const SparseBatch& batch, size_t t, std::span<const int64_t> ids, float* out) {
  TESSERA_RETURN_IF_ERROR(CheckTable(batch, t, "Gather"));
  if (t >= values_.size()) return Status::FailedPrecondition("RowStaging::Gather: LoadRows was not called");
  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t width = batch.tables[t].values.shape()[1];
  TensorView dev_ids;
  {
    timeline::Span span("h2d ids", "copy", "bytes", n * static_cast<int64_t>(sizeof(int64_t)));
    TESSERA_ASSIGN_OR_RETURN(dev_ids, ToDevice(ids.data(), DType::kI64, {n}, &pin_ids_, &dev_ids_));
  }
  TESSERA_ASSIGN_OR_RETURN(const TensorView gathered, Fit(&dev_gathered_, device(), false, DType::kF32, {n, width}));
  const TensorView table{values_[t].data(), DType::kF32, {loaded_rows_[t], width}, device()};
  TESSERA_RETURN_IF_ERROR(kernels::EmbeddingGather(table, dev_ids, gathered));
  timeline::Span span("d2h gathered", "copy", "bytes", static_cast<int64_t>(gathered.nbytes()));
  TESSERA_ASSIGN_OR_RETURN(const TensorView host, Fit(&pin_gathered_, device(), true, DType::kF32, {n, width}));
  if (host.nbytes() == 0) return Status::OK();
  TESSERA_ASSIGN_OR_RETURN(const kernels::CopyQueue::Fence f, queue_->Copy(gathered, host));
  TESSERA_RETURN_IF_ERROR(queue_->Wait(f));
  std::memcpy(out, host.data, host.nbytes());
  return Status::OK();
}

Status RowStaging::ScatterAdd(SparseBatch* batch, size_t t, std::span<const int64_t> ids, const float* contrib) {
  TESSERA_RETURN_IF_ERROR(CheckTable(*batch, t, "ScatterAdd"));
  SparseRows& rows = batch->tables[t];
  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t u = rows.grads.shape()[0];
  const int64_t width = rows.grads.shape()[1];
  TESSERA_RETURN_IF_ERROR_CTX(GroupPositions(ids, u, &order_, &offsets_), "RowStaging::ScatterAdd");
  TensorView dev_contrib, dev_order, dev_offsets;
  {
    timeline::Span span("h2d position grads", "copy", "bytes",
                        n * width * static_cast<int64_t>(sizeof(float)) + (2 * n + u + 1) * static_cast<int64_t>(sizeof(int64_t)));
    TESSERA_ASSIGN_OR_RETURN(dev_contrib, ToDevice(contrib, DType::kF32, {n, width}, &pin_contrib_, &dev_contrib_));
    TESSERA_ASSIGN_OR_RETURN(dev_order, ToDevice(order_.data(), DType::kI64, {n}, &pin_order_, &dev_order_));
    TESSERA_ASSIGN_OR_RETURN(dev_offsets, ToDevice(offsets_.data(), DType::kI64, {u + 1}, &pin_offsets_, &dev_offsets_));
  }
  TESSERA_ASSIGN_OR_RETURN(const TensorView dev_grads, Fit(&dev_grads_, device(), false, DType::kF32, {u, width}));
  TESSERA_RETURN_IF_ERROR(kernels::GroupedRowSum(dev_contrib, dev_order, dev_offsets, dev_grads));
  timeline::Span span("d2h row grads", "copy", "bytes", static_cast<int64_t>(dev_grads.nbytes()));
  if (dev_grads.nbytes() == 0) return Status::OK();
  TESSERA_ASSIGN_OR_RETURN(const kernels::CopyQueue::Fence f, queue_->Copy(dev_grads, rows.grads.view()));
  return queue_->Wait(f).WithContext("copying row gradients to the host");
}

Status RowStaging::PairDotStep(SparseBatch* batch, std::span<const int64_t> in_ids, std::span<const int64_t> out_ids,
                               const std::function<void(std::span<const float>, std::span<float>)>& score_grads) {
  if (batch->tables.size() != 2 || values_.size() != 2) {
    return Status::InvalidArgument("RowStaging::PairDotStep: needs two loaded tables");
  }
  if (in_ids.size() != out_ids.size()) {
    return Status::InvalidArgument("RowStaging::PairDotStep: " + std::to_string(in_ids.size()) + " input ids but " +
                                   std::to_string(out_ids.size()) + " output ids");
  }
  TESSERA_RETURN_IF_ERROR(CheckTable(*batch, 0, "PairDotStep"));
  TESSERA_RETURN_IF_ERROR(CheckTable(*batch, 1, "PairDotStep"));
  SparseRows& in = batch->tables[0];
  SparseRows& out = batch->tables[1];
  const int64_t d = in.values.shape()[1];
  if (out.values.shape()[1] != d) return Status::InvalidArgument("RowStaging::PairDotStep: the tables' widths differ");
  const int64_t u0 = loaded_rows_[0], u1 = loaded_rows_[1];
  const int64_t n = static_cast<int64_t>(in_ids.size());
  // Both tables' rows in one device block (input rows first), so one gather lays out
  // every target's (v, u) side by side and one grouped sum serves both tables.
  TESSERA_ASSIGN_OR_RETURN(const TensorView both, Fit(&dev_both_, device(), false, DType::kF32, {u0 + u1, d}));
  TESSERA_RETURN_IF_ERROR(kernels::CopyTensor(TensorView{values_[0].data(), DType::kF32, {u0, d}, device()},
                                              TensorView{both.data, DType::kF32, {u0, d}, device()}));
  TESSERA_RETURN_IF_ERROR(kernels::CopyTensor(TensorView{values_[1].data(), DType::kF32, {u1, d}, device()},
                                              TensorView{both.as<float>() + u0 * d, DType::kF32, {u1, d}, device()}));
  pair_ids_.resize(static_cast<size_t>(2 * n));
  for (int64_t i = 0; i < n; ++i) {
    if (in_ids[i] < 0 || in_ids[i] >= u0 || out_ids[i] < 0 || out_ids[i] >= u1) {
      return Status::InvalidArgument("RowStaging::PairDotStep: target " + std::to_string(i) + " names a row outside the tables");
    }
    pair_ids_[2 * i] = in_ids[i];
    pair_ids_[2 * i + 1] = u0 + out_ids[i];
  }
  TensorView ids;
  {
    timeline::Span span("h2d ids", "copy", "bytes", 2 * n * static_cast<int64_t>(sizeof(int64_t)));
    TESSERA_ASSIGN_OR_RETURN(ids, ToDevice(pair_ids_.data(), DType::kI64, {2 * n}, &pin_ids_, &dev_ids_));
  }
  TESSERA_ASSIGN_OR_RETURN(const TensorView x, Fit(&dev_x_, device(), false, DType::kF32, {n, 2, d}));
  TESSERA_ASSIGN_OR_RETURN(const TensorView dx, Fit(&dev_dx_, device(), false, DType::kF32, {n, 2, d}));
  TESSERA_ASSIGN_OR_RETURN(const TensorView s, Fit(&dev_scores_, device(), false, DType::kF32, {n, 1}));
  TESSERA_ASSIGN_OR_RETURN(const TensorView g, Fit(&dev_score_grads_, device(), false, DType::kF32, {n, 1}));
  scores_.resize(static_cast<size_t>(n));
  score_grads_.resize(static_cast<size_t>(n));
  if (n > 0) {
    // x [n, 2, d]: pair (1, 0) is dot(u, v), the host loop's Dot(u, v).
    TESSERA_RETURN_IF_ERROR(kernels::EmbeddingGather(both, ids, TensorView{x.data, DType::kF32, {2 * n, d}, device()}));
    TESSERA_RETURN_IF_ERROR(kernels::PairwiseDot(x, s));
    {
      timeline::Span span("d2h scores", "copy", "bytes", static_cast<int64_t>(s.nbytes()));
      TESSERA_ASSIGN_OR_RETURN(const TensorView hs, Fit(&pin_scores_, device(), true, DType::kF32, {n, 1}));
      TESSERA_ASSIGN_OR_RETURN(const kernels::CopyQueue::Fence f, queue_->Copy(s, hs));
      TESSERA_RETURN_IF_ERROR(queue_->Wait(f));
      std::memcpy(scores_.data(), hs.data, hs.nbytes());
    }
    score_grads(scores_, score_grads_);
    {
      timeline::Span span("h2d score grads", "copy", "bytes", static_cast<int64_t>(g.nbytes()));
      TESSERA_ASSIGN_OR_RETURN(const TensorView dg,
                               ToDevice(score_grads_.data(), DType::kF32, {n, 1}, &pin_score_grads_, &dev_score_grads_));
      (void)dg;  // the same block as g
    }
    TESSERA_RETURN_IF_ERROR(kernels::PairwiseDotBackward(x, g, dx));
  }
  // dx row 2i is d loss / d v (input row in_ids[i]), row 2i + 1 d loss / d u: grouped
  // in the pair ids' row space, so each row's targets are summed in target order.
  TESSERA_RETURN_IF_ERROR_CTX(GroupPositions(pair_ids_, u0 + u1, &order_, &offsets_), "RowStaging::PairDotStep");
  TensorView order, offsets;
  {
    timeline::Span span("h2d position grads", "copy", "bytes", (2 * n + u0 + u1 + 1) * static_cast<int64_t>(sizeof(int64_t)));
    TESSERA_ASSIGN_OR_RETURN(order, ToDevice(order_.data(), DType::kI64, {2 * n}, &pin_order_, &dev_order_));
    TESSERA_ASSIGN_OR_RETURN(offsets, ToDevice(offsets_.data(), DType::kI64, {u0 + u1 + 1}, &pin_offsets_, &dev_offsets_));
  }
  TESSERA_ASSIGN_OR_RETURN(const TensorView grads, Fit(&dev_grads_, device(), false, DType::kF32, {u0 + u1, d}));
  TESSERA_RETURN_IF_ERROR(
      kernels::GroupedRowSum(TensorView{dx.data, DType::kF32, {2 * n, d}, device()}, order, offsets, grads));
  timeline::Span span("d2h row grads", "copy", "bytes", static_cast<int64_t>(grads.nbytes()));
  if (u0 * d > 0) {
    TESSERA_RETURN_IF_ERROR(queue_->Copy(TensorView{grads.data, DType::kF32, {u0, d}, device()}, in.grads.view()).status());
  }
  if (u1 * d > 0) {
    TESSERA_RETURN_IF_ERROR(
        queue_->Copy(TensorView{grads.as<float>() + u0 * d, DType::kF32, {u1, d}, device()}, out.grads.view()).status());
  }
  return queue_->WaitAll().WithContext("copying row gradients to the host");
}

Status RowStaging::InteractForward(const SparseBatch& batch, const float* dense,
                                   std::span<const std::span<const int64_t>> ids, float* pairs) {
  interact_b_ = -1;
  const size_t tables = batch.tables.size();
  if (tables == 0 || ids.size() != tables || values_.size() != tables) {
    return Status::InvalidArgument("RowStaging::InteractForward: needs one id list per loaded table");
  }
  for (size_t t = 0; t < tables; ++t) TESSERA_RETURN_IF_ERROR(CheckTable(batch, t, "InteractForward"));
  const int64_t b = static_cast<int64_t>(ids[0].size());
  const int64_t d = batch.tables[0].values.shape()[1];
  const int64_t f = 1 + static_cast<int64_t>(tables);
  const int64_t p = f * (f - 1) / 2;
  table_base_.assign(tables, 0);
  int64_t rows = b;
  for (size_t t = 0; t < tables; ++t) {
    if (static_cast<int64_t>(ids[t].size()) != b || batch.tables[t].values.shape()[1] != d) {
      return Status::InvalidArgument("RowStaging::InteractForward: table " + std::to_string(t) +
                                     " has another width or example count");
    }
    table_base_[t] = rows;
    rows += loaded_rows_[t];
  }
  pair_ids_.resize(static_cast<size_t>(b * f));
  for (int64_t e = 0; e < b; ++e) {
    pair_ids_[e * f] = e;
    for (size_t t = 0; t < tables; ++t) {
      const int64_t r = ids[t][e];
      if (r < 0 || r >= loaded_rows_[t]) {
        return Status::InvalidArgument("RowStaging::InteractForward: example " + std::to_string(e) + " names row " +
                                       std::to_string(r) + " of table " + std::to_string(t));
      }
      pair_ids_[e * f + 1 + static_cast<int64_t>(t)] = table_base_[t] + r;
    }
  }
  // The dense rows, then every table's rows, in one device block.
  TESSERA_ASSIGN_OR_RETURN(const TensorView both, Fit(&dev_both_, device(), false, DType::kF32, {rows, d}));
  {
    timeline::Span span("h2d dense", "copy", "bytes", b * d * static_cast<int64_t>(sizeof(float)));
    TESSERA_ASSIGN_OR_RETURN(const TensorView host, Fit(&pin_dense_, device(), true, DType::kF32, {b, d}));
    if (host.nbytes() > 0) {
      std::memcpy(host.data, dense, host.nbytes());
      TESSERA_ASSIGN_OR_RETURN(const kernels::CopyQueue::Fence fence,
                               queue_->Copy(host, TensorView{both.data, DType::kF32, {b, d}, device()}));
      TESSERA_RETURN_IF_ERROR(queue_->Wait(fence));
    }
  }
  for (size_t t = 0; t < tables; ++t) {
    TESSERA_RETURN_IF_ERROR(
        kernels::CopyTensor(TensorView{values_[t].data(), DType::kF32, {loaded_rows_[t], d}, device()},
                            TensorView{both.as<float>() + table_base_[t] * d, DType::kF32, {loaded_rows_[t], d}, device()}));
  }
  TensorView dev_ids;
  {
    timeline::Span span("h2d ids", "copy", "bytes", b * f * static_cast<int64_t>(sizeof(int64_t)));
    TESSERA_ASSIGN_OR_RETURN(dev_ids, ToDevice(pair_ids_.data(), DType::kI64, {b * f}, &pin_ids_, &dev_ids_));
  }
  TESSERA_ASSIGN_OR_RETURN(const TensorView x, Fit(&dev_x_, device(), false, DType::kF32, {b, f, d}));
  TESSERA_ASSIGN_OR_RETURN(const TensorView out, Fit(&dev_pairs_, device(), false, DType::kF32, {b, p}));
  TESSERA_RETURN_IF_ERROR(kernels::EmbeddingGather(both, dev_ids, TensorView{x.data, DType::kF32, {b * f, d}, device()}));
  TESSERA_RETURN_IF_ERROR(kernels::PairwiseDot(x, out));
  timeline::Span span("d2h pairs", "copy", "bytes", static_cast<int64_t>(out.nbytes()));
  TESSERA_ASSIGN_OR_RETURN(const TensorView host, Fit(&pin_pairs_, device(), true, DType::kF32, {b, p}));
  if (host.nbytes() > 0) {
    TESSERA_ASSIGN_OR_RETURN(const kernels::CopyQueue::Fence fence, queue_->Copy(out, host));
    TESSERA_RETURN_IF_ERROR(queue_->Wait(fence));
    std::memcpy(pairs, host.data, host.nbytes());
  }
  interact_b_ = b;
  interact_f_ = f;
  return Status::OK();
}

Status RowStaging::InteractBackward(SparseBatch* batch, const float* dpairs, float* ddense) {
  if (interact_b_ < 0 || table_base_.size() != batch->tables.size()) {
    return Status::FailedPrecondition("RowStaging::InteractBackward: no InteractForward of this batch");
  }
  for (size_t t = 0; t < batch->tables.size(); ++t) TESSERA_RETURN_IF_ERROR(CheckTable(*batch, t, "InteractBackward"));
  const int64_t b = interact_b_, f = interact_f_;
  interact_b_ = -1;
  const int64_t d = batch->tables[0].values.shape()[1];
  const int64_t p = f * (f - 1) / 2;
  const int64_t rows = table_base_.back() + loaded_rows_.back();
  const TensorView x{dev_x_.data(), DType::kF32, {b, f, d}, device()};
  TESSERA_ASSIGN_OR_RETURN(const TensorView dx, Fit(&dev_dx_, device(), false, DType::kF32, {b, f, d}));
  TensorView dp;
  {
    timeline::Span span("h2d pair grads", "copy", "bytes", b * p * static_cast<int64_t>(sizeof(float)));
    TESSERA_ASSIGN_OR_RETURN(dp, ToDevice(dpairs, DType::kF32, {b, p}, &pin_pairs_, &dev_pairs_));
  }
  TESSERA_RETURN_IF_ERROR(kernels::PairwiseDotBackward(x, dp, dx));
  const TensorView dx_rows{dx.data, DType::kF32, {b * f, d}, device()};
  {
    // Slot 0 of every example: rows 0, f, 2f, ... of dx.
    std::vector<int64_t> slot0(static_cast<size_t>(b));
    for (int64_t e = 0; e < b; ++e) slot0[e] = e * f;
    TensorView dev_slot0;
    {
      timeline::Span span("h2d ids", "copy", "bytes", b * static_cast<int64_t>(sizeof(int64_t)));
      TESSERA_ASSIGN_OR_RETURN(dev_slot0, ToDevice(slot0.data(), DType::kI64, {b}, &pin_ids_, &dev_ids_));
    }
    TESSERA_ASSIGN_OR_RETURN(const TensorView g, Fit(&dev_gathered_, device(), false, DType::kF32, {b, d}));
    TESSERA_RETURN_IF_ERROR(kernels::EmbeddingGather(dx_rows, dev_slot0, g));
    timeline::Span span("d2h dense grads", "copy", "bytes", static_cast<int64_t>(g.nbytes()));
    TESSERA_ASSIGN_OR_RETURN(const TensorView host, Fit(&pin_gathered_, device(), true, DType::kF32, {b, d}));
    if (host.nbytes() > 0) {
      TESSERA_ASSIGN_OR_RETURN(const kernels::CopyQueue::Fence fence, queue_->Copy(g, host));
      TESSERA_RETURN_IF_ERROR(queue_->Wait(fence));
      std::memcpy(ddense, host.data, host.nbytes());
    }
  }
  // Every slot's gradient, grouped by its row in the side-by-side block (pair_ids_ still
  // holds the forward's ids): each table row sums its examples in example order.
  TESSERA_RETURN_IF_ERROR_CTX(GroupPositions(pair_ids_, rows, &order_, &offsets_), "RowStaging::InteractBackward");
  TensorView order, offsets;
  {
    timeline::Span span("h2d position grads", "copy", "bytes", (b * f + rows + 1) * static_cast<int64_t>(sizeof(int64_t)));
    TESSERA_ASSIGN_OR_RETURN(order, ToDevice(order_.data(), DType::kI64, {b * f}, &pin_order_, &dev_order_));
    TESSERA_ASSIGN_OR_RETURN(offsets, ToDevice(offsets_.data(), DType::kI64, {rows + 1}, &pin_offsets_, &dev_offsets_));
  }
  TESSERA_ASSIGN_OR_RETURN(const TensorView grads, Fit(&dev_grads_, device(), false, DType::kF32, {rows, d}));
  TESSERA_RETURN_IF_ERROR(kernels::GroupedRowSum(dx_rows, order, offsets, grads));
  timeline::Span span("d2h row grads", "copy", "bytes", static_cast<int64_t>((rows - b) * d) * static_cast<int64_t>(sizeof(float)));
  for (size_t t = 0; t < batch->tables.size(); ++t) {
    const int64_t u = loaded_rows_[t];
    if (u * d == 0) continue;
    TESSERA_RETURN_IF_ERROR(
        queue_->Copy(TensorView{grads.as<float>() + table_base_[t] * d, DType::kF32, {u, d}, device()},
                     batch->tables[t].grads.view())
            .status());
  }
  return queue_->WaitAll().WithContext("copying row gradients to the host");
}

}  // namespace tessera::worker::sparse
