#include "coordinator/rendezvous_store.h"

namespace tessera {

Status RendezvousStore::CheckKey(const std::string& key) {
  if (key.empty()) return Status::InvalidArgument("rendezvous key is empty");
  if (key.size() > kMaxKeyBytes) {
    return Status::InvalidArgument("rendezvous key of " + std::to_string(key.size()) + " bytes; at most " +
                                   std::to_string(kMaxKeyBytes));
  }
  return Status::OK();
}

Status RendezvousStore::Put(const std::string& key, const std::string& value, const std::string& who) {
  TESSERA_RETURN_IF_ERROR(CheckKey(key));
  if (value.size() > kMaxValueBytes) {
    return Status::ResourceExhausted("rendezvous value for '" + key + "' of " + std::to_string(value.size()) +
                                     " bytes; at most " + std::to_string(kMaxValueBytes));
  }
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    if (it->second.value == value) return Status::OK();
    return Status::FailedPrecondition("rendezvous key '" + key + "' already holds a different value, put by " +
                                      it->second.who + " (" + who + " tried to replace it)");
  }
  if (entries_.size() >= kMaxKeys) {
    return Status::ResourceExhausted("rendezvous table full (" + std::to_string(kMaxKeys) + " keys); '" + key +
                                     "' from " + who + " refused");
  }
  entries_.emplace(key, Entry{value, who});
  return Status::OK();
}

std::optional<std::string> RendezvousStore::Get(const std::string& key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second.value;
}

}  // namespace tessera
