// The Slurm batch template (launch/slurm/tessera.sbatch) on a real one-node Slurm:
// scripts/slurm-up.sh starts one (or finds the one CI started), sbatch submits the real
// template, and the job is checked through its output file and `scontrol show job`.
//
// SlurmJob.* passes on any build. SlurmPreemption.* needs checkpointing (the `ckpt`
// work: --checkpoint_dir, exit code 75 after a checkpoint on SIGUSR1/SIGTERM, resume by
// default) and FAILS, loudly, on a build without it.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/launch/job_harness.h"
#include "tests/testutil/job_run.h"
#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

using std::chrono::seconds;
using testing::BinaryDir;
using testing::RunCommand;
using testing::SourceDir;
using testing::SummaryField;
using testing::TempDir;
using testing::TesseraBinary;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

class SlurmTest : public ::testing::Test {
 protected:
  // Starts the cluster unless it is up (CI starts it before ctest). A cluster this test
  // started is left running for the next test: scripts/slurm-down.sh stops it.
  static void SetUpTestSuite() {
    auto r = RunCommand("bash " + SourceDir() + "/scripts/slurm-up.sh", 120);
    up_output_ = r.output;
    up_ok_ = r.exit_code == 0;
    const char* base = getenv("TESSERA_SLURM_BASE");
    setenv("SLURM_CONF", ((base && *base ? std::string(base) : "/tmp/tessera-slurm") + "/etc/slurm.conf").c_str(), 1);
  }

  void SetUp() override { ASSERT_TRUE(up_ok_) << "scripts/slurm-up.sh failed:\n" << up_output_; }

  // A test that failed half-way must not leave its job running (or requeued) on the
  // cluster the next tests share.
  void TearDown() override {
    for (const std::string& id : jobs_) RunCommand("scancel " + id, 30);
  }

  // Submits the template from `dir` with the settings in `env` (exported by sbatch's
  // default --export=ALL); 1 node, 5 tasks (1 coordinator, 2 servers, 2 workers) on a
  // 2-core VM, hence --overcommit. HOME is `dir`, so the template's default locations
  // under $HOME (the job key) stay inside the test's directory. Returns the job id.
  std::string Submit(const TempDir& dir, const std::string& env, const std::string& binary = TesseraBinary()) {
    auto r = RunCommand("cd " + dir.path() + " && HOME=" + dir.path() + " " + env + " TESSERA=" + binary +
                            " sbatch --parsable --nodes=1 --ntasks=5 --overcommit --cpus-per-task=1 --time=10"
                            " --output=" + dir.path() + "/job.out " + SourceDir() +
                            "/launch/slurm/tessera.sbatch",
                        60);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    jobs_.push_back(Trim(r.output.substr(0, r.output.find(';'))));
    return jobs_.back();
  }

  // "COMPLETED", "RUNNING", "PENDING", ... from scontrol (finished jobs stay MinJobAge=600 s).
  static std::string JobField(const std::string& id, const std::string& field) {
    auto r = RunCommand("scontrol -o show job " + id, 30);
    size_t p = r.output.find(" " + field + "=");
    if (p == std::string::npos) return "";
    p += field.size() + 2;
    return r.output.substr(p, r.output.find(' ', p) - p);
  }

  static std::string WaitForEnd(const std::string& id, seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string st;
    while (std::chrono::steady_clock::now() < deadline) {
      st = JobField(id, "JobState");
      if (st == "COMPLETED" || st == "FAILED" || st == "CANCELLED" || st == "TIMEOUT" || st == "NODE_FAIL" ||
          st == "OUT_OF_MEMORY") {
        return st;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return "still " + st;
  }

  // Makes a requeued job eligible at once instead of after the requeue delay. Only once
  // the node has cleaned up the killed run, and not in the same second: slurmd revokes
  // the job's credential at the kill and refuses a credential created no later than that
  // second ("Job credential revoked", slurm_cred.c), which fails the job instead of
  // running it again.
  static void StartRequeuedNow(const std::string& id) {
    for (int i = 0; i < 40 && JobField(id, "Restarts") == "0"; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    for (int i = 0; i < 120 && Trim(RunCommand("sinfo -h -o %T", 30).output) != "idle"; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2100));
    RunCommand("scontrol update JobId=" + id + " StartTime=now", 30);
  }

  static bool WaitForText(const std::string& path, const std::string& text, seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (ReadFile(path).find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  // Where the template puts the job key by default (--job-name=tessera-mnist).
  static std::string KeyFile(const TempDir& dir, const std::string& id) {
    return dir.path() + "/.tessera/keys/tessera-mnist-" + id + ".key";
  }

  std::vector<std::string> jobs_;
  static inline std::string up_output_;
  static inline bool up_ok_ = false;
};

std::string Data() { return "--data=" + SourceDir() + "/data/mnist"; }

class SlurmJob : public SlurmTest {};

// The template as users submit it (without checkpoints): srun starts the 5 ranks, each
// finds its role from SLURM_PROCID and the coordinator from the node list and job id,
// and the job trains to the end with the expected summary.
TEST_F(SlurmJob, TemplateTrainsToCompletion) {
  TempDir dir;
  const std::string id = Submit(dir, "TESSERA_CHECKPOINT_DIR=none TESSERA_TRAIN_FLAGS=\"" + Data() +
                                         testing::kQuickMnistJob + "\"");
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(WaitForEnd(id, seconds(150)), "COMPLETED") << ReadFile(dir.path() + "/job.out");
  EXPECT_EQ(JobField(id, "ExitCode"), "0:0");
  const std::string out = ReadFile(dir.path() + "/job.out");
  EXPECT_NE(out.find("tessera.sbatch: job " + id + ", SLURM_RESTART_COUNT=0"), std::string::npos) << out;
  EXPECT_NE(out.find("[coordinator | slurm " + id + " requeue 0]"), std::string::npos) << out;
  EXPECT_NE(out.find("launched by slurm: rank 4 of 5"), std::string::npos) << out;
  // The step's own node list and step id: concurrent steps of one allocation never collide.
  EXPECT_NE(out.find("coordinator host from first host of SLURM_STEP_NODELIST, port derived from SLURM_JOB_ID and SLURM_STEP_ID"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("tessera.sbatch: training finished"), std::string::npos) << out;
  // Every rank used the job key rank 0 created at the template's default location; the
  // template removed it once the job was over.
  EXPECT_NE(out.find("created job key file " + KeyFile(dir, id)), std::string::npos) << out;
  for (int r = 0; r < 5; ++r) {
    EXPECT_NE(out.find("launched by slurm: rank " + std::to_string(r) + " of 5"), std::string::npos) << out;
  }
  size_t mac_lines = 0;  // the template's default: --auth=mac
  for (size_t p = 0; (p = out.find("auth=mac: every message authenticated with the job key, not encrypted (key file " +
                                   KeyFile(dir, id) + ")", p)) != std::string::npos;
       ++p) {
    ++mac_lines;
  }
  EXPECT_EQ(mac_lines, 5u) << out;
  EXPECT_NE(out.find("tessera.sbatch: removed the job key " + KeyFile(dir, id)), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(KeyFile(dir, id)));
  EXPECT_EQ(SummaryField(out, "steps"), "282") << out;
  EXPECT_EQ(SummaryField(out, "workers"), "2");
  ASSERT_FALSE(SummaryField(out, "test_accuracy").empty()) << out;
  EXPECT_GE(std::stod(SummaryField(out, "test_accuracy")), 0.90) << out;
}

// mpirun inside the allocation (no template): Open MPI's rank variables win over Slurm's
// (they number mpirun's processes; Slurm's belong to the batch step), mpirun takes the process
// count from the allocation, and the job trains to the end with a shared key file.
TEST_F(SlurmJob, MpirunInsideTheAllocation) {
  TempDir dir;
  const std::string key = dir.path() + "/job.key";
  auto r = RunCommand("cd " + dir.path() + " && sbatch --parsable --nodes=1 --ntasks=5 --overcommit --cpus-per-task=1"
                          " --time=5 --output=" + dir.path() + "/job.out --wrap=\"env OMPI_ALLOW_RUN_AS_ROOT=1"
                          " OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe --mca btl self,vader --bind-to none " +
                          TesseraBinary() + " train --servers 2 --auth=curve --auth_key_file=" + key + " " + Data() +
                          " --train_limit=2000 --test_limit=200 --hidden=32 --batch_size=16 --steps=60 --log_every=0"
                          " --seed=2\"",
                      60);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string id = Trim(r.output.substr(0, r.output.find(';')));
  jobs_.push_back(id);
  EXPECT_EQ(WaitForEnd(id, seconds(120)), "COMPLETED") << ReadFile(dir.path() + "/job.out");
  const std::string out = ReadFile(dir.path() + "/job.out");
  for (int rank = 0; rank < 5; ++rank) {
    EXPECT_NE(out.find("launched by openmpi: rank " + std::to_string(rank) + " of 5"), std::string::npos) << out;
  }
  // mpirun inside the allocation: rank 0 publishes the endpoint it bound through MPI
  // (no port guessed from the Slurm job id), and the log prefix carries the Slurm job.
  EXPECT_NE(out.find("(published by rank 0 through MPI; all 5 ranks agree on the job)"), std::string::npos) << out;
  EXPECT_NE(out.find("[coordinator | slurm " + id + " requeue 0]"), std::string::npos) << out;
  EXPECT_NE(out.find("CURVE authentication and encryption on (key file " + key + ")"), std::string::npos) << out;
  EXPECT_EQ(SummaryField(out, "steps"), "60") << out;
  EXPECT_EQ(SummaryField(out, "workers"), "2") << out;
}

// A configuration error ends the job with code 2 and is not requeued.
TEST_F(SlurmJob, ConfigurationErrorIsNotRequeued) {
  TempDir dir;
  const std::string id = Submit(dir, "TESSERA_CHECKPOINT_DIR=none TESSERA_TRAIN_FLAGS=\"" + Data() + " --model=cnn\"");
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(WaitForEnd(id, seconds(60)), "FAILED") << ReadFile(dir.path() + "/job.out");
  EXPECT_EQ(JobField(id, "ExitCode"), "2:0");
  EXPECT_EQ(JobField(id, "Restarts"), "0");
  const std::string out = ReadFile(dir.path() + "/job.out");
  EXPECT_NE(out.find("tessera.sbatch: configuration error: not requeued"), std::string::npos) << out;
}

// The Python package under the template (docs/python.md): TESSERA_PROGRAM runs a PyTorch
// script on every task, tessera.init() gives each its role, and a USR1 to the batch shell
// checkpoints (the servers' state and each worker's own state), exits 75, requeues, and
// the resumed run ends with the parameters of an uninterrupted one.
TEST_F(SlurmJob, PythonScriptIsPreemptedRequeuedAndResumesToTheSameParameters) {
  const std::string pythonpath = BinaryDir() + "/python";
  if (!std::filesystem::exists(pythonpath + "/tessera")) {
    TESSERA_SKIP_OR_FAIL_IN_CI("this build has no Python package (" + pythonpath +
                               "/tessera; TESSERA_PYTHON needs pybind11-dev, python3-dev and python3-torch)");
  }
#ifdef TESSERA_TEST_PYTHON
  const std::string python = TESSERA_TEST_PYTHON;
#else
  const std::string python = "python3";
#endif
  const std::string script = SourceDir() + "/examples/python/mnist.py";
  const std::string args = Data() + " --model=mlp --hidden=32 --train_limit=4000 --test_limit=500 --batch_size=32"
                           " --epochs=100 --lr=0.002 --seed=3 --steps=2000";
  auto plain = RunCommand("PYTHONPATH=" + pythonpath + " " + TesseraBinary() +
                              " launch --servers 2 --workers 2 --grace_s 5 --program " + python + " -- " + script + " " + args,
                          240);
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  const std::regex digest_re(R"re("params_digest": "([0-9a-f]+)")re");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(plain.output, m, digest_re)) << plain.output;
  const std::string digest = m[1];

  TempDir dir;
  const std::string ckpt = dir.path() + "/ckpt";
  const std::string out_path = dir.path() + "/job.out";
  const std::string id = Submit(dir, "PYTHONPATH=" + pythonpath + " TESSERA_PROGRAM=\"" + python + " " + script +
                                         "\" TESSERA_CHECKPOINT_DIR=" + ckpt + " TESSERA_TRAIN_FLAGS=\"" + args + "\"");
  ASSERT_FALSE(id.empty());
  // 2000 steps: the USR1 lands about a twentieth of the way in, so the preemption
  // checkpoint is taken well before the end even when a step takes a millisecond.
  ASSERT_TRUE(WaitForText(out_path, "step 100/2000", seconds(120))) << ReadFile(out_path);
  auto sig = RunCommand("scancel --signal=USR1 --batch " + id, 30);
  ASSERT_EQ(sig.exit_code, 0) << sig.output;
  ASSERT_TRUE(WaitForText(out_path, "exited with code 75", seconds(60))) << ReadFile(out_path);
  StartRequeuedNow(id);
  EXPECT_EQ(WaitForEnd(id, seconds(180)), "COMPLETED") << ReadFile(out_path);
  EXPECT_EQ(JobField(id, "Restarts"), "1");
  const std::string out = ReadFile(out_path);
  EXPECT_NE(out.find("SLURM_RESTART_COUNT=1"), std::string::npos) << out;
  EXPECT_NE(out.find("resuming from the checkpoint of step"), std::string::npos) << out;
  ASSERT_TRUE(std::regex_search(out, m, digest_re)) << out;
  EXPECT_EQ(m[1].str(), digest) << "resumed Python run differs from the uninterrupted one\n" << out;
}

// The template's own signal and requeue logic, with a stand-in step that follows
// Tessera's preemption contract (a signal sets a flag; the process exits 75 at its next
// step; a requeued run finishes). It checks the parts that are the template's job and
// pass without checkpointing: the USR1 reaches every task through the background step
// (TERM from `scontrol requeue` comes from Slurm itself), exit code 75 is requeued,
// and the requeued run sees SLURM_RESTART_COUNT=1 and the same --checkpoint_dir.
class SlurmTemplate : public SlurmTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(SlurmTemplate, SignalReachesEveryTaskAndExit75Requeues) {
  const std::string how = GetParam();
  TempDir dir;
  const std::string step = dir.path() + "/step.sh";
  {
    std::ofstream f(step);
    f << "#!/bin/bash\n"
         "got=''\n"
         "trap 'got=USR1' USR1\n"
         "trap 'got=TERM' TERM\n"
         "echo \"task $SLURM_PROCID run ${SLURM_RESTART_COUNT:-0}: $*\"\n"
         "if [ \"${SLURM_RESTART_COUNT:-0}\" != 0 ]; then echo \"task $SLURM_PROCID resumed\"; exit 0; fi\n"
         "for i in $(seq 1200); do\n"
         "  if [ -n \"$got\" ]; then echo \"task $SLURM_PROCID got $got at its step boundary\"; exit 75; fi\n"
         "  [ \"$SLURM_PROCID\" = 0 ] && echo \"step $i/\"\n"
         "  sleep 0.05 & wait $!\n"
         "done\n"
         "exit 1\n";
  }
  ASSERT_EQ(RunCommand("chmod +x " + step).exit_code, 0);
  const std::string ckpt = dir.path() + "/ckpt";
  const std::string out_path = dir.path() + "/job.out";
  const std::string id = Submit(dir, "TESSERA_CHECKPOINT_DIR=" + ckpt + " TESSERA_TRAIN_FLAGS=--steps=7", step);
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(WaitForText(out_path, "step 10/", seconds(60))) << ReadFile(out_path);
  auto sig = RunCommand(how == std::string("usr1") ? "scancel --signal=USR1 --batch " + id : "scontrol requeue " + id, 30);
  ASSERT_EQ(sig.exit_code, 0) << sig.output;
  ASSERT_TRUE(WaitForText(out_path, "tessera.sbatch: requeueing " + id, seconds(60))) << ReadFile(out_path);
  StartRequeuedNow(id);
  EXPECT_EQ(WaitForEnd(id, seconds(120)), "COMPLETED") << ReadFile(out_path);
  EXPECT_EQ(JobField(id, "Restarts"), "1");
  EXPECT_EQ(JobField(id, "ExitCode"), "0:0");
  const std::string out = ReadFile(out_path);
  const std::string signal = how == std::string("usr1") ? "USR1" : "TERM";
  for (int t = 0; t < 5; ++t) {
    EXPECT_NE(out.find("task " + std::to_string(t) + " got " + signal + " at its step boundary"), std::string::npos) << out;
    EXPECT_NE(out.find("task " + std::to_string(t) + " run 1: train --servers 2 --auth=mac "
                       "--auth_key_file=" + KeyFile(dir, id) + " --checkpoint_dir=" + ckpt + " --steps=7"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("task " + std::to_string(t) + " resumed"), std::string::npos) << out;
  }
  EXPECT_NE(out.find("tessera.sbatch: got SIG" + signal), std::string::npos) << out;
  EXPECT_NE(out.find("tessera.sbatch: job step exited with code 75"), std::string::npos) << out;
  EXPECT_NE(out.find("SLURM_RESTART_COUNT=1"), std::string::npos) << "--open-mode=append keeps both runs\n" << out;
  EXPECT_NE(out.find("tessera.sbatch: training finished"), std::string::npos) << out;
  // The key directory is private (the key file in it lets anyone join the job).
  EXPECT_EQ(std::filesystem::status(dir.path() + "/.tessera/keys").permissions(), std::filesystem::perms::owner_all);
}

INSTANTIATE_TEST_SUITE_P(Signals, SlurmTemplate, ::testing::Values("usr1", "requeue"));

// ---- preemption: needs checkpointing ------------------------------------------------

class SlurmPreemption : public SlurmTest,
                        public ::testing::WithParamInterface<const char*> {
 protected:
  void SetUp() override {
    SlurmTest::SetUp();
    auto help = RunCommand(TesseraBinary() + " train --help", 30);
    ASSERT_NE(help.output.find("checkpoint_dir"), std::string::npos)
        << "FAIL, not skipped: this build has no checkpointing (`tessera train --checkpoint_dir`), which "
           "preemption needs (checkpoint on SIGUSR1/SIGTERM, exit code 75, resume by default).";
  }
};

// Long enough to be interrupted mid-training, deterministic so that the resumed run's
// final parameters can be compared bit for bit with an uninterrupted one. The signal is
// sent at step 100; through shared memory a step of this model takes ~0.4 ms, so 3000
// steps ended ~1.3 s later, and under CI's load the job once finished (exit 0) before
// the USR1 reached it. 15000 steps leave it ~6 s of training on a quiet machine.
const std::string kResumableJob =
    " --train_limit=2000 --test_limit=200 --hidden=32 --batch_size=16 --steps=15000 --log_every=10"
    " --deterministic --seed=3";

// Preempted mid-training (the batch shell's USR1, as from --signal=B:USR1@N or
// preemption with preempt_send_user_signal; or `scontrol requeue`, which sends TERM):
// Tessera checkpoints and exits 75, the job is requeued (SLURM_RESTART_COUNT=1),
// resumes from its checkpoint and ends with the parameters of an uninterrupted run.
TEST_P(SlurmPreemption, CheckpointsRequeuesAndResumesToTheSameParameters) {
  const std::string how = GetParam();
  auto plain = RunCommand(TesseraBinary() + " launch --servers 2 --workers 2 --grace_s 2 " + Data() + kResumableJob, 240);
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  const std::string digest = SummaryField(plain.output, "params_digest");
  ASSERT_EQ(digest.size(), 16u) << plain.output;

  TempDir dir;
  const std::string ckpt = dir.path() + "/ckpt";
  const std::string out_path = dir.path() + "/job.out";
  const std::string id = Submit(dir, "TESSERA_CHECKPOINT_DIR=" + ckpt + " TESSERA_TRAIN_FLAGS=\"" + Data() + kResumableJob + "\"");
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(WaitForText(out_path, "step 100/", seconds(90))) << ReadFile(out_path);
  auto sig = RunCommand(how == std::string("usr1") ? "scancel --signal=USR1 --batch " + id : "scontrol requeue " + id, 30);
  ASSERT_EQ(sig.exit_code, 0) << sig.output;

  // Requeued: make it eligible at once instead of after the requeue delay.
  ASSERT_TRUE(WaitForText(out_path, "exited with code 75", seconds(60))) << ReadFile(out_path);
  StartRequeuedNow(id);
  EXPECT_EQ(WaitForEnd(id, seconds(180)), "COMPLETED") << ReadFile(out_path);
  EXPECT_EQ(JobField(id, "Restarts"), "1");
  const std::string out = ReadFile(out_path);
  EXPECT_NE(out.find("SLURM_RESTART_COUNT=1"), std::string::npos) << out;
  EXPECT_NE(out.find("slurm " + id + " requeue 1]"), std::string::npos) << "requeue count in the log prefix\n" << out;
  EXPECT_NE(out.find("tessera.sbatch: training finished"), std::string::npos) << out;
  EXPECT_NE(out.find("checkpointing at the next step boundary"), std::string::npos) << out;
  EXPECT_NE(out.find("resuming from the checkpoint of step"), std::string::npos) << out;
  // The requeued run found the first run's job key (rank 0 created it once).
  EXPECT_NE(out.find("created job key file"), std::string::npos) << out;
  EXPECT_EQ(out.find("created job key file"), out.rfind("created job key file")) << out;
  EXPECT_FALSE(std::filesystem::exists(KeyFile(dir, id))) << "the job key outlived the job";
  EXPECT_FALSE(std::filesystem::is_empty(ckpt)) << "no checkpoint in " << ckpt;
  EXPECT_EQ(SummaryField(out, "params_digest"), digest) << "resumed run differs from the uninterrupted one\n" << out;
}

INSTANTIATE_TEST_SUITE_P(Signals, SlurmPreemption, ::testing::Values("usr1", "requeue"));

}  // namespace
}  // namespace tessera
