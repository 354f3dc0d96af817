// `tessera launch` with /bin/sh children: real processes, real signals.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

using testing::RunCommand;
using testing::TesseraBinary;

// Runs `tessera launch` with each child executing `sh -c SCRIPT`.
std::string Launch(int servers, int workers, const std::string& script, const std::string& extra = "") {
  // The outer sh must not expand the children's variables: escape every '$'.
  std::string escaped;
  for (char c : script) {
    if (c == '$') escaped += '\\';
    escaped += c;
  }
  return TesseraBinary() + " launch --servers " + std::to_string(servers) + " --workers " +
         std::to_string(workers) + " --program /bin/sh --subcommand -c --grace_s 2 " + extra +
         " -- \"" + escaped + "\"";
}

TEST(LocalLauncher, PrefixesEveryLineWithRoleAndRank) {
  auto r = RunCommand(Launch(2, 2, "echo hello from $TESSERA_RANK of $TESSERA_WORLD_SIZE; echo second line"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("[coordinator] hello from 0 of 5"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[server 0] hello from 1 of 5"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[server 1] hello from 2 of 5"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[worker 0] hello from 3 of 5"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[worker 1] hello from 4 of 5"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[worker 1] second line"), std::string::npos) << r.output;
}

TEST(LocalLauncher, PassesJobArgsAndCounts) {
  // sh -c SCRIPT $0 $1: the launcher appends --servers/--workers after the job args.
  auto r = RunCommand(Launch(1, 1, "echo args=$0,$1 coord=$TESSERA_COORDINATOR_HOST:$TESSERA_COORDINATOR_PORT"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("args=--servers=1,--workers=1 coord=127.0.0.1:"), std::string::npos) << r.output;
}

// The coordinator's port is bound (and listening) by the launcher before any
// child runs, and only the coordinator inherits the socket. The old launcher picked a
// port, closed it and let the coordinator bind it later: another process (here a server
// binding the same port) could take it in between.
TEST(LocalLauncher, CoordinatorPortIsHeldBeforeAnyChildStarts) {
  testing::TempDir tmp;
  const std::string done = tmp.path() + "/checked", script = tmp.path() + "/child.sh";
  // Rank 0 shows what its inherited fd is and stays up until server 0 has tried to bind
  // the coordinator's port itself (python3: sh cannot bind).
  std::ofstream(script) << "if [ $TESSERA_RANK = 0 ]; then\n"
                        << "  echo held=$(readlink /proc/$$/fd/$TESSERA_COORDINATOR_FD)\n"
                        << "  i=0; while [ ! -e " << done << " ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done\n"
                        << "  exit 0\n"
                        << "fi\n"
                        << "echo fd=${TESSERA_COORDINATOR_FD:-none}\n"
                        << "if [ $TESSERA_RANK = 1 ]; then\n"
                        << "  python3 -c 'import sys, socket; socket.socket().bind((\"127.0.0.1\", int(sys.argv[1])))' "
                        << "$TESSERA_COORDINATOR_PORT 2>&1 | tail -n 1\n"
                        << "  touch " << done << "\n"
                        << "fi\n";
  auto r = RunCommand(Launch(1, 1, "sh " + script));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("[coordinator] held=socket:["), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[server 0] fd=none"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[worker 0] fd=none"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[server 0] OSError: [Errno 98] Address already in use"), std::string::npos) << r.output;
}

TEST(LocalLauncher, OneFailureStopsTheRestAndNamesIt) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = RunCommand(Launch(1, 2, "if [ $TESSERA_RANK = 3 ]; then sleep 0.3; exit 3; fi; sleep 60"));
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("worker 1 (rank 3"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("exited with code 3"), std::string::npos) << r.output;
  EXPECT_LT(s, 20.0) << "the other processes were not stopped";
}

TEST(LocalLauncher, KilledChildIsReportedWithSignal) {
  auto r = RunCommand(Launch(1, 1, "if [ $TESSERA_RANK = 1 ]; then kill -9 $$; fi; sleep 60"));
  EXPECT_EQ(r.exit_code, 128 + 9) << r.output;
  EXPECT_NE(r.output.find("server 0 (rank 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("killed by signal 9"), std::string::npos) << r.output;
}

TEST(LocalLauncher, ForwardsSigtermToEveryChild) {
  testing::TempDir dir;
  std::string script = Launch(1, 1, "trap \\\"echo got-term-$TESSERA_RANK; exit 0\\\" TERM; while true; do sleep 0.1; done");
  // Start the launcher in the background, signal it once the children run, wait.
  std::string cmd = script + " > " + dir.path() + "/out 2>&1 & L=$!; sleep 1.5; kill -TERM $L; wait $L; echo rc=$?; cat " +
                    dir.path() + "/out";
  auto r = RunCommand(cmd, 60);
  EXPECT_NE(r.output.find("rc=0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("got-term-0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("got-term-1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("got-term-2"), std::string::npos) << r.output;
}

TEST(LocalLauncher, KilledLauncherLeavesNoOrphans) {
  testing::TempDir dir;
  std::string pids = dir.path() + "/pids";
  // exec: the child process itself must die with the launcher (PR_SET_PDEATHSIG).
  std::string script = Launch(1, 1, "echo $$ >> " + pids + "; exec sleep 300");
  // Zombies still answer kill -0, so count only processes whose state is not Z.
  std::string cmd = script + " > /dev/null 2>&1 & L=$!; sleep 1.5; kill -9 $L; n=0; "
                    "for i in $(seq 50); do alive=0; for p in $(cat " + pids + "); do "
                    "s=$(ps -o stat= -p $p 2>/dev/null); case \"$s\" in \"\"|Z*) ;; *) alive=$((alive+1));; esac; done; "
                    "[ $alive = 0 ] && break; sleep 0.1; done; echo alive=$alive started=$(wc -l < " + pids + ")";
  auto r = RunCommand(cmd, 60);
  EXPECT_NE(r.output.find("alive=0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("started=3"), std::string::npos) << "children did not start: " << r.output;
}

TEST(LocalLauncher, BadFlagsAreRefused) {
  auto r = RunCommand(TesseraBinary() + " launch --servers -1 --workers 2");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--servers=-1"), std::string::npos) << r.output;
}

// `tessera launch` is one host: its children found a coordinator named elsewhere only
// after --register_timeout_s (exit 4; the launcher's port is on loopback). Now the
// launcher refuses the flag at once and points at mpirun/srun.
TEST(LocalLauncher, ACoordinatorOnAnotherHostIsRefusedAtOnce) {
  const auto t0 = std::chrono::steady_clock::now();
  auto r = RunCommand(TesseraBinary() + " launch --servers 1 --workers 1 --coordinator_host=192.0.2.1 -- " +
                      "--register_timeout_s=20 --steps=1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--coordinator_host=192.0.2.1: tessera launch starts every process of the job on this host"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("with mpirun or srun"), std::string::npos) << r.output;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10)) << "not at once";
}

}  // namespace
}  // namespace tessera
