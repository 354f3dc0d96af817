#include "paramserver/shard_store.h"

#include <algorithm>
#include <cstring>

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
  SplitErrors errors;
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
  p.odd_counters |= row.updates < 0 || row.updates > (int64_t{1} << 62);
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
