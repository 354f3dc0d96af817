// RendezvousStore: the small key/value table through which a job's workers share a value
// that one of them creates, the NCCL unique id being the reason it exists (worker 0 calls
// ncclGetUniqueId and puts the 128 bytes; every other worker gets them before
// ncclCommInitRank). It lives in the coordinator because every launcher (tessera launch,
// mpirun, srun) already gives every process the coordinator's address, and nothing else.
//
// Values are write-once: a second put of the same bytes is accepted (a worker that retried
// after a lost reply), a put of different bytes is refused, so two workers can never
// bootstrap against different ids. Sizes and counts are bounded because the requests come
// from the network.
//
// Not thread-safe: owned by the coordinator's reactor thread.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "common/status.h"

namespace tessera {

class RendezvousStore {
 public:
  static constexpr size_t kMaxKeyBytes = 128;
  static constexpr size_t kMaxValueBytes = 4096;
  static constexpr size_t kMaxKeys = 64;

  // `who` names the putter in error messages and in the refusal of a later conflicting put.
  Status Put(const std::string& key, const std::string& value, const std::string& who);
  // The value under `key`; nullopt when nobody has put it yet (or the key is malformed).
  std::optional<std::string> Get(const std::string& key) const;
  // InvalidArgument for an empty or over-long key.
  static Status CheckKey(const std::string& key);

  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string value;
    std::string who;
  };
  std::map<std::string, Entry> entries_;
};

}  // namespace tessera
