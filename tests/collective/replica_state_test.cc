// worker/replica_state: worker 0's all-reduced parameters written as a checkpoint part
// (real RocksDB) and read back, including by a worker whose --chunk_bytes cuts the
// parameter differently, and damaged or mismatched parts refused naming the parameter.
#include "worker/replica_state.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "checkpoint/fs_util.h"
#include "checkpoint/manifest.h"
#include "tests/testutil/testutil.h"

namespace tessera::worker {
namespace {

model::Parameter Param(const std::string& name, int64_t n, const OptimizerConfig& opt) {
  model::Parameter p;
  p.spec.name = name;
  p.spec.kind = ParamKind::kDense;
  p.spec.shape = {n};
  p.spec.optimizer = opt;
  p.value = Tensor::Zeros(DType::kF32, {n});
  p.grad = Tensor::Zeros(DType::kF32, {n});
  for (int64_t i = 0; i < n; ++i) p.value.as<float>()[i] = std::sin(static_cast<float>(i));
  return p;
}

OptimizerConfig Adam() {
  OptimizerConfig adam;
  adam.kind = OptimizerKind::kAdam;
  adam.lr = 0.01f;
  return adam;
}

void Step(GradSync& g, model::Parameter& p, int step) {
  for (int64_t i = 0; i < p.value.numel(); ++i) p.grad.as<float>()[i] = std::cos(static_cast<float>(i * step + 1));
  ASSERT_TRUE(g.FinishStep({}).ok());
}

std::unique_ptr<GradSync> Sync(model::Parameter* p, uint64_t chunk_bytes) {
  GradSyncOptions o;
  o.sync = "allreduce";
  o.chunk_bytes = chunk_bytes;
  auto g = GradSync::Create(o, nullptr, 1, {p});
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  return std::move(g).value();
}

// A step directory whose manifest lists one (empty) server part and the replica.
void Commit(const std::string& step_dir, const checkpoint::WriteStats& replica, const ParamSpec& spec) {
  ASSERT_TRUE(checkpoint::WriteShard(step_dir + "/server-0", {}, checkpoint::WriteMethod::kSstIngest).ok());
  checkpoint::Manifest m;
  m.step = 3;
  m.num_servers = 1;
  m.num_workers = 1;
  m.sync = "allreduce";
  m.params = {spec};
  checkpoint::ServerPart s;
  s.dir = "server-0";
  checkpoint::ServerPart r;
  r.index = checkpoint::kReplicaPart;
  r.dir = checkpoint::kReplicaDir;
  r.digest = replica.digest;
  r.records = replica.records;
  m.servers = {s, r};
  m.workers = {checkpoint::WorkerPart{0, 3, 0, 0}};
  ASSERT_TRUE(
      checkpoint::WriteFileAtomically(step_dir + "/" + checkpoint::kManifestName, checkpoint::SerializeManifest(m)).ok());
}

TEST(ReplicaState, ResumedOptimizerContinuesBitwiseEvenWithAnotherChunkSize) {
  testing::TempDir tmp;
  model::Parameter a = Param("fc.weight", 10, Adam());
  auto ga = Sync(&a, 16);  // chunks of 4 elements: 4, 4, 2
  for (int step = 1; step <= 3; ++step) Step(*ga, a, step);
  const std::string step_dir = tmp.path() + "/step-3";
  auto stats = WriteReplica(*ga, step_dir + "/" + checkpoint::kReplicaDir, checkpoint::WriteMethod::kSstIngest);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->records, 3u);
  Commit(step_dir, *stats, a.spec);

  const std::vector<float> saved(a.value.as<float>(), a.value.as<float>() + 10);
  // The uninterrupted run's next step: Adam uses both moments and the update count, so
  // matching it bitwise needs all three back.
  Step(*ga, a, 4);
  const std::vector<float> next(a.value.as<float>(), a.value.as<float>() + 10);

  for (uint64_t chunk_bytes : {16u, 24u, 1u << 20}) {  // 4, 6 and 10 elements per chunk
    model::Parameter b = Param("fc.weight", 10, Adam());
    auto gb = Sync(&b, chunk_bytes);
    ASSERT_TRUE(LoadReplica(*gb, step_dir).ok());
    for (int i = 0; i < 10; ++i) EXPECT_EQ(b.value.as<float>()[i], saved[i]);
    EXPECT_EQ(*gb->local_states()[0].updates, 3);
    Step(*gb, b, 4);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(b.value.as<float>()[i], next[i]) << chunk_bytes << " element " << i;
  }
}

TEST(ReplicaState, AParameterOfAnotherSizeIsRefusedNamingIt) {
  testing::TempDir tmp;
  model::Parameter a = Param("fc.weight", 10, Adam());
  auto ga = Sync(&a, 16);
  const std::string step_dir = tmp.path() + "/step-3";
  auto stats = WriteReplica(*ga, step_dir + "/" + checkpoint::kReplicaDir, checkpoint::WriteMethod::kWriteBatch);
  ASSERT_TRUE(stats.ok());
  Commit(step_dir, *stats, a.spec);
  model::Parameter big = Param("fc.weight", 12, Adam());
  auto gb = Sync(&big, 16);
  Status st = LoadReplica(*gb, step_dir);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("10 of the 12 elements of 'fc.weight'"), std::string::npos) << st.ToString();
  model::Parameter other = Param("fc.bias", 10, Adam());
  auto go = Sync(&other, 16);
  st = LoadReplica(*go, step_dir);
  EXPECT_NE(st.message().find("0 of the 10 elements of 'fc.bias'"), std::string::npos) << st.ToString();
  // An optimizer with other slots (SGD has none) is caught by the slot count.
  OptimizerConfig sgd;
  model::Parameter plain = Param("fc.weight", 10, sgd);
  auto gp = Sync(&plain, 16);
  st = LoadReplica(*gp, step_dir);
  EXPECT_NE(st.message().find("slots"), std::string::npos) << st.ToString();
}

TEST(ReplicaState, AMissingReplicaDatabaseIsNotFound) {
  testing::TempDir tmp;
  model::Parameter a = Param("fc.weight", 10, Adam());
  auto ga = Sync(&a, 16);
  const std::string step_dir = tmp.path() + "/step-3";
  auto stats = WriteReplica(*ga, step_dir + "/" + checkpoint::kReplicaDir, checkpoint::WriteMethod::kSstIngest);
  ASSERT_TRUE(stats.ok());
  Commit(step_dir, *stats, a.spec);
  std::filesystem::remove_all(step_dir + "/" + checkpoint::kReplicaDir);
  Status st = LoadReplica(*ga, step_dir);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.ToString().find("replica"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace tessera::worker
