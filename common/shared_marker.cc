#include "common/shared_marker.h"

#include <sys/stat.h>

#include "common/hostname.h"

namespace tessera {

Status CheckSharedMarker(const std::string& marker) {
  if (marker.empty()) return Status::OK();
  struct stat sb;
  if (::stat(marker.c_str(), &sb) == 0) return Status::OK();
  const auto slash = marker.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : marker.substr(0, slash);
  return Status::FailedPrecondition("node " + Hostname() + " cannot see " + marker +
                                    ", which rank 0 wrote into --checkpoint_dir=" + dir +
                                    ": that directory is not shared with rank 0's node here (node-local scratch?); "
                                    "put --checkpoint_dir on a file system every node mounts");
}

}  // namespace tessera
