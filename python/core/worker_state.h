// A Python worker's own part of a checkpoint (tessera.save_worker_state, docs/python.md):
// opaque bytes the script chooses (its data cursor, its RNG states), written into the
// prepared step directory next to the servers' databases before the worker answers the
// prepare, so the commit covers them. One file per worker:
//
//   <step dir>/worker-<i>.pystate := "TSPYSTATE1" u32 crc32c(bytes) u64 length bytes
//
// (little-endian). A file that does not parse is Corruption naming the path, never
// bytes handed back to the script.
//
// Thread safety: pure functions over the file system.
#pragma once

#include <optional>
#include <string>

#include "common/status.h"

namespace tessera::python {

std::string WorkerStatePath(const std::string& step_dir, int worker_index);

// Writes atomically (tmp, fsync, rename, fsync dir).
Status WriteWorkerState(const std::string& step_dir, int worker_index, const std::string& bytes);

// nullopt when the checkpoint holds no state of this worker (the script saved none).
Result<std::optional<std::string>> ReadWorkerState(const std::string& step_dir, int worker_index);

}  // namespace tessera::python
