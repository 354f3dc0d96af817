// Process exit codes of every Tessera role, documented in docs/operations.md. Batch
// scripts branch on them: "resume from checkpoint" vs "configuration error, do not retry".
#pragma once

namespace tessera {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;        // an unexpected internal error
inline constexpr int kExitConfig = 2;         // bad flags, bad data, model mismatch: do not retry
inline constexpr int kExitPeerFailure = 3;    // a peer died or became unreachable: resume and retry
inline constexpr int kExitTimeout = 4;        // a bounded wait ran out (registration, stall): retry
inline constexpr int kExitPreempted = 75;     // checkpointed on a signal (EX_TEMPFAIL): requeue

// Exit code for a failure Status: configuration-type errors are not worth a retry.
int ExitCodeForStatusCode(int status_code);

}  // namespace tessera
