#include "python/core/worker_state.h"

#include <sys/stat.h>

#include <cstring>

#include "checkpoint/crc32c.h"
#include "checkpoint/fs_util.h"

namespace tessera::python {

namespace {

constexpr char kMagic[] = "TSPYSTATE1";
constexpr size_t kMagicLen = sizeof(kMagic) - 1;
constexpr size_t kHeaderLen = kMagicLen + 4 + 8;

template <typename T>
void PutLe(std::string* out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

template <typename T>
T GetLe(const char* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

}  // namespace

std::string WorkerStatePath(const std::string& step_dir, int worker_index) {
  return step_dir + "/worker-" + std::to_string(worker_index) + ".pystate";
}

Status WriteWorkerState(const std::string& step_dir, int worker_index, const std::string& bytes) {
  std::string file(kMagic, kMagicLen);
  PutLe<uint32_t>(&file, checkpoint::Crc32c(bytes.data(), bytes.size()));
  PutLe<uint64_t>(&file, bytes.size());
  file += bytes;
  return checkpoint::WriteFileAtomically(WorkerStatePath(step_dir, worker_index), file);
}

Result<std::optional<std::string>> ReadWorkerState(const std::string& step_dir, int worker_index) {
  const std::string path = WorkerStatePath(step_dir, worker_index);
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return std::optional<std::string>();
  TESSERA_ASSIGN_OR_RETURN(std::string file, checkpoint::ReadWholeFile(path));
  if (file.size() < kHeaderLen || std::memcmp(file.data(), kMagic, kMagicLen) != 0) {
    return Status::Corruption(path + ": not a worker state file (bad header)");
  }
  const uint32_t crc = GetLe<uint32_t>(file.data() + kMagicLen);
  const uint64_t len = GetLe<uint64_t>(file.data() + kMagicLen + 4);
  if (len != file.size() - kHeaderLen) {
    return Status::Corruption(path + ": holds " + std::to_string(file.size() - kHeaderLen) + " bytes of state, header says " +
                              std::to_string(len));
  }
  std::string bytes = file.substr(kHeaderLen);
  if (checkpoint::Crc32c(bytes.data(), bytes.size()) != crc) return Status::Corruption(path + ": checksum mismatch");
  return std::optional<std::string>(std::move(bytes));
}

}  // namespace tessera::python
