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
// `recv_hwm`: replies ZeroMQ queues for it before it reads (a peer that never reads).
Result<std::unique_ptr<Socket>> RawWorkerSocket(const std::shared_ptr<Context>& ctx, uint64_t job_id, int rank,
                                                const std::string& endpoint, int recv_hwm = 1000);

// A valid PULL of elements [begin, end) of dense parameter `param_id`, any step (-1).
OutMessage DensePull(uint64_t shard_map_version, uint32_t param_id, int64_t begin, int64_t end);

}  // namespace tessera::wire::testing
