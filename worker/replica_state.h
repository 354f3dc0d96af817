// The workers' side of checkpoints under --sync=allreduce|hybrid (docs/checkpoints.md):
// every worker holds the same copy of the all-reduced dense parameters and their
// optimizer state, so worker 0 writes it, at the checkpoint's step boundary, as one more
// part of the checkpoint (checkpoint::kReplicaPart, a RocksDB database of the same dense
// records a server writes: keyed by parameter and first element, with slots and the
// update counter). On resume every worker reads it back.
//
// Because the records are a server's, either side can read what the other wrote: a job
// checkpointed under bsp resumes under allreduce (the dense chunks come from the
// servers' parts) and the other way round (the servers restore them from the replica).
//
// Thread safety: called by the training thread while no all-reduce is in flight (at a
// step boundary and before the first step).
#pragma once

#include <string>

#include "checkpoint/shard_db.h"
#include "common/status.h"
#include "worker/grad_sync.h"

namespace tessera::worker {

// Writes the all-reduced parameters' values, slots and update counters into a new
// database at `dir` (which must not exist). The stats carry the digest and record count
// the coordinator puts in the manifest.
Result<checkpoint::WriteStats> WriteReplica(GradSync& sync, const std::string& dir, checkpoint::WriteMethod method);

// Restores them from the checkpoint at `step_dir`, reading its dense records from every
// part (the replica and the servers'), whatever chunk size wrote them. Corruption naming
// the parameter when a range is not covered exactly once or a record's slots do not
// match the parameter's optimizer. After an error the parameters are partly loaded: the
// caller fails the worker rather than train from them.
Status LoadReplica(GradSync& sync, const std::string& step_dir);

}  // namespace tessera::worker
