// ShardStore's sparse-table policies: the memory budget per key partition (eviction),
// expiry and admission (docs/consistency.md, "Eviction, expiry and admission"), and their
// checkpointed state (the sketches, erased rows). Split from shard_store.cc, which keeps
// the stores' reads, the optimizer applies, restore and snapshots; same class, same
// thread (the server's reactor owns the store).
#include <algorithm>

#include "common/cluster/shard_map.h"
#include "common/hash.h"
#include "paramserver/shard_store.h"

namespace tessera::paramserver {

void ShardStore::Evict(Param& p, int64_t step) {
  RowTable& t = *p.rows;
  const TablePolicy& pol = p.policy;
  victims_.clear();
  if (pol.expiry_steps > 0 && step >= pol.expiry_steps && step % std::max<int64_t>(1, pol.expiry_steps / 4) == 0 &&
      step != p.swept_step) {
    p.swept_step = step;  // once per step (ssp/asp apply several pushes per step)
    // Unseen for expiry_steps steps or more: last_seen <= step - expiry_steps.
    t.SeenBefore(static_cast<uint32_t>(std::min<int64_t>(step - pol.expiry_steps + 1, UINT32_MAX)), &victims_);
    for (const Key k : victims_) {
      t.Erase(k);
      if (!p.part_rows.empty()) CountErase(p, k);
    }
    p.stats.expired += victims_.size();
    victims_.clear();
  }
  if (p.recheck) {
    p.recheck = false;
    for (uint32_t part = 0; part < p.part_rows.size(); ++part) {
      if (p.part_rows[part] > PartitionShare(p.cap_rows, part) && !p.over_flag[part]) {
        p.over_flag[part] = 1;
        p.over.push_back(part);
      }
    }
  }
  if (!p.over.empty()) EvictPartitions(p);
}

uint64_t ShardStore::PartitionShare(uint64_t total, uint32_t part) {
  // total = q P + r: q each, and one more for partitions 0..r-1. A run of consecutive
  // partitions falls evenly on the servers of any count (partition p is on p % S), so
  // every server's shares sum to total / S, +-1.
  const uint64_t q = total / kSparsePartitions, r = total % kSparsePartitions;
  return q + (part < r ? 1 : 0);
}

void ShardStore::CountInsert(Param& p, Key key) {
  const uint32_t part = ShardMap::SparsePartitionOf(p.id, key);
  const uint32_t rows = ++p.part_rows[part];
  std::vector<Key>& keys = p.part_keys[part];
  keys.push_back(key);
  if ((rows > PartitionShare(p.cap_rows, part) || keys.size() > 2 * uint64_t{rows} + 16) && !p.over_flag[part]) {
    p.over_flag[part] = 1;
    p.over.push_back(part);
  }
}

void ShardStore::CountErase(Param& p, Key key) { --p.part_rows[ShardMap::SparsePartitionOf(p.id, key)]; }

void ShardStore::EvictPartitions(Param& p) {
  RowTable& t = *p.rows;
  // Each partition alone: its victims depend on its own rows only, whichever others are
  // visited with it.
  for (const uint32_t part : p.over) {
    p.over_flag[part] = 0;
    std::vector<Key>& keys = p.part_keys[part];
    std::vector<uint32_t>& slots = read_scratch_;
    slots.resize(keys.size());
    t.FindMany(keys, slots.data());
    candidates_.clear();
    for (size_t i = 0; i < keys.size(); ++i) {
      if (slots[i] != RowTable::kNoSlot) {
        candidates_.push_back({t.last_seen(slots[i]), Mix64(keys[i] ^ p.name_hash), keys[i]});
      }
    }
    // A key erased and created again is listed twice: once is its row.
    std::sort(candidates_.begin(), candidates_.end(), [](const Candidate& x, const Candidate& y) { return x.key < y.key; });
    candidates_.erase(std::unique(candidates_.begin(), candidates_.end(),
                                  [](const Candidate& x, const Candidate& y) { return x.key == y.key; }),
                      candidates_.end());
    // Over when it passed its share, unless the expiry sweep of this push brought it back.
    size_t first = 0;
    if (candidates_.size() > PartitionShare(p.cap_rows, part)) {
      const uint64_t keep = PartitionShare(p.keep_rows, part);
      first = candidates_.size() - keep;
      std::nth_element(candidates_.begin(), candidates_.begin() + static_cast<ptrdiff_t>(first), candidates_.end());
      for (size_t i = 0; i < first; ++i) t.Erase(candidates_[i].key);
      p.stats.evicted += first;
    }
    keys.clear();
    for (size_t i = first; i < candidates_.size(); ++i) keys.push_back(candidates_[i].key);
    p.part_rows[part] = static_cast<uint32_t>(keys.size());
  }
  p.over.clear();
}

uint64_t ShardStore::partition_rows(uint32_t param_id, uint32_t part) const {
  if (table(param_id) == nullptr || part >= params_[param_id].part_rows.size()) return 0;
  return params_[param_id].part_rows[part];
}

uint64_t ShardStore::partition_cap(uint32_t param_id, uint32_t part) const {
  if (table(param_id) == nullptr || params_[param_id].part_rows.empty()) return 0;
  return PartitionShare(params_[param_id].cap_rows, part);
}

Status ShardStore::SetTablePolicy(uint32_t param_id, const TablePolicy& policy) {
  if (param_id >= params_.size() || !params_[param_id].rows) {
    return Status::InvalidArgument("param " + std::to_string(param_id) + " is not a sparse table");
  }
  Param& p = params_[param_id];
  if (p.rows->size() > 0) {
    return Status::InvalidArgument("table '" + p.spec.name + "' already holds rows: set its policy first");
  }
  const uint32_t w = policy.sketch_width;
  if (policy.min_key_count > 1 && (w < 64 || (w & (w - 1)) != 0)) {
    return Status::InvalidArgument("admission sketch width " + std::to_string(w) + " is not a power of two >= 64");
  }
  if (policy.expiry_steps < 0) return Status::InvalidArgument("negative expiry");
  if (policy.memory_servers < 1) return Status::InvalidArgument("memory_servers must be >= 1");
  p.policy = policy;
  p.rows->HashLastSeen(policy.evicts());
  p.part_rows.clear();
  p.part_keys.clear();
  p.over.clear();
  p.over_flag.clear();
  if (policy.memory_limit > 0) {
    // B = limit * servers (saturating), in whole rows.
    const uint64_t limit = policy.memory_limit;
    const uint64_t budget = limit > UINT64_MAX / policy.memory_servers ? UINT64_MAX : limit * policy.memory_servers;
    const uint64_t row = p.rows->RowBytes();
    p.cap_rows = budget / row;
    p.keep_rows = budget / 10 * 9 / row;
    p.part_rows.assign(kSparsePartitions, 0);
    p.part_keys.assign(kSparsePartitions, {});
    p.over_flag.assign(kSparsePartitions, 0);
  }
  if (policy.min_key_count > 1) {
    p.sketch.emplace(w, p.name_hash, p.id);  // partitioned when w >= 840: exact on a reshard
  } else {
    p.sketch.reset();
  }
  return Status::OK();
}

const TablePolicy* ShardStore::table_policy(uint32_t param_id) const {
  return table(param_id) == nullptr ? nullptr : &params_[param_id].policy;
}

TableStats ShardStore::table_stats(uint32_t param_id) const {
  return table(param_id) == nullptr ? TableStats{} : params_[param_id].stats;
}

const CountMinSketch* ShardStore::sketch(uint32_t param_id) const {
  return param_id < params_.size() && params_[param_id].sketch ? &*params_[param_id].sketch : nullptr;
}

void ShardStore::RestoreErase(uint32_t param_id, Key key) {
  if (param_id >= params_.size() || !params_[param_id].rows) return;
  Param& p = params_[param_id];
  if (!p.part_rows.empty() && p.rows->Find(key) != RowTable::kNoSlot) CountErase(p, key);
  p.rows->Erase(key);
}

Status ShardStore::RestoreSketch(uint32_t param_id, std::span<const float> counts, bool add) {
  if (param_id >= params_.size() || !params_[param_id].sketch) {
    return Status::InvalidArgument("param " + std::to_string(param_id) + " has no admission sketch");
  }
  return params_[param_id].sketch->Load(counts, add);
}

void ShardStore::SketchesInto(ShardSnapshot* out) const {
  size_t k = 0;
  for (uint32_t id = 0; id < params_.size(); ++id) {
    if (!params_[id].sketch) continue;
    if (k == out->sketches.size()) out->sketches.emplace_back();
    SketchState& s = out->sketches[k++];
    s.param_id = id;
    s.width = params_[id].sketch->width();
    params_[id].sketch->CountsInto(&s.counts);
  }
  out->sketches.resize(k);
}

}  // namespace tessera::paramserver
