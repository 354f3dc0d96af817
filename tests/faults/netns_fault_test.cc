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
      GTEST_SKIP() << "cannot create a network namespace with a veth pair here (needs root, CAP_NET_ADMIN, iptables and tc): "
                   << r.output;
    }
    created_ = true;
  }

  void TearDown() override {
    RunCommand("ip link del " + host_if_ + " 2>/dev/null; ip netns del " + ns_ + " 2>/dev/null", 30);
  }

  std::string InNs(const std::string& cmd) const { return "ip netns exec " + ns_ + " " + cmd; }

  // Starts the 4 processes (rank 3 = worker 1 in the namespace), runs `fault` once the
  // job trains, waits for all, prints "rc=<coord>,<server>,<w0>,<w1>" and the logs.
  std::string RunJob(const std::string& dir, int steps, const std::string& fault, const std::string& extra = "") {
    const int port = testing::FreeTcpPort();
    std::string cmd;
    for (int r = 0; r < 4; ++r) {
      std::string proc = "TESSERA_RANK=" + std::to_string(r) +
                         " TESSERA_WORLD_SIZE=4 TESSERA_COORDINATOR_HOST=" + host_ip_ +
                         " TESSERA_COORDINATOR_PORT=" + std::to_string(port) + " TESSERA_JOB_ID=99 " +
                         testing::BinaryDir() + "/tests/ps/ps_peer --servers=1 --workers=2 --scenario=steps --steps=" +
                         std::to_string(steps) + " --bind_host=" + host_ip_ + " --auth_key_file=" + dir +
                         "/job.key --heartbeat_timeout_s=3 --out_dir=" + dir + " " + extra;
      if (r == 3) proc = "ip netns exec " + ns_ + " env " + proc;
      cmd += proc + " > " + dir + "/log" + std::to_string(r) + " 2>&1 & P" + std::to_string(r) + "=$!; ";
    }
    cmd += "for i in $(seq 200); do grep -q \"training starts\" " + dir + "/log0 && break; sleep 0.1; done; " + fault +
           "; T0=$(date +%s.%N); wait $P0; R0=$?; wait $P1; R1=$?; wait $P2; R2=$?; wait $P3; R3=$?; T1=$(date +%s.%N); "
           "echo rc=$R0,$R1,$R2,$R3 after=$(awk \"BEGIN{print $T1 - $T0}\"); "
           "cat " + dir + "/log0; tail -3 " + dir + "/steps1.txt";
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
  const int steps = 200;
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

TEST_F(NetnsFaultTest, PartitionLongerThanHeartbeatTimeoutEndsTheJobNamingThePeer) {
  testing::TempDir dir;
  auto out = RunJob(dir.path(), 100000,
                    "sleep 0.5; " + InNs("iptables -A INPUT -j DROP") + " && " + InNs("iptables -A OUTPUT -j DROP"),
                    "--slow_worker=0 --slow_ms=20");
  // The coordinator names worker 1 (rank 3) and stops the job with exit code 3
  // (peer failure); the partitioned worker itself gives up on its coordinator.
  EXPECT_NE(out.find("worker 1 (rank 3) sent no heartbeat"), std::string::npos) << out;
  EXPECT_NE(out.find("rc=3,3,3,"), std::string::npos) << out;
  EXPECT_EQ(out.find(",0\n"), std::string::npos) << "the partitioned worker reported success\n" << out;
}

TEST_F(NetnsFaultTest, TcpResetsOnEveryConnectionEndTheJobCleanly) {
  testing::TempDir dir;
  auto out = RunJob(dir.path(), 100000, "sleep 0.5; " + InNs("iptables -A OUTPUT -p tcp -j REJECT --reject-with tcp-reset"),
                    "--slow_worker=0 --slow_ms=20");
  EXPECT_NE(out.find("worker 1 (rank 3) sent no heartbeat"), std::string::npos) << out;
  EXPECT_NE(out.find("rc=3,3,3,"), std::string::npos) << out;
}

}  // namespace
}  // namespace tessera
