#include "paramserver/shard_store.h"

#include <algorithm>
#include <cstring>

#include "common/hash.h"
#include "kernels/optimizer_step.h"
#include "kernels/param_init.h"

namespace tessera::paramserver {
namespace {

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

const RowState* ShardStore::row(uint32_t param_id, Key key) const {
  if (param_id >= params_.size()) return nullptr;
  auto it = params_[param_id].rows.find(key);
  return it == params_[param_id].rows.end() ? nullptr : &it->second;
}

uint64_t ShardStore::num_rows(uint32_t param_id) const {
  return param_id < params_.size() ? params_[param_id].rows.size() : 0;
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
  for (size_t i = 0; i < keys.size(); ++i) {
    float* dst = out.data() + i * width;
    auto it = p.rows.find(keys[i]);
    if (it != p.rows.end()) {
      std::memcpy(dst, it->second.values.data(), width * sizeof(float));
    } else {
      TESSERA_RETURN_IF_ERROR(InitializeSparseRow(p.spec, keys[i], View(dst, width)));
    }
  }
  return Status::OK();
}

Status ShardStore::ApplyDense(uint32_t param_id, uint64_t chunk_index, std::span<float> grad) {
  const int64_t i = ChunkIndex(param_id, chunk_index);
  if (i < 0) {
    return Status::Internal("ApplyDense: chunk " + std::to_string(chunk_index) + " of param " +
                            std::to_string(param_id) + " is not stored here");
  }
  ChunkState& ch = chunks_[static_cast<size_t>(i)];
  TESSERA_RETURN_IF_ERROR(
      kernels::ApplyUpdate(params_[param_id].spec.optimizer, ch.updates + 1, ch.values, ch.slots, grad));
  ++ch.updates;
  return Status::OK();
}

Status ShardStore::ApplySparse(uint32_t param_id, Key key, std::span<float> grad) {
  if (param_id >= params_.size() || params_[param_id].spec.kind != ParamKind::kSparse) {
    return Status::Internal("ApplySparse: param " + std::to_string(param_id) + " is not sparse");
  }
  Param& p = params_[param_id];
  const uint64_t width = static_cast<uint64_t>(p.spec.numel());
  auto [it, inserted] = p.rows.try_emplace(key);
  RowState& row = it->second;
  if (inserted) {
    row.param_id = param_id;
    row.key = key;
    row.values.resize(width);
    row.slots.resize(SlotFloats(p.spec, width));
    Status st = InitializeSparseRow(p.spec, key, View(row.values.data(), width));
    if (st.ok()) st = kernels::InitSlots(p.spec.optimizer, row.slots, width);
    if (!st.ok()) {
      p.rows.erase(it);  // leave no half-made row behind
      return st;
    }
  }
  TESSERA_RETURN_IF_ERROR(
      kernels::ApplyUpdate(p.spec.optimizer, row.updates + 1, row.values, row.slots, grad));
  ++row.updates;
  if (track_dirty_) dirty_.emplace_back(param_id, key);
  return Status::OK();
}

ChunkState* ShardStore::mutable_chunk(uint32_t param_id, uint64_t chunk_index) {
  const int64_t i = ChunkIndex(param_id, chunk_index);
  return i < 0 ? nullptr : &chunks_[static_cast<size_t>(i)];
}

Status ShardStore::RestoreRow(RowState row) {
  if (row.param_id >= params_.size() || params_[row.param_id].spec.kind != ParamKind::kSparse) {
    return Status::Internal("RestoreRow: param " + std::to_string(row.param_id) + " is not sparse");
  }
  Param& p = params_[row.param_id];
  const uint64_t width = static_cast<uint64_t>(p.spec.numel());
  if (row.values.size() != width || row.slots.size() != SlotFloats(p.spec, width)) {
    return Status::Internal("RestoreRow: row of " + std::to_string(row.values.size()) + " values and " +
                            std::to_string(row.slots.size()) + " slots for param '" + p.spec.name + "'");
  }
  const Key key = row.key;
  p.rows.insert_or_assign(key, std::move(row));
  return Status::OK();
}

std::vector<std::pair<uint32_t, Key>> ShardStore::TakeDirtyRows() {
  std::vector<std::pair<uint32_t, Key>> out;
  out.swap(dirty_);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

ShardSnapshot ShardStore::Snapshot() const {
  ShardSnapshot snap;
  snap.shard_map_version = version_;
  snap.server = server_;
  snap.chunks = chunks_;
  for (const Param& p : params_) {
    const size_t first = snap.rows.size();
    for (const auto& [key, row] : p.rows) snap.rows.push_back(row);
    std::sort(snap.rows.begin() + static_cast<ptrdiff_t>(first), snap.rows.end(),
              [](const RowState& a, const RowState& b) { return a.key < b.key; });
  }
  return snap;
}

void ShardStore::SnapshotInto(ShardSnapshot* out, bool with_dense) const {
  out->shard_map_version = version_;
  out->server = server_;
  out->chunks.resize(with_dense ? chunks_.size() : 0);
  for (size_t i = 0; i < out->chunks.size(); ++i) out->chunks[i] = chunks_[i];  // reuses capacity
  size_t n = 0;
  for (const Param& p : params_) n += p.rows.size();
  out->rows.resize(n);
  size_t k = 0;
  for (const Param& p : params_) {
    const size_t first = k;
    for (const auto& [key, row] : p.rows) out->rows[k++] = row;
    std::sort(out->rows.begin() + static_cast<ptrdiff_t>(first), out->rows.begin() + static_cast<ptrdiff_t>(k),
              [](const RowState& a, const RowState& b) { return a.key < b.key; });
  }
}

uint64_t ShardStore::Digest() const {
  uint64_t h = Fnv1a64(nullptr, 0);
  for (const ChunkState& ch : chunks_) {
    h = Fnv1a64(ch.values.data(), ch.values.size() * sizeof(float), h);
  }
  std::vector<const RowState*> rows;
  for (const Param& p : params_) {
    rows.clear();
    for (const auto& [key, row] : p.rows) rows.push_back(&row);
    std::sort(rows.begin(), rows.end(),
              [](const RowState* a, const RowState* b) { return a->key < b->key; });
    for (const RowState* row : rows) {
      h = Fnv1a64(&row->key, sizeof(row->key), h);
      h = Fnv1a64(row->values.data(), row->values.size() * sizeof(float), h);
    }
  }
  return h;
}

}  // namespace tessera::paramserver
