#include "launch/env.h"

#include <gtest/gtest.h>

#include "kernels/device_select.h"

namespace tessera::launch {
namespace {

TEST(LaunchEnv, NoLauncherMeansSingleProcess) {
  auto li = DetectLaunchEnv({});
  ASSERT_TRUE(li.ok()) << li.status().ToString();
  EXPECT_EQ(li->source, "single");
  EXPECT_EQ(li->rank, 0);
  EXPECT_EQ(li->world_size, 1);
}

TEST(LaunchEnv, OpenMpiRecorded) {
  // Recorded from `mpirun -np 5` on this machine type.
  EnvMap env = {{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "5"},
                {"OMPI_COMM_WORLD_LOCAL_RANK", "3"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "5"},
                {"PMIX_RANK", "3"}};
  auto li = DetectLaunchEnv(env);
  ASSERT_TRUE(li.ok()) << li.status().ToString();
  EXPECT_EQ(li->source, "openmpi");
  EXPECT_EQ(li->rank, 3);
  EXPECT_EQ(li->world_size, 5);
  EXPECT_EQ(li->local_rank, 3);
}

TEST(LaunchEnv, SlurmTakesFirstHostAndDerivesPortFromJobId) {
  EnvMap env = {{"SLURM_PROCID", "2"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "0"},
                {"SLURM_JOB_ID", "4242"}, {"SLURM_RESTART_COUNT", "1"},
                {"SLURM_JOB_NODELIST", "node[01-04,07],gpu5"}};
  auto li = DetectLaunchEnv(env);
  ASSERT_TRUE(li.ok()) << li.status().ToString();
  EXPECT_EQ(li->source, "slurm");
  EXPECT_EQ(li->rank, 2);
  EXPECT_EQ(li->world_size, 8);
  EXPECT_EQ(li->coordinator_host, "node01");
  EXPECT_EQ(li->slurm_job_id, "4242");
  EXPECT_EQ(li->slurm_restart_count, 1);
  EXPECT_GE(li->coordinator_port, 20000);
  EXPECT_LT(li->coordinator_port, 32000) << "inside the ephemeral port range";
  env["SLURM_JOB_ID"] = "4243";
  auto other = DetectLaunchEnv(env);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->coordinator_port, li->coordinator_port) << "two jobs on one node collide";
}

TEST(LaunchEnv, MpirunInsideSlurmPrefersOpenMpiRanks) {
  EnvMap env = {{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}, {"SLURM_JOB_ID", "7"},
                {"SLURM_JOB_NODELIST", "c[5-6]"}, {"OMPI_COMM_WORLD_RANK", "1"},
                {"OMPI_COMM_WORLD_SIZE", "4"}};
  auto li = DetectLaunchEnv(env);
  ASSERT_TRUE(li.ok()) << li.status().ToString();
  EXPECT_EQ(li->source, "openmpi");
  EXPECT_EQ(li->rank, 1);
  EXPECT_EQ(li->world_size, 4);
  EXPECT_EQ(li->coordinator_host, "c5");
}

TEST(LaunchEnv, TesseraLaunchWins) {
  EnvMap env = {{"TESSERA_RANK", "2"}, {"TESSERA_WORLD_SIZE", "5"},
                {"TESSERA_COORDINATOR_HOST", "127.0.0.1"}, {"TESSERA_COORDINATOR_PORT", "5555"},
                {"TESSERA_JOB_ID", "99"}, {"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "1"}};
  auto li = DetectLaunchEnv(env);
  ASSERT_TRUE(li.ok()) << li.status().ToString();
  EXPECT_EQ(li->source, "tessera-launch");
  EXPECT_EQ(li->rank, 2);
  EXPECT_EQ(li->coordinator_port, 5555);
  EXPECT_EQ(li->job_id, 99u);
}

TEST(LaunchEnv, TorchrunNames) {
  EnvMap env = {{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "1"},
                {"MASTER_ADDR", "10.1.2.3"}, {"MASTER_PORT", "29500"}};
  auto li = DetectLaunchEnv(env);
  ASSERT_TRUE(li.ok()) << li.status().ToString();
  EXPECT_EQ(li->source, "torchrun");
  EXPECT_EQ(li->coordinator_host, "10.1.2.3");
  EXPECT_EQ(li->coordinator_port, 29500);
}

TEST(LaunchEnv, BadValuesAreNamed) {
  auto li = DetectLaunchEnv({{"OMPI_COMM_WORLD_RANK", "x1"}, {"OMPI_COMM_WORLD_SIZE", "2"}});
  ASSERT_FALSE(li.ok());
  EXPECT_NE(li.status().message().find("OMPI_COMM_WORLD_RANK='x1'"), std::string::npos);
  auto out = DetectLaunchEnv({{"SLURM_PROCID", "4"}, {"SLURM_NTASKS", "4"}});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("outside world size"), std::string::npos);
}

TEST(SlurmNodeList, Expansion) {
  EXPECT_EQ(*FirstSlurmHost("node[01-04,07]"), "node01");
  EXPECT_EQ(*FirstSlurmHost("a1,b[2-3]"), "a1");
  EXPECT_EQ(*FirstSlurmHost("gpu[7,9]-ib"), "gpu7-ib");
  EXPECT_EQ(*FirstSlurmHost("localhost"), "localhost");
  EXPECT_FALSE(FirstSlurmHost("node[01-04").ok());
  EXPECT_FALSE(FirstSlurmHost("").ok());
}

TEST(LaunchEnv, OpenMpiRecordedDerivesPortAndJobIdFromItsJobId) {
  // Recorded from `mpirun -np 2 env` (Open MPI 4.1, Debian 12) on this machine.
  EnvMap env = {{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"},
                {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                {"OMPI_MCA_ess_base_jobid", "1316749313"}, {"PMIX_NAMESPACE", "1316749313"},
                {"PMIX_RANK", "1"}, {"PMIX_HOSTNAME", "vm"}};
  auto li = DetectLaunchEnv(env);
  ASSERT_TRUE(li.ok()) << li.status().ToString();
  EXPECT_EQ(li->source, "openmpi");
  EXPECT_EQ(li->coordinator_host, "127.0.0.1");
  EXPECT_GE(li->coordinator_port, 20000);
  EXPECT_LT(li->coordinator_port, 32000) << "inside the ephemeral port range";
  EXPECT_NE(li->job_id, 0u);
  EXPECT_NE(li->detail.find("port derived from Open MPI's job id"), std::string::npos) << li->detail;
  // Every rank of the job computes the same port and job id; another mpirun differs.
  EnvMap rank0 = env;
  rank0["OMPI_COMM_WORLD_RANK"] = rank0["PMIX_RANK"] = "0";
  auto li0 = DetectLaunchEnv(rank0);
  ASSERT_TRUE(li0.ok());
  EXPECT_EQ(li0->coordinator_port, li->coordinator_port);
  EXPECT_EQ(li0->job_id, li->job_id);
  env["OMPI_MCA_ess_base_jobid"] = "1314979841";
  auto other = DetectLaunchEnv(env);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->coordinator_port, li->coordinator_port);
  EXPECT_NE(other->job_id, li->job_id);
  // An explicit port wins over the derived one.
  env["MASTER_PORT"] = "29400";
  EXPECT_EQ(DetectLaunchEnv(env)->coordinator_port, 29400);
}

TEST(LaunchEnv, PmixRankMustAgree) {
  auto li = DetectLaunchEnv({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"PMIX_RANK", "0"}});
  ASSERT_FALSE(li.ok());
  EXPECT_NE(li.status().message().find("PMIX_RANK=0 disagrees with rank 1 from openmpi"), std::string::npos)
      << li.status().ToString();
}

TEST(LaunchEnv, MpichHydraRecorded) {
  // Hydra (mpiexec of MPICH / Intel MPI): PMI_RANK, PMI_SIZE, MPI_LOCALRANKID.
  EnvMap env = {{"PMI_RANK", "4"}, {"PMI_SIZE", "6"}, {"PMI_FD", "9"}, {"MPI_LOCALRANKID", "1"},
                {"MPI_LOCALNRANKS", "3"}};
  auto li = DetectLaunchEnv(env);
  ASSERT_TRUE(li.ok()) << li.status().ToString();
  EXPECT_EQ(li->source, "mpich");
  EXPECT_EQ(li->rank, 4);
  EXPECT_EQ(li->world_size, 6);
  EXPECT_EQ(li->local_rank, 1);
  EXPECT_EQ(li->coordinator_port, 0) << "Hydra publishes no job key: the port must be given";
  // PALS/Cray names the local rank PMI_LOCAL_RANK.
  auto pals = DetectLaunchEnv({{"PMI_RANK", "2"}, {"PMI_SIZE", "4"}, {"PMI_LOCAL_RANK", "0"}});
  ASSERT_TRUE(pals.ok());
  EXPECT_EQ(pals->local_rank, 0);
}

TEST(LaunchEnv, SrunWithPmixRecorded) {
  // `srun -N2 -n8 --mpi=pmix` in a multi-node allocation.
  EnvMap env = {{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"},
                {"SLURM_JOB_ID", "91234"}, {"SLURM_STEP_ID", "0"}, {"SLURM_RESTART_COUNT", "2"},
                {"SLURM_JOB_NODELIST", "gpu-a[007-008]"}, {"SLURM_NODEID", "1"}, {"PMIX_RANK", "5"},
                {"PMIX_NAMESPACE", "slurm.pmix.91234.0"}};
  auto li = DetectLaunchEnv(env);
  ASSERT_TRUE(li.ok()) << li.status().ToString();
  EXPECT_EQ(li->source, "slurm");
  EXPECT_EQ(li->local_rank, 1);
  EXPECT_EQ(li->coordinator_host, "gpu-a007");
  EXPECT_NE(li->detail.find("port derived from SLURM_JOB_ID"), std::string::npos) << li->detail;
  RunIdentity id = RunIdentityOf(*li);
  EXPECT_EQ(id.slurm_job_id, "91234");
  EXPECT_EQ(id.slurm_restart_count, 2);
  EXPECT_EQ(id.LogSuffix(), "slurm 91234 requeue 2");
  EXPECT_EQ(id.Metadata().size(), 4u);
  EXPECT_EQ(id.Metadata()[0], (std::pair<std::string, std::string>{"slurm_job_id", "91234"}));
}

TEST(LaunchEnv, LocalLauncherRecordedWithRestartCount) {
  // What `tessera launch --max_restarts=1` sets for rank 3 on its second run.
  EnvMap env = {{"TESSERA_RANK", "3"}, {"TESSERA_WORLD_SIZE", "5"}, {"TESSERA_LOCAL_RANK", "3"},
                {"TESSERA_COORDINATOR_HOST", "127.0.0.1"}, {"TESSERA_COORDINATOR_PORT", "31000"},
                {"TESSERA_JOB_ID", "123456789"}, {"TESSERA_RESTART_COUNT", "1"}};
  auto li = DetectLaunchEnv(env);
  ASSERT_TRUE(li.ok()) << li.status().ToString();
  EXPECT_EQ(li->restart_count, 1);
  EXPECT_EQ(RunIdentityOf(*li).LogSuffix(), "restart 1");
  EXPECT_EQ(li->detail, "rank from TESSERA_RANK/TESSERA_WORLD_SIZE, coordinator host from TESSERA_COORDINATOR_HOST, port TESSERA_COORDINATOR_PORT");
  env["TESSERA_RESTART_COUNT"] = "-1";
  EXPECT_FALSE(DetectLaunchEnv(env).ok());
}

TEST(SlurmNodeList, FullExpansion) {
  auto h = ExpandSlurmNodeList("node[01-04,07],gpu5");
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(*h, (std::vector<std::string>{"node01", "node02", "node03", "node04", "node07", "gpu5"}));
  EXPECT_EQ(*ExpandSlurmNodeList("r[1-2]n[08-10]"),
            (std::vector<std::string>{"r1n08", "r1n09", "r1n10", "r2n08", "r2n09", "r2n10"}));
  EXPECT_EQ(*ExpandSlurmNodeList("gpu[7,9]-ib"), (std::vector<std::string>{"gpu7-ib", "gpu9-ib"}));
  EXPECT_EQ(ExpandSlurmNodeList("n[1-60000]")->size(), 60000u) << "big but bounded";
  auto huge = ExpandSlurmNodeList("n[1-999999999]");
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("more than 65536 hosts"), std::string::npos);
  for (const char* bad : {"node[01-04", "node]1[", "n[4-2]", "n[a-b]", "a,,b", "n[[1]]", ""}) {
    EXPECT_FALSE(ExpandSlurmNodeList(bad).ok()) << bad;
  }
  // FirstSlurmHost agrees with the expansion.
  for (const char* l : {"node[01-04,07],gpu5", "r[1-2]n[08-10]", "gpu[7,9]-ib", "localhost"}) {
    EXPECT_EQ(*FirstSlurmHost(l), ExpandSlurmNodeList(l)->front()) << l;
  }
}

TEST(GpuChoice, LocalRankModuloVisibleDevices) {
  EXPECT_EQ(DeviceForLocalRank(0, 8), 0);
  EXPECT_EQ(DeviceForLocalRank(5, 8), 5);
  EXPECT_EQ(DeviceForLocalRank(9, 8), 1);
  EXPECT_EQ(DeviceForLocalRank(3, 1), 0) << "Slurm --gpus-per-task: each task sees one device";
  EXPECT_EQ(DeviceForLocalRank(0, 0), -1);
}

// What job.cc does with the choice: a device that does not exist is refused (on a
// CPU-only build every device), and only an applied choice is recorded.
TEST(GpuChoice, OnlyAVisibleDeviceIsApplied) {
  const int n = kernels::CudaDeviceCount();
  EXPECT_FALSE(kernels::UseCudaDevice(n).ok()) << "one past the last visible device";
  EXPECT_FALSE(kernels::UseCudaDevice(-1).ok());
  EXPECT_EQ(kernels::SelectedCudaDevice(), -1);
  if (n > 0) {
    ASSERT_TRUE(kernels::UseCudaDevice(DeviceForLocalRank(1, n)).ok());
    EXPECT_EQ(kernels::SelectedCudaDevice(), DeviceForLocalRank(1, n));
  }
}

}  // namespace
}  // namespace tessera::launch

namespace tessera::launch {
namespace {

TEST(LaunchEnvHosts, EachLauncherSaysWhetherTheJobSpansHosts) {
  EnvMap one = {{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "5"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "5"}};
  EXPECT_FALSE(DetectLaunchEnv(one)->spans_hosts);
  one["OMPI_COMM_WORLD_LOCAL_SIZE"] = "2";
  auto li = DetectLaunchEnv(one);
  ASSERT_TRUE(li.ok());
  EXPECT_TRUE(li->spans_hosts);
  EXPECT_EQ(li->spans_from, "OMPI_COMM_WORLD_LOCAL_SIZE < OMPI_COMM_WORLD_SIZE");
  EXPECT_TRUE(DetectLaunchEnv({{"PMI_RANK", "0"}, {"PMI_SIZE", "4"}, {"MPI_LOCALNRANKS", "2"}})->spans_hosts);
  EXPECT_TRUE(DetectLaunchEnv({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "5"}, {"SLURM_STEP_NUM_NODES", "3"}})->spans_hosts);
  EXPECT_FALSE(DetectLaunchEnv({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "5"}, {"SLURM_STEP_NUM_NODES", "1"},
                                {"SLURM_NNODES", "3"}})->spans_hosts)
      << "the step's own node count wins over the allocation's";
  EXPECT_TRUE(DetectLaunchEnv({{"RANK", "0"}, {"WORLD_SIZE", "4"}, {"LOCAL_WORLD_SIZE", "2"}})->spans_hosts);
  EXPECT_FALSE(DetectLaunchEnv({{"TESSERA_RANK", "0"}, {"TESSERA_WORLD_SIZE", "3"}, {"TESSERA_COORDINATOR_HOST", "127.0.0.1"}})
                   ->spans_hosts);
  auto remote = DetectLaunchEnv({{"RANK", "1"}, {"WORLD_SIZE", "3"}, {"MASTER_ADDR", "10.1.2.3"}, {"MASTER_PORT", "29500"}});
  ASSERT_TRUE(remote.ok());
  EXPECT_TRUE(remote->spans_hosts);
  EXPECT_TRUE(remote->coordinator_host_explicit);
}

TEST(LaunchEnvHosts, SlurmStepsUseTheirOwnNodeListAndPort) {
  EnvMap env = {{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "3"}, {"SLURM_JOB_ID", "900"},
                {"SLURM_JOB_NODELIST", "tn[1-3]"}, {"SLURM_STEP_NODELIST", "tn[2-3]"}, {"SLURM_STEP_ID", "0"}};
  auto a = DetectLaunchEnv(env);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->coordinator_host, "tn2") << "a step on a subset of the nodes starts rank 0 on its own first node";
  EXPECT_FALSE(a->coordinator_host_explicit);
  EXPECT_NE(a->detail.find("first host of SLURM_STEP_NODELIST, port derived from SLURM_JOB_ID and SLURM_STEP_ID"),
            std::string::npos)
      << a->detail;
  env["SLURM_STEP_ID"] = "1";
  auto b = DetectLaunchEnv(env);
  ASSERT_TRUE(b.ok());
  EXPECT_NE(a->coordinator_port, b->coordinator_port) << "two steps of one allocation collide";
  EXPECT_EQ(a->job_id, b->job_id) << "the job is the same";
}

}  // namespace
}  // namespace tessera::launch
