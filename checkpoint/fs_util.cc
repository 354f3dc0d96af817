#include "checkpoint/fs_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "checkpoint/crash_point.h"

namespace tessera::checkpoint {
namespace fs = std::filesystem;

namespace {
Status Errno(const std::string& what) { return Status::IOError(what + ": " + std::strerror(errno)); }
}  // namespace

Status FsyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("opening directory " + dir);
  int rc = fsync(fd);
  int saved = errno;
  close(fd);
  errno = saved;
  if (rc != 0) return Errno("fsync of directory " + dir);
  return Status::OK();
}

Status WriteFileAtomically(const std::string& path, const std::string& content, bool* in_place) {
  if (in_place != nullptr) *in_place = false;
  const std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("creating " + tmp);
  size_t half = content.size() / 2, done = 0;
  auto write_all = [&](size_t upto) -> bool {
    while (done < upto) {
      ssize_t n = write(fd, content.data() + done, upto - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      done += static_cast<size_t>(n);
    }
    return true;
  };
  bool ok = write_all(half);
  if (ok) {
    CrashPoint("manifest_mid_write");
    ok = write_all(content.size());
  }
  // Name the call that failed: a failed fsync means the bytes may never reach the disk.
  const char* failed = !ok ? "writing " : fsync(fd) != 0 ? "fsync of " : nullptr;
  if (failed != nullptr) {
    Status st = Errno(failed + tmp);
    close(fd);
    unlink(tmp.c_str());
    return st;
  }
  if (close(fd) != 0) return Errno("closing " + tmp);
  CrashPoint("before_rename");
  if (rename(tmp.c_str(), path.c_str()) != 0) return Errno("renaming " + tmp + " to " + path);
  if (in_place != nullptr) *in_place = true;
  CrashPoint("after_rename");
  CrashPoint("before_dir_fsync");
  const std::string dir = fs::path(path).parent_path().string();
  if (FailPoint("manifest_dir_fsync")) {
    return Status::IOError("fsync of directory " + dir + ": " + std::strerror(EIO) + " (TESSERA_FAIL_AT)");
  }
  return FsyncDir(dir);
}

Result<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::IOError("reading " + path);
  return ss.str();
}

Result<std::vector<FileEntry>> ListFiles(const std::string& dir) {
  std::vector<FileEntry> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    out.push_back({fs::relative(it->path(), dir, ec).string(), static_cast<uint64_t>(it->file_size(ec))});
  }
  if (ec) return Status::IOError("listing " + dir + ": " + ec.message());
  std::sort(out.begin(), out.end(), [](const FileEntry& a, const FileEntry& b) { return a.name < b.name; });
  return out;
}

}  // namespace tessera::checkpoint
