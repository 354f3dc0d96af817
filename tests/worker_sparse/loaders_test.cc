// The gzip text loaders: LIBSVM rows, corpora, and the index batch stream.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "tests/testutil/testutil.h"
#include "tests/worker_sparse/sparse_test_util.h"
#include "worker/data/corpus.h"
#include "worker/data/gz_lines.h"
#include "worker/data/index_batches.h"
#include "worker/data/libsvm.h"

namespace tessera::data {
namespace {

using sparse_testing::Truncate;
using sparse_testing::WriteGz;
using sparse_testing::WritePlain;

constexpr const char* kLibsvm =
    "+1 1:1 5:0.5 9:1\n"
    "-1 2:1 3:2\n"
    "# a comment line\n"
    "\n"
    "1 4:1\n"
    "0 1:1 2:1 3:1 7:1 # trailing comment\n"
    "-1 8:1";  // last line without newline

TEST(Libsvm, ParsesGzipLabelsFeaturesAndValues) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/d.gz";
  WriteGz(path, kLibsvm);
  auto r = LoadLibsvm(path);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->num_examples, 5);
  EXPECT_EQ(r->total_examples, 5);
  EXPECT_EQ(r->label, (std::vector<float>{1, 0, 1, 0, 0}));
  EXPECT_EQ(std::vector<uint32_t>(r->features_of(0).begin(), r->features_of(0).end()),
            (std::vector<uint32_t>{1, 5, 9}));
  EXPECT_EQ(r->values_of(0)[1], 0.5f);
  EXPECT_EQ(r->values_of(1)[1], 2.0f);
  EXPECT_EQ(r->features_of(3).size(), 4u);
  EXPECT_EQ(r->features_of(4)[0], 8u);
  EXPECT_EQ(r->max_feature, 9u);
}

TEST(Libsvm, PartitionsContiguouslyAndHonoursTheLimit) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/d.txt";
  WritePlain(path, kLibsvm);
  int64_t total = 0;
  std::vector<float> labels;
  for (int rank = 0; rank < 2; ++rank) {
    LoadOptions o;
    o.rank = rank;
    o.world = 2;
    auto r = LoadLibsvm(path, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->first_index, ShardRange(5, rank, 2).begin);
    total += r->num_examples;
    labels.insert(labels.end(), r->label.begin(), r->label.end());
  }
  EXPECT_EQ(total, 5);
  EXPECT_EQ(labels, (std::vector<float>{1, 0, 1, 0, 0}));
  LoadOptions lim;
  lim.limit = 2;
  auto r = LoadLibsvm(path, lim);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->num_examples, 2);
}

TEST(Libsvm, BadLinesNameFileAndLine) {
  testing::TempDir dir;
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"+1 1:1\n-1 2:x\n", ":2: bad feature '2:x'"},
      {"+1 1:1\nyes 2:1\n", ":2: bad label 'yes'"},
      {"+1 1:1\n+1 0:1\n", ":2: bad feature '0:1'"},
      {"+1 1:1 3\n", ":1: bad feature '3'"},
      {"+1 1:1\n\n+1 5:1 2:1\n", ":3: feature index 2 does not increase"},
      {"+1 1:inf\n", ":1: bad feature '1:inf'"},
  };
  for (const auto& [text, want] : bad) {
    const std::string path = dir.path() + "/bad.gz";
    WriteGz(path, text);
    auto r = LoadLibsvm(path);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << text;
    EXPECT_NE(r.status().message().find(path + want), std::string::npos) << r.status().message();
  }
}

TEST(Libsvm, MissingFileIsNotFound) {
  testing::TempDir dir;
  auto r = LoadLibsvm(dir.path() + "/nope.gz");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find(dir.path() + "/nope.gz"), std::string::npos);
  auto p = LibsvmSplitPath(dir.path(), Split::kTrain);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kNotFound);
  EXPECT_NE(p.status().message().find(dir.path()), std::string::npos);
}

TEST(Libsvm, TruncatedGzipIsCorruptionNotAShorterFile) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/t.gz";
  std::string text;
  for (int i = 0; i < 3000; ++i)
    text += (i % 2 ? "+1 " : "-1 ") + std::to_string(i % 100 + 1) + ":1 " +
            std::to_string(i % 97 + 200) + ":1\n";
  WriteGz(path, text);
  Truncate(path, std::filesystem::file_size(path) / 2);
  auto r = LoadLibsvm(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find(path + ": damaged or truncated gzip stream"),
            std::string::npos)
      << r.status().message();
}

TEST(Libsvm, SplitPathsFindTheA9aPair) {
  testing::TempDir dir;
  WriteGz(dir.path() + "/a9a.gz", "+1 1:1\n");
  auto missing_test = LibsvmSplitPath(dir.path(), Split::kTest);
  ASSERT_FALSE(missing_test.ok());
  EXPECT_NE(missing_test.status().message().find("a9a.t.gz"), std::string::npos);
  WriteGz(dir.path() + "/a9a.t.gz", "-1 2:1\n");
  EXPECT_EQ(*LibsvmSplitPath(dir.path(), Split::kTrain), dir.path() + "/a9a.gz");
  EXPECT_EQ(*LibsvmSplitPath(dir.path(), Split::kTest), dir.path() + "/a9a.t.gz");
}

TEST(GzLines, LongLinesAndCrLf) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/l.gz";
  const std::string long_line(700000, 'a');
  WriteGz(path, "x\r\n" + long_line + "\nlast");
  auto r = GzLineReader::Open(path);
  ASSERT_TRUE(r.ok());
  std::string_view line;
  ASSERT_TRUE(*(*r)->Next(&line));
  EXPECT_EQ(line, "x");
  ASSERT_TRUE(*(*r)->Next(&line));
  EXPECT_EQ(line.size(), long_line.size());
  ASSERT_TRUE(*(*r)->Next(&line));
  EXPECT_EQ(line, "last");
  EXPECT_EQ((*r)->where(), path + ":3");
  EXPECT_FALSE(*(*r)->Next(&line));
}

TEST(Corpus, VocabularyHeldOutAndPartitions) {
  testing::TempDir dir;
  // 20 tokens; the last 2 ("a b") are held out (10%).
  WriteGz(dir.path() + "/c.gz", "a b a c a b d\na b a c a b\ne a b c d a b\n");
  CorpusOptions o;
  o.min_count = 2;
  o.heldout_fraction = 0.1;
  auto c = LoadCorpus(dir.path(), o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  // Training part (first 18 tokens): a x7, b x5, c x3, d x2, e x1 -> e is dropped.
  EXPECT_EQ(c->vocab.words, (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(c->vocab.counts, (std::vector<int64_t>{7, 5, 3, 2}));
  EXPECT_EQ(c->vocab.total, 17);
  EXPECT_EQ(c->heldout, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(c->total_train, 17);
  EXPECT_EQ(c->train.size(), 17u);
  std::vector<int32_t> joined;
  for (int rank = 0; rank < 2; ++rank) {
    o.rank = rank;
    o.world = 2;
    auto p = LoadCorpus(dir.path(), o);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->first_index, ShardRange(17, rank, 2).begin);
    joined.insert(joined.end(), p->train.begin(), p->train.end());
  }
  EXPECT_EQ(joined, c->train);
}

TEST(Corpus, BadByteNamesFileLineAndMinCountEmptyVocabulary) {
  testing::TempDir dir;
  WriteGz(dir.path() + "/c.gz", "good words\nbad \x01word\n");
  auto c = LoadCorpus(dir.path() + "/c.gz", CorpusOptions{});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kCorruption);
  EXPECT_NE(c.status().message().find("/c.gz:2: byte 0x01"), std::string::npos)
      << c.status().message();

  WriteGz(dir.path() + "/c.gz", "every word once\n");
  c = LoadCorpus(dir.path() + "/c.gz", CorpusOptions{});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("--min_count=5"), std::string::npos) << c.status().message();

  c = LoadCorpus(dir.path() + "/missing", CorpusOptions{});
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
}

TEST(Corpus, TruncatedGzipIsCorruption) {
  testing::TempDir dir;
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "w" + std::to_string(i % 300) + (i % 17 ? " " : "\n");
  WriteGz(dir.path() + "/c.gz", text);
  Truncate(dir.path() + "/c.gz", std::filesystem::file_size(dir.path() + "/c.gz") - 20);
  auto c = LoadCorpus(dir.path(), CorpusOptions{});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kCorruption) << c.status().ToString();
}

TEST(Corpus, NoiseTableFollowsCountsToThePowerAndSubsamplingKeepsRareWords) {
  Vocab v;
  v.words = {"x", "y", "z"};
  v.counts = {1000, 100, 10};
  v.total = 1110;
  const auto table = UnigramTable(v, 0.75, 1 << 16);
  std::map<int32_t, double> share;
  for (int32_t w : table) share[w] += 1.0 / static_cast<double>(table.size());
  const double norm = std::pow(1000, 0.75) + std::pow(100, 0.75) + std::pow(10, 0.75);
  EXPECT_NEAR(share[0], std::pow(1000, 0.75) / norm, 1e-3);
  EXPECT_NEAR(share[1], std::pow(100, 0.75) / norm, 1e-3);
  EXPECT_NEAR(share[2], std::pow(10, 0.75) / norm, 1e-3);
  const auto keep = KeepProbabilities(v, 0.01);
  EXPECT_LT(keep[0], keep[1]);
  EXPECT_EQ(keep[2], 1.0f);
  EXPECT_EQ(KeepProbabilities(v, 0)[0], 1.0f);
}

TEST(IndexBatches, EpochsArePermutationsAndSeekReplays) {
  BatchIteratorOptions o;
  o.batch_size = 4;
  o.seed = 7;
  auto it = IndexBatches::Create(10, o);
  ASSERT_TRUE(it.ok());
  std::set<int64_t> epoch0;
  for (int b = 0; b < 3; ++b) {
    auto s = it->Next();
    epoch0.insert(s.begin(), s.end());
  }
  EXPECT_EQ(epoch0.size(), 10u);
  EXPECT_EQ(it->cursor(), (DataCursor{1, 0}));
  it->Next();
  const DataCursor c = it->cursor();
  auto a = it->Next();
  std::vector<int64_t> first(a.begin(), a.end());
  ASSERT_TRUE(it->Seek(c).ok());
  auto b = it->Next();
  EXPECT_EQ(first, std::vector<int64_t>(b.begin(), b.end()));
  EXPECT_FALSE(it->Seek({0, 11}).ok());
  EXPECT_FALSE(IndexBatches::Create(0, o).ok());
}

}  // namespace
}  // namespace tessera::data
