// Wall-clock jumps (libfaketime, preloaded into every process of a real job) must not
// fire any timeout: heartbeats, request deadlines and stall detection run on the
// monotonic clock (common/clock.h). The test jumps the wall clock an hour forward, then
// two hours back, while a bsp job with a 2 s heartbeat timeout trains; the job must
// finish normally with the exact result. Skipped, with the reason, without libfaketime.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

using testing::RunCommand;

std::string FakeTimeLib() {
  for (const char* p : {"/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1", "/usr/lib/faketime/libfaketimeMT.so.1"}) {
    if (std::filesystem::exists(p)) return p;
  }
  return "";
}

TEST(ClockJump, WallClockJumpsFireNoTimeout) {
  const std::string lib = FakeTimeLib();
  if (lib.empty()) TESSERA_SKIP_OR_FAIL_IN_CI("libfaketime is not installed (Debian package faketime)");
  testing::TempDir dir;
  const std::string ts = dir.path() + "/faketime";
  // DONT_FAKE_MONOTONIC: only the wall clock jumps, as with NTP or an operator's date -s.
  const std::string env = "LD_PRELOAD=" + lib + " FAKETIME_TIMESTAMP_FILE=" + ts +
                          " FAKETIME_NO_CACHE=1 DONT_FAKE_MONOTONIC=1 ";
  const int steps = 40;
  const std::string job = testing::TesseraBinary() + " launch --servers 1 --workers 2 --program " + testing::BinaryDir() +
                          "/tests/ps/ps_peer --subcommand= --grace_s 5 -- --scenario=steps --steps=" +
                          std::to_string(steps) + " --sync=bsp --slow_worker=0 --slow_ms=100 --heartbeat_timeout_s=2 "
                          "--heartbeat_interval_s=0.2 --out_dir=" + dir.path();
  const std::string cmd =
      "echo +0 > " + ts + "; " + env + job + " > " + dir.path() + "/out 2>&1 & L=$!; "
      "for i in $(seq 100); do grep -q \"training starts\" " + dir.path() + "/out && break; sleep 0.1; done; "
      "sleep 0.5; echo +3600 > " + ts + "; sleep 0.2; "
      "echo skew=$(( $(" + env + "date +%s) - $(date +%s) )); sleep 1.5; echo -3600 > " + ts + "; sleep 0.2; "
      "echo skew=$(( $(" + env + "date +%s) - $(date +%s) )); "
      "wait $L; echo rc=$?; tail -2 " + dir.path() + "/steps1.txt; "
      // The hours of the job's own log lines: two distinct ones show its processes saw the jump.
      "echo hours=$(grep -o \" [0-9][0-9]:[0-9][0-9]:\" " + dir.path() + "/out | cut -c2-3 | sort -u | wc -l)";
  auto r = RunCommand(cmd, 120);
  // The jumps happened (as the job's processes see it)...
  EXPECT_NE(r.output.find("skew=3600"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("skew=-3600"), std::string::npos) << r.output;
  const size_t h = r.output.find("hours=");
  ASSERT_NE(h, std::string::npos) << r.output;
  EXPECT_GE(std::stoi(r.output.substr(h + 6)), 2) << "the job's processes never saw the jump\n" << r.output;
  // ...and changed nothing.
  EXPECT_NE(r.output.find("rc=0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("pulled " + std::to_string(steps) + " "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" -" + std::to_string(steps) + "\n"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace tessera
