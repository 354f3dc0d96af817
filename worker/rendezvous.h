// ShareFromWorkerZero: one value made by worker 0 and handed to every worker through the
// coordinator (Client::RendezvousPut/Get). This is how the workers of a job agree on an
// NCCL unique id without MPI: worker 0 calls NcclCommunicator::NewUniqueId, the others
// wait for its bytes (docs/collective.md "NCCL"). Any launcher works, since every process
// already knows the coordinator's address.
//
// Thread safety: as Client's public methods (any thread).
#pragma once

#include <functional>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "worker/client.h"

namespace tessera::worker {

// Worker 0 calls `make` and puts its bytes under `key`; every worker (worker 0 included)
// returns the value stored there. Fails with make's error on worker 0, and on the others
// with TimedOut when worker 0 did not put the key within `timeout`.
Result<std::string> ShareFromWorkerZero(Client& client, const std::string& key,
                                        const std::function<Result<std::string>()>& make, Duration timeout);

}  // namespace tessera::worker
