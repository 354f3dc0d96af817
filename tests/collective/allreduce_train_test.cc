// `tessera train --sync=allreduce` as users run it: real jobs through `tessera launch`
// (which starts the workers under mpirun) and under a plain `mpirun -np 1+S+W`, on an
// MNIST subset, checked through worker 0's metrics file.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "tests/testutil/job_run.h"
#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

using testing::RunCommand;
using testing::SourceDir;
using testing::TesseraBinary;

constexpr const char* kSmallJob = testing::kQuickMnistJob;

using JobResult = testing::JobRun;
using testing::Events;

std::string DataFlag() { return " --data=" + SourceDir() + "/data/mnist"; }

JobResult Launch(const std::string& flags, int workers = 2, int servers = 1) {
  testing::TempDir dir;
  const std::string metrics = dir.path() + "/metrics.jsonl";
  return testing::RunJobCommand(testing::LaunchCommand(flags + DataFlag(), metrics, servers, workers, 2), metrics,
                                240);
}

std::string Field(const std::string& json, const std::string& key) { return testing::JsonField(json, key); }

std::string Summary(const JobResult& r) {
  auto s = Events(r, "summary");
  return s.empty() ? "" : s.back();
}

std::vector<double> Losses(const JobResult& r) {
  std::vector<double> out;
  for (const auto& l : Events(r, "step")) out.push_back(std::stod(Field(l, "loss")));
  return out;
}

TEST(AllReduceTrain, ReachesTheAccuracyThreshold) {
  JobResult r = Launch(std::string(kSmallJob) + " --sync=allreduce");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string s = Summary(r);
  ASSERT_FALSE(s.empty()) << r.output;
  EXPECT_EQ(Field(s, "sync"), "allreduce");
  EXPECT_EQ(Field(s, "steps"), "282");
  EXPECT_GE(std::stod(Field(s, "test_accuracy")), 0.90) << s;
  EXPECT_EQ(Field(s, "bytes_pushed"), "0") << "dense gradients must not go through the servers";
  EXPECT_NE(r.output.find("workers run under mpirun"), std::string::npos) << r.output;
}

// Same math as bsp (mean gradient, the servers' optimizer code, per chunk): the same
// parameters within float tolerance after N steps. With 2 workers both sums are a+b, so
// the digests even match bitwise; with 4, MPI may add in another order.
class AllReduceParity : public ::testing::TestWithParam<int> {};

TEST_P(AllReduceParity, MatchesBspWithinFloatTolerance) {
  const int workers = GetParam();
  const std::string flags = std::string(kSmallJob) + " --steps=40 --deterministic";
  JobResult bsp = Launch(flags + " --sync=bsp", workers);
  ASSERT_EQ(bsp.exit_code, 0) << bsp.output;
  JobResult ar = Launch(flags + " --sync=allreduce", workers);
  ASSERT_EQ(ar.exit_code, 0) << ar.output;
  const auto lb = Losses(bsp), la = Losses(ar);
  ASSERT_EQ(lb.size(), 40u);
  ASSERT_EQ(la.size(), 40u);
  for (size_t i = 0; i < lb.size(); ++i) EXPECT_NEAR(la[i], lb[i], 1e-5 * std::fabs(lb[i])) << "step " << i;
  const double tb = std::stod(Field(Summary(bsp), "test_loss")), ta = std::stod(Field(Summary(ar), "test_loss"));
  EXPECT_NEAR(ta, tb, 1e-5 * tb);
  if (workers == 2) {
    EXPECT_EQ(Field(Summary(ar), "params_digest"), Field(Summary(bsp), "params_digest"));
  }
}

INSTANTIATE_TEST_SUITE_P(Workers, AllReduceParity, ::testing::Values(2, 4),
                         [](const auto& info) { return "w" + std::to_string(info.param); });

// Fusion changes how gradients are packed, not the sums: bitwise the same parameters as
// one all-reduce per tensor; and a fused run is deterministic.
TEST(AllReduceTrain, FusedAndPerTensorGiveTheSameParameters) {
  const std::string flags = std::string(kSmallJob) + " --steps=30 --deterministic --sync=allreduce";
  JobResult fused = Launch(flags + " --bucket_mb=25");
  ASSERT_EQ(fused.exit_code, 0) << fused.output;
  JobResult single = Launch(flags + " --bucket_mb=0");
  ASSERT_EQ(single.exit_code, 0) << single.output;
  JobResult small = Launch(flags + " --bucket_mb=0.05");  // several buckets
  ASSERT_EQ(small.exit_code, 0) << small.output;
  const std::string d = Field(Summary(fused), "params_digest");
  EXPECT_EQ(d.size(), 16u);
  EXPECT_EQ(Field(Summary(single), "params_digest"), d);
  EXPECT_EQ(Field(Summary(small), "params_digest"), d);
}

TEST(AllReduceTrain, CompressedGradientsStillLearn) {
  for (const char* c : {"fp16", "topk:0.1"}) {
    JobResult r = Launch(std::string(kSmallJob) + " --sync=allreduce --compress=" + c);
    ASSERT_EQ(r.exit_code, 0) << c << "\n" << r.output;
    EXPECT_GE(std::stod(Field(Summary(r), "test_accuracy")), 0.90) << c << ": " << Summary(r);
  }
}

// --compress=topk:R on the parameter-server path: each dense push carries the top R of
// (gradient + residual) as i32 offsets + f32 values. topk:1 sends every entry, so the
// servers see the very same gradients: bitwise the uncompressed run, at twice the bytes.
TEST(PsTopKTrain, TopKPushesLearnWithAFifthOfTheBytesAndTopK1IsExact) {
  const std::string job = std::string(kSmallJob) + " --sync=bsp --deterministic";
  JobResult plain = Launch(job + " --compress=none");
  JobResult all = Launch(job + " --compress=topk:1");
  JobResult tenth = Launch(job + " --compress=topk:0.1");
  for (const JobResult* r : {&plain, &all, &tenth}) ASSERT_EQ(r->exit_code, 0) << r->output;
  EXPECT_EQ(Field(Summary(all), "params_digest"), Field(Summary(plain), "params_digest"));
  const double bytes = std::stod(Field(Summary(plain), "bytes_pushed"));
  ASSERT_GT(bytes, 0);
  EXPECT_NEAR(std::stod(Field(Summary(all), "bytes_pushed")) / bytes, 2.0, 0.01) << Summary(all);
  EXPECT_LE(std::stod(Field(Summary(tenth), "bytes_pushed")) / bytes, 0.21) << Summary(tenth);
  EXPECT_GE(std::stod(Field(Summary(tenth), "test_accuracy")), 0.90) << Summary(tenth);
}

// Under a plain mpirun every role is an MPI process: the workers' communicator is split
// off MPI_COMM_WORLD, and the coordinator and server match MPI_Init/MPI_Finalize.
TEST(AllReduceTrain, RunsUnderPlainMpirun) {
  testing::TempDir dir;
  const std::string metrics = dir.path() + "/metrics.jsonl";
  auto cmd = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np 4 --oversubscribe --mca btl self,vader "
             "--bind-to none " + TesseraBinary() + " train --servers=1 --workers=2 --coordinator_port=" +
             std::to_string(testing::FreeTcpPort()) + " " + kSmallJob + " --steps=40 --deterministic --sync=allreduce" +
             DataFlag() + " --metrics_out=" + metrics;
  JobResult r = testing::RunJobCommand(cmd, metrics, 120);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(Field(Summary(r), "steps"), "40");
  JobResult launched = Launch(std::string(kSmallJob) + " --steps=40 --deterministic --sync=allreduce");
  ASSERT_EQ(launched.exit_code, 0) << launched.output;
  EXPECT_EQ(Field(Summary(r), "params_digest"), Field(Summary(launched), "params_digest"));
}

// A worker killed with SIGKILL mid-training: mpirun ends the other workers, the launcher
// stops the job and fails naming the workers' mpirun, well within the timeouts (no hang).
// The processes are found by pid (children of this launcher), never by name.
TEST(AllReduceTrain, AKilledWorkerEndsTheJobWithAClearError) {
  testing::TempDir dir;
  const std::string script = dir.path() + "/kill.sh";
  std::ofstream(script) << "LOG=" << dir.path() << "/job.log\n"
                        << TesseraBinary() << " launch --servers 1 --workers 2 --grace_s 2 --sync=allreduce --hidden=128 "
                        << "--steps=1000000 --train_limit=2000 --test_limit=100 --log_every=0" << DataFlag()
                        << " > $LOG 2>&1 &\n"
                           "L=$!\n"
                           "for i in $(seq 1 300); do grep -q 'training mlp' $LOG && break; sleep 0.1; done\n"
                           "M=$(pgrep -P $L -x mpirun); W=$(pgrep -P $M | head -1)\n"
                           "[ -n \"$W\" ] || { echo 'no worker found'; kill $L; exit 99; }\n"
                           "kill -9 $W; S=$(date +%s%N)\n"
                           "wait $L; RC=$?\n"
                           "echo \"launcher rc=$RC after_ms=$(( ($(date +%s%N) - S) / 1000000 ))\"\n"
                           "cat $LOG\n";
  auto r = RunCommand("bash " + script, 120);
  ASSERT_NE(r.output.find("launcher rc="), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("launcher rc=0 "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("mpirun noticed that process rank"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("tessera launch: workers (rank 2"), std::string::npos) << r.output;
  const size_t p = r.output.find("after_ms=");
  ASSERT_NE(p, std::string::npos);
  EXPECT_LT(std::stol(r.output.substr(p + 9)), 30000) << r.output;
}

TEST(AllReduceFlags, BadCompressionIsAConfigError) {
  JobResult r = Launch(std::string(kSmallJob) + " --sync=allreduce --compress=zip");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--compress=zip: expected none, fp16, bf16 or topk:R"), std::string::npos) << r.output;
  JobResult s = Launch(std::string(kSmallJob) + " --sync=bsp --compress=fp16");
  EXPECT_EQ(s.exit_code, 2) << s.output;
  EXPECT_NE(s.output.find("--compress=fp16 needs --sync=allreduce or --sync=hybrid"), std::string::npos) << s.output;
  EXPECT_NE(s.output.find("(topk:R works with both)"), std::string::npos) << s.output;
  JobResult b = Launch(std::string(kSmallJob) + " --sync=allreduce --bucket_mb=-1");
  EXPECT_EQ(b.exit_code, 2) << b.output;
  EXPECT_NE(b.output.find("--bucket_mb=-1"), std::string::npos) << b.output;
}

// The workers need one MPI world: started by hand outside mpirun, a worker refuses with
// a message saying how to start the job.
TEST(AllReduceFlags, WorkersOutsideAnMpiWorldAreRefused) {
  auto r = RunCommand("TESSERA_RANK=2 TESSERA_WORLD_SIZE=4 TESSERA_COORDINATOR_PORT=" +
                          std::to_string(testing::FreeTcpPort()) + " " + TesseraBinary() +
                          " train --servers=1 --workers=2 --sync=allreduce" + DataFlag(),
                      30);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("needs the workers in one MPI world"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace tessera
