// PullSlots: the slots one sparse table's last few pulls resolved, so that the push of
// the same keys skips the index probes. In training a worker pushes exactly the keys it
// pulled for the batch (the gradient rows of the rows it read), and a steady push spent
// most of its time waiting on index lines the pull had already fetched once.
//
// Trust: nothing of a push but its keys is used. A push's keys are compared byte for byte
// (memcmp: sequential, ~1 ns per key) with a kept pull's, and its slots are used only
// while the table's generations say they still hold (RowTable::erase_generation: no row
// erased since, so every found slot is still its key's; insert_generation: no row
// created since, so every absent key is still absent; when rows were created, the keys
// the pull found absent are looked up again, one Find each, if they are few: at most
// kMaxRecheck of the batch). So a kept slot is exactly what the lookup would give, and
// any other push takes the lookup. Results are bitwise those of the lookup path
// (ShardStore does every per-row step either way).
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
  // The share of a batch (1 / kMaxRecheckDivisor) that may be looked up again one Find
  // at a time (not pipelined) after rows were created: beyond it the pipelined lookup of
  // the whole batch costs less.
  static constexpr size_t kMaxRecheckDivisor = 8;
  static constexpr uint32_t kAbsent = UINT32_MAX;  // RowTable::kNoSlot

  struct Generations {
    uint64_t erase = 0;   // RowTable::erase_generation
    uint64_t insert = 0;  // RowTable::insert_generation
  };

  // Keeps a pull of `keys` resolved at `gen`: returns the array (keys.size() slots, kAbsent
  // for absent keys) the caller fills before the table changes, or nullptr when the pull is
  // not kept (no keys, more than kMaxKeys).
  uint32_t* Record(std::span<const Key> keys, Generations gen) {
    if (keys.empty() || keys.size() > kMaxKeys) return nullptr;
    Entry& e = entries_[next_];
    next_ = (next_ + 1) % kEntries;
    e.keys.assign(keys.begin(), keys.end());
    e.slots.resize(keys.size());
    e.gen = gen;
    e.valid = true;
    return e.slots.data();
  }

  // The slots of a kept pull of exactly `keys` (same count, same bytes, same order) still
  // valid at `gen`; nullptr when there is none. *recheck: rows were created since, so the
  // caller must look up the keys whose slot is kAbsent again.
  const uint32_t* Match(std::span<const Key> keys, Generations gen, bool* recheck) const {
    if (keys.empty()) return nullptr;
    for (const Entry& e : entries_) {
      if (!e.valid || e.gen.erase != gen.erase || e.keys.size() != keys.size() || e.keys.front() != keys.front() ||
          e.keys.back() != keys.back() || std::memcmp(e.keys.data(), keys.data(), keys.size() * sizeof(Key)) != 0) {
        continue;
      }
      const bool created = e.gen.insert != gen.insert;
      if (created) {
        size_t absent = 0;
        for (const uint32_t s : e.slots) absent += s == kAbsent;
        if (absent * kMaxRecheckDivisor > keys.size()) continue;  // a later pull may have them
      }
      *recheck = created;
      return e.slots.data();
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
    Generations gen;
    bool valid = false;
  };
  std::array<Entry, kEntries> entries_;
  size_t next_ = 0;
};

}  // namespace tessera::paramserver
