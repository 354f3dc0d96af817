// The checkpoint and preemption flags of a job (docs/checkpoints.md) and the options
// they make for the coordinator and the servers.
#pragma once

#include "common/status.h"
#include "coordinator/checkpoint_driver.h"
#include "checkpoint/shard_db.h"

namespace tessera::launch {

// Job facts (sync, grad_reduce, chunk_bytes) are filled by the caller.
CheckpointOptions CheckpointOptionsFromFlags();
Result<checkpoint::WriteMethod> CheckpointWriteMethodFromFlags();
double PreemptGraceSeconds();

}  // namespace tessera::launch
