// `tessera status ADDRESS`: asks a running job's coordinator (Op::STATUS, tool role) for
// the job's state and prints it (docs/metrics.md, "tessera status").
//
//   tessera status 127.0.0.1:5555 [--json] [--timeout_s=5] [--key_file=PATH | --job_dir=DIR]
//
// With CURVE (the default for `tessera launch` jobs) the job's key file is needed:
// --key_file, else DIR/job.key for --job_dir, else $TESSERA_AUTH_KEY_FILE. A handshake
// the coordinator refuses (no key, wrong key) is reported as such, found through a
// ZeroMQ socket monitor, instead of waiting for the timeout.
//
// Exit codes: 0 answered; 2 bad usage, bad key file or refused by the coordinator;
// 3 no answer within --timeout_s (nothing listening, wrong address, job gone).
//
// Threading: single-threaded (its own context and socket).
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "wire/tessera.capnp.h"

namespace tessera::launch {

int StatusMain(int argc, char** argv);

// The human-readable report of one JobStatus (exposed for tests).
std::string FormatStatus(wire::capnp::JobStatus::Reader js, uint64_t job_id);
// One JSON object (no newline).
std::string StatusJson(wire::capnp::JobStatus::Reader js, uint64_t job_id);

}  // namespace tessera::launch
