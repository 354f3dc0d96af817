#include "common/byte_size.h"

#include <gtest/gtest.h>

namespace tessera {
namespace {

TEST(ByteSize, UnitsArePowersOf1024AndCaseInsensitive) {
  EXPECT_EQ(*ParseByteSize("4096", "--x"), 4096u);
  EXPECT_EQ(*ParseByteSize("8k", "--x"), 8192u);
  EXPECT_EQ(*ParseByteSize("512MiB", "--x"), 512ull << 20);
  EXPECT_EQ(*ParseByteSize("2GB", "--x"), 2ull << 30);
  EXPECT_EQ(*ParseByteSize("1T", "--x"), 1ull << 40);
}

TEST(ByteSize, BadTextNamesTheFlag) {
  for (const char* bad : {"", "-1", "1.5G", "12Q", "1KX", "99999999999999999999", "9000000000000000000K"}) {
    auto r = ParseByteSize(bad, "--table_memory_limit");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("--table_memory_limit="), std::string::npos) << r.status().ToString();
  }
}

TEST(ByteSize, NamedListKeepsColonsInNames) {
  auto r = ParseNamedByteSizes("dlrm.emb.C1:64M,a:b:8K", "--per_table");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ(r->at("dlrm.emb.C1"), 64ull << 20);
  EXPECT_EQ(r->at("a:b"), 8192u);
  EXPECT_TRUE(ParseNamedByteSizes("", "--per_table")->empty());
}

TEST(ByteSize, NamedListRefusesMissingPartsAndRepeats) {
  for (const char* bad : {"C1", ":64M", "C1:", "C1:64M,C1:8K", "C1:x"}) {
    auto r = ParseNamedByteSizes(bad, "--per_table");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("--per_table"), std::string::npos) << r.status().ToString();
  }
}

}  // namespace
}  // namespace tessera
