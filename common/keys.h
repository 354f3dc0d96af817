// Keys of sparse tables and ranges of dense tensors.
#pragma once

#include <cstdint>

namespace tessera {

using Key = uint64_t;

// Half-open [begin, end).
struct KeyRange {
  uint64_t begin = 0;
  uint64_t end = 0;
  uint64_t size() const { return end > begin ? end - begin : 0; }
  bool Contains(uint64_t k) const { return k >= begin && k < end; }
  bool Covers(const KeyRange& r) const { return r.begin >= begin && r.end <= end && r.begin <= r.end; }
  friend bool operator==(const KeyRange&, const KeyRange&) = default;
};

}  // namespace tessera
