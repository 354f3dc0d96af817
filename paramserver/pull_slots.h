// PullSlots: the slots one sparse table's last few pulls resolved, so that the push of
// the same keys skips the index probes. In training a worker pushes exactly the keys it
// pulled for the batch (the gradient rows of the rows it read), and a steady push spent
// most of its time waiting on index lines the pull had already fetched once.
//
// Trust: nothing of a push but its keys is used. A push's keys are compared byte for byte
// (memcmp: sequential, ~1 ns per key) with a kept pull's, and its slots are used only
// while the table's generation (RowTable::generation: every insert, erase and index
// rebuild changes it) is the one they were resolved at; so a kept slot is exactly what
// the lookup would give, and any other push takes the lookup. Results are bitwise those
// of the lookup path (ShardStore does every per-row step either way).
//
// Memory: kEntries pulls of at most kMaxKeys keys per table (12 bytes a key: at most
// 768 KB per table pulled, allocated once); a larger pull is not kept. Entries are
// overwritten in turn, so a server's few workers pulling one table each keep theirs
// until their push.
//
// Thread safety: none; part of a ShardStore, owned by the server's reactor thread.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "common/keys.h"

namespace tessera::paramserver {

class PullSlots {
 public:
  static constexpr size_t kEntries = 4;
  static constexpr size_t kMaxKeys = 16384;

  // Keeps a pull of `keys` resolved at `generation`: returns the array (keys.size()
  // slots) the caller fills before the table changes, or nullptr when the pull is not
  // kept (no keys, more than kMaxKeys).
  uint32_t* Record(std::span<const Key> keys, uint64_t generation) {
    if (keys.empty() || keys.size() > kMaxKeys) return nullptr;
    Entry& e = entries_[next_];
    next_ = (next_ + 1) % kEntries;
    e.keys.assign(keys.begin(), keys.end());
    e.slots.resize(keys.size());
    e.generation = generation;
    e.valid = true;
    return e.slots.data();
  }

  // The slots of a kept pull of exactly `keys` (same count, same bytes, same order) at
  // `generation`; nullptr when there is none.
  const uint32_t* Match(std::span<const Key> keys, uint64_t generation) const {
    if (keys.empty()) return nullptr;
    for (const Entry& e : entries_) {
      if (e.valid && e.generation == generation && e.keys.size() == keys.size() &&
          e.keys.front() == keys.front() && e.keys.back() == keys.back() &&
          std::memcmp(e.keys.data(), keys.data(), keys.size() * sizeof(Key)) == 0) {
        return e.slots.data();
      }
    }
    return nullptr;
  }

  // Forgets every kept pull (their memory stays for the next ones).
  void Clear() {
    for (Entry& e : entries_) e.valid = false;
  }

 private:
  struct Entry {
    std::vector<Key> keys;
    std::vector<uint32_t> slots;
    uint64_t generation = 0;
    bool valid = false;
  };
  std::array<Entry, kEntries> entries_;
  size_t next_ = 0;
};

}  // namespace tessera::paramserver
