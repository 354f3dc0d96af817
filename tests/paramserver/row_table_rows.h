// Row helpers shared by the row store's tests (row_table_test.cc, row_table_probe_test.cc):
// rows written through RowTable's digest hooks, and the digest recomputed from scratch.
#pragma once

#include <algorithm>
#include <cstdint>

#include "paramserver/row_table.h"

namespace tessera::paramserver::testing {

// Writes `v` into every float of the row and sets its counter, through the digest hooks.
inline void WriteRow(RowTable& t, uint32_t slot, float v, int64_t updates) {
  t.BeginWrite(slot);
  std::fill(t.data(slot), t.data(slot) + t.stride(), v);
  t.updates(slot) = updates;
  t.EndWrite(slot);
}

inline uint32_t InsertRow(RowTable& t, Key k, float v, int64_t updates = 1) {
  const uint32_t slot = t.Insert(k);
  std::fill(t.data(slot), t.data(slot) + t.stride(), v);
  t.updates(slot) = updates;
  t.EndWrite(slot);
  return slot;
}

// The digest recomputed from every live slot.
inline uint64_t Recomputed(const RowTable& t) {
  uint64_t h = 0;
  for (uint32_t s = 0; s < t.slot_limit(); ++s) {
    if (t.live(s)) h += t.RowHash(s);
  }
  return h;
}

}  // namespace tessera::paramserver::testing
