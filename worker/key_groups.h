// Grouping a batch's sparse keys on the worker, for PushSparse (merge duplicate keys'
// gradients) and PullSparse (ask each server once per distinct key, then copy the reply
// row to every output row that wants it).
//
// A stable LSD radix sort of (key, position) pairs, one byte per pass, skipping the
// bytes in which every key agrees (keys below 2^24 take 3 passes): O(n), no comparator
// calls and no allocation per key. Distinct keys come out ascending, which is the order
// a server trusts without sorting (paramserver/server_core.cc).
//
// GroupAndSplitKeys also splits the distinct keys by owning server, so that the push of a
// step's pulled keys, which reuses the pull's grouping (Client::GroupsOf), reuses the
// split as well: at 2 servers the split (a hash and two divisions per key) ran twice per
// step and was 5 % of a steady 2x2 job's CPU.
//
// Thread safety: pure over its arguments.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/cluster/shard_map.h"
#include "common/keys.h"
#include "common/status.h"

namespace tessera::worker {

struct KeyGroups {
  std::vector<Key> unique;          // distinct keys, ascending
  std::vector<uint32_t> begin;      // unique.size() + 1 offsets into `positions`
  std::vector<uint32_t> positions;  // input indices, grouped by key, ascending within a group
  // `unique` by owner (ShardMap::SplitSparse; positions index `unique`), filled only by
  // GroupAndSplitKeys.
  SparseSplit split;
};

// Fills *out for `keys`. InvalidArgument for 2^32 keys or more.
Status GroupKeys(std::span<const Key> keys, KeyGroups* out);
// GroupKeys, then out->split = map.SplitSparse(param_id, out->unique); that call's errors.
Status GroupAndSplitKeys(std::span<const Key> keys, const ShardMap& map, uint32_t param_id, KeyGroups* out);

// Row u of `out` ([groups.unique.size(), width]) = the sum of grads' rows of group u,
// the first copied, the rest added in input order (kernels::ScatterAddUnique's order, so
// the same bits). `rows` selects and orders the groups written: out row j is group
// rows[j]. REQUIRES grads has one row of `width` per input key.
void SumGroups(const KeyGroups& groups, std::span<const uint64_t> rows, const float* grads, uint64_t width,
               float* out);

// SumGroups' inverse, for a pull's reply: row j of `rows_in` ([rows.size(), width]) is
// copied to every output row of group rows[j] (out is [input keys, width]).
void ScatterGroups(const KeyGroups& groups, std::span<const uint64_t> rows, const float* rows_in, uint64_t width,
                   float* out);

}  // namespace tessera::worker
