// Load: 16 worker processes and 2 servers on this small machine push dense and sparse
// updates as fast as they can (asp: many steps in flight per worker; bsp: lock-step),
// with tight ZeroMQ queue bounds (--max_inflight) so back-pressure is exercised.
// Checked: the job ends (no deadlock, bounded by the command timeout), every push was
// answered, the final parameters equal minus the exact sum of every push (no update
// lost or applied twice: see stress_scenario.h for why float sums are exact here), and
// each server's peak resident memory grows at most kServerRssGrowthKiB above that of the
// same job doing one step.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/ps/stress_scenario.h"
#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

constexpr int kWorkers = 16;
constexpr int kServers = 2;
// Above what the same 16-worker job peaks at after one step (the process baseline: glog,
// ZeroMQ, allocator arenas, the tables' first huge pages, one link per worker; 25-26 MiB
// measured in December 2026, 13-15 MiB a year before), a server holds up to
// --max_inflight queued requests per connection (each <= 16 KiB): 3-6 MiB measured. The
// baseline is measured in the same test, so what the build links in or maps at start
// does not eat into the allowance. 12 MiB still catches unbounded queueing: the same asp
// run with --max_inflight=100000 peaked 69-87 MiB above its baseline (docs/reliability.md).
constexpr int64_t kServerRssGrowthKiB = 12 * 1024;

std::string Peer() { return testing::BinaryDir() + "/tests/ps/ps_peer"; }

struct Outcome {
  uint64_t answered = 0;
  std::vector<double> dense, sparse;
};

Outcome ReadOutcome(const std::string& path) {
  Outcome o;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string name;
    ss >> name;
    if (name == "answered") ss >> o.answered;
    double v;
    auto* into = name == "dense" ? &o.dense : name == "sparse" ? &o.sparse : nullptr;
    if (into) while (ss >> v) into->push_back(v);
  }
  return o;
}

int64_t PeakRssKiB(const std::string& path) {
  std::ifstream in(path);
  int64_t kib = -1;
  in >> kib;  // "   12345 kB"
  return kib;
}

std::string StressCommand(const std::string& sync, int steps, int window, const std::string& out_dir) {
  return testing::TesseraBinary() + " launch --servers " + std::to_string(kServers) + " --workers " +
         std::to_string(kWorkers) + " --program " + Peer() + " --subcommand= --grace_s 5 -- --scenario=stress --sync=" +
         sync + " --grad_reduce=sum --chunk_bytes=4096 --max_inflight=8 --steps=" + std::to_string(steps) +
         " --window=" + std::to_string(window) + " --heartbeat_timeout_s=20 --out_dir=" + out_dir;
}

void RunStress(const std::string& sync, int steps, int window) {
  // The baseline first: the same job, one step.
  testing::TempDir base;
  auto b = testing::RunCommand(StressCommand(sync, 1, 1, base.path()), 100);
  ASSERT_EQ(b.exit_code, 0) << "the one-step baseline job failed\n" << b.output;

  testing::TempDir dir;
  auto r = testing::RunCommand(StressCommand(sync, steps, window, dir.path()), 100);
  ASSERT_NE(r.exit_code, 124) << "the job did not finish within 100 s (deadlock?)\n" << r.output;
  ASSERT_EQ(r.exit_code, 0) << r.output;

  // Expected, computed here in integers.
  std::vector<int64_t> dense(testps::kStressDense, 0);
  std::map<Key, std::vector<int64_t>> rows;
  for (int w = 0; w < kWorkers; ++w) {
    for (int64_t i = 0; i < testps::kStressDense; ++i) dense[i] -= int64_t{steps} * (w + 1) * (1 + i % 4);
    for (Key k : testps::StressKeys(w)) {
      auto& row = rows[k];
      row.resize(testps::kStressRowWidth, 0);
      for (int64_t c = 0; c < testps::kStressRowWidth; ++c) row[c] -= int64_t{steps} * (w + 1 + c);
    }
  }
  std::vector<double> sparse;
  for (Key k : testps::StressPullKeys(kWorkers)) {
    auto it = rows.find(k);
    for (int64_t c = 0; c < testps::kStressRowWidth; ++c) sparse.push_back(it == rows.end() ? 0.0 : double(it->second[c]));
  }

  uint64_t answered = 0;
  for (int w = 0; w < kWorkers; ++w) {
    Outcome o = ReadOutcome(dir.path() + "/stress" + std::to_string(w) + ".txt");
    answered += o.answered;
    ASSERT_EQ(o.dense.size(), dense.size()) << "worker " << w;
    int wrong = 0;
    for (size_t i = 0; i < dense.size(); ++i) {
      if (o.dense[i] != double(dense[i]) && ++wrong <= 3) {
        ADD_FAILURE() << "worker " << w << " dense[" << i << "] = " << o.dense[i] << ", want " << dense[i];
      }
    }
    EXPECT_EQ(wrong, 0) << "worker " << w << ": dense elements off";
    EXPECT_EQ(o.sparse, sparse) << "worker " << w;
  }
  // Every worker pushed a dense and a sparse update per step, and each was answered.
  EXPECT_EQ(answered, uint64_t{2} * kWorkers * steps);
  const int64_t applied = -dense[0];  // element 0: sum over pushes of (w+1)
  std::printf("[stress %s] pushes %llu answered %llu; dense[0] = -%lld (want -%lld)\n", sync.c_str(),
              static_cast<unsigned long long>(2ull * kWorkers * steps), static_cast<unsigned long long>(answered),
              static_cast<long long>(applied), static_cast<long long>(int64_t{steps} * kWorkers * (kWorkers + 1) / 2));
  for (int s = 1; s <= kServers; ++s) {
    const std::string file = "/rss" + std::to_string(s) + ".txt";
    const int64_t kib = PeakRssKiB(dir.path() + file), base_kib = PeakRssKiB(base.path() + file);
    std::printf("[stress %s] server %d peak RSS %lld KiB, one-step baseline %lld KiB (bound: baseline + %lld KiB)\n",
                sync.c_str(), s - 1, static_cast<long long>(kib), static_cast<long long>(base_kib),
                static_cast<long long>(kServerRssGrowthKiB));
    ASSERT_GT(kib, 0) << "server " << s - 1 << " wrote no peak RSS";
    ASSERT_GT(base_kib, 0) << "server " << s - 1 << " wrote no peak RSS in the baseline job";
    EXPECT_LT(kib, base_kib + kServerRssGrowthKiB) << "server " << s - 1;
  }
}

TEST(ParamServerStress, AspSixteenWorkersManyStepsInFlightLoseNoUpdate) { RunStress("asp", 3000, 256); }

TEST(ParamServerStress, BspSixteenWorkersLoseNoUpdate) { RunStress("bsp", 400, 1); }

}  // namespace
}  // namespace tessera
