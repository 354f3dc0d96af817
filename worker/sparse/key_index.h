// KeyIndex: maps the keys of one batch to dense row numbers 0..U-1 in first-seen order
// (the dedup step before a sparse pull/push). Open addressing with linear probing in a
// power-of-two table that is cleared, not freed, between batches, so a steady-state
// batch allocates nothing.
//
// Thread safety: one thread at a time.
#pragma once

#include <cstdint>
#include <vector>

#include "common/hash.h"
#include "common/keys.h"

namespace tessera::worker::sparse {

class KeyIndex {
 public:
  // Forgets every key; sizes the table for about `expected` distinct keys.
  void Reset(size_t expected);
  // Row of `key`, adding it when new.
  int32_t Insert(Key key) {
    if ((keys_.size() + 1) * 2 > slots_.size()) Grow();
    size_t i = Mix64(key) & mask_;
    for (;;) {
      const int32_t r = slots_[i];
      if (r < 0) {
        slots_[i] = static_cast<int32_t>(keys_.size());
        keys_.push_back(key);
        return slots_[i];
      }
      if (keys_[r] == key) return r;
      i = (i + 1) & mask_;
    }
  }
  const std::vector<Key>& keys() const { return keys_; }
  size_t size() const { return keys_.size(); }

 private:
  void Grow();

  std::vector<int32_t> slots_;  // -1 empty, else index into keys_
  std::vector<Key> keys_;
  size_t mask_ = 0;
};

}  // namespace tessera::worker::sparse
