// A bare DEALER that speaks as a worker (the sender stamp of `rank`), for tests that
// send hand-made requests to a server or the coordinator beside a real Client.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "wire/socket.h"

namespace tessera::wire::testing {

// Connected to `endpoint` (asynchronously, as every ZeroMQ connect). Errors: socket
// creation or a malformed endpoint.
Result<std::unique_ptr<Socket>> RawWorkerSocket(const std::shared_ptr<Context>& ctx, uint64_t job_id, int rank,
                                                const std::string& endpoint);

}  // namespace tessera::wire::testing
