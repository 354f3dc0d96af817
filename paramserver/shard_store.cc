#include "paramserver/shard_store.h"

#include <algorithm>
#include <cstring>
#include <mutex>

#include "common/hash.h"
#include "common/row_width.h"
#include "kernels/ops.h"
#include "kernels/optimizer_step.h"
#include "kernels/param_init.h"

namespace tessera::paramserver {
namespace {

static_assert(PullSlots::kAbsent == RowTable::kNoSlot);

TensorView View(float* data, uint64_t n) {
  return TensorView{data, DType::kF32, {static_cast<int64_t>(n)}, Device::kCPU};
}

// The error of the lowest failing range of a SplitWork call (the one a single call over
// the whole batch would have returned first); ranges report from two threads.
class RangeErrors {
 public:
  void Note(size_t begin, Status st) {
    if (st.ok()) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (begin < begin_) {
      begin_ = begin;
      st_ = std::move(st);
    }
  }
  Status first() {
    std::lock_guard<std::mutex> lock(mu_);
    return st_;
  }

 private:
  std::mutex mu_;
  size_t begin_ = SIZE_MAX;
  Status st_;
};

uint64_t SlotFloats(const ParamSpec& spec, uint64_t n) {
  return static_cast<uint64_t>(NumOptimizerSlots(spec.optimizer.kind)) * n;
}

}  // namespace

Result<ShardStore> ShardStore::Create(const ShardMap& map, uint32_t server) {
  if (server >= map.num_servers()) {
    return Status::InvalidArgument("server index " + std::to_string(server) +
                                   " outside the shard map's " + std::to_string(map.num_servers()) +
                                   " servers");
  }
  ShardStore store;
  store.server_ = server;
  store.version_ = map.version();
  store.params_.resize(map.num_params());
  for (uint32_t id = 0; id < map.num_params(); ++id) {
    Param& p = store.params_[id];
    p.spec = *map.param(id);
    if (p.spec.dtype != DType::kF32) {
      return Status::InvalidArgument("param " + std::to_string(id) + " '" + p.spec.name +
                                     "': servers store f32 parameters only, this one is " +
                                     std::string(DTypeName(p.spec.dtype)));
    }
    p.name_hash = ParamNameHash(p.spec.name);
    p.id = id;
    if (p.spec.kind == ParamKind::kSparse) {
      const int nslots = NumOptimizerSlots(p.spec.optimizer.kind);
      if (nslots < 0 || p.spec.numel() <= 0 || p.spec.numel() > (int64_t{1} << 24)) {
        return Status::InvalidArgument("sparse param " + std::to_string(id) + " '" + p.spec.name + "': row width " +
                                       std::to_string(p.spec.numel()) + " outside [1, 2^24]");
      }
      p.rows.emplace(p.name_hash, static_cast<uint32_t>(p.spec.numel()), static_cast<uint32_t>(nslots));
      // A spec the initialiser refuses keeps no fast path: its pushes and pulls report
      // InitializeSparseRow's error, as before.
      if (auto init = SparseRowInit::Create(p.spec); init.ok()) p.init = std::move(*init);
    }
    const DenseLayout* l = map.dense_layout(id);
    if (l == nullptr) continue;
    p.chunk_elements = l->chunk_elements;
    p.chunk_index.assign(l->num_chunks(), -1);
    for (uint64_t c = 0; c < l->num_chunks(); ++c) {
      if (l->chunk_server[c] != server) continue;
      const KeyRange r = l->ChunkRange(c);
      ChunkState chunk;
      chunk.param_id = id;
      chunk.chunk = c;
      chunk.begin = r.begin;
      chunk.end = r.end;
      chunk.values.resize(r.size());
      chunk.slots.resize(SlotFloats(p.spec, r.size()));
      TESSERA_RETURN_IF_ERROR(
          InitializeParam(p.spec, View(chunk.values.data(), r.size()), r.begin));
      TESSERA_RETURN_IF_ERROR(kernels::InitSlots(p.spec.optimizer, chunk.slots, r.size()));
      p.chunk_index[c] = static_cast<int64_t>(store.chunks_.size());
      store.chunks_.push_back(std::move(chunk));
    }
  }
  return store;
}

int64_t ShardStore::ChunkIndex(uint32_t param_id, uint64_t chunk) const {
  if (param_id >= params_.size()) return -1;
  const Param& p = params_[param_id];
  return chunk < p.chunk_index.size() ? p.chunk_index[chunk] : -1;
}

const ChunkState* ShardStore::chunk(uint32_t param_id, uint64_t chunk) const {
  const int64_t i = ChunkIndex(param_id, chunk);
  return i < 0 ? nullptr : &chunks_[static_cast<size_t>(i)];
}

const RowTable* ShardStore::table(uint32_t param_id) const {
  return param_id < params_.size() && params_[param_id].rows ? &*params_[param_id].rows : nullptr;
}

std::optional<RowState> ShardStore::row(uint32_t param_id, Key key) const {
  const RowTable* t = table(param_id);
  const uint32_t slot = t == nullptr ? RowTable::kNoSlot : t->Find(key);
  if (slot == RowTable::kNoSlot) return std::nullopt;
  RowState r;
  r.param_id = param_id;
  r.key = key;
  r.updates = t->updates(slot);
  if (params_[param_id].policy.evicts()) r.last_seen = t->last_seen(slot);
  const float* d = t->data(slot);
  r.values.assign(d, d + t->width());
  r.slots.assign(d + t->width(), d + t->stride());
  return r;
}

uint64_t ShardStore::num_rows(uint32_t param_id) const {
  const RowTable* t = table(param_id);
  return t == nullptr ? 0 : t->size();
}

Status ShardStore::ReadDense(uint32_t param_id, uint64_t begin, uint64_t end,
                             std::span<float> out) const {
  if (param_id >= params_.size() || params_[param_id].chunk_elements == 0 || begin >= end ||
      out.size() != end - begin) {
    return Status::Internal("ReadDense: unchecked request for param " + std::to_string(param_id));
  }
  const Param& p = params_[param_id];
  for (uint64_t c = begin / p.chunk_elements; c <= (end - 1) / p.chunk_elements; ++c) {
    const ChunkState* ch = chunk(param_id, c);
    if (ch == nullptr) {
      return Status::Internal("ReadDense: chunk " + std::to_string(c) + " of param " +
                              std::to_string(param_id) + " is not stored here");
    }
    const uint64_t b = std::max(begin, ch->begin);
    const uint64_t e = std::min(end, ch->end);
    std::memcpy(out.data() + (b - begin), ch->values.data() + (b - ch->begin),
                (e - b) * sizeof(float));
  }
  return Status::OK();
}

Status ShardStore::ReadSparse(uint32_t param_id, std::span<const Key> keys,
                              std::span<float> out) const {
  if (param_id >= params_.size() || params_[param_id].spec.kind != ParamKind::kSparse) {
    return Status::Internal("ReadSparse: param " + std::to_string(param_id) + " is not sparse");
  }
  const Param& p = params_[param_id];
  const uint64_t width = static_cast<uint64_t>(p.spec.numel());
  if (out.size() != keys.size() * width) {
    return Status::Internal("ReadSparse: output size " + std::to_string(out.size()) + " for " +
                            std::to_string(keys.size()) + " rows of " + std::to_string(width));
  }
  const RowTable& t = *p.rows;
  // The slots are kept for a push of the same keys (PullSlots).
  uint32_t* kept =
      reuse_pull_slots_ ? p.pulls.Record(keys, {t.erase_generation(), t.insert_generation()}) : nullptr;
  // Each row is copied as its lookup resolves (the pipeline has just brought it in), at a
  // compiled-in width where there is one (common/row_width.h). Keys [begin, end) only: with
  // SplitWork the ranges run on two threads, each writing its own rows of out and kept.
  auto read = [&]<uint64_t kWidth>(size_t begin, size_t end) {
    const uint64_t w = kWidth != 0 ? kWidth : width;
    Status st;
    t.ForEachSlot(keys.subspan(begin, end - begin), [&](size_t j, uint32_t slot) {
      const size_t i = begin + j;
      if (kept != nullptr) kept[i] = slot;
      float* dst = out.data() + i * w;
      if (slot != RowTable::kNoSlot) {
        std::memcpy(dst, t.data(slot), w * sizeof(float));
      } else if (p.init) {
        p.init->Fill(keys[i], dst);
      } else if (st.ok()) {
        st = InitializeSparseRow(p.spec, keys[i], View(dst, w));
      }
    });
    return st;
  };
  const size_t n = keys.size();
  if (split_ == nullptr || n < kSplitMinKeys) {
    Status st;
    WithRowWidth(width, [&]<uint64_t kWidth>() { st = read.template operator()<kWidth>(0, n); });
    return st;
  }
  // The first failing range's error (InitializeSparseRow's: the same for every key).
  RangeErrors errors;
  WithRowWidth(width, [&]<uint64_t kWidth>() {
    auto body = [&](size_t begin, size_t end) { errors.Note(begin, read.template operator()<kWidth>(begin, end)); };
    split_->For(n, kSplitRange, body);
  });
  return errors.first();
}

Status ShardStore::ApplyDense(uint32_t param_id, uint64_t chunk_index, std::span<float> grad,
                              std::span<float> mirror) {
  const int64_t i = ChunkIndex(param_id, chunk_index);
  if (i < 0) {
    return Status::Internal("ApplyDense: chunk " + std::to_string(chunk_index) + " of param " +
                            std::to_string(param_id) + " is not stored here");
  }
  ChunkState& ch = chunks_[static_cast<size_t>(i)];
  TESSERA_RETURN_IF_ERROR(
      kernels::ApplyUpdate(params_[param_id].spec.optimizer, ch.updates + 1, ch.values, ch.slots, grad, mirror));
  ++ch.updates;
  return Status::OK();
}

Status ShardStore::ApplyDenseReadOnly(uint32_t param_id, uint64_t chunk_index, std::span<const float> grad,
                                      std::span<float> mirror, const kernels::GradientGate* gate,
                                      float grad_scale) {
  const int64_t i = ChunkIndex(param_id, chunk_index);
  if (i < 0) {
    return Status::Internal("ApplyDense: chunk " + std::to_string(chunk_index) + " of param " +
                            std::to_string(param_id) + " is not stored here");
  }
  ChunkState& ch = chunks_[static_cast<size_t>(i)];
  TESSERA_RETURN_IF_ERROR(kernels::ApplyUpdateReadOnly(params_[param_id].spec.optimizer, ch.updates + 1,
                                                       ch.values, ch.slots, grad, mirror, gate, grad_scale));
  ++ch.updates;
  return Status::OK();
}

Status ShardStore::ApplySparseRowsReadOnly(uint32_t param_id, std::span<const Key> keys,
                                           std::span<const float> grads, int64_t step, float grad_scale) {
  if (Clips(param_id)) {
    return Status::Internal("ApplySparseRowsReadOnly: param " + std::to_string(param_id) + " clips its gradients");
  }
  return ApplyRows(param_id, keys, grads, nullptr, step, grad_scale);
}

Status ShardStore::ApplyRows(uint32_t param_id, std::span<const Key> keys, std::span<const float> grads,
                             float* writable, int64_t step, float grad_scale) {
  if (param_id >= params_.size() || !params_[param_id].rows) {
    return Status::Internal("ApplySparseRows: param " + std::to_string(param_id) + " is not sparse");
  }
  Param& p = params_[param_id];
  RowTable& t = *p.rows;
  const uint64_t width = t.width();
  if (grads.size() != keys.size() * width) {
    return Status::Internal("ApplySparseRows: " + std::to_string(grads.size()) + " gradient values for " +
                            std::to_string(keys.size()) + " rows of " + std::to_string(width));
  }
  // Last-seen only matters (and is only written: one more cache line per row) with a policy.
  const bool track_seen = p.policy.evicts();
  const auto seen = static_cast<uint32_t>(std::clamp<int64_t>(step, 0, UINT32_MAX));
  CountMinSketch* sketch = p.sketch ? &*p.sketch : nullptr;
  // One pass over the rows while each is in cache (the lookup pipeline has just brought
  // it in): open it (BeginWrite/EndWrite: its hash leaves the digest, it is marked dirty),
  // note its row and step (row_scratch_[i], step_scratch_[i]: key i's) and count the
  // update now, undone below if the push fails, so no pass after the optimizer's touches
  // the rows again. The absent rows are created after it, in key order.
  const size_t n = keys.size();
  std::vector<uint32_t>& found = read_scratch_;
  found.resize(n);
  row_scratch_.resize(n);
  step_scratch_.resize(n);
  size_t missing = 0;
  const auto visit = [&](size_t i, uint32_t slot) {
    found[i] = slot;
    if (slot == RowTable::kNoSlot) {
      ++missing;
      return;
    }
    t.BeginWrite(slot);
    t.EndWrite(slot);
    int64_t& updates = t.updates(slot);
    row_scratch_[i] = t.data(slot);
    step_scratch_[i] = updates + 1;
    ++updates;
  };
  // The keys of one of the last pulls, no row erased since: its slots, no lookup (but for
  // the keys it found absent, when rows were created since: recheck).
  bool recheck = false;
  const uint32_t* known =
      reuse_pull_slots_ ? p.pulls.Match(keys, {t.erase_generation(), t.insert_generation()}, &recheck) : nullptr;
  if (known != nullptr) {
    ++reused_pushes_;
    const std::span<const uint32_t> slots(known, n);
    if (recheck) {
      t.ForEachKnownSlot<true>(slots, [&](size_t i, uint32_t slot) {
        visit(i, slot == RowTable::kNoSlot ? t.Find(keys[i]) : slot);
      });
    } else {
      t.ForEachKnownSlot<true>(slots, visit);
    }
  } else {
    t.ForEachSlot<true>(keys, visit);
  }
  Status st;
  size_t end = n;  // keys from a failed row creation on are not applied
  bool dropped = false;
  if (missing > 0) {
    t.Reserve(missing);  // room for every absent key at once: at most one index rebuild per push
    for (size_t i = 0; i < n; ++i) {
      if (found[i] != RowTable::kNoSlot) continue;
      const Key key = keys[i];
      if (sketch != nullptr && sketch->Add(key) < p.policy.min_key_count) {
        ++p.stats.dropped;  // not admitted: no row, the gradient is dropped
        dropped = true;
        continue;
      }
      const uint32_t slot = t.Insert(key);  // not in the digest yet: no BeginWrite
      ++p.stats.created;
      if (!p.part_rows.empty()) CountInsert(p, key);
      float* d = t.data(slot);
      if (p.init) {
        p.init->Fill(key, d);
      } else {
        st = InitializeSparseRow(p.spec, key, View(d, width));
      }
      if (st.ok()) st = kernels::InitSlots(p.spec.optimizer, {d + width, t.stride() - width}, width);
      t.EndWrite(slot);
      if (!st.ok()) {  // leave no half-made row behind
        t.Erase(key);
        if (!p.part_rows.empty()) CountErase(p, key);
        end = i;
        break;
      }
      found[i] = slot;
      row_scratch_[i] = d;
      step_scratch_[i] = 1;  // a new row's counter is 0
      t.updates(slot) = 1;
    }
  }
  if (track_seen) {
    for (size_t i = 0; i < end; ++i) {
      if (found[i] != RowTable::kNoSlot) t.last_seen(found[i]) = seen;
    }
  }
  // Squeeze out the dropped keys (their gradients too) and the keys past a failure: in
  // place, or for a read-only push into grad_copy_.
  size_t kept = n;
  // Written by the optimizer only when it clips (then `writable` is the push's own buffer).
  float* g = const_cast<float*>(grads.data());
  if (dropped || end < n) {
    float* dst = writable;
    if (dst == nullptr) {
      grad_copy_.resize(n * width);
      dst = grad_copy_.data();
    }
    kept = 0;
    for (size_t i = 0; i < end; ++i) {
      if (found[i] == RowTable::kNoSlot) continue;
      if (dst != writable || kept != i) {
        std::memmove(dst + kept * width, grads.data() + i * width, width * sizeof(float));
        row_scratch_[kept] = row_scratch_[i];
        step_scratch_[kept] = step_scratch_[i];
      }
      ++kept;
    }
    g = dst;
  }
  if (st.ok()) {
    const auto rows = [&](size_t begin, size_t end) {
      return kernels::ApplyOptimizerRows(p.spec.optimizer, static_cast<int64_t>(width),
                                         std::span<float* const>(row_scratch_.data() + begin, end - begin),
                                         std::span<const int64_t>(step_scratch_.data() + begin, end - begin),
                                         g + begin * width, grad_scale);
    };
    // Every step >= 1, as the kernel requires (a restored counter could break it).
    const auto counted = [&] {
      bool ok = true;
      for (size_t i = 0; i < kept; ++i) ok &= step_scratch_[i] >= 1;
      return ok;
    };
    if (split_ == nullptr || kept < kSplitMinKeys || !counted()) {
      st = rows(0, kept);
    } else {
      // Every row's update is its own (distinct keys, per-row clipping), so ranges of rows
      // give the bits of one call. What the call checks before it changes any row (the
      // config here on no rows, the steps above) is checked first, so that no range can
      // fail after another has updated its rows.
      st = kernels::ApplyOptimizerRows(p.spec.optimizer, static_cast<int64_t>(width), {}, {}, g, grad_scale);
      RangeErrors errors;
      auto body = [&](size_t begin, size_t end) { errors.Note(begin, rows(begin, end)); };
      if (st.ok()) split_->For(kept, kSplitRange, body);
      if (st.ok()) st = errors.first();
    }
    if (!st.ok()) st = Status::Internal(st.ToString());
  }
  if (!st.ok()) {  // no update counted: every counter back (the rows' hashes are recomputed lazily)
    for (size_t i = 0; i < n; ++i) {
      if (found[i] != RowTable::kNoSlot) --t.updates(found[i]);
    }
  }
  if (st.ok() && p.policy.evicts()) Evict(p, step);
  return st;
}

void ShardStore::SetSplitWork(bool on) {
  if (!on) {
    split_.reset();
  } else if (split_ == nullptr) {
    split_ = std::make_unique<SplitWork>();
  }
}

void ShardStore::SetReusePullSlots(bool on) {
  reuse_pull_slots_ = on;
  for (Param& p : params_) p.pulls.Clear();
}

ChunkState* ShardStore::mutable_chunk(uint32_t param_id, uint64_t chunk_index) {
  const int64_t i = ChunkIndex(param_id, chunk_index);
  return i < 0 ? nullptr : &chunks_[static_cast<size_t>(i)];
}

Status ShardStore::RestoreRow(RowState row) {
  if (row.param_id >= params_.size() || !params_[row.param_id].rows) {
    return Status::Internal("RestoreRow: param " + std::to_string(row.param_id) + " is not sparse");
  }
  Param& p = params_[row.param_id];
  const uint64_t width = static_cast<uint64_t>(p.spec.numel());
  if (row.values.size() != width || row.slots.size() != SlotFloats(p.spec, width)) {
    return Status::Internal("RestoreRow: row of " + std::to_string(row.values.size()) + " values and " +
                            std::to_string(row.slots.size()) + " slots for param '" + p.spec.name + "'");
  }
  RowTable& t = *p.rows;
  uint32_t slot = t.Find(row.key);
  if (slot == RowTable::kNoSlot) {
    slot = t.Insert(row.key);
    if (!p.part_rows.empty()) {
      const uint32_t part = ShardMap::SparsePartitionOf(p.id, row.key);
      ++p.part_rows[part];
      p.part_keys[part].push_back(row.key);
      p.recheck = true;  // a budget lowered since the checkpoint: the next push's round trims
    }
  } else {
    t.BeginWrite(slot);
  }
  float* d = t.data(slot);
  std::memcpy(d, row.values.data(), width * sizeof(float));
  if (!row.slots.empty()) std::memcpy(d + width, row.slots.data(), row.slots.size() * sizeof(float));
  t.updates(slot) = row.updates;
  t.last_seen(slot) = static_cast<uint32_t>(std::clamp<int64_t>(row.last_seen, 0, UINT32_MAX));
  t.EndWrite(slot);
  return Status::OK();
}

void ShardStore::TrackDirtyRows(bool on) {
  for (Param& p : params_) {
    if (p.rows) p.rows->TrackDirty(on);
  }
}

void ShardStore::MarkDirty(uint32_t param_id, Key key) {
  if (param_id < params_.size() && params_[param_id].rows) params_[param_id].rows->MarkDirty(key);
}

std::vector<std::pair<uint32_t, Key>> ShardStore::TakeDirtyRows() {
  std::vector<std::pair<uint32_t, Key>> out;
  for (uint32_t id = 0; id < params_.size(); ++id) {
    if (!params_[id].rows) continue;
    for (const Key k : params_[id].rows->TakeDirty()) out.emplace_back(id, k);
  }
  return out;
}

void ShardStore::SnapshotDirtyInto(ShardSnapshot* out, std::vector<std::pair<uint32_t, Key>>* taken) {
  if (out != nullptr) {
    out->shard_map_version = version_;
    out->server = server_;
    out->erased.clear();
    SketchesInto(out);
  }
  taken->clear();
  size_t k = 0;
  std::vector<uint32_t> slots;
  std::vector<Key> erased;
  for (uint32_t id = 0; id < params_.size(); ++id) {
    if (!params_[id].rows) continue;
    RowTable& t = *params_[id].rows;
    t.TakeDirty(&slots, &erased);
    const bool seen = params_[id].policy.evicts();
    for (const Key key : erased) {
      taken->emplace_back(id, key);
      // Gone now (not re-created since): the resume must drop the parent's copy.
      if (out != nullptr && t.Find(key) == RowTable::kNoSlot) out->erased.emplace_back(id, key);
    }
    // In arena order, so the copies walk memory forwards (O(d log d) on d changed rows).
    std::sort(slots.begin(), slots.end());
    if (out != nullptr) out->rows.reserve(k + slots.size());
    constexpr size_t kAhead = 8;
    for (size_t i = 0; i < slots.size(); ++i) {
      if (i + kAhead < slots.size()) t.Prefetch(slots[i + kAhead]);
      const uint32_t slot = slots[i];
      if (!t.live(slot)) continue;
      if (out == nullptr) {
        taken->emplace_back(id, t.key(slot));
        continue;
      }
      if (k == out->rows.size()) out->rows.emplace_back();
      RowState& r = out->rows[k++];
      r.param_id = id;
      r.key = t.key(slot);
      r.updates = t.updates(slot);
      r.last_seen = seen ? int64_t{t.last_seen(slot)} : -1;
      const float* d = t.data(slot);
      r.values.assign(d, d + t.width());
      r.slots.assign(d + t.width(), d + t.stride());
      t.Settle(slot);  // the row is in cache now: its hash joins the digest here
      taken->emplace_back(id, r.key);
    }
  }
  if (out != nullptr) {
    out->rows.resize(k);
    std::sort(out->erased.begin(), out->erased.end());
    out->erased.erase(std::unique(out->erased.begin(), out->erased.end()), out->erased.end());
  }
}

ShardSnapshot ShardStore::Snapshot() const {
  ShardSnapshot snap;
  SnapshotInto(&snap);
  std::sort(snap.rows.begin(), snap.rows.end(), [](const RowState& a, const RowState& b) {
    return a.param_id != b.param_id ? a.param_id < b.param_id : a.key < b.key;
  });
  return snap;
}

void ShardStore::SnapshotInto(ShardSnapshot* out, bool with_dense) const {
  out->shard_map_version = version_;
  out->server = server_;
  out->chunks.resize(with_dense ? chunks_.size() : 0);
  for (size_t i = 0; i < out->chunks.size(); ++i) out->chunks[i] = chunks_[i];  // reuses capacity
  size_t n = 0;
  for (const Param& p : params_) n += p.rows ? p.rows->size() : 0;
  out->rows.resize(n);
  out->erased.clear();
  SketchesInto(out);
  size_t k = 0;
  for (uint32_t id = 0; id < params_.size(); ++id) {
    if (!params_[id].rows) continue;
    const RowTable& t = *params_[id].rows;
    const bool seen = params_[id].policy.evicts();
    for (uint32_t slot = 0; slot < t.slot_limit(); ++slot) {
      if (!t.live(slot)) continue;
      RowState& r = out->rows[k++];
      r.param_id = id;
      r.key = t.key(slot);
      r.updates = t.updates(slot);
      r.last_seen = seen ? int64_t{t.last_seen(slot)} : -1;
      const float* d = t.data(slot);
      r.values.assign(d, d + t.width());
      r.slots.assign(d + t.width(), d + t.stride());
      t.Settle(slot);  // the row is in cache now: its hash joins the digest here
    }
  }
}

uint64_t ShardStore::ChunkHash(const ChunkState& ch) const {
  const uint64_t seed =
      HashCombine(HashCombine(params_[ch.param_id].name_hash, ch.begin), static_cast<uint64_t>(ch.updates));
  const uint64_t v = Hash64(ch.values.data(), ch.values.size() * sizeof(float), seed);
  return Hash64(ch.slots.data(), ch.slots.size() * sizeof(float), v);
}

uint64_t ShardStore::SparseDigest() const {
  uint64_t h = 0;
  for (const Param& p : params_) h += p.rows ? p.rows->digest() : 0;
  return h;
}

uint64_t ShardStore::Digest() const {
  uint64_t h = SparseDigest();
  for (const ChunkState& ch : chunks_) h += ChunkHash(ch);
  return h;
}

}  // namespace tessera::paramserver
