// ShardStore's sparse push (ApplySparseRows, ApplySparseRowsReadOnly): the general path
// (lookups, row creation, admission, eviction) and PushResident, the steady state's
// push of a pull's keys, all resident.
#include <algorithm>
#include <atomic>
#include <cstring>

#include "kernels/ops.h"
#include "kernels/optimizer_step.h"
#include "kernels/param_init.h"
#include "paramserver/shard_store.h"

namespace tessera::paramserver {
namespace {

TensorView View(float* data, uint64_t n) {
  return TensorView{data, DType::kF32, {static_cast<int64_t>(n)}, Device::kCPU};
}

}  // namespace

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
  if (known != nullptr && !p.odd_counters && std::find(known, known + n, RowTable::kNoSlot) == known + n) {
    ++reused_pushes_;
    return PushResident(p, std::span<const uint32_t>(known, n), const_cast<float*>(grads.data()), step, grad_scale);
  }
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
      SplitErrors errors;
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

// One pass per range of rows: each row opened (out of the digest, dirty), counted and
// noted while the record prefetch has it in cache, and every kBlock rows the optimizer
// call over them, while they are still in L1. The general path's visit pass and optimizer
// pass each walked all 4096 records of a steady push (512 KB: L2 at best).
//
// With SplitWork the ranges run on two threads, each range's rows its own (distinct
// keys): the bit sets are set atomically (RowTable's *Shared calls), the digest's total
// and the new dirty slots are gathered and handed to the table after the join, so the
// table ends as the one-thread pass leaves it (dirty slots in key order).
//
// Only for counters a push cannot break (p.odd_counters: none restored below 0 or near
// the top), so every step is >= 1 and, with the config checked first on no rows, no
// range refuses after another has updated its rows (the general path's guarantee).
Status ShardStore::PushResident(Param& p, std::span<const uint32_t> slots, float* grads, int64_t step,
                                float grad_scale) {
  RowTable& t = *p.rows;
  const auto width = static_cast<int64_t>(t.width());
  const OptimizerConfig& cfg = p.spec.optimizer;
  Status st = kernels::ApplyOptimizerRows(cfg, width, {}, {}, grads, grad_scale);
  if (!st.ok()) return Status::Internal(st.ToString());
  const bool track_seen = p.policy.evicts();
  const auto seen = static_cast<uint32_t>(std::clamp<int64_t>(step, 0, UINT32_MAX));
  const size_t n = slots.size();
  const bool shared = split_ != nullptr && n >= kSplitMinKeys;
  const bool dirty = shared && t.tracks_dirty();
  if (dirty) dirty_scratch_.assign(n, RowTable::kNoSlot);
  std::atomic<uint64_t> taken{0};
  SplitErrors errors;
  auto range = [&](size_t begin, size_t end) {
    constexpr size_t kBlock = kSplitRange;
    float* rows[kBlock];
    int64_t steps[kBlock];
    size_t len = 0, block = begin;
    uint64_t out = 0;
    Status rst;
    t.ForEachKnownSlot<true>(slots.subspan(begin, end - begin), [&](size_t j, uint32_t slot) {
      if (shared) {
        out += t.BeginWriteShared(slot);
        if (dirty && t.EndWriteShared(slot)) dirty_scratch_[begin + j] = slot;
      } else {
        t.BeginWrite(slot);
        t.EndWrite(slot);
      }
      if (track_seen) t.last_seen(slot) = seen;
      int64_t& updates = t.updates(slot);
      rows[len] = t.data(slot);
      steps[len] = ++updates;
      if (++len == kBlock || begin + j + 1 == end) {
        if (rst.ok()) {
          rst = kernels::ApplyOptimizerRows(cfg, width, {rows, len}, {steps, len},
                                            grads + static_cast<int64_t>(block) * width, grad_scale);
        }
        block += len;
        len = 0;
      }
    });
    taken.fetch_add(out, std::memory_order_relaxed);
    errors.Note(begin, std::move(rst));
  };
  if (shared) {
    split_->For(n, kSplitRange, range);
  } else {
    range(0, n);
  }
  t.TakeFromDigest(taken.load(std::memory_order_relaxed));
  if (dirty) {
    for (const uint32_t slot : dirty_scratch_) {
      if (slot != RowTable::kNoSlot) t.AppendDirty(slot);
    }
  }
  st = errors.first();
  if (!st.ok()) {  // no update counted, as on the general path
    for (const uint32_t slot : slots) --t.updates(slot);
    return Status::Internal(st.ToString());
  }
  if (p.policy.evicts()) Evict(p, step);
  return Status::OK();
}

}  // namespace tessera::paramserver
