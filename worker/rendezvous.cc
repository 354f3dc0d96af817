#include "worker/rendezvous.h"

namespace tessera::worker {

Result<std::string> ShareFromWorkerZero(Client& client, const std::string& key,
                                        const std::function<Result<std::string>()>& make, Duration timeout) {
  if (client.worker_index() == 0) {
    TESSERA_ASSIGN_OR_RETURN(std::string value, make());
    TESSERA_RETURN_IF_ERROR(client.RendezvousPut(key, value, timeout));
  }
  // Worker 0 reads its own value back too: every worker then holds the coordinator's copy,
  // the one that the write-once rule made unique.
  return client.RendezvousGet(key, timeout);
}

}  // namespace tessera::worker
