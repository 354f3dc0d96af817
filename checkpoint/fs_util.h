// File-system steps of a checkpoint that must be durable and atomic (POSIX).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace tessera::checkpoint {

// fsync of a directory, so a rename or a new entry in it survives a crash.
Status FsyncDir(const std::string& dir);

// Writes `content` to `path` atomically: `path`.tmp, fsync, rename over `path`, fsync
// the directory. A crash at any point leaves either no `path` or the whole of it. The
// crash points "manifest_mid_write", "before_rename", "after_rename",
// "before_dir_fsync" are passed in that order (checkpoint/crash_point.h); the fail point
// "manifest_dir_fsync" fails the last step.
// `*in_place` (when given) says whether `path` holds `content` on return. An error with
// *in_place == true means only the directory fsync failed: the file is visible to every
// reader now (a resume would use it) but may not survive a power loss.
Status WriteFileAtomically(const std::string& path, const std::string& content, bool* in_place = nullptr);

Result<std::string> ReadWholeFile(const std::string& path);

struct FileEntry {
  std::string name;  // relative to the directory listed
  uint64_t size = 0;
};
// Regular files under `dir`, recursively, sorted by name.
Result<std::vector<FileEntry>> ListFiles(const std::string& dir);

}  // namespace tessera::checkpoint
