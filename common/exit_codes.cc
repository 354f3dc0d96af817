#include "common/exit_codes.h"

#include "common/status.h"

namespace tessera {

int ExitCodeForStatusCode(int code) {
  switch (static_cast<StatusCode>(code)) {
    case StatusCode::kOk: return kExitOk;
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kCorruption:
    case StatusCode::kVersionMismatch:
    case StatusCode::kFailedPrecondition: return kExitConfig;
    case StatusCode::kUnavailable:
    case StatusCode::kAborted: return kExitPeerFailure;
    case StatusCode::kTimedOut: return kExitTimeout;
    default: return kExitFailure;
  }
}

}  // namespace tessera
