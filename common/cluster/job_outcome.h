// How a job ended, as every role reports it (Coordinator::Wait, ParamServer::Wait) and
// launch/job.cc turns into the process's exit code.
#pragma once

#include "common/status.h"

namespace tessera {

struct JobOutcome {
  Status status;     // OK when every worker finished with exit code 0
  int exit_code = 0; // see common/exit_codes.h
};

}  // namespace tessera
