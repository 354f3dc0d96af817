// The IDX reader on headers whose dimensions overflow 64-bit arithmetic (found by
// data_fuzzer: 2^40 * a 32-bit dimension wrapped before the size check).
#include <gtest/gtest.h>

#include <fstream>

#include "tests/testutil/testutil.h"
#include "worker/data/idx_reader.h"

namespace tessera::data {
namespace {

TEST(IdxHostile, DimensionsThatOverflowInt64AreRefusedNotWrapped) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/huge-idx3-ubyte";
  {
    std::ofstream f(path, std::ios::binary);
    const unsigned char header[] = {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    f.write(reinterpret_cast<const char*>(header), sizeof(header));
  }
  auto r = IdxReader::Open(path, kIdxImagesMagic, "image");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("promise more than 2^40 bytes"), std::string::npos) << r.status().ToString();
}

// The input data_fuzzer saved (first byte: which loader; 2 = IDX images).
TEST(IdxHostile, FuzzerRegressionReplays) {
  std::ifstream in(testing::SourceDir() + "/tests/fuzz/regressions/data-idx-dims-overflow", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 1u);
  testing::TempDir dir;
  const std::string path = dir.path() + "/input";
  std::ofstream(path, std::ios::binary) << bytes.substr(1);
  auto r = IdxReader::Open(path, kIdxImagesMagic, "image");
  EXPECT_FALSE(r.ok());
}

}  // namespace
}  // namespace tessera::data
