// Network faults between real job processes: worker 1 runs in a network namespace the
// test creates, joined to the host by a veth pair; the coordinator, the server and
// worker 0 stay on the host and listen on the host end's address. Faults are injected
// on the namespace side with iptables (random loss, resets, full partition) and tc tbf
// (bandwidth cap). Skipped, with the reason, where namespaces cannot be created.
//
// The job authenticates with CURVE through --auth_key_file (rank 0 creates the key,
// the others wait for it), as a multi-host job would.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <string>

#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

using testing::RunCommand;

class NetnsFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const int id = static_cast<int>(getpid() % 200) + 20;
    ns_ = "tsr" + std::to_string(getpid());
    host_if_ = "th" + std::to_string(getpid());
    ns_if_ = "tn" + std::to_string(getpid());
    host_ip_ = "10.199." + std::to_string(id) + ".1";
    ns_ip_ = "10.199." + std::to_string(id) + ".2";
    auto r = RunCommand("ip netns add " + ns_ + " && ip link add " + host_if_ + " type veth peer name " + ns_if_ +
                            " && ip link set " + ns_if_ + " netns " + ns_ + " && ip addr add " + host_ip_ + "/24 dev " +
                            host_if_ + " && ip link set " + host_if_ + " up && ip netns exec " + ns_ + " ip addr add " +
                            ns_ip_ + "/24 dev " + ns_if_ + " && ip netns exec " + ns_ + " ip link set " + ns_if_ +
                            " up && ip netns exec " + ns_ + " ip link set lo up && which iptables tc >/dev/null",
                        30);
    if (r.exit_code != 0) {
      TearDown();
      TESSERA_SKIP_OR_FAIL_IN_CI("cannot create a network namespace with a veth pair here (needs root, CAP_NET_ADMIN, "
                                 "iptables and tc: Debian packages iproute2, iptables): " + r.output);
    }
    created_ = true;
  }

  void TearDown() override {
    RunCommand("ip link del " + host_if_ + " 2>/dev/null; ip netns del " + ns_ + " 2>/dev/null", 30);
  }

  std::string InNs(const std::string& cmd) const { return "ip netns exec " + ns_ + " " + cmd; }

  // ps_peer's bsp step scenario (every worker pushes 1s, lr = 1) for `steps` steps.
  // `fault_first`: see RunProcesses. The short jobs below need it: without a fault they
  // finish in well under a second.
  std::string RunJob(const std::string& dir, int steps, const std::string& fault, const std::string& extra = "",
                     bool fault_first = true) {
    return RunProcesses(dir, testing::BinaryDir() + "/tests/ps/ps_peer --servers=1 --workers=2 --scenario=steps --steps=" +
                                 std::to_string(steps) + " --out_dir=" + dir + " " + extra,
                        fault, fault_first);
  }

  // Starts `program` as the 4 processes of one job (rank 3 = worker 1 in the namespace,
  // the others bound to the host end), runs `fault` once the job trains, waits for all,
  // prints "rc=<coord>,<server>,<w0>,<w1>" and the logs.
  // With `fault_first`, the fault is in place before any process starts (a job that trains
  // in well under a second would otherwise be done before it applies).
  std::string RunProcesses(const std::string& dir, const std::string& program, const std::string& fault,
                           bool fault_first = false) {
    const int port = testing::FreeTcpPort();
    std::string cmd = fault_first ? fault + "; " : "";
    for (int r = 0; r < 4; ++r) {
      std::string proc = "TESSERA_RANK=" + std::to_string(r) +
                         " TESSERA_WORLD_SIZE=4 TESSERA_COORDINATOR_HOST=" + host_ip_ +
                         " TESSERA_COORDINATOR_PORT=" + std::to_string(port) + " TESSERA_JOB_ID=99 " + program +
                         " --bind_host=" + host_ip_ + " --auth_key_file=" + dir + "/job.key --heartbeat_timeout_s=3";
      if (r == 3) proc = "ip netns exec " + ns_ + " env " + proc;
      cmd += proc + " > " + dir + "/log" + std::to_string(r) + " 2>&1 & P" + std::to_string(r) + "=$!; ";
    }
    if (!fault_first) {
      cmd += "for i in $(seq 200); do grep -q \"training starts\" " + dir + "/log0 && break; sleep 0.1; done; " + fault + "; ";
    }
    cmd += "T0=$(date +%s.%N); wait $P0; R0=$?; wait $P1; R1=$?; wait $P2; R2=$?; wait $P3; R3=$?; T1=$(date +%s.%N); "
           "echo rc=$R0,$R1,$R2,$R3 after=$(awk \"BEGIN{print $T1 - $T0}\"); "
           "cat " + dir + "/log0; tail -3 " + dir + "/steps1.txt 2>/dev/null";
    auto out = RunCommand(cmd, 240).output;
    const auto p = out.find("rc=");
    if (p != std::string::npos) std::printf("[netns] %s\n", out.substr(p, out.find('\n', p) - p).c_str());
    return out;
  }

  bool created_ = false;
  std::string ns_, host_if_, ns_if_, host_ip_, ns_ip_;
};

// bsp, mean of two workers pushing 1s with lr = 1: after k steps every value is -k.
std::string FinalLine(int steps) { return "pulled " + std::to_string(steps) + " "; }

TEST_F(NetnsFaultTest, TenPercentPacketLossBothWaysStillFinishesCorrectly) {
  testing::TempDir dir;
  const int steps = 100;
  auto out = RunJob(dir.path(), steps,
                    InNs("iptables -A INPUT -m statistic --mode random --probability 0.1 -j DROP") + " && " +
                        InNs("iptables -A OUTPUT -m statistic --mode random --probability 0.1 -j DROP"));
  EXPECT_NE(out.find("rc=0,0,0,0"), std::string::npos) << out;
  EXPECT_NE(out.find(FinalLine(steps)), std::string::npos) << out;
  EXPECT_NE(out.find(" -" + std::to_string(steps) + "\n"), std::string::npos) << "final value\n" << out;
}

TEST_F(NetnsFaultTest, BandwidthCapStillFinishesCorrectly) {
  testing::TempDir dir;
  const int steps = 100;
  auto out = RunJob(dir.path(), steps, InNs("tc qdisc add dev " + ns_if_ + " root tbf rate 256kbit burst 16kb latency 200ms"));
  EXPECT_NE(out.find("rc=0,0,0,0"), std::string::npos) << out;
  EXPECT_NE(out.find(" -" + std::to_string(steps) + "\n"), std::string::npos) << "final value\n" << out;
}

// A real training job (the MNIST MLP of tests/faults/latency_fault_test.cc: 0.907 test
// accuracy without faults) with 5 % packet loss both ways and a 20 Mbit/s cap on the
// namespace side (worker 1's ~32 MB of pushes and pulls) still reaches the threshold.
// The faults are in place from the start: without them this job trains in a fraction of
// a second, before a fault applied at "training starts" could take effect.
TEST_F(NetnsFaultTest, TrainingWithLossAndABandwidthCapReachesTheAccuracyThreshold) {
  testing::TempDir dir;
  const std::string metrics = dir.path() + "/metrics.jsonl";
  auto out = RunProcesses(
      dir.path(),
      testing::TesseraBinary() + " train --servers=1 --train_limit=10000 --test_limit=1000 --hidden=64 --batch_size=64 "
          "--epochs=1 --optimizer=adam --lr=0.006 --log_every=0 --seed=1 --sync=bsp --deterministic --data=" +
          testing::SourceDir() + "/data/mnist --metrics_out=" + metrics,
      InNs("iptables -A INPUT -m statistic --mode random --probability 0.05 -j DROP") + " && " +
          InNs("iptables -A OUTPUT -m statistic --mode random --probability 0.05 -j DROP") + " && " +
          InNs("tc qdisc add dev " + ns_if_ + " root tbf rate 20mbit burst 64kb latency 200ms"),
      /*fault_first=*/true);
  EXPECT_NE(out.find("rc=0,0,0,0"), std::string::npos) << out;
  std::ifstream in(metrics);
  std::string summary;
  for (std::string line; std::getline(in, line);) {
    if (line.find("\"event\":\"summary\"") != std::string::npos) summary = line;
  }
  ASSERT_FALSE(summary.empty()) << out;
  const size_t p = summary.find("\"test_accuracy\":");
  ASSERT_NE(p, std::string::npos) << summary;
  const double accuracy = std::stod(summary.substr(p + 16));
  std::printf("[netns] MNIST MLP with 5%% loss and a 20 Mbit/s cap: test accuracy %.4f\n", accuracy);
  EXPECT_GE(accuracy, 0.90) << summary;
  EXPECT_NE(summary.find("\"steps\":79"), std::string::npos) << summary;

  // The faults were on worker 1's path: the capped queue carried its pushes (79 x 203 KB
  // in all) and the loss rules dropped packets.
  auto stats = RunCommand(InNs("tc -s qdisc show dev " + ns_if_) + "; " + InNs("iptables -L -v -n -x"), 30);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(stats.output, m, std::regex(R"(Sent (\d+) bytes)"))) << stats.output;
  EXPECT_GT(std::stoll(m[1]), 4'000'000) << stats.output;
  long long dropped = 0;
  const std::regex rule(R"(\n\s*(\d+)\s+\d+\s+DROP)");
  for (auto it = std::sregex_iterator(stats.output.begin(), stats.output.end(), rule); it != std::sregex_iterator(); ++it) {
    dropped += std::stoll((*it)[1]);
  }
  std::printf("[netns] capped queue: %s bytes sent; %lld packets dropped\n", m[1].str().c_str(), dropped);
  EXPECT_GT(dropped, 0) << stats.output;
}

TEST_F(NetnsFaultTest, PartitionLongerThanHeartbeatTimeoutEndsTheJobNamingThePeer) {
  testing::TempDir dir;
  auto out = RunJob(dir.path(), 100000,
                    "sleep 0.5; " + InNs("iptables -A INPUT -j DROP") + " && " + InNs("iptables -A OUTPUT -j DROP"),
                    "--slow_worker=0 --slow_ms=20", /*fault_first=*/false);
  // The coordinator names worker 1 (rank 3) and stops the job with exit code 3
  // (peer failure); the partitioned worker itself gives up on its coordinator.
  EXPECT_NE(out.find("worker 1 (rank 3) sent no heartbeat"), std::string::npos) << out;
  EXPECT_NE(out.find("rc=3,3,3,"), std::string::npos) << out;
  EXPECT_EQ(out.find(",0\n"), std::string::npos) << "the partitioned worker reported success\n" << out;
}

TEST_F(NetnsFaultTest, TcpResetsOnEveryConnectionEndTheJobCleanly) {
  testing::TempDir dir;
  auto out = RunJob(dir.path(), 100000, "sleep 0.5; " + InNs("iptables -A OUTPUT -p tcp -j REJECT --reject-with tcp-reset"),
                    "--slow_worker=0 --slow_ms=20", /*fault_first=*/false);
  EXPECT_NE(out.find("worker 1 (rank 3) sent no heartbeat"), std::string::npos) << out;
  EXPECT_NE(out.find("rc=3,3,3,"), std::string::npos) << out;
}

}  // namespace
}  // namespace tessera
