// A Python worker's own checkpoint file (python/core/worker_state.h): the bytes come back
// as written, a checkpoint without the file means "no state", and a damaged file is
// Corruption naming it, never bytes handed to the script.
#include "python/core/worker_state.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

#include "tests/testutil/testutil.h"

namespace tessera::python {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

TEST(WorkerState, RoundTripsArbitraryBytes) {
  testing::TempDir dir;
  const std::string bytes("cursor\0\xff{}", 10);
  ASSERT_OK(WriteWorkerState(dir.path(), 3, bytes));
  EXPECT_EQ(WorkerStatePath(dir.path(), 3), dir.path() + "/worker-3.pystate");
  auto back = ReadWorkerState(dir.path(), 3);
  ASSERT_OK(back.status());
  ASSERT_TRUE(back->has_value());
  EXPECT_EQ(**back, bytes);
}

TEST(WorkerState, MissingFileMeansNoState) {
  testing::TempDir dir;
  ASSERT_OK(WriteWorkerState(dir.path(), 0, "w0"));
  auto back = ReadWorkerState(dir.path(), 1);
  ASSERT_OK(back.status());
  EXPECT_FALSE(back->has_value());
}

TEST(WorkerState, EveryFlippedByteIsCorruption) {
  testing::TempDir dir;
  ASSERT_OK(WriteWorkerState(dir.path(), 0, "epoch=3 position=17"));
  const std::string path = WorkerStatePath(dir.path(), 0);
  const std::string good = ReadAll(path);
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    WriteAll(path, bad);
    auto back = ReadWorkerState(dir.path(), 0);
    ASSERT_FALSE(back.ok()) << "flipped byte " << i << " went unnoticed";
    EXPECT_EQ(back.status().code(), StatusCode::kCorruption) << "byte " << i;
    EXPECT_NE(back.status().message().find(path), std::string::npos) << back.status().ToString();
  }
}

TEST(WorkerState, TruncatedFileIsCorruption) {
  testing::TempDir dir;
  ASSERT_OK(WriteWorkerState(dir.path(), 0, "0123456789"));
  const std::string path = WorkerStatePath(dir.path(), 0);
  const std::string good = ReadAll(path);
  for (size_t n : {size_t{0}, size_t{5}, good.size() - 1}) {
    WriteAll(path, good.substr(0, n));
    auto back = ReadWorkerState(dir.path(), 0);
    ASSERT_FALSE(back.ok()) << "truncated to " << n << " bytes";
    EXPECT_EQ(back.status().code(), StatusCode::kCorruption) << n;
  }
}

}  // namespace
}  // namespace tessera::python
