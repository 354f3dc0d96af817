// What `tessera launch` starts each child as (ChildCommandFor): ranks and variables, the
// listening socket handed to rank 0 only, and the workers' single mpirun child.
#include <gtest/gtest.h>

#include <algorithm>

#include "launch/local_launcher.h"

namespace tessera::launch {
namespace {

bool Has(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }

TEST(ChildCommand, EachRankGetsItsVariablesAndOnlyRankZeroTheSocket) {
  LocalLaunchOptions o;
  o.servers = 2;
  o.workers = 2;
  o.job_args = {"--steps=3"};
  const ChildRun run{5, 31234, 77, 1, "/k/job.key", "/bin/tessera", 9};
  ChildCommand c0 = ChildCommandFor(o, run, 0);
  EXPECT_EQ(c0.name, "coordinator");
  EXPECT_EQ(c0.exe, "/bin/tessera");
  EXPECT_EQ(c0.args, (std::vector<std::string>{"train", "--steps=3", "--servers=2", "--workers=2"}));
  EXPECT_TRUE(Has(c0.env, "TESSERA_RANK=0"));
  EXPECT_TRUE(Has(c0.env, "TESSERA_COORDINATOR_PORT=31234"));
  EXPECT_TRUE(Has(c0.env, "TESSERA_RESTART_COUNT=1"));
  EXPECT_TRUE(Has(c0.env, "TESSERA_AUTH_KEY_FILE=/k/job.key"));
  EXPECT_TRUE(Has(c0.env, "TESSERA_COORDINATOR_FD=9"));
  EXPECT_EQ(c0.inherit_fd, 9);
  ChildCommand c3 = ChildCommandFor(o, run, 3);
  EXPECT_EQ(c3.name, "worker 0");
  EXPECT_TRUE(Has(c3.env, "TESSERA_RANK=3"));
  EXPECT_EQ(c3.inherit_fd, -1) << "only the coordinator may hold the listening socket";
  EXPECT_FALSE(std::any_of(c3.env.begin(), c3.env.end(), [](const std::string& e) { return e.rfind("TESSERA_COORDINATOR_FD", 0) == 0; }));
}

TEST(ChildCommand, AllReduceWorkersAreOneMpirunChild) {
  LocalLaunchOptions o;
  o.servers = 1;
  o.workers = 3;
  o.mpi_workers = true;
  o.mpirun = "/usr/bin/mpirun";
  const ChildRun run{5, 31234, 77, 0, "", "/bin/tessera", -1};
  ChildCommand w = ChildCommandFor(o, run, 2);
  EXPECT_EQ(w.name, "workers");
  EXPECT_EQ(w.exe, "/usr/bin/mpirun");
  ASSERT_GE(w.args.size(), 2u);
  EXPECT_EQ(w.args[0], "-np");
  EXPECT_EQ(w.args[1], "3");
  EXPECT_TRUE(Has(w.env, "TESSERA_RANK_BASE=2"));
  EXPECT_TRUE(Has(w.args, "TESSERA_COORDINATOR_PORT")) << "forwarded with -x";
  EXPECT_FALSE(Has(w.args, "TESSERA_AUTH_KEY_FILE")) << "no key file, nothing to forward";
  EXPECT_TRUE(Has(w.args, "/bin/tessera"));
}

// Issue 21: `--program python3 --sync=ssp:2 -- train.py --epochs 2` runs the script with
// its own arguments first and the job flags after them (python3 train.py --epochs 2
// --sync=ssp:2); a tessera-like program with a subcommand keeps the old order.
TEST(ParseLaunchArgs, ProgramArgumentsComeBeforeTheJobFlags) {
  std::vector<std::string> a = {"tessera launch", "--servers", "2", "--sync=ssp:2", "--program", "python3",
                                "--", "train.py", "--epochs", "2"};
  std::vector<char*> argv;
  for (auto& s : a) argv.push_back(s.data());
  auto o = ParseLaunchArgs(static_cast<int>(argv.size()), argv.data());
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->servers, 2);
  EXPECT_EQ(o->subcommand, "");
  EXPECT_EQ(o->job_args, (std::vector<std::string>{"train.py", "--epochs", "2", "--sync=ssp:2"}));
  const ChildRun run{5, 31234, 77, 0, "", "python3", -1};
  EXPECT_EQ(ChildCommandFor(*o, run, 3).args,
            (std::vector<std::string>{"train.py", "--epochs", "2", "--sync=ssp:2", "--servers=2", "--workers=1"}));

  std::vector<std::string> b = {"tessera launch", "--sync=bsp", "--program", "/bin/peer", "--subcommand", "train",
                                "--", "--steps=3"};
  argv.clear();
  for (auto& s : b) argv.push_back(s.data());
  o = ParseLaunchArgs(static_cast<int>(argv.size()), argv.data());
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->job_args, (std::vector<std::string>{"--sync=bsp", "--steps=3"}));
}

// Every job has at least one server (the coordinator counts on one for checkpoints and
// the shard map, allreduce included): --servers 0 is refused at once, naming the range,
// not left to the children to find the world size wrong.
TEST(ParseLaunchArgs, ZeroServersIsRefusedNamingTheRange) {
  std::vector<std::string> a = {"tessera launch", "--servers", "0", "--workers", "2"};
  std::vector<char*> argv;
  for (auto& s : a) argv.push_back(s.data());
  auto o = ParseLaunchArgs(static_cast<int>(argv.size()), argv.data());
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(o.status().message().find("--servers=0: expected an integer in [1, 256]"), std::string::npos)
      << o.status().ToString();
}

}  // namespace
}  // namespace tessera::launch
