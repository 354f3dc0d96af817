// The checkpoint library on real RocksDB: record encoding and checksums, both write
// paths, range reads for resharding, manifests, the directory catalog (retention,
// garbage collection, resume choice) and verification of damaged files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "checkpoint/catalog.h"
#include "checkpoint/crc32c.h"
#include "checkpoint/fs_util.h"
#include "checkpoint/manifest.h"
#include "checkpoint/record.h"
#include "checkpoint/shard_db.h"
#include "tests/testutil/testutil.h"

namespace tessera::checkpoint {
namespace {

namespace fs = std::filesystem;

TEST(Crc32c, MatchesRfc3720Vectors) {
  std::string zeros(32, '\0'), ones(32, '\xff'), inc(32, 0);
  for (int i = 0; i < 32; ++i) inc[static_cast<size_t>(i)] = static_cast<char>(i);
  EXPECT_EQ(Crc32c(zeros.data(), zeros.size()), 0x8a9136aau);
  EXPECT_EQ(Crc32c(ones.data(), ones.size()), 0x62a8ab43u);
  EXPECT_EQ(Crc32c(inc.data(), inc.size()), 0x46dd794eu);
  EXPECT_EQ(Crc32c("123456789", 9), 0xe3069283u);
  // Extending in pieces equals one pass.
  EXPECT_EQ(Crc32c(inc.data() + 5, 27, Crc32c(inc.data(), 5)), Crc32c(inc.data(), 32));
}

TEST(Record, RoundTripsAndCatchesAnyFlippedByte) {
  std::vector<float> v = {1.5f, -2.0f, 3.25f}, s = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
  RecordRef r{RecordKind::kDense, "fc1.weight", 4096, 17, v, s};
  std::string value;
  EncodeValue(r, &value);
  EXPECT_EQ(value.size(), EncodedValueSize(r));
  Record out;
  ASSERT_OK(DecodeValue(value, &out));
  EXPECT_EQ(out.updates, 17);
  EXPECT_EQ(out.values, v);
  EXPECT_EQ(out.slots, s);
  for (size_t i = 0; i < value.size(); ++i) {
    std::string bad = value;
    bad[i] = static_cast<char>(bad[i] ^ 0x10);
    EXPECT_EQ(CheckValue(bad).code(), StatusCode::kCorruption) << "byte " << i;
  }
  EXPECT_EQ(CheckValue(value.substr(0, value.size() - 4)).code(), StatusCode::kCorruption);

  const std::string key = EncodeKey(RecordKind::kSparse, "emb", 0x0102030405060708ULL);
  RecordKind kind;
  std::string param;
  uint64_t pos;
  ASSERT_OK(DecodeKey(key, &kind, &param, &pos));
  EXPECT_EQ(kind, RecordKind::kSparse);
  EXPECT_EQ(param, "emb");
  EXPECT_EQ(pos, 0x0102030405060708ULL);
  // Big-endian positions sort like numbers.
  EXPECT_LT(EncodeKey(RecordKind::kDense, "w", 255), EncodeKey(RecordKind::kDense, "w", 256));
  EXPECT_FALSE(DecodeKey("xyz", &kind, &param, &pos).ok());
}

// Dense "w" of 100 elements in chunks of 30 (the last 10), sparse "emb" rows 0..49.
struct Data {
  std::vector<std::vector<float>> vals, slots;
  std::vector<RecordRef> refs;
  Data() {
    for (int c = 0; c < 4; ++c) {
      const size_t n = c < 3 ? 30 : 10;
      vals.emplace_back(n);
      slots.emplace_back(2 * n);
      for (size_t i = 0; i < n; ++i) {
        vals.back()[i] = static_cast<float>(c * 30 + static_cast<int>(i));
        slots.back()[i] = slots.back()[n + i] = -vals.back()[i];
      }
    }
    for (int k = 0; k < 50; ++k) {
      vals.push_back({static_cast<float>(k), 0.5f});
      slots.push_back({});
    }
    for (int c = 3; c >= 0; --c) {  // any order: the writer sorts
      refs.push_back({RecordKind::kDense, "w", static_cast<uint64_t>(c * 30), c, vals[static_cast<size_t>(c)],
                      slots[static_cast<size_t>(c)]});
    }
    for (int k = 0; k < 50; ++k) {
      refs.push_back({RecordKind::kSparse, "emb", static_cast<uint64_t>(k) * 1000, 1, vals[static_cast<size_t>(4 + k)],
                      {}});
    }
  }
};

class ShardDb : public ::testing::TestWithParam<WriteMethod> {};

TEST_P(ShardDb, WritesReadsAndScansWithTheSameDigestForBothMethods) {
  tessera::testing::TempDir tmp;
  Data d;
  auto st = WriteShard(tmp.path() + "/db", d.refs, GetParam());
  ASSERT_OK(st.status());
  EXPECT_EQ(st->records, 54u);
  EXPECT_GT(st->file_bytes, 400u * 4);
  // The other method writes the same logical content: same digest.
  auto other = WriteShard(tmp.path() + "/db2", d.refs,
                          GetParam() == WriteMethod::kSstIngest ? WriteMethod::kWriteBatch : WriteMethod::kSstIngest);
  ASSERT_OK(other.status());
  EXPECT_EQ(other->digest, st->digest);
  EXPECT_FALSE(WriteShard(tmp.path() + "/db", d.refs, GetParam()).ok()) << "an existing database is never overwritten";

  auto r = ShardReader::Open(tmp.path() + "/db");
  ASSERT_OK(r.status());
  // [25, 65) overlaps chunks at 0, 30 and 60.
  std::vector<uint64_t> starts;
  ASSERT_OK((*r)->ReadDense("w", 25, 65, [&](const Record& rec) {
    starts.push_back(rec.position);
    EXPECT_EQ(rec.values[0], static_cast<float>(rec.position));
    EXPECT_EQ(rec.slots.size(), 2 * rec.values.size());
    return Status::OK();
  }));
  EXPECT_EQ(starts, (std::vector<uint64_t>{0, 30, 60}));
  starts.clear();
  ASSERT_OK((*r)->ReadDense("w", 90, 100, [&](const Record& rec) {
    starts.push_back(rec.position);
    return Status::OK();
  }));
  EXPECT_EQ(starts, (std::vector<uint64_t>{90}));
  int rows = 0;
  ASSERT_OK((*r)->ReadRows("emb", [&](const Record& rec) {
    EXPECT_EQ(rec.position, static_cast<uint64_t>(rows) * 1000);
    ++rows;
    return Status::OK();
  }));
  EXPECT_EQ(rows, 50);
  auto scan = (*r)->Scan();
  ASSERT_OK(scan.status());
  EXPECT_EQ(scan->records, 54u);
  EXPECT_EQ(scan->dense_records, 4u);
  EXPECT_EQ(scan->digest, st->digest);
}

INSTANTIATE_TEST_SUITE_P(Methods, ShardDb, ::testing::Values(WriteMethod::kSstIngest, WriteMethod::kWriteBatch),
                         [](const auto& info) { return std::string(WriteMethodName(info.param)); });

Manifest SampleManifest(int64_t step) {
  Manifest m;
  m.step = step;
  m.created_unix_ms = 1764000000000 + step;
  m.num_servers = 1;
  m.num_workers = 2;
  m.sync = "bsp";
  m.grad_reduce = "mean";
  m.chunk_bytes = 1 << 20;
  m.flags = {{"lr", "0.002"}, {"hidden", "a b%c"}};
  ParamSpec p;
  p.name = "fc1.weight";
  p.shape = {784, 128};
  p.init = InitKind::kUniform;
  p.init_scale = 0.0357f;
  p.seed = 7;
  p.optimizer.kind = OptimizerKind::kAdam;
  p.optimizer.lr = 0.002f;
  m.params.push_back(p);
  m.servers.push_back({0, "server-0", 0xabcdef, 0x1234, 54, 9999, {{"000009.sst", 9000}, {"CURRENT", 16}}});
  m.workers.push_back({0, step, 1, 64});
  m.workers.push_back({1, step, 1, 64});
  m.bytes_written = 9999;
  return m;
}

TEST(Manifest, RoundTripsExactlyAndRefusesDamage) {
  const Manifest m = SampleManifest(120);
  const std::string text = SerializeManifest(m);
  auto back = ParseManifest(text, "M");
  ASSERT_OK(back.status());
  EXPECT_EQ(SerializeManifest(*back), text);
  EXPECT_EQ(back->params[0].optimizer.lr, 0.002f);
  EXPECT_EQ(back->params[0].init_scale, 0.0357f);
  EXPECT_EQ(back->flags[1].second, "a b%c");
  EXPECT_EQ(back->servers[0].files.size(), 2u);
  EXPECT_EQ(back->workers[1].position, 64);

  std::string flipped = text;
  flipped[text.find("step 120") + 5] = '7';
  auto bad = ParseManifest(flipped, "M");
  EXPECT_EQ(bad.status().code(), StatusCode::kCorruption);
  EXPECT_NE(bad.status().message().find("checksum mismatch"), std::string::npos) << bad.status().ToString();
  EXPECT_FALSE(ParseManifest(text.substr(0, text.size() / 2), "M").ok()) << "a torn manifest is refused";
}

TEST(Manifest, TheWorkersReplicaPartRoundTripsBesideTheServers) {
  Manifest m = SampleManifest(30);
  m.sync = "allreduce";
  m.servers.push_back({kReplicaPart, kReplicaDir, 0x77, 0, 3, 500, {{"000004.sst", 480}}});
  const std::string text = SerializeManifest(m);
  EXPECT_NE(text.find("server -1 replica"), std::string::npos) << text;
  auto back = ParseManifest(text, "M");
  ASSERT_OK(back.status());
  EXPECT_EQ(SerializeManifest(*back), text);
  ASSERT_EQ(back->servers.size(), 2u);
  EXPECT_EQ(back->servers[1].index, kReplicaPart);
  EXPECT_EQ(back->servers[1].files.size(), 1u);

  // Server parts must still match num_servers, and indexes must be in range.
  Manifest two = m;
  two.num_servers = 2;
  auto r = ParseManifest(SerializeManifest(two), "M");
  EXPECT_NE(r.status().message().find("lists 1 server parts for 2 servers"), std::string::npos) << r.status().ToString();
  Manifest far = m;
  far.servers[0].index = 4;
  r = ParseManifest(SerializeManifest(far), "M");
  EXPECT_NE(r.status().message().find("server part 4 out of range"), std::string::npos) << r.status().ToString();
  Manifest neg = m;
  neg.servers[1].index = -2;
  EXPECT_FALSE(ParseManifest(SerializeManifest(neg), "M").ok());
}

TEST(Manifest, CompatibilityNamesTheFirstMismatch) {
  Manifest m = SampleManifest(1);
  std::vector<ParamSpec> same = m.params;
  EXPECT_OK(CheckCompatible(m, same));
  std::vector<ParamSpec> wider = m.params;
  wider[0].shape = {784, 256};
  Status st = CheckCompatible(m, wider);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("'fc1.weight' differs"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("[784,128]"), std::string::npos) << st.ToString();
  std::vector<ParamSpec> renamed = m.params;
  renamed[0].name = "fc9.weight";
  st = CheckCompatible(m, renamed);
  EXPECT_NE(st.message().find("'fc9.weight' is not in the checkpoint"), std::string::npos) << st.ToString();
}

// A complete checkpoint of `step` in `dir`: one database and its manifest.
void MakeCheckpoint(const std::string& dir, int64_t step) {
  Data d;
  const std::string sd = StepDir(dir, step);
  auto st = WriteShard(sd + "/server-0", d.refs, WriteMethod::kSstIngest);
  ASSERT_OK(st.status());
  Manifest m = SampleManifest(step);
  m.servers[0].digest = st->digest;
  m.servers[0].records = st->records;
  auto files = ListFiles(sd + "/server-0");
  ASSERT_OK(files.status());
  m.servers[0].files = *files;
  ASSERT_OK(WriteFileAtomically(sd + "/" + kManifestName, SerializeManifest(m)));
}

void FlipByte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(c ^ 0x5a));
}

std::string LargestSst(const std::string& db) {
  auto files = ListFiles(db);
  std::string best;
  uint64_t size = 0;
  for (const auto& f : *files) {
    if (f.name.size() > 4 && f.name.substr(f.name.size() - 4) == ".sst" && f.size > size) {
      best = db + "/" + f.name;
      size = f.size;
    }
  }
  return best;
}

TEST(Catalog, VerifyFindsFlippedBytesAndResumeFallsBackToTheNewestSound) {
  tessera::testing::TempDir tmp;
  for (int64_t s : {10, 20, 30}) MakeCheckpoint(tmp.path(), s);
  for (int64_t s : {10, 20, 30}) EXPECT_OK(VerifyCheckpoint(StepDir(tmp.path(), s)));
  auto chosen = ChooseResume(tmp.path(), "auto");
  ASSERT_OK(chosen.status());
  EXPECT_EQ(*chosen, StepDir(tmp.path(), 30));

  // A flipped byte in the middle of step 30's SST (inside a value), one in step 20's manifest.
  const std::string sst = LargestSst(StepDir(tmp.path(), 30) + "/server-0");
  ASSERT_FALSE(sst.empty());
  FlipByte(sst, fs::file_size(sst) / 3);
  Status st30 = VerifyCheckpoint(StepDir(tmp.path(), 30));
  EXPECT_EQ(st30.code(), StatusCode::kCorruption) << st30.ToString();
  FlipByte(StepDir(tmp.path(), 20) + "/MANIFEST", 20);
  Status st20 = VerifyCheckpoint(StepDir(tmp.path(), 20));
  EXPECT_NE(st20.message().find("MANIFEST"), std::string::npos) << st20.ToString();

  chosen = ChooseResume(tmp.path(), "auto");
  ASSERT_OK(chosen.status());
  EXPECT_EQ(*chosen, StepDir(tmp.path(), 10));
  EXPECT_FALSE(ChooseResume(tmp.path(), StepDir(tmp.path(), 30)).ok()) << "an explicit damaged path is an error";
  EXPECT_EQ(*ChooseResume(tmp.path(), "none"), "");
}

TEST(Catalog, GarbageCollectionRemovesUnfinishedAndKeepsTheNewestN) {
  tessera::testing::TempDir tmp;
  for (int64_t s : {1, 2, 3, 4}) MakeCheckpoint(tmp.path(), s);
  fs::create_directories(StepDir(tmp.path(), 5) + "/server-0");  // unfinished: no manifest
  fs::create_directories(StepDir(tmp.path(), 6) + "/server-0");  // in progress
  std::ofstream(StepDir(tmp.path(), 5) + "/server-0/x.sst") << "partial";
  auto removed = CollectGarbage(tmp.path(), 2, /*in_progress=*/6);
  ASSERT_OK(removed.status());
  EXPECT_GT(*removed, 0u);
  auto all = ListCheckpoints(tmp.path());
  ASSERT_OK(all.status());
  std::vector<int64_t> steps;
  for (const auto& c : *all) steps.push_back(c.step);
  EXPECT_EQ(steps, (std::vector<int64_t>{3, 4, 6}));
  ASSERT_OK(CollectGarbage(tmp.path(), 0).status());
  all = ListCheckpoints(tmp.path());
  EXPECT_EQ(all->size(), 2u) << "keep=0 keeps every complete one, removes the unfinished";
}

}  // namespace
}  // namespace tessera::checkpoint
