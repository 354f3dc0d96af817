// Checkpoints at the parameter-server level, with real RocksDB and no sockets: servers'
// CheckpointParticipants snapshot and write at a bsp step boundary, RestoreShards loads
// the result into 1, 2 or 3 servers, and training continues bitwise as if nothing had
// happened: dense chunks and sparse rows, with Adam's slots and update counters, and an
// incremental checkpoint that writes only the changed rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <set>

#include "checkpoint/catalog.h"
#include "checkpoint/fs_util.h"
#include "checkpoint/manifest.h"
#include "paramserver/checkpoint_participant.h"
#include "tests/paramserver/test_cluster.h"

namespace tessera::paramserver {
namespace {

using testing::Cluster;

constexpr int kWorkers = 2;

OptimizerConfig Adam() {
  OptimizerConfig o;
  o.kind = OptimizerKind::kAdam;
  o.lr = 0.05f;
  return o;
}

std::vector<ParamSpec> Model() {
  return {testing::DenseSpec("w", {40, 3}, Adam()), testing::SparseSpec("emb", 4, Adam())};
}

// Keys touched at `step`: a window that moves, so later steps touch new and old rows.
std::vector<Key> KeysOf(int64_t step, int worker) {
  std::vector<Key> k;
  for (Key i = 0; i < 6; ++i) k.push_back(static_cast<Key>(step * 3 + i * 7 + static_cast<Key>(worker)));
  return k;
}

void Step(Cluster& c, int64_t step) {
  for (int w = 0; w < kWorkers; ++w) {
    std::vector<float> g(120);
    for (uint64_t i = 0; i < g.size(); ++i) g[i] = testing::Grad(w, step, i);
    ASSERT_OK(c.PushDense(w, 0, step, g));
    std::vector<Key> keys = KeysOf(step, w);
    std::vector<float> sg(keys.size() * 4);
    for (uint64_t i = 0; i < sg.size(); ++i) sg[i] = testing::Grad(w, step, i + 1000);
    ASSERT_OK(c.PushSparse(w, 1, step, keys, sg));
  }
}

std::vector<Key> AllKeys(int64_t upto) {
  std::vector<Key> all;
  for (int64_t s = 0; s < upto; ++s) {
    for (int w = 0; w < kWorkers; ++w) {
      for (Key k : KeysOf(s, w)) {
        if (std::find(all.begin(), all.end(), k) == all.end()) all.push_back(k);
      }
    }
  }
  all.push_back(99999);  // never touched: its initial values
  return all;
}

// Runs every server's participant for a checkpoint at `step` and commits a manifest.
class Checkpointer {
 public:
  explicit Checkpointer(Cluster& c) : cluster_(c) {
    for (uint32_t s = 0; s < c.num_servers(); ++s) {
      parts_.push_back(std::make_unique<CheckpointParticipant>(
          s, checkpoint::WriteMethod::kSstIngest, [](std::function<void()> fn) { fn(); },
          [this, s](const CheckpointReport& r) {
            std::lock_guard<std::mutex> l(mu_);
            reports_[s] = r;
            cv_.notify_all();
          }));
    }
  }

  // Prepares at `step` (the cluster must sit at that boundary) and waits for every part.
  void Prepare(const std::string& dir, int64_t step, bool full, int64_t parent) {
    reports_.assign(cluster_.num_servers(), {});
    for (uint32_t s = 0; s < cluster_.num_servers(); ++s) parts_[s]->OnPrepare(step, dir, full, cluster_.core(s));
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] {
      for (const auto& r : reports_) {
        if (r.step != step) return false;
      }
      return true;
    });
    checkpoint::Manifest m;
    m.step = step;
    m.full = full;
    m.parent_step = parent;
    m.num_servers = static_cast<int>(cluster_.num_servers());
    m.num_workers = kWorkers;
    m.sync = "bsp";
    m.grad_reduce = "mean";
    m.params = Model();
    for (uint32_t s = 0; s < cluster_.num_servers(); ++s) {
      ASSERT_TRUE(reports_[s].ok) << reports_[s].message;
      checkpoint::ServerPart p;
      p.index = static_cast<int>(s);
      p.dir = "server-" + std::to_string(s);
      p.digest = reports_[s].digest;
      p.records = reports_[s].records;
      p.bytes = reports_[s].bytes;
      auto files = checkpoint::ListFiles(dir + "/" + p.dir);
      ASSERT_OK(files.status());
      p.files = *files;
      m.servers.push_back(p);
      records_ += reports_[s].records;
    }
    ASSERT_OK(checkpoint::WriteFileAtomically(dir + "/MANIFEST", checkpoint::SerializeManifest(m)));
    for (uint32_t s = 0; s < cluster_.num_servers(); ++s) parts_[s]->OnCommit(step, true, cluster_.core(s));
  }
  uint64_t TakeRecords() { return std::exchange(records_, 0); }

 private:
  Cluster& cluster_;
  std::vector<std::unique_ptr<CheckpointParticipant>> parts_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<CheckpointReport> reports_;
  uint64_t records_ = 0;
};

struct Values {
  std::vector<float> dense;
  std::vector<float> sparse;
  friend bool operator==(const Values&, const Values&) = default;
};

Values Read(Cluster& c, int64_t step, const std::vector<Key>& keys) {
  return {c.PullDense(0, step), c.PullSparse(1, keys, step)};
}

// The job-wide store digest: values, optimizer slots and counters of every dense chunk
// and resident row, summed over the servers (independent of their number).
uint64_t StoreDigest(Cluster& c) {
  uint64_t d = 0;
  for (uint32_t s = 0; s < c.num_servers(); ++s) d += c.core(s).Digest();
  return d;
}

TEST(PsCheckpoint, RestoredServersContinueBitwiseWithAnyServerCount) {
  ::tessera::testing::TempDir tmp;
  Cluster a(2, kWorkers, Model(), {}, GradReduce::kMean, 32);
  for (int64_t s = 0; s < 5; ++s) Step(a, s);
  const std::string dir = checkpoint::StepDir(tmp.path(), 5);
  Checkpointer ck(a);
  ck.Prepare(dir, 5, true, -1);
  ASSERT_OK(checkpoint::VerifyCheckpoint(dir));

  const std::vector<Key> keys = AllKeys(8);
  const Values at5 = Read(a, 5, keys);
  const uint64_t digest5 = StoreDigest(a);
  for (int64_t s = 5; s < 8; ++s) Step(a, s);
  const Values at8 = Read(a, 8, keys);
  const uint64_t digest8 = StoreDigest(a);
  ASSERT_NE(at5, at8);
  ASSERT_NE(digest5, digest8);

  for (int servers : {1, 2, 3}) {
    SCOPED_TRACE("resumed with " + std::to_string(servers) + " servers");
    Cluster b(servers, kWorkers, Model(), {}, GradReduce::kMean, 32, /*first_step=*/5);
    for (uint32_t s = 0; s < b.num_servers(); ++s) ASSERT_OK(RestoreShards(dir, b.core(s)));
    EXPECT_EQ(Read(b, 5, keys), at5);
    EXPECT_EQ(StoreDigest(b), digest5) << "every row, slot and counter restored, whatever the server count";
    for (int64_t s = 5; s < 8; ++s) Step(b, s);
    // Adam's moments and per-unit update counters came back too, or these would differ.
    EXPECT_EQ(Read(b, 8, keys), at8);
    EXPECT_EQ(StoreDigest(b), digest8);
  }
}

TEST(PsCheckpoint, IncrementalCheckpointWritesOnlyChangedRowsAndRestoresTheChain) {
  ::tessera::testing::TempDir tmp;
  Cluster a(2, kWorkers, Model(), {}, GradReduce::kMean, 32);
  Checkpointer ck(a);
  for (int64_t s = 0; s < 6; ++s) Step(a, s);
  ck.Prepare(checkpoint::StepDir(tmp.path(), 6), 6, true, -1);
  const uint64_t full_records = ck.TakeRecords();
  Step(a, 6);  // touches 12 rows, some of them new
  const std::string incr = checkpoint::StepDir(tmp.path(), 7);
  ck.Prepare(incr, 7, false, 6);
  const uint64_t incr_records = ck.TakeRecords();
  // Dense chunks (15 of 8 floats) are in both; rows: every touched one vs this step's.
  const uint64_t chunks = 15;
  EXPECT_EQ(incr_records - chunks, static_cast<uint64_t>(KeysOf(6, 0).size() + KeysOf(6, 1).size()));
  EXPECT_GT(full_records - chunks, incr_records - chunks);
  ASSERT_OK(checkpoint::VerifyCheckpoint(incr));

  const std::vector<Key> keys = AllKeys(10);
  const Values at7 = Read(a, 7, keys);
  const uint64_t digest7 = StoreDigest(a);
  for (int64_t s = 7; s < 10; ++s) Step(a, s);
  const Values at10 = Read(a, 10, keys);
  Cluster b(3, kWorkers, Model(), {}, GradReduce::kMean, 32, /*first_step=*/7);
  for (uint32_t s = 0; s < b.num_servers(); ++s) ASSERT_OK(RestoreShards(incr, b.core(s)));
  EXPECT_EQ(Read(b, 7, keys), at7);
  EXPECT_EQ(StoreDigest(b), digest7) << "the chain restores exactly the resident rows with their state";
  for (int64_t s = 7; s < 10; ++s) Step(b, s);
  EXPECT_EQ(Read(b, 10, keys), at10);
  EXPECT_EQ(StoreDigest(b), StoreDigest(a));

  // The chain needs its parent: without it, verify and restore refuse.
  std::filesystem::remove(checkpoint::StepDir(tmp.path(), 6) + "/MANIFEST");
  EXPECT_FALSE(checkpoint::VerifyCheckpoint(incr).ok());
}

// Keys of the first 6 virtual partitions of "emb" (param 1), so partitions overflow: a
// window that moves 13 keys a step over 200, so every step brings new keys too.
std::vector<Key> CrowdedKeysOf(int64_t step, int worker) {
  static const std::vector<Key> pool = [] {
    std::vector<Key> p;
    for (Key k = 0; p.size() < 200; ++k) {
      if (ShardMap::SparsePartitionOf(1, k) < 6) p.push_back(k);
    }
    return p;
  }();
  std::vector<Key> k;
  for (Key i = 0; i < 6; ++i) k.push_back(pool[static_cast<size_t>(step * 13 + static_cast<int64_t>(i) * 7 + worker) % pool.size()]);
  return k;
}

void CrowdedStep(Cluster& c, int64_t step) {
  for (int w = 0; w < kWorkers; ++w) {
    std::vector<float> g(120);
    for (uint64_t i = 0; i < g.size(); ++i) g[i] = testing::Grad(w, step, i);
    ASSERT_OK(c.PushDense(w, 0, step, g));
    std::vector<Key> keys = CrowdedKeysOf(step, w);
    std::vector<float> sg(keys.size() * 4);
    for (uint64_t i = 0; i < sg.size(); ++i) sg[i] = testing::Grad(w, step, i + 1000);
    ASSERT_OK(c.PushSparse(w, 1, step, keys, sg));
  }
}

uint64_t Evicted(Cluster& c) {
  uint64_t n = 0;
  for (uint32_t s = 0; s < c.num_servers(); ++s) n += c.core(s).store().table_stats(1).evicted;
  return n;
}

// The resident keys of table "emb" (param 1) on each server.
std::vector<std::set<Key>> Resident(Cluster& c) {
  std::vector<std::set<Key>> out(c.num_servers());
  for (uint32_t s = 0; s < c.num_servers(); ++s) {
    const RowTable& t = *c.core(s).store().table(1);
    for (uint32_t slot = 0; slot < t.slot_limit(); ++slot) {
      if (t.live(slot)) out[s].insert(t.key(slot));
    }
  }
  return out;
}

void SetPolicy(Cluster& c, const TablePolicy& p) {
  for (uint32_t s = 0; s < c.num_servers(); ++s) ASSERT_OK(c.core(s).mutable_store().SetTablePolicy(1, p));
}

// Rows evicted between a full checkpoint and an incremental one: the incremental lists
// them as erased, and a resume from the chain holds exactly the resident rows, with their
// last-seen steps and the admission sketch, then evicts as the uninterrupted run does.
TEST(PsCheckpoint, IncrementalCheckpointAfterEvictionsRestoresExactlyTheResidentSet) {
  ::tessera::testing::TempDir tmp;
  Cluster a(2, kWorkers, Model(), {}, GradReduce::kMean, 32);
  TablePolicy p;
  // One row a partition (B = 840 rows on one server's limit), 200 keys crowd 6 of them.
  p.memory_limit = a.core(0).store().table(1)->RowBytes() * kSparsePartitions;
  p.min_key_count = 2;
  p.sketch_width = 64;
  SetPolicy(a, p);
  Checkpointer ck(a);
  for (int64_t s = 0; s < 6; ++s) CrowdedStep(a, s);
  ck.Prepare(checkpoint::StepDir(tmp.path(), 6), 6, true, -1);
  const auto at6 = Resident(a);
  CrowdedStep(a, 6);
  const auto at7 = Resident(a);
  size_t gone = 0;
  for (uint32_t s = 0; s < 2; ++s) {
    for (Key k : at6[s]) gone += at7[s].count(k) == 0 ? 1 : 0;
  }
  ASSERT_GT(gone, 0u) << "step 6 must evict rows the full checkpoint holds";
  const std::string incr = checkpoint::StepDir(tmp.path(), 7);
  ck.Prepare(incr, 7, false, 6);
  ASSERT_OK(checkpoint::VerifyCheckpoint(incr));

  Cluster b(2, kWorkers, Model(), {}, GradReduce::kMean, 32, /*first_step=*/7);
  SetPolicy(b, p);
  for (uint32_t s = 0; s < 2; ++s) ASSERT_OK(RestoreShards(incr, b.core(s)));
  EXPECT_EQ(Resident(b), at7) << "rows evicted since the parent are gone after the resume";
  for (uint32_t s = 0; s < 2; ++s) {
    EXPECT_EQ(b.core(s).Snapshot(), a.core(s).Snapshot()) << "server " << s << ": rows, last-seen, sketch";
  }
  for (int64_t s = 7; s < 12; ++s) {
    CrowdedStep(a, s);
    CrowdedStep(b, s);
  }
  EXPECT_GT(a.core(0).store().table_stats(1).evicted, 0u);
  for (uint32_t s = 0; s < 2; ++s) EXPECT_EQ(b.core(s).Snapshot(), a.core(s).Snapshot()) << "server " << s;
}

// Expiry is a function of each row alone (its last-seen step), so a resume by another
// number of servers expires the same rows: 2 servers checkpoint, 3 resume, bitwise.
TEST(PsCheckpoint, ExpiryResumesExactlyOnAnotherNumberOfServers) {
  ::tessera::testing::TempDir tmp;
  TablePolicy p;
  p.expiry_steps = 2;
  Cluster a(2, kWorkers, Model(), {}, GradReduce::kMean, 32);
  SetPolicy(a, p);
  Checkpointer ck(a);
  for (int64_t s = 0; s < 6; ++s) Step(a, s);
  ck.Prepare(checkpoint::StepDir(tmp.path(), 6), 6, true, -1);
  Step(a, 6);
  const std::string incr = checkpoint::StepDir(tmp.path(), 7);
  ck.Prepare(incr, 7, false, 6);
  const std::vector<Key> keys = AllKeys(12);
  const uint64_t digest7 = StoreDigest(a);
  for (int64_t s = 7; s < 12; ++s) Step(a, s);
  ASSERT_GT(a.core(0).store().table_stats(1).expired, 0u);
  Cluster c(3, kWorkers, Model(), {}, GradReduce::kMean, 32, /*first_step=*/7);
  SetPolicy(c, p);
  for (uint32_t s = 0; s < 3; ++s) ASSERT_OK(RestoreShards(incr, c.core(s)));
  EXPECT_EQ(StoreDigest(c), digest7);
  for (int64_t s = 7; s < 12; ++s) Step(c, s);
  EXPECT_EQ(Read(c, 12, keys), Read(a, 12, keys));
  EXPECT_EQ(StoreDigest(c), StoreDigest(a));
}

// The memory budget is per virtual partition of the job-wide budget (limit x the
// servers it was set for), so a resume on 3 servers that keeps the 2-server budget
// evicts the same rows: bitwise, evictions before the checkpoint and after the resume;
// with admission by a partitioned sketch, loaded summed, too.
TEST(PsCheckpoint, MemoryLimitResumesExactlyOnAnotherNumberOfServers) {
  ::tessera::testing::TempDir tmp;
  Cluster a(2, kWorkers, Model(), {}, GradReduce::kMean, 32);
  TablePolicy p;
  // B = 2 x 840 x 1.5 rows: 3 rows a partition (200 keys crowd 6 partitions), keeps 2 or 3.
  p.memory_limit = a.core(0).store().table(1)->RowBytes() * kSparsePartitions * 3 / 2;
  p.memory_servers = 2;
  p.min_key_count = 2;  // a partitioned sketch (width >= 840): summed on the reshard, exact
  p.sketch_width = 16384;  // 19 columns a partition and row
  SetPolicy(a, p);
  Checkpointer ck(a);
  for (int64_t s = 0; s < 6; ++s) CrowdedStep(a, s);
  ck.Prepare(checkpoint::StepDir(tmp.path(), 6), 6, true, -1);
  CrowdedStep(a, 6);
  const std::string incr = checkpoint::StepDir(tmp.path(), 7);
  ck.Prepare(incr, 7, false, 6);
  const uint64_t evicted7 = Evicted(a);
  ASSERT_GT(evicted7, 0u) << "evictions before the checkpoint";
  std::vector<Key> keys;
  for (int64_t s = 0; s < 12; ++s) {
    for (Key k : CrowdedKeysOf(s, 0)) keys.push_back(k);
  }
  keys.push_back(99999);
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  const uint64_t digest7 = StoreDigest(a);
  for (int64_t s = 7; s < 12; ++s) CrowdedStep(a, s);
  ASSERT_GT(Evicted(a), evicted7) << "evictions after the checkpoint";

  Cluster c(3, kWorkers, Model(), {}, GradReduce::kMean, 32, /*first_step=*/7);
  SetPolicy(c, p);  // the checkpoint's budget kept: memory_servers stays 2
  for (uint32_t s = 0; s < 3; ++s) ASSERT_OK(RestoreShards(incr, c.core(s)));
  EXPECT_EQ(StoreDigest(c), digest7);
  for (int64_t s = 7; s < 12; ++s) CrowdedStep(c, s);
  EXPECT_GT(Evicted(c), 0u) << "evictions after the resume";
  EXPECT_GT(c.core(0).store().table_stats(1).dropped + c.core(1).store().table_stats(1).dropped +
                c.core(2).store().table_stats(1).dropped,
            0u)
      << "admission after the resume";
  EXPECT_EQ(Read(c, 12, keys), Read(a, 12, keys));
  EXPECT_EQ(StoreDigest(c), StoreDigest(a));
  std::set<Key> ra, rc;
  for (const auto& r : Resident(a)) ra.insert(r.begin(), r.end());
  for (const auto& r : Resident(c)) rc.insert(r.begin(), r.end());
  EXPECT_EQ(rc, ra);

  // The old rule (the per-server limit on each of the 3: a budget 1.5 times larger)
  // does not continue the run: the comparison above can fail.
  TablePolicy per_server = p;
  per_server.memory_servers = 3;
  Cluster d(3, kWorkers, Model(), {}, GradReduce::kMean, 32, /*first_step=*/7);
  SetPolicy(d, per_server);
  for (uint32_t s = 0; s < 3; ++s) ASSERT_OK(RestoreShards(incr, d.core(s)));
  for (int64_t s = 7; s < 12; ++s) CrowdedStep(d, s);
  EXPECT_NE(StoreDigest(d), StoreDigest(a));
}

// The admission sketch: the same servers each load their own; another number of
// servers each load the sum of every old server's (an upper bound of every key's count).
TEST(PsCheckpoint, AdmissionSketchesLoadOwnOrSummedOnAReshard) {
  ::tessera::testing::TempDir tmp;
  TablePolicy p;
  p.min_key_count = 3;
  p.sketch_width = 64;
  Cluster a(2, kWorkers, Model(), {}, GradReduce::kMean, 32);
  SetPolicy(a, p);
  Checkpointer ck(a);
  for (int64_t s = 0; s < 6; ++s) Step(a, s);
  ASSERT_GT(a.core(0).store().table_stats(1).dropped, 0u);
  const std::string dir = checkpoint::StepDir(tmp.path(), 6);
  ck.Prepare(dir, 6, true, -1);
  Cluster b(2, kWorkers, Model(), {}, GradReduce::kMean, 32, /*first_step=*/6);
  SetPolicy(b, p);
  for (uint32_t s = 0; s < 2; ++s) {
    ASSERT_OK(RestoreShards(dir, b.core(s)));
    EXPECT_TRUE(*b.core(s).store().sketch(1) == *a.core(s).store().sketch(1)) << "server " << s;
  }
  CountMinSketch sum = *a.core(0).store().sketch(1);
  std::vector<float> counts;
  a.core(1).store().sketch(1)->CountsInto(&counts);
  ASSERT_OK(sum.Load(counts, /*add=*/true));
  Cluster c(3, kWorkers, Model(), {}, GradReduce::kMean, 32, /*first_step=*/6);
  SetPolicy(c, p);
  for (uint32_t s = 0; s < 3; ++s) {
    ASSERT_OK(RestoreShards(dir, c.core(s)));
    EXPECT_TRUE(*c.core(s).store().sketch(1) == sum) << "server " << s;
  }
  // A job restored with another sketch width is refused (a configuration error), naming
  // the database.
  TablePolicy wider = p;
  wider.sketch_width = 128;
  Cluster d(2, kWorkers, Model(), {}, GradReduce::kMean, 32, /*first_step=*/6);
  SetPolicy(d, wider);
  Status st = RestoreShards(dir, d.core(0));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.ToString().find("server-0"), std::string::npos) << st.ToString();
  EXPECT_NE(st.ToString().find("--min_key_count_sketch_width"), std::string::npos) << st.ToString();
}

TEST(PsCheckpoint, PrepareAfterTheBoundaryIsRefusedAsTooLate) {
  ::tessera::testing::TempDir tmp;
  Cluster a(1, kWorkers, Model(), {}, GradReduce::kMean, 32);
  for (int64_t s = 0; s < 4; ++s) Step(a, s);
  std::mutex mu;
  std::vector<CheckpointReport> got;
  CheckpointParticipant p(0, checkpoint::WriteMethod::kWriteBatch, [](std::function<void()> fn) { fn(); },
                          [&](const CheckpointReport& r) {
                            std::lock_guard<std::mutex> l(mu);
                            got.push_back(r);
                          });
  p.OnPrepare(2, tmp.path() + "/x", true, a.core(0));
  std::lock_guard<std::mutex> l(mu);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_FALSE(got[0].ok);
  EXPECT_NE(got[0].message.find("too late"), std::string::npos) << got[0].message;
}

TEST(PsCheckpoint, RestoreFromAModelWithMissingElementsIsCorruption) {
  ::tessera::testing::TempDir tmp;
  Cluster a(2, kWorkers, Model(), {}, GradReduce::kMean, 32);
  Step(a, 0);
  const std::string dir = checkpoint::StepDir(tmp.path(), 1);
  Checkpointer ck(a);
  ck.Prepare(dir, 1, true, -1);
  std::filesystem::remove_all(dir + "/server-1");
  Cluster b(1, kWorkers, Model(), {}, GradReduce::kMean, 32, 1);
  Status st = RestoreShards(dir, b.core(0));
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("server-1"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace tessera::paramserver
