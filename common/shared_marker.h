// The shared-directory check: rank 0 writes a marker file into --checkpoint_dir and
// tells every peer that reads or writes checkpoints its path (Welcome.sharedMarker). A
// peer on a node where that directory is node-local (not the shared file system the
// checkpoints need) does not see the file, and the job is refused at start, naming the
// node, instead of writing half a checkpoint there.
#pragma once

#include <string>

#include "common/status.h"

namespace tessera {

// OK when `marker` is "" (nothing to check) or exists. Otherwise kFailedPrecondition
// naming this host and the file.
Status CheckSharedMarker(const std::string& marker);

}  // namespace tessera
