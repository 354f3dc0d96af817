#include "worker/data/dataset.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "tests/testutil/testutil.h"
#include "tests/worker_data/idx_test_util.h"
#include "worker/data/idx_reader.h"

namespace tessera::data {
namespace {

using testing::IdxBytes;
using testing::PatternBytes;
using testing::WriteGz;

std::string MnistDir() { return tessera::testing::SourceDir() + "/data/mnist"; }

std::array<int64_t, 10> ClassCounts(const Dataset& ds) {
  std::array<int64_t, 10> counts{};
  for (int64_t i = 0; i < ds.num_examples; ++i) ++counts[ds.labels.as<int32_t>()[i]];
  return counts;
}

TEST(Mnist, TrainSplitHasPublishedShapeAndClassCounts) {
  auto ds = LoadMnist(MnistDir(), Split::kTrain);
  ASSERT_OK(ds.status());
  EXPECT_EQ(ds->num_examples, 60000);
  EXPECT_EQ(ds->total_examples, 60000);
  EXPECT_EQ(ds->dim, 784);
  EXPECT_EQ(ds->num_classes, 10);
  EXPECT_EQ(ds->features.shape(), (Shape{60000, 784}));
  EXPECT_EQ(ds->features.dtype(), DType::kF32);
  EXPECT_EQ(ds->labels.shape(), (Shape{60000}));
  EXPECT_EQ(ds->labels.dtype(), DType::kI32);
  const std::array<int64_t, 10> expected = {5923, 6742, 5958, 6131, 5842,
                                            5421, 5918, 6265, 5851, 5949};
  const auto counts = ClassCounts(*ds);
  for (int c = 0; c < 10; ++c) EXPECT_EQ(counts[c], expected[c]) << "class " << c;
}

TEST(Mnist, TestSplitHasPublishedShapeAndClassCounts) {
  auto ds = LoadMnist(MnistDir(), Split::kTest);
  ASSERT_OK(ds.status());
  EXPECT_EQ(ds->num_examples, 10000);
  EXPECT_EQ(ds->features.shape(), (Shape{10000, 784}));
  const std::array<int64_t, 10> expected = {980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009};
  const auto counts = ClassCounts(*ds);
  for (int c = 0; c < 10; ++c) EXPECT_EQ(counts[c], expected[c]) << "class " << c;
}

TEST(Mnist, PixelsAreScaledToUnitRange) {
  auto ds = LoadMnist(MnistDir(), Split::kTest);
  ASSERT_OK(ds.status());
  const float* f = ds->features.as<float>();
  const int64_t n = ds->features.numel();
  const auto [lo, hi] = std::minmax_element(f, f + n);
  EXPECT_EQ(*lo, 0.0f);
  EXPECT_EQ(*hi, 1.0f);
  // Every value is k/255 for an integer k, and digits have ink (mean ~0.13).
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float k = f[i] * 255.0f;
    ASSERT_NEAR(k, std::round(k), 1e-3) << "index " << i;
    sum += f[i];
  }
  EXPECT_GT(sum / static_cast<double>(n), 0.10);
  EXPECT_LT(sum / static_cast<double>(n), 0.16);
  // First test label is a 7 (the well-known first t10k digit).
  EXPECT_EQ(ds->labels.as<int32_t>()[0], 7);
}

TEST(Mnist, ParseSplitAcceptsTrainAndTest) {
  EXPECT_EQ(*ParseSplit("train"), Split::kTrain);
  EXPECT_EQ(*ParseSplit("test"), Split::kTest);
  EXPECT_EQ(*ParseSplit("t10k"), Split::kTest);
  EXPECT_EQ(ParseSplit("valid").status().code(), StatusCode::kInvalidArgument);
}

TEST(Mnist, MissingDirectoryIsNotFoundNamingTheFile) {
  tessera::testing::TempDir tmp;
  auto ds = LoadMnist(tmp.path() + "/nothing", Split::kTrain);
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), StatusCode::kNotFound);
  EXPECT_NE(ds.status().message().find("train-images-idx3-ubyte.gz"), std::string::npos)
      << ds.status().ToString();
}

// ---- Partitioning ---------------------------------------------------------------------

TEST(ShardRange, CoversEveryIndexExactlyOnceAndIsBalanced) {
  for (int64_t n : {0, 1, 7, 10, 59999, 60000}) {
    for (int world : {1, 2, 3, 4, 7, 16}) {
      int64_t next = 0;
      for (int r = 0; r < world; ++r) {
        const ExampleRange s = ShardRange(n, r, world);
        EXPECT_EQ(s.begin, next) << "n " << n << " world " << world << " rank " << r;
        EXPECT_GE(s.size(), n / world);
        EXPECT_LE(s.size(), n / world + 1);
        next = s.end;
      }
      EXPECT_EQ(next, n) << "n " << n << " world " << world;
    }
  }
}

TEST(Mnist, PartitionedLoadsTogetherEqualTheWholeSplit) {
  auto whole = LoadMnist(MnistDir(), Split::kTest);
  ASSERT_OK(whole.status());
  constexpr int kWorld = 3;
  int64_t next = 0;
  for (int r = 0; r < kWorld; ++r) {
    auto part = LoadMnist(MnistDir(), Split::kTest, LoadOptions{.rank = r, .world = kWorld});
    ASSERT_OK(part.status());
    EXPECT_EQ(part->first_index, next) << "rank " << r;
    EXPECT_EQ(part->total_examples, 10000);
    EXPECT_EQ(part->features.shape(), (Shape{part->num_examples, 784}));
    ASSERT_EQ(0, std::memcmp(part->features.data(), whole->features.as<float>() + next * 784,
                             part->features.nbytes()))
        << "rank " << r;
    ASSERT_EQ(0, std::memcmp(part->labels.data(), whole->labels.as<int32_t>() + next,
                             part->labels.nbytes()))
        << "rank " << r;
    next += part->num_examples;
  }
  EXPECT_EQ(next, 10000);
}

TEST(Mnist, LimitKeepsTheFirstExamplesThenPartitions) {
  auto part = LoadMnist(MnistDir(), Split::kTest, LoadOptions{.rank = 1, .world = 2, .limit = 300});
  ASSERT_OK(part.status());
  EXPECT_EQ(part->num_examples, 150);
  EXPECT_EQ(part->first_index, 150);
}

TEST(Mnist, BadPartitionIsInvalidArgument) {
  EXPECT_EQ(LoadMnist(MnistDir(), Split::kTest, LoadOptions{.rank = 2, .world = 2}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadMnist(MnistDir(), Split::kTest, LoadOptions{.rank = 0, .world = 0}).status().code(),
            StatusCode::kInvalidArgument);
}

// ---- Corrupt pairs ----------------------------------------------------------------------

class IdxPairTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) const { return tmp_.path() + "/" + name; }
  void WriteImages(uint32_t n, const std::string& payload) {
    ASSERT_TRUE(WriteGz(Path("img.gz"), IdxBytes(kIdxImagesMagic, {n, 2, 2}, payload)));
  }
  void WriteLabels(uint32_t n, const std::string& payload) {
    ASSERT_TRUE(WriteGz(Path("lab.gz"), IdxBytes(kIdxLabelsMagic, {n}, payload)));
  }
  Result<Dataset> Load(const LoadOptions& o = {}) {
    return LoadIdxPair(Path("img.gz"), Path("lab.gz"), 10, o);
  }
  tessera::testing::TempDir tmp_;
};

TEST_F(IdxPairTest, LoadsSmallPairAndScalesPixels) {
  WriteImages(3, std::string("\x00\xff\x33\x66", 4) + PatternBytes(8));
  WriteLabels(3, std::string("\x02\x09\x00", 3));
  auto ds = Load();
  ASSERT_OK(ds.status());
  EXPECT_EQ(ds->dim, 4);
  EXPECT_EQ(ds->features.as<float>()[0], 0.0f);
  EXPECT_EQ(ds->features.as<float>()[1], 1.0f);
  EXPECT_FLOAT_EQ(ds->features.as<float>()[2], 0.2f);
  EXPECT_FLOAT_EQ(ds->features.as<float>()[3], 0.4f);
  EXPECT_EQ(ds->labels.as<int32_t>()[1], 9);
}

TEST_F(IdxPairTest, LabelCountMismatchIsCorruptionNamingBothFiles) {
  WriteImages(3, PatternBytes(12));
  WriteLabels(2, "\x01\x02");
  auto ds = Load();
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ds.status().message(), Path("img.gz") + " holds 3 images but " + Path("lab.gz") +
                                       " holds 2 labels (count at offset 4)");
}

TEST_F(IdxPairTest, TruncatedImageDataIsCorruption) {
  WriteImages(3, PatternBytes(11));
  WriteLabels(3, "\x01\x02\x03");
  auto ds = Load();
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ds.status().message(),
            Path("img.gz") + ": truncated at offset 27: expected 12 image bytes");
}

TEST_F(IdxPairTest, TruncationOutsideTheShardIsStillCorruption) {
  // Rank 0 of 2 keeps example 0 only, but the file must still be whole.
  WriteImages(3, PatternBytes(10));
  WriteLabels(3, "\x01\x02\x03");
  auto ds = Load(LoadOptions{.rank = 0, .world = 2});
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), StatusCode::kCorruption);
  EXPECT_NE(ds.status().message().find("truncated at offset 26"), std::string::npos)
      << ds.status().ToString();
}

TEST_F(IdxPairTest, WrongLabelMagicIsCorruption) {
  WriteImages(3, PatternBytes(12));
  ASSERT_TRUE(WriteGz(Path("lab.gz"), IdxBytes(kIdxImagesMagic, {3, 1, 1}, "\x01\x02\x03")));
  auto ds = Load();
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), StatusCode::kCorruption);
  EXPECT_NE(ds.status().message().find(Path("lab.gz") + ": bad magic 0x00000803 at offset 0"),
            std::string::npos)
      << ds.status().ToString();
}

TEST_F(IdxPairTest, LabelOutOfRangeIsCorruptionWithOffset) {
  WriteImages(3, PatternBytes(12));
  WriteLabels(3, "\x01\x0a\x03");
  auto ds = Load();
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(ds.status().message(), Path("lab.gz") + ": label 10 at offset 9 is not below 10");
}

TEST_F(IdxPairTest, MissingLabelFileIsNotFound) {
  WriteImages(3, PatternBytes(12));
  auto ds = Load();
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), StatusCode::kNotFound);
  EXPECT_NE(ds.status().message().find(Path("lab.gz")), std::string::npos);
}

}  // namespace
}  // namespace tessera::data
