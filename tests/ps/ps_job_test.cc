// Whole jobs as real processes (coordinator, servers, workers) started by tessera launch
// on 127.0.0.1, checked against results computed here independently.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/ps/ps_scenario.h"
#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

using testing::RunCommand;

std::string Peer() { return testing::BinaryDir() + "/tests/ps/ps_peer"; }

std::string LaunchCmd(int servers, int workers, const std::string& args) {
  return testing::TesseraBinary() + " launch --servers " + std::to_string(servers) + " --workers " +
         std::to_string(workers) + " --program " + Peer() + " --subcommand= --grace_s 5 -- " + args;
}

// Double-precision reference of the optimizers (the same formulas as docs/consistency.md).
struct RefSlots {
  double a = 0, b = 0;
  int64_t t = 0;
};

double RefStep(const OptimizerConfig& c, double p, double g, RefSlots* s) {
  ++s->t;
  const double wd = c.weight_decay, lr = c.lr;
  switch (c.kind) {
    case OptimizerKind::kSgd: return p - lr * (g + wd * p);
    case OptimizerKind::kMomentum: {
      g += wd * p;
      s->a = c.momentum * s->a + g;
      return p - lr * (c.nesterov ? g + c.momentum * s->a : s->a);
    }
    case OptimizerKind::kAdaGrad: {
      g += wd * p;
      if (s->t == 1) s->a = c.initial_accumulator;
      s->a += g * g;
      return p - lr * g / (std::sqrt(s->a) + c.eps);
    }
    case OptimizerKind::kAdam:
    case OptimizerKind::kAdamW: {
      const bool decoupled = c.kind == OptimizerKind::kAdamW;
      if (!decoupled) g += wd * p;
      s->a = c.beta1 * s->a + (1 - c.beta1) * g;
      s->b = c.beta2 * s->b + (1 - c.beta2) * g * g;
      double mhat = s->a / (1 - std::pow(double(c.beta1), double(s->t)));
      double vhat = s->b / (1 - std::pow(double(c.beta2), double(s->t)));
      double upd = lr * mhat / (std::sqrt(vhat) + c.eps);
      return decoupled ? p - lr * wd * p - upd : p - upd;
    }
  }
  return p;
}

std::map<std::string, std::vector<double>> Expected(int workers, int steps) {
  std::map<std::string, std::vector<double>> out;
  for (const ParamSpec& spec : testps::ScenarioParams()) {
    if (spec.kind == ParamKind::kDense) {
      std::vector<double> p(testps::kDenseSize, testps::kDenseInit);
      std::vector<RefSlots> slots(p.size());
      for (int s = 0; s < steps; ++s) {
        for (int64_t i = 0; i < testps::kDenseSize; ++i) {
          double g = 0;
          for (int w = 0; w < workers; ++w) g += testps::DenseGrad(w, s, i);
          p[i] = RefStep(spec.optimizer, p[i], g / workers, &slots[i]);
        }
      }
      out[spec.name] = p;
    } else {
      std::map<Key, std::vector<double>> rows;
      std::map<Key, std::vector<RefSlots>> slots;
      for (int s = 0; s < steps; ++s) {
        std::map<Key, std::vector<double>> grad;
        for (int w = 0; w < workers; ++w) {
          auto keys = testps::WorkerKeys(w);
          for (size_t j = 0; j < keys.size(); ++j) {
            auto& g = grad[keys[j]];
            g.resize(testps::kRowWidth, 0.0);
            for (int64_t c = 0; c < testps::kRowWidth; ++c) g[c] += testps::SparseGrad(w, s, static_cast<int>(j), c);
          }
        }
        for (auto& [k, g] : grad) {
          auto& r = rows[k];
          if (r.empty()) r.assign(testps::kRowWidth, testps::kSparseInit);
          auto& sl = slots[k];
          sl.resize(testps::kRowWidth);
          for (int64_t c = 0; c < testps::kRowWidth; ++c) r[c] = RefStep(spec.optimizer, r[c], g[c] / workers, &sl[c]);
        }
      }
      std::vector<double> flat;
      for (Key k : testps::PullKeys()) {
        auto it = rows.find(k);
        for (int64_t c = 0; c < testps::kRowWidth; ++c) flat.push_back(it == rows.end() ? testps::kSparseInit : it->second[c]);
      }
      out[spec.name] = flat;
    }
  }
  return out;
}

std::map<std::string, std::vector<double>> ReadWorkerFile(const std::string& path, uint64_t* keys_pushed) {
  std::map<std::string, std::vector<double>> got;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string name;
    ss >> name;
    if (name == "keys_pushed") {
      ss >> *keys_pushed;
      continue;
    }
    double v;
    while (ss >> v) got[name].push_back(v);
  }
  return got;
}

TEST(ParamServerJob, OneBspStepOfEveryOptimizerMatchesDoubleReference) {
  testing::TempDir dir;
  const int W = 3, kSteps = 2;
  auto r = RunCommand(LaunchCmd(2, W, "--scenario=optimizers --steps=2 --chunk_bytes=1024 --sync=bsp "
                                      "--heartbeat_timeout_s=10 --out_dir=" + dir.path()),
                      120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto expected = Expected(W, kSteps);
  for (int w = 0; w < W; ++w) {
    uint64_t keys_pushed = 0;
    auto got = ReadWorkerFile(dir.path() + "/worker" + std::to_string(w) + ".txt", &keys_pushed);
    ASSERT_EQ(got.size(), expected.size()) << "worker " << w;
    for (const auto& [name, want] : expected) {
      const auto& have = got[name];
      ASSERT_EQ(have.size(), want.size()) << name;
      for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_NEAR(have[i], want[i], 2e-5 * std::max(1.0, std::abs(want[i])))
            << name << " index " << i << " worker " << w;
      }
    }
    // Each push of 6 keys has 5 distinct (key 1 twice); 5 sparse tables, 2 steps.
    EXPECT_EQ(keys_pushed, 5u * 5u * kSteps) << "duplicate keys travelled";
  }
}

// Parses "push <s> <t>" / "pulled <s> <t> <v>" lines.
struct StepLog {
  std::vector<std::pair<int64_t, int64_t>> pushes;  // (step, t_us)
  std::vector<std::pair<int64_t, int64_t>> pulls;   // (step, t_us)
};
StepLog ReadSteps(const std::string& path) {
  StepLog log;
  std::ifstream in(path);
  std::string kind;
  int64_t s, t;
  std::string rest;
  while (in >> kind >> s >> t) {
    if (kind == "push") log.pushes.push_back({s, t});
    else {
      log.pulls.push_back({s, t});
      std::getline(in, rest);
    }
  }
  return log;
}

TEST(ParamServerJob, SspBoundsHowFarTheFastestWorkerRunsAhead) {
  testing::TempDir dir;
  const int K = 2, kSteps = 12;
  auto r = RunCommand(LaunchCmd(1, 3, "--scenario=steps --steps=" + std::to_string(kSteps) +
                                          " --sync=ssp:2 --slow_worker=0 --slow_ms=120 --out_dir=" + dir.path()),
                      120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  StepLog slow = ReadSteps(dir.path() + "/steps0.txt");
  ASSERT_EQ(slow.pushes.size(), static_cast<size_t>(kSteps));
  int max_lead = 0;
  for (int w = 1; w < 3; ++w) {
    StepLog fast = ReadSteps(dir.path() + "/steps" + std::to_string(w) + ".txt");
    ASSERT_EQ(fast.pulls.size(), static_cast<size_t>(kSteps)) << "worker " << w;
    for (auto [step, t] : fast.pulls) {
      // Slow worker's pushes logged before this pull returned.
      int64_t slow_pushed = -1;
      for (auto [ps, pt] : slow.pushes) if (pt <= t) slow_pushed = std::max(slow_pushed, ps);
      // About to compute `step`; the slowest has pushed slow_pushed, i.e. is at slow_pushed + 1.
      int lead = static_cast<int>(step - (slow_pushed + 1));
      max_lead = std::max(max_lead, lead);
      EXPECT_LE(lead, K) << "worker " << w << " started step " << step << " while the slow worker had pushed only "
                         << slow_pushed;
    }
  }
  // It did run ahead (otherwise the test shows nothing about the bound).
  EXPECT_GE(max_lead, 1);
}

TEST(ParamServerJob, AspAppliesWithoutWaiting) {
  testing::TempDir dir;
  const int kSteps = 10;
  auto r = RunCommand(LaunchCmd(1, 2, "--scenario=steps --steps=" + std::to_string(kSteps) +
                                          " --sync=asp --slow_worker=0 --slow_ms=150 --out_dir=" + dir.path()),
                      120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  StepLog slow = ReadSteps(dir.path() + "/steps0.txt");
  StepLog fast = ReadSteps(dir.path() + "/steps1.txt");
  ASSERT_EQ(fast.pulls.size(), static_cast<size_t>(kSteps));
  ASSERT_EQ(slow.pushes.size(), static_cast<size_t>(kSteps));
  // The fast worker finished all its steps before the slow one got half way.
  EXPECT_LT(fast.pulls.back().second, slow.pushes[kSteps / 2].second);
}

// The processes are started here (no launcher), so what is checked is the coordinator's
// own failure detection and the Shutdown it sends to everyone else.
TEST(ParamServerJob, KilledServerIsNamedByTheCoordinatorAndEveryProcessExitsNonZero) {
  testing::TempDir dir;
  const std::string d = dir.path();
  const int port = testing::FreeTcpPort();
  std::string cmd;
  for (int r = 0; r < 5; ++r) {
    cmd += "TESSERA_RANK=" + std::to_string(r) + " TESSERA_WORLD_SIZE=5 TESSERA_COORDINATOR_HOST=127.0.0.1 "
           "TESSERA_COORDINATOR_PORT=" + std::to_string(port) + " TESSERA_JOB_ID=77 " + Peer() +
           " --servers=2 --workers=2 --scenario=steps --steps=100000 --slow_worker=0 --slow_ms=20 "
           "--heartbeat_timeout_s=2 --out_dir=" + d + " > " + d + "/log" + std::to_string(r) + " 2>&1 & P" +
           std::to_string(r) + "=$!; ";
  }
  cmd += "for i in $(seq 100); do grep -q \"training starts\" " + d + "/log0 && break; sleep 0.1; done; sleep 0.5; "
         "T0=$(date +%s.%N); K=$(date +%H:%M:%S.%N); kill -9 $P2; "
         "wait $P0; R0=$?; wait $P1; R1=$?; wait $P3; R3=$?; wait $P4; R4=$?; T1=$(date +%s.%N); "
         "echo rc=$R0,$R1,$R3,$R4 elapsed=$(awk \"BEGIN{print $T1 - $T0}\") killed_at=$K; cat " + d + "/log0";
  auto r = RunCommand(cmd, 60);
  // Coordinator, server 0 and both workers all exit with kExitPeerFailure (3).
  EXPECT_NE(r.output.find("rc=3,3,3,3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("server 1 (rank 2) sent no heartbeat"), std::string::npos) << r.output;
  // Detection: from the kill to the coordinator's "job failed" log line (glog's local
  // time of day, like `date` above), within the heartbeat timeout + 1 s. The processes'
  // exit comes after it and, under ASan's exit-time leak check on 2 busy cores, can take
  // a few tenths more: that is bounded separately.
  std::smatch killed, failed;
  ASSERT_TRUE(std::regex_search(r.output, killed, std::regex(R"(killed_at=(\d\d):(\d\d):([0-9.]+))"))) << r.output;
  ASSERT_TRUE(std::regex_search(r.output, failed,
                                std::regex(R"([EWI]\d{4} (\d\d):(\d\d):([0-9.]+) .*job failed: .*sent no heartbeat)")))
      << r.output;
  auto seconds = [](const std::smatch& m) {
    return std::stod(m[1]) * 3600 + std::stod(m[2]) * 60 + std::stod(m[3]);
  };
  const double detected = std::fmod(seconds(failed) - seconds(killed) + 86400, 86400);
  EXPECT_LT(detected, 2.0 + 1.0) << "heartbeat timeout 2 s + 1 s\n" << r.output;
  auto pos = r.output.find("elapsed=");
  ASSERT_NE(pos, std::string::npos) << r.output;
  EXPECT_LT(std::stod(r.output.substr(pos + 8)), 2.0 + 3.0) << "every process exited soon after";
}

TEST(ParamServerJob, UnderTheLauncherAKilledServerStopsTheJob) {
  testing::TempDir dir;
  std::string job = LaunchCmd(2, 2, "--scenario=steps --steps=100000 --slow_worker=0 --slow_ms=20 "
                                    "--heartbeat_timeout_s=2 --out_dir=" + dir.path());
  std::string cmd = job + " > " + dir.path() + "/out 2>&1 & L=$!; "
                    "for i in $(seq 100); do grep -q \"training starts\" " + dir.path() + "/out && break; sleep 0.1; done; sleep 0.5; "
                    "P=$(pgrep -f \"^" + Peer() + " .*out_dir=" + dir.path() + "\" | sort -n | sed -n 3p); "
                    "kill -9 $P; wait $L; echo rc=$?; cat " + dir.path() + "/out";
  auto r = RunCommand(cmd, 60);
  EXPECT_NE(r.output.find("rc=137"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("server 1 (rank 2, pid"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("was killed by signal 9"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace tessera
