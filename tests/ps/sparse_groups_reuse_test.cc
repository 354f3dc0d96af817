// A sparse push of the keys just pulled reuses the pull's key grouping (Client::GroupsOf)
// instead of grouping them again, through a real coordinator, server and client in this
// process (real ZeroMQ sockets): one GroupKeys per table and pull+push step (pulls of two
// tables, then their pushes), and the rows are what a push grouped afresh gives, for keys
// with duplicates in any order, for a push whose keys differ from the pull's in one key
// only, for one table's pulled keys pushed to another, and for two threads pulling and
// pushing different keys at once (the kept groupings are shared state: scripts/test.sh's
// TSan list).
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <thread>
#include <vector>

#include "tests/ps/inproc_job.h"
#include "tests/testutil/testutil.h"
#include "worker/client.h"

namespace tessera {
namespace {

constexpr uint64_t kJob = 5151;
constexpr int64_t kWidth = 4;

// Two sparse tables ("a", "b") of width kWidth, SGD at lr 1 from 0.5, on an in-process job.
std::vector<ParamSpec> Tables() {
  std::vector<ParamSpec> ps;
  for (const char* name : {"a", "b"}) {
    ParamSpec p;
    p.name = name;
    p.kind = ParamKind::kSparse;
    p.shape = {kWidth};
    p.init = InitKind::kConstant;
    p.init_scale = 0.5f;
    p.optimizer.kind = OptimizerKind::kSgd;
    p.optimizer.lr = 1.0f;
    ps.push_back(p);
  }
  return ps;
}

class Cluster {
 public:
  Cluster() : job_(testing::InProcJobOptions{.job_id = kJob}, Tables()) {}
  worker::Client& client() { return job_.client(); }
  Status Pull(uint32_t id, const std::vector<Key>& keys, std::vector<float>* out, int64_t step) {
    out->assign(keys.size() * kWidth, -1.0f);
    TensorView o{out->data(), DType::kF32, {static_cast<int64_t>(keys.size()), kWidth}, Device::kCPU};
    return client().PullSparse(id, keys, o, step).Wait(std::chrono::seconds(30));
  }
  Status Push(uint32_t id, const std::vector<Key>& keys, std::vector<float>& grads, int64_t step) {
    TensorView g{grads.data(), DType::kF32, {static_cast<int64_t>(keys.size()), kWidth}, Device::kCPU};
    return client().PushSparse(id, keys, g, step).Wait(std::chrono::seconds(30));
  }

 private:
  testing::InProcJob job_;
};

// What the table holds after the pushes: SGD at lr 1 from 0.5, each row minus the sum of
// every gradient row pushed for its key (float sums in push order, as the client's merge
// and the server's update do them).
struct Reference {
  std::map<Key, std::vector<float>> rows;
  void Push(const std::vector<Key>& keys, const std::vector<float>& grads) {
    std::map<Key, std::vector<float>> merged;
    for (size_t i = 0; i < keys.size(); ++i) {
      auto [it, fresh] = merged.try_emplace(keys[i], grads.begin() + i * kWidth, grads.begin() + (i + 1) * kWidth);
      if (!fresh) {
        for (int64_t c = 0; c < kWidth; ++c) it->second[c] = it->second[c] + grads[i * kWidth + c];
      }
    }
    for (auto& [k, g] : merged) {
      auto [it, fresh] = rows.try_emplace(k, kWidth, 0.5f);
      for (int64_t c = 0; c < kWidth; ++c) it->second[c] = it->second[c] - g[c];
    }
  }
  void Check(const std::vector<Key>& keys, const std::vector<float>& pulled) const {
    for (size_t i = 0; i < keys.size(); ++i) {
      auto it = rows.find(keys[i]);
      for (int64_t c = 0; c < kWidth; ++c) {
        const float want = it == rows.end() ? 0.5f : it->second[c];
        ASSERT_EQ(pulled[i * kWidth + c], want) << "key " << keys[i] << " column " << c;
      }
    }
  }
};

// Keys with duplicates, in no order; gradients with both signs.
std::vector<Key> Keys(std::mt19937_64& rng, size_t n) {
  std::uniform_int_distribution<Key> key(0, n);
  std::vector<Key> keys(n);
  for (auto& k : keys) k = key(rng) * 977;
  return keys;
}
std::vector<float> Grads(std::mt19937_64& rng, size_t n) {
  std::uniform_real_distribution<float> g(-1.0f, 1.0f);
  std::vector<float> out(n * kWidth);
  for (auto& x : out) x = g(rng);
  return out;
}

TEST(SparseGroupsReuse, APushOfThePulledKeysGroupsThemOnceAndGetsTheSameRows) {
  Cluster c;
  Reference ref;
  std::mt19937_64 rng(7);
  std::vector<float> pulled;
  int64_t step = 0;
  for (int i = 0; i < 6; ++i) {
    const std::vector<Key> keys = Keys(rng, 3000);
    std::vector<float> grads = Grads(rng, keys.size());
    const uint64_t before = c.client().stats().key_groupings;
    ASSERT_OK(c.Pull(0, keys, &pulled, step));
    ref.Check(keys, pulled);
    ASSERT_OK(c.Push(0, keys, grads, step++));
    ref.Push(keys, grads);
    EXPECT_EQ(c.client().stats().key_groupings, before + 1) << "the push grouped the pulled keys again";
  }
  // Keys that differ from the pull's in one place (same count): grouped afresh.
  std::vector<Key> keys = Keys(rng, 3000);
  ASSERT_OK(c.Pull(0, keys, &pulled, step));
  keys[1234] = 977 * 5000 + 1;
  std::vector<float> grads = Grads(rng, keys.size());
  const uint64_t before = c.client().stats().key_groupings;
  ASSERT_OK(c.Push(0, keys, grads, step++));
  ref.Push(keys, grads);
  EXPECT_EQ(c.client().stats().key_groupings, before + 1);
  ASSERT_OK(c.Pull(0, keys, &pulled, step));
  ref.Check(keys, pulled);
  // Two tables, as a training step does: both pulls, then both pushes. Each table keeps
  // its own last pull's grouping, so the pushes group nothing.
  Reference ref_b;
  for (int i = 0; i < 3; ++i) {
    const std::vector<Key> ka = Keys(rng, 2000), kb = Keys(rng, 2500);
    std::vector<float> ga = Grads(rng, ka.size()), gb = Grads(rng, kb.size());
    std::vector<float> pa, pb;
    const uint64_t before2 = c.client().stats().key_groupings;
    ASSERT_OK(c.Pull(0, ka, &pa, step));
    ASSERT_OK(c.Pull(1, kb, &pb, step));
    ref.Check(ka, pa);
    ref_b.Check(kb, pb);
    ASSERT_OK(c.Push(0, ka, ga, step));
    ASSERT_OK(c.Push(1, kb, gb, step++));
    ref.Push(ka, ga);
    ref_b.Push(kb, gb);
    EXPECT_EQ(c.client().stats().key_groupings, before2 + 2) << "a push grouped its table's pulled keys again";
  }
  // The keys table 0 pulled last, pushed to table 1: grouped afresh, right rows.
  const std::vector<Key> ka = Keys(rng, 2000);
  std::vector<float> ga = Grads(rng, ka.size());
  ASSERT_OK(c.Pull(0, ka, &pulled, step));
  ASSERT_OK(c.Push(1, ka, ga, step++));
  ref_b.Push(ka, ga);
  ASSERT_OK(c.Pull(1, ka, &pulled, step));
  ref_b.Check(ka, pulled);
}

TEST(SparseGroupsReuse, TwoThreadsPullingAndPushingTheirOwnKeysGetTheirOwnRows) {
  Cluster c;
  // Disjoint keys per thread (table 0: even multiples, table 1 odd), so each thread's
  // reference is exact whatever the interleaving; the kept grouping flips between them.
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < 2; ++t) {
    threads.emplace_back([&c, t] {
      Reference ref;
      std::mt19937_64 rng(100 + t);
      std::vector<float> pulled;
      for (int64_t step = 0; step < 40; ++step) {
        std::vector<Key> keys = Keys(rng, 500);
        for (auto& k : keys) k = 2 * k + t;
        std::vector<float> grads = Grads(rng, keys.size());
        ASSERT_OK(c.Pull(t, keys, &pulled, step));
        ref.Check(keys, pulled);
        ASSERT_OK(c.Push(t, keys, grads, step));
        ref.Push(keys, grads);
      }
    });
  }
  for (auto& th : threads) th.join();
}

}  // namespace
}  // namespace tessera
