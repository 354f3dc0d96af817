#include "paramserver/aggregator.h"

#include <algorithm>
#include <atomic>

#include "common/metrics_registry.h"
#include "common/tensor.h"
#include "common/timeline.h"
#include "kernels/ops.h"

namespace tessera::paramserver {
namespace {

// Optimizer updates (docs/metrics.md: tessera_optimizer_seconds), one observation per
// applied chunk or sparse batch.
metrics::Latency& OptimizerLatency() {
  static metrics::Latency& l = metrics::Global().GetLatency("optimizer_seconds");
  return l;
}

// Kernels take mutable views; these are only read (the x of Axpy).
TensorView ReadView(std::span<const float> v) {
  return TensorView{
      const_cast<float*>(v.data()), DType::kF32, {static_cast<int64_t>(v.size())}, Device::kCPU};
}
TensorView View(std::span<float> v) {
  return TensorView{v.data(), DType::kF32, {static_cast<int64_t>(v.size())}, Device::kCPU};
}

// ssp/asp pushes whose gradient was copied before the optimizer (docs/metrics.md:
// tessera_server_gradient_copies_total), one per dense chunk or sparse push.
metrics::Counter& GradientCopies() {
  static metrics::Counter& c = metrics::Global().GetCounter("server_gradient_copies_total");
  return c;
}

std::atomic<bool> copy_rescaled_pushes{false};

std::string ChunkName(uint32_t param_id, uint64_t chunk) {
  return "param " + std::to_string(param_id) + " chunk " + std::to_string(chunk);
}

}  // namespace

Result<Aggregator> Aggregator::Create(const ShardMap& map, uint32_t server,
                                      const AggregatorOptions& options) {
  if (server >= map.num_servers()) {
    return Status::InvalidArgument("server index " + std::to_string(server) + " outside the " +
                                   std::to_string(map.num_servers()) + " servers");
  }
  if (options.first_step < 0 || options.max_pending_steps < 1) {
    return Status::InvalidArgument("aggregator options: first_step " +
                                   std::to_string(options.first_step) + ", max_pending_steps " +
                                   std::to_string(options.max_pending_steps));
  }
  Aggregator a;
  a.sync_ = map.sync();
  a.reduce_ = map.grad_reduce();
  a.num_workers_ = static_cast<int>(map.num_workers());
  a.options_ = options;
  a.params_.resize(map.num_params());
  const StepGate gate(map.sync(), a.num_workers_, options.first_step);
  for (uint32_t id = 0; id < map.num_params(); ++id) {
    ParamUnits& p = a.params_[id];
    p.kind = map.param(id)->kind;
    if (const DenseLayout* l = map.dense_layout(id)) {
      p.chunk_elements = l->chunk_elements;
      p.num_elements = l->num_elements;
      for (uint64_t c = 0; c < l->num_chunks(); ++c) {
        if (l->chunk_server[c] == server) p.chunks.emplace(c, Unit(gate));
      }
    } else {
      p.row_width = static_cast<uint64_t>(map.param(id)->numel());
      p.table.emplace(gate);
    }
  }
  return a;
}

const Aggregator::Unit* Aggregator::FindDense(uint32_t param_id, uint64_t chunk) const {
  if (param_id >= params_.size()) return nullptr;
  auto it = params_[param_id].chunks.find(chunk);
  return it == params_[param_id].chunks.end() ? nullptr : &it->second;
}

Aggregator::Unit* Aggregator::FindDense(uint32_t param_id, uint64_t chunk) {
  return const_cast<Unit*>(std::as_const(*this).FindDense(param_id, chunk));
}

const Aggregator::Unit* Aggregator::FindSparse(uint32_t param_id) const {
  if (param_id >= params_.size() || !params_[param_id].table) return nullptr;
  return &*params_[param_id].table;
}

Aggregator::Unit* Aggregator::FindSparse(uint32_t param_id) {
  return const_cast<Unit*>(std::as_const(*this).FindSparse(param_id));
}

Status Aggregator::CheckDensePush(int worker, uint32_t param_id, uint64_t first_chunk,
                                  uint64_t last_chunk, int64_t step) const {
  for (uint64_t c = first_chunk; c <= last_chunk; ++c) {
    const Unit* u = FindDense(param_id, c);
    if (u == nullptr) return Status::Internal(ChunkName(param_id, c) + " is not stored here");
    TESSERA_RETURN_IF_ERROR_CTX(u->gate.CheckPush(worker, step, options_.max_pending_steps),
                                ChunkName(param_id, c));
  }
  return Status::OK();
}

Status Aggregator::CheckSparsePush(int worker, uint32_t param_id, int64_t step) const {
  const Unit* u = FindSparse(param_id);
  if (u == nullptr) return Status::Internal("param " + std::to_string(param_id) + " is not sparse");
  TESSERA_RETURN_IF_ERROR_CTX(u->gate.CheckPush(worker, step, options_.max_pending_steps),
                              "param " + std::to_string(param_id));
  return Status::OK();
}

void TEST_CopyRescaledPushes(bool on) { copy_rescaled_pushes.store(on, std::memory_order_relaxed); }

bool Aggregator::Rescales() const { return reduce_ == GradReduce::kMean && num_workers_ > 1; }

float Aggregator::ReduceScale() const { return Rescales() ? 1.0f / static_cast<float>(num_workers_) : 1.0f; }

Status Aggregator::ScaleForReduce(std::span<float> grad) const {
  if (!Rescales() || grad.empty()) return Status::OK();
  Status st = kernels::Scale(View(grad), ReduceScale());
  return st.ok() ? st : Status::Internal(st.ToString());
}

bool Aggregator::CopiesPush(const ShardStore& store, uint32_t param_id) const {
  return store.Clips(param_id) || (Rescales() && copy_rescaled_pushes.load(std::memory_order_relaxed));
}

Status Aggregator::Fold(Pending& p, uint64_t row_width, std::span<const Key> keys,
                        std::span<const float> grad) {
  if (row_width == 0) {  // dense: the whole chunk
    if (p.folded == 0) {
      p.sum.assign(grad.begin(), grad.end());
    } else {
      Status st = kernels::Axpy(1.0f, ReadView(grad), View(p.sum));
      if (!st.ok()) return Status::Internal(st.ToString());
    }
    ++p.folded;
    return Status::OK();
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    std::span<const float> g = grad.subspan(i * row_width, row_width);
    auto [it, inserted] = p.row_of.try_emplace(keys[i], p.sum_keys.size());
    if (inserted) {
      p.sum_keys.push_back(keys[i]);
      p.sum.insert(p.sum.end(), g.begin(), g.end());
    } else {
      std::span<float> row(p.sum.data() + it->second * row_width, row_width);
      Status st = kernels::Axpy(1.0f, ReadView(g), View(row));
      if (!st.ok()) return Status::Internal(st.ToString());
    }
  }
  ++p.folded;
  return Status::OK();
}

Status Aggregator::Add(Pending& p, int worker, uint64_t row_width, std::span<const Key> keys,
                       std::span<const float> grad) {
  if (p.arrived.empty()) {
    p.arrived.assign(static_cast<size_t>(num_workers_), 0);
    p.keys.resize(static_cast<size_t>(num_workers_));
    p.grads.resize(static_cast<size_t>(num_workers_));
  }
  const auto w = static_cast<size_t>(worker);
  if (worker != p.folded) {  // someone before it is missing: keep a copy until then
    p.arrived[w] = 1;
    p.keys[w].assign(keys.begin(), keys.end());
    p.grads[w].assign(grad.begin(), grad.end());
    return Status::OK();
  }
  TESSERA_RETURN_IF_ERROR(Fold(p, row_width, keys, grad));
  while (p.folded < num_workers_ && p.arrived[static_cast<size_t>(p.folded)]) {
    const auto next = static_cast<size_t>(p.folded);
    std::vector<Key> k = std::move(p.keys[next]);
    std::vector<float> g = std::move(p.grads[next]);
    p.arrived[next] = 0;
    TESSERA_RETURN_IF_ERROR(Fold(p, row_width, k, g));
  }
  return Status::OK();
}

Status Aggregator::PushDense(ShardStore& store, int worker, uint32_t param_id, uint64_t first_chunk,
                             uint64_t last_chunk, int64_t step, std::span<const float> grad,
                             std::span<float> mirror, bool* mirrored, const kernels::GradientGate* gate,
                             const std::function<void()>* before_apply) {
  if (mirrored != nullptr) *mirrored = false;
  TESSERA_RETURN_IF_ERROR(CheckDensePush(worker, param_id, first_chunk, last_chunk, step));
  const ParamUnits& p = params_[param_id];
  const uint64_t begin = first_chunk * p.chunk_elements;
  const uint64_t end = std::min((last_chunk + 1) * p.chunk_elements, p.num_elements);
  if (grad.size() != end - begin) {
    return Status::Internal("PushDense: " + std::to_string(grad.size()) + " values for chunks " +
                            std::to_string(first_chunk) + ".." + std::to_string(last_chunk));
  }
  if (!mirror.empty() && mirror.size() != grad.size()) {
    return Status::Internal("PushDense: a mirror of " + std::to_string(mirror.size()) + " values for " +
                            std::to_string(grad.size()));
  }
  const bool mirror_now = !mirror.empty() && sync_.mode != SyncMode::kBsp;
  const bool in_place = sync_.mode != SyncMode::kBsp && !CopiesPush(store, param_id);
  if (gate != nullptr && !in_place) {  // the gradient is copied or kept whole: all of it first
    TESSERA_RETURN_IF_ERROR((*gate)(0, grad.size()));
    gate = nullptr;
  }
  // CheckDensePush passed for every chunk, so recording them all first changes no outcome.
  const bool answer_first = before_apply != nullptr && in_place && mirror_now;
  if (answer_first) {
    for (uint64_t c = first_chunk; c <= last_chunk; ++c) {
      TESSERA_RETURN_IF_ERROR(FindDense(param_id, c)->gate.RecordPush(worker, step, options_.max_pending_steps));
    }
    (*before_apply)();
  }
  for (uint64_t c = first_chunk; c <= last_chunk; ++c) {
    Unit& u = *FindDense(param_id, c);
    const uint64_t cb = c * p.chunk_elements;
    const uint64_t ce = std::min(cb + p.chunk_elements, p.num_elements);
    std::span<const float> g = grad.subspan(cb - begin, ce - cb);
    const std::span<float> m = mirror_now ? mirror.subspan(cb - begin, ce - cb) : std::span<float>();
    if (!answer_first) TESSERA_RETURN_IF_ERROR(u.gate.RecordPush(worker, step, options_.max_pending_steps));
    if (sync_.mode == SyncMode::kBsp) {
      TESSERA_RETURN_IF_ERROR(Add(u.pending[step], worker, 0, {}, g));
      TESSERA_RETURN_IF_ERROR(DrainDense(store, param_id, c, u));
    } else {
      timeline::Span span("optimizer", "optimizer", "param", param_id, "step", step);
      if (in_place) {
        // Nothing writes the gradient: apply it where it arrived (on one host, the
        // shared-memory arena) rather than copying it first (docs/benchmarks-auth.md, "After
        // applying pushes in place"); the mean's 1/W is applied as the optimizer reads it.
        metrics::ScopedLatency t(OptimizerLatency());
        const uint64_t offset = cb - begin;
        const kernels::GradientGate chunk_gate = [gate, offset](uint64_t b, uint64_t e) {
          return (*gate)(offset + b, offset + e);
        };
        TESSERA_RETURN_IF_ERROR(
            store.ApplyDenseReadOnly(param_id, c, g, m, gate ? &chunk_gate : nullptr, ReduceScale()));
        continue;
      }
      GradientCopies().Add(1);
      scratch_.assign(g.begin(), g.end());
      TESSERA_RETURN_IF_ERROR(ScaleForReduce(scratch_));
      metrics::ScopedLatency t(OptimizerLatency());
      TESSERA_RETURN_IF_ERROR(store.ApplyDense(param_id, c, scratch_, m));
    }
  }
  if (mirrored != nullptr) *mirrored = mirror_now;
  return Status::OK();
}

Status Aggregator::PushSparse(ShardStore& store, int worker, uint32_t param_id, int64_t step,
                              std::span<const Key> keys, std::span<const float> grad) {
  TESSERA_RETURN_IF_ERROR(CheckSparsePush(worker, param_id, step));
  const uint64_t width = params_[param_id].row_width;
  if (grad.size() != keys.size() * width) {
    return Status::Internal("PushSparse: " + std::to_string(grad.size()) + " values for " +
                            std::to_string(keys.size()) + " rows of " + std::to_string(width));
  }
  Unit& u = *FindSparse(param_id);
  TESSERA_RETURN_IF_ERROR(u.gate.RecordPush(worker, step, options_.max_pending_steps));
  if (sync_.mode == SyncMode::kBsp) {
    TESSERA_RETURN_IF_ERROR(Add(u.pending[step], worker, width, keys, grad));
    return DrainSparse(store, param_id, u);
  }
  timeline::Span span("optimizer", "optimizer", "param", param_id, "step", step);
  if (!CopiesPush(store, param_id)) {
    // Nothing writes the gradient: apply it where it arrived (as the dense push does).
    metrics::ScopedLatency t(OptimizerLatency());
    return store.ApplySparseRowsReadOnly(param_id, keys, grad, step, ReduceScale());
  }
  GradientCopies().Add(1);
  scratch_.assign(grad.begin(), grad.end());
  TESSERA_RETURN_IF_ERROR(ScaleForReduce(scratch_));
  metrics::ScopedLatency t(OptimizerLatency());
  return store.ApplySparseRows(param_id, keys, scratch_, step);
}

Status Aggregator::DrainDense(ShardStore& store, uint32_t param_id, uint64_t chunk, Unit& unit) {
  while (!unit.pending.empty() && unit.gate.CanApply(unit.pending.begin()->first)) {
    auto it = unit.pending.begin();
    Pending& p = it->second;
    if (p.folded != num_workers_) {
      return Status::Internal(ChunkName(param_id, chunk) + ": step " + std::to_string(it->first) +
                              " complete but only " + std::to_string(p.folded) + " pushes folded");
    }
    timeline::Span span("optimizer", "optimizer", "param", param_id, "step", it->first);
    if (!CopiesPush(store, param_id)) {  // the 1/W as the optimizer reads the sum: no pass of its own
      metrics::ScopedLatency t(OptimizerLatency());
      TESSERA_RETURN_IF_ERROR(store.ApplyDenseReadOnly(param_id, chunk, p.sum, {}, nullptr, ReduceScale()));
    } else {
      TESSERA_RETURN_IF_ERROR(ScaleForReduce(p.sum));
      metrics::ScopedLatency t(OptimizerLatency());
      TESSERA_RETURN_IF_ERROR(store.ApplyDense(param_id, chunk, p.sum));
    }
    TESSERA_RETURN_IF_ERROR(unit.gate.MarkApplied(it->first));
    unit.pending.erase(it);
  }
  return Status::OK();
}

Status Aggregator::DrainSparse(ShardStore& store, uint32_t param_id, Unit& unit) {
  while (!unit.pending.empty() && unit.gate.CanApply(unit.pending.begin()->first)) {
    auto it = unit.pending.begin();
    Pending& p = it->second;
    if (p.folded != num_workers_) {
      return Status::Internal("param " + std::to_string(param_id) + ": step " +
                              std::to_string(it->first) + " complete but only " +
                              std::to_string(p.folded) + " pushes folded");
    }
    timeline::Span span("optimizer", "optimizer", "param", param_id, "step", it->first);
    // Rows are independent, so the order of application does not change any value.
    if (!CopiesPush(store, param_id)) {
      metrics::ScopedLatency t(OptimizerLatency());
      TESSERA_RETURN_IF_ERROR(store.ApplySparseRowsReadOnly(param_id, p.sum_keys, p.sum, it->first, ReduceScale()));
    } else {
      TESSERA_RETURN_IF_ERROR(ScaleForReduce(p.sum));
      metrics::ScopedLatency t(OptimizerLatency());
      TESSERA_RETURN_IF_ERROR(store.ApplySparseRows(param_id, p.sum_keys, p.sum, it->first));
    }
    TESSERA_RETURN_IF_ERROR(unit.gate.MarkApplied(it->first));
    unit.pending.erase(it);
  }
  return Status::OK();
}

bool Aggregator::DenseReady(uint32_t param_id, uint64_t first_chunk, uint64_t last_chunk,
                            int64_t step) const {
  for (uint64_t c = first_chunk; c <= last_chunk; ++c) {
    const Unit* u = FindDense(param_id, c);
    if (u == nullptr || !u->gate.CanServePull(step)) return false;
  }
  return true;
}

bool Aggregator::SparseReady(uint32_t param_id, int64_t step) const {
  const Unit* u = FindSparse(param_id);
  return u != nullptr && u->gate.CanServePull(step);
}

int64_t Aggregator::DenseAppliedStep(uint32_t param_id, uint64_t first_chunk,
                                     uint64_t last_chunk) const {
  int64_t applied = INT64_MAX;
  for (uint64_t c = first_chunk; c <= last_chunk; ++c) {
    const Unit* u = FindDense(param_id, c);
    if (u == nullptr) return options_.first_step - 1;
    applied = std::min(applied, u->gate.applied_step());
  }
  return applied == INT64_MAX ? options_.first_step - 1 : applied;
}

int64_t Aggregator::SparseAppliedStep(uint32_t param_id) const {
  const Unit* u = FindSparse(param_id);
  return u == nullptr ? options_.first_step - 1 : u->gate.applied_step();
}

uint64_t Aggregator::PendingSteps() const {
  uint64_t n = 0;
  for (const ParamUnits& p : params_) {
    for (const auto& [c, u] : p.chunks) n += u.pending.size();
    if (p.table) n += p.table->pending.size();
  }
  return n;
}

}  // namespace tessera::paramserver
