// The Criteo TSV loader (worker/data/criteo.h) on hand-written lines (empty fields, gzip,
// bad input) and the synthetic generator (worker/data/criteo_gen.h): deterministic in
// (rows, seed), the stated layout, the stated distributions.
#include "worker/data/criteo.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testutil/testutil.h"
#include "worker/data/criteo_gen.h"

namespace tessera::data {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t b = 0;
  for (;;) {
    const size_t e = s.find(sep, b);
    out.push_back(s.substr(b, e == std::string::npos ? std::string::npos : e - b));
    if (e == std::string::npos) return out;
    b = e + 1;
  }
}

void WriteGz(const std::string& path, const std::string& text) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, text.data(), static_cast<unsigned>(text.size())),
            static_cast<int>(text.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

// A real-format line: label, 13 ints, 26 hashes, with `empty` fields (1-based after the
// label) left empty.
std::string Line(int label, std::set<int> empty = {}) {
  std::string s = std::to_string(label);
  for (int k = 1; k <= 13; ++k)
    s += "\t" + (empty.count(k) ? std::string() : std::to_string(k == 2 ? -3 : k * 10));
  for (int c = 1; c <= 26; ++c) {
    char h[16];
    std::snprintf(h, sizeof(h), "%08x", c == 1 ? 0u : 0x68fd1e64u + static_cast<unsigned>(c));
    s += "\t" + (empty.count(13 + c) ? std::string() : std::string(h));
  }
  return s;
}

TEST(CriteoParse, RealLayoutWithEmptyFields) {
  CriteoRow row;
  ASSERT_TRUE(ParseCriteoLine(Line(1, {3, 13, 14 + 5, 13 + 26}), &row).ok());
  EXPECT_EQ(row.label, 1.0f);
  EXPECT_FLOAT_EQ(row.dense[0], std::log1p(10.0f));
  EXPECT_EQ(row.dense[1], 0.0f) << "negative I2 -> log(1 + max(x, 0)) = 0";
  EXPECT_EQ(row.dense[2], 0.0f) << "missing int -> 0";
  EXPECT_EQ(row.dense[12], 0.0f) << "missing I13 (the field before the tab) -> 0";
  EXPECT_FLOAT_EQ(row.dense[3], std::log1p(40.0f));
  EXPECT_EQ(row.keys[0], 1u) << "hash 00000000 is a real value: key 1, not the reserved 0";
  EXPECT_EQ(row.keys[1], 0x68fd1e64u + 2u + 1u);
  EXPECT_EQ(row.keys[5], 0u) << "missing categorical -> the reserved id 0";
  EXPECT_EQ(row.keys[25], 0u) << "missing last field (line ends in a tab)";
  ASSERT_TRUE(ParseCriteoLine(Line(0), &row).ok());
  EXPECT_EQ(row.label, 0.0f);
  EXPECT_EQ(row.keys[25], 0x68fd1e64u + 26u + 1u);
}

TEST(CriteoParse, BadLinesAreRefusedWithTheField) {
  CriteoRow row;
  auto refused = [&](const std::string& line, const std::string& what) {
    Status st = ParseCriteoLine(line, &row);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << line;
    EXPECT_NE(st.message().find(what), std::string::npos) << st.message();
  };
  std::string l = Line(1);
  refused(l.substr(l.find('\t') + 1), "39 tab-separated fields");  // unlabelled (Kaggle test.txt)
  refused(l + "\t1", "41 tab-separated fields");
  refused("2" + l.substr(1), "field label '2'");
  std::string bad_int = l;
  bad_int.replace(bad_int.find("\t10\t"), 4, "\t1x\t");
  refused(bad_int, "field I1 '1x'");
  std::string bad_hex = l;
  bad_hex.replace(bad_hex.find("00000000"), 8, "0000000g");
  refused(bad_hex, "field C1");
  std::string long_hex = l;
  long_hex.replace(long_hex.find("00000000"), 8, "000000001");
  refused(long_hex, "1 to 8 hex digits");
}

TEST(CriteoLoad, GzipAndPlainAgreeAndShardsPartition) {
  testing::TempDir tmp;
  std::string text;
  for (int i = 0; i < 10; ++i)
    text += Line(i % 2, i == 3 ? std::set<int>{1, 20} : std::set<int>{}) + "\n";
  text += "\n";  // a blank line is not an example
  const std::string plain = tmp.path() + "/train.txt", gz = tmp.path() + "/g/train.txt.gz";
  std::ofstream(plain) << text;
  std::filesystem::create_directories(tmp.path() + "/g");
  WriteGz(gz, text);
  auto n = CountCriteoExamples(gz);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 10);
  auto a = LoadCriteoRange(plain, 0, 10), b = LoadCriteoRange(gz, 0, 10);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->keys, b->keys);
  EXPECT_EQ(a->dense, b->dense);
  EXPECT_EQ(a->label, b->label);
  EXPECT_EQ(a->dense_of(3)[0], 0.0f);
  EXPECT_EQ(a->keys_of(3)[6], 0u);

  // No valid.txt: the last seventh (1 of 10) is the evaluation split; 3 workers share 9.
  auto paths = CriteoSplitPaths(tmp.path() + "/g");
  ASSERT_TRUE(paths.ok());
  EXPECT_TRUE(paths->valid.empty());
  int64_t covered = 0;
  for (int r = 0; r < 3; ++r) {
    auto plan = PlanCriteo(*paths, r, 3, 0, 0);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    EXPECT_EQ(plan->total_train, 9);
    EXPECT_EQ(plan->train_begin, covered);
    covered = plan->train_end;
    EXPECT_EQ(plan->eval_begin, 9);
    EXPECT_EQ(plan->eval_end, 10);
  }
  EXPECT_EQ(covered, 9);
  auto shard = LoadCriteoRange(gz, 3, 6);
  ASSERT_TRUE(shard.ok());
  EXPECT_EQ(shard->num_examples, 3);
  EXPECT_EQ(shard->keys_of(0)[6], 0u) << "example 3 is local example 0";
  EXPECT_EQ(std::vector<float>(shard->label.begin(), shard->label.end()),
            (std::vector<float>{1, 0, 1}));
}

TEST(CriteoLoad, DamageIsReportedWithFileAndLine) {
  testing::TempDir tmp;
  const std::string path = tmp.path() + "/train.txt";
  std::ofstream(path) << Line(1) << "\n" << Line(0) << "\n1\t2\t3\n";
  auto r = LoadCriteoRange(path, 0, 3);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find("train.txt:3"), std::string::npos) << r.status().ToString();
  auto short_file = LoadCriteoRange(path, 0, 5);
  EXPECT_FALSE(short_file.ok());
  auto missing = CriteoSplitPaths(tmp.path() + "/nope");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST(CriteoGen, DeterministicPrefixStableAndRealLayout) {
  testing::TempDir tmp;
  CriteoGenOptions o;
  o.rows = 3000;
  o.valid_rows = 500;
  o.seed = 7;
  o.out_dir = tmp.path() + "/a";
  auto a = GenerateCriteo(o);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  o.out_dir = tmp.path() + "/b";
  auto b = GenerateCriteo(o);
  ASSERT_TRUE(b.ok());
  const std::string ta = ReadAll(a->train_path);
  EXPECT_EQ(ta, ReadAll(b->train_path));
  EXPECT_EQ(ReadAll(a->valid_path), ReadAll(b->valid_path));
  EXPECT_EQ(a->valid_logits, b->valid_logits);
  o.out_dir = tmp.path() + "/c";
  o.rows = 1000;
  o.seed = 8;
  auto c = GenerateCriteo(o);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(ta.substr(0, 5000), ReadAll(c->train_path).substr(0, 5000))
      << "another seed, other data";
  o.seed = 7;
  o.out_dir = tmp.path() + "/d";
  auto d = GenerateCriteo(o);
  ASSERT_TRUE(d.ok());
  const std::string td = ReadAll(d->train_path);
  EXPECT_EQ(ta.substr(0, td.size()), td) << "the first 1000 rows do not depend on --rows";

  // Layout: 40 fields; ints or empty; 8 lower-case hex digits or empty; the loader reads it.
  const auto lines = Split(ta.substr(0, ta.size() - 1), '\n');
  ASSERT_EQ(lines.size(), 3000u);
  std::vector<std::set<std::string>> distinct(26);
  std::vector<int> empty_cat(26, 0), empty_int(13, 0);
  int positives = 0;
  for (const auto& line : lines) {
    const auto f = Split(line, '\t');
    ASSERT_EQ(f.size(), 40u) << line;
    ASSERT_TRUE(f[0] == "0" || f[0] == "1");
    positives += f[0] == "1";
    for (int k = 1; k <= 13; ++k) {
      if (f[k].empty()) ++empty_int[k - 1];
      for (size_t i = 0; i < f[k].size(); ++i)
        ASSERT_TRUE(std::isdigit(f[k][i]) || (i == 0 && f[k][i] == '-')) << f[k];
    }
    for (int c = 0; c < 26; ++c) {
      const std::string& h = f[14 + c];
      if (h.empty()) {
        ++empty_cat[c];
        continue;
      }
      ASSERT_EQ(h.size(), 8u) << h;
      for (char ch : h) ASSERT_TRUE(std::isdigit(ch) || (ch >= 'a' && ch <= 'f')) << h;
      distinct[c].insert(h);
    }
    CriteoRow row;
    ASSERT_TRUE(ParseCriteoLine(line, &row).ok()) << line;
  }
  // About a quarter positive, as Criteo (the planted bias).
  EXPECT_GT(positives, 3000 * 0.15);
  EXPECT_LT(positives, 3000 * 0.45);
  // Cardinalities: a 3-valued field stays within 3; a 10M-valued Zipf field shows many
  // distinct values, yet far fewer than the rows (the head repeats).
  const auto& cards = CriteoCardinalities();
  ASSERT_EQ(cards.size(), 26u);
  EXPECT_LE(distinct[8].size(), 3u);
  EXPECT_GT(distinct[2].size(), 200u);
  EXPECT_LT(distinct[2].size(), 2800u);
  // Missing values: C19..C26 about 40%, C1 never; some ints missing, I2 sometimes negative.
  EXPECT_EQ(empty_cat[0], 0);
  EXPECT_GT(empty_cat[20], 3000 * 0.3);
  EXPECT_LT(empty_cat[20], 3000 * 0.5);
  EXPECT_GT(empty_int[0], 0);
  EXPECT_NE(ta.find("\t-1\t"), std::string::npos);
}

// Distinct values of field C3 (10 M values) in the first `rows` rows.
size_t DistinctC3(const CriteoGenOptions& o, int rows) {
  std::set<std::string> seen;
  for (int i = 0; i < rows; ++i) {
    float z;
    seen.insert(Split(CriteoSyntheticLine(o, 0, i, &z), '\t')[16]);
  }
  return seen.size();
}

TEST(CriteoGen, FlatterTailsAndLargerCardinalitiesGiveMoreDistinctIds) {
  CriteoGenOptions o;
  o.seed = 3;
  const size_t base = DistinctC3(o, 4000);
  o.zipf_offset = -0.4;
  const size_t flat = DistinctC3(o, 4000);
  EXPECT_GT(flat, base + base / 4) << base << " vs " << flat;
  o.zipf_offset = 0;
  o.card_scale = 0.0001;  // C3: 1013 values
  EXPECT_LE(DistinctC3(o, 4000), 1013u);
  o.card_scale = 1;
  o.zipf_offset = -0.3;  // exponent exactly 1 for some fields: the log law, no division by 0
  float z;
  for (int i = 0; i < 200; ++i) ASSERT_EQ(Split(CriteoSyntheticLine(o, 0, i, &z), '\t').size(), 40u);
}

TEST(CriteoGen, RefusesBadOptions) {
  CriteoGenOptions o;
  o.rows = 0;
  o.out_dir = "/tmp/x";
  EXPECT_EQ(GenerateCriteo(o).status().code(), StatusCode::kInvalidArgument);
  o.rows = 10;
  o.out_dir = "";
  EXPECT_EQ(GenerateCriteo(o).status().code(), StatusCode::kInvalidArgument);
  o.out_dir = "/tmp/x";
  o.card_scale = 0;
  EXPECT_EQ(GenerateCriteo(o).status().code(), StatusCode::kInvalidArgument);
  o.card_scale = 1;
  o.zipf_offset = -2;
  EXPECT_EQ(GenerateCriteo(o).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tessera::data
