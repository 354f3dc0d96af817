#include "worker/data/idx_reader.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/testutil/testutil.h"
#include "tests/worker_data/idx_test_util.h"

namespace tessera::data {
namespace {

using testing::IdxBytes;
using testing::PatternBytes;
using testing::WriteGz;

class IdxReaderTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) const { return tmp_.path() + "/" + name; }
  tessera::testing::TempDir tmp_;
};

TEST_F(IdxReaderTest, ReadsHeaderAndRecordRanges) {
  const std::string payload = PatternBytes(5 * 2 * 3);
  ASSERT_TRUE(WriteGz(Path("img.gz"), IdxBytes(kIdxImagesMagic, {5, 2, 3}, payload)));
  auto r = IdxReader::Open(Path("img.gz"), kIdxImagesMagic, "image");
  ASSERT_OK(r.status());
  IdxReader& reader = **r;
  EXPECT_EQ(reader.dims(), (std::vector<int64_t>{5, 2, 3}));
  EXPECT_EQ(reader.num_records(), 5);
  EXPECT_EQ(reader.record_bytes(), 6);
  EXPECT_EQ(reader.header_bytes(), 16);
  // Skip record 0, read records 1..2, skip 3, read 4.
  std::vector<uint8_t> a(12), b(6);
  ASSERT_OK(reader.ReadRecords(1, 3, a.data()));
  ASSERT_OK(reader.ReadRecords(4, 5, b.data()));
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i], static_cast<uint8_t>(payload[6 + i])) << "index " << i;
  }
  for (size_t i = 0; i < b.size(); ++i) {
    EXPECT_EQ(b[i], static_cast<uint8_t>(payload[24 + i])) << "index " << i;
  }
  EXPECT_OK(reader.Finish());
}

TEST_F(IdxReaderTest, ReadsUncompressedFile) {
  ASSERT_TRUE(testing::WritePlain(Path("lab"), IdxBytes(kIdxLabelsMagic, {4}, "\x01\x02\x03\x04")));
  auto r = IdxReader::Open(Path("lab"), kIdxLabelsMagic, "label");
  ASSERT_OK(r.status());
  std::vector<uint8_t> out(4);
  ASSERT_OK((*r)->ReadRecords(0, 4, out.data()));
  EXPECT_EQ(out, (std::vector<uint8_t>{1, 2, 3, 4}));
  EXPECT_OK((*r)->Finish());
}

TEST_F(IdxReaderTest, MissingFileIsNotFound) {
  auto r = IdxReader::Open(Path("nope.gz"), kIdxImagesMagic, "image");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find(Path("nope.gz")), std::string::npos) << r.status().ToString();
}

TEST_F(IdxReaderTest, WrongMagicIsCorruptionNamingFileAndOffset) {
  ASSERT_TRUE(WriteGz(Path("x.gz"), IdxBytes(kIdxLabelsMagic, {3}, "abc")));
  auto r = IdxReader::Open(Path("x.gz"), kIdxImagesMagic, "image");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  const std::string& m = r.status().message();
  EXPECT_NE(m.find(Path("x.gz")), std::string::npos) << m;
  EXPECT_NE(m.find("bad magic 0x00000801 at offset 0"), std::string::npos) << m;
  EXPECT_NE(m.find("expected 0x00000803"), std::string::npos) << m;
}

TEST_F(IdxReaderTest, TruncatedPayloadNamesFileAndOffset) {
  // 3 images of 2x2 promise 12 payload bytes; only 5 are present.
  ASSERT_TRUE(WriteGz(Path("x.gz"), IdxBytes(kIdxImagesMagic, {3, 2, 2}, PatternBytes(5))));
  auto r = IdxReader::Open(Path("x.gz"), kIdxImagesMagic, "image");
  ASSERT_OK(r.status());
  std::vector<uint8_t> out(12);
  Status s = (*r)->ReadRecords(0, 3, out.data());
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_EQ(s.message(), Path("x.gz") + ": truncated at offset 21: expected 12 image bytes");
}

TEST_F(IdxReaderTest, TruncatedPayloadIsFoundByFinishWhenSkipping) {
  ASSERT_TRUE(WriteGz(Path("x.gz"), IdxBytes(kIdxImagesMagic, {3, 2, 2}, PatternBytes(9))));
  auto r = IdxReader::Open(Path("x.gz"), kIdxImagesMagic, "image");
  ASSERT_OK(r.status());
  std::vector<uint8_t> out(4);
  ASSERT_OK((*r)->ReadRecords(0, 1, out.data()));
  Status s = (*r)->Finish();
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_EQ(s.message(), Path("x.gz") + ": truncated at offset 25: expected 12 image bytes");
}

TEST_F(IdxReaderTest, TruncatedHeaderIsCorruption) {
  std::string bytes = IdxBytes(kIdxImagesMagic, {3, 2, 2}, "");
  ASSERT_TRUE(WriteGz(Path("x.gz"), bytes.substr(0, 10)));
  auto r = IdxReader::Open(Path("x.gz"), kIdxImagesMagic, "image");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find("truncated at offset 10: expected header dimension 1"),
            std::string::npos)
      << r.status().ToString();
}

TEST_F(IdxReaderTest, TrailingBytesAreCorruption) {
  ASSERT_TRUE(WriteGz(Path("x.gz"), IdxBytes(kIdxLabelsMagic, {2}, "\x01\x02\x03")));
  auto r = IdxReader::Open(Path("x.gz"), kIdxLabelsMagic, "label");
  ASSERT_OK(r.status());
  Status s = (*r)->Finish();
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find(Path("x.gz") + ": trailing data at offset 10"), std::string::npos)
      << s.ToString();
}

TEST_F(IdxReaderTest, ZeroRecordDimensionIsCorruption) {
  ASSERT_TRUE(WriteGz(Path("x.gz"), IdxBytes(kIdxImagesMagic, {3, 0, 2}, "")));
  auto r = IdxReader::Open(Path("x.gz"), kIdxImagesMagic, "image");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find("dimension 1 is 0 at offset 8"), std::string::npos)
      << r.status().ToString();
}

TEST_F(IdxReaderTest, CutGzipStreamIsCorruption) {
  // A well-formed gzip file cut in the middle of its deflate stream.
  const std::string payload = PatternBytes(4000, 131, 17);
  ASSERT_TRUE(WriteGz(Path("full.gz"), IdxBytes(kIdxImagesMagic, {1000, 2, 2}, payload)));
  const std::string gz = testing::ReadFileBytes(Path("full.gz"));
  ASSERT_GT(gz.size(), 40u);
  ASSERT_TRUE(testing::WritePlain(Path("cut.gz"), gz.substr(0, gz.size() / 2)));
  auto r = IdxReader::Open(Path("cut.gz"), kIdxImagesMagic, "image");
  ASSERT_OK(r.status());
  Status s = (*r)->Finish();
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find(Path("cut.gz")), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("at offset "), std::string::npos) << s.ToString();
}

TEST_F(IdxReaderTest, DamagedGzipChecksumIsCorruption) {
  ASSERT_TRUE(WriteGz(Path("full.gz"), IdxBytes(kIdxLabelsMagic, {3}, "\x01\x02\x03")));
  std::string gz = testing::ReadFileBytes(Path("full.gz"));
  gz[gz.size() - 6] = static_cast<char>(gz[gz.size() - 6] ^ 0x5a);  // inside the CRC32 trailer
  ASSERT_TRUE(testing::WritePlain(Path("bad.gz"), gz));
  auto r = IdxReader::Open(Path("bad.gz"), kIdxLabelsMagic, "label");
  Status s = r.ok() ? (*r)->Finish() : r.status();
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find(Path("bad.gz")), std::string::npos) << s.ToString();
}

TEST_F(IdxReaderTest, ReadingBackwardsIsInvalidArgument) {
  ASSERT_TRUE(WriteGz(Path("x.gz"), IdxBytes(kIdxLabelsMagic, {3}, "\x01\x02\x03")));
  auto r = IdxReader::Open(Path("x.gz"), kIdxLabelsMagic, "label");
  ASSERT_OK(r.status());
  std::vector<uint8_t> out(3);
  ASSERT_OK((*r)->ReadRecords(1, 2, out.data()));
  EXPECT_EQ((*r)->ReadRecords(0, 1, out.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*r)->ReadRecords(2, 4, out.data()).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tessera::data
